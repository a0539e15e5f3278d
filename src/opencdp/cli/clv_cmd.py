"""``opencdp clv …``: predicted customer lifetime value (BG/NBD + Gamma-Gamma), a thin shell
over :mod:`opencdp.services.clv`."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    runtime_for,
    settings_from,
)

clv_app = typer.Typer(
    help="Predicted customer lifetime value: fit BG/NBD + Gamma-Gamma on the workspace's "
    "Order Completed history, then score every customer (see docs/clv.md).",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CalibrationEnd = Annotated[
    str | None,
    typer.Option(
        "--calibration-end",
        help="Fit on orders up to this date, included (YYYY-MM-DD; default today). Orders "
        "after it are the holdout the fit is checked against.",
    ),
]
TimeUnit = Annotated[str, typer.Option("--time-unit", help="The models' time unit: day or week.")]


@clv_app.command("fit")
def fit(
    calibration_end: CalibrationEnd = None,
    time_unit: TimeUnit = "week",
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Fit the model by maximum likelihood and store it for the workspace.

    Prints the parameters (BG/NBD r, alpha, a, b; Gamma-Gamma p, q, v), the customers used
    and the holdout check: predicted against actual repeat purchases after the calibration
    end.
    """
    from opencdp.services import clv  # numpy and scipy: only for these commands

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "clv.fit", "/api/clv/fit"),
    ):
        end = None if calibration_end is None else clv.parse_date(calibration_end)
        model = clv.fit(rt, workspace, end, clv.check_unit(time_unit))
    _print_model(model, as_json)


@clv_app.command("show")
def show(
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The workspace's fitted model."""
    from opencdp.services import clv  # numpy and scipy: only for these commands

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        model = clv.model(rt, workspace)
    _print_model(model, as_json)


@clv_app.command("score")
def score(
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Write predicted_clv_12m, p_alive and predicted_orders_12m to every customer profile,
    with the fitted model and each customer's orders up to today."""
    from opencdp.services import clv  # numpy and scipy: only for these commands

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "clv.score", "/api/clv/score"),
    ):
        done = clv.score(rt, workspace)
    if as_json:
        console.print_json(orjson.dumps(done).decode())
        return
    table = Table("trait", "profiles changed")
    for key, changed in done["changed"].items():
        table.add_row(key, str(changed))
    console.print(f"scored {done['profiles']} customer profiles at {done['scored_at']}")
    console.print(table)


def _print_model(model: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(orjson.dumps(model).decode())
        return
    unit = model["time_unit"]
    table = Table("model", "parameter", "value")
    for name in ("r", "alpha", "a", "b"):
        table.add_row("BG/NBD", name, f"{model['bgnbd'][name]:.4f}")
    for name in ("p", "q", "v"):
        table.add_row("Gamma-Gamma", name, f"{model['gamma_gamma'][name]:.4f}")
    table.add_row("BG/NBD", "log-likelihood", f"{model['bgnbd']['log_likelihood']:.1f}")
    table.add_row("Gamma-Gamma", "log-likelihood", f"{model['gamma_gamma']['log_likelihood']:.1f}")
    console.print(
        f"fitted on orders up to {model['calibration_end']} (time in {unit}s): "
        f"{model['customers']} customers, {model['repeat_customers']} with repeat purchases"
    )
    console.print(table)
    holdout = model.get("holdout")
    if holdout is None:
        console.print("holdout: no order after the calibration end")
    else:
        console.print(
            f"holdout {holdout['from']} … {holdout['to']} ({holdout['length']:.1f} {unit}s): "
            f"predicted {holdout['predicted']:.1f} repeat purchases, actual {holdout['actual']} "
            f"({holdout['error']:+.1%})"
        )
