"""``opencdp recs …``: train, evaluate, list and roll back the recommendation models, and the
workspace's recommendation settings — a thin shell over :mod:`opencdp.services.recs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    errors_reported,
    print_json,
    read_document,
    runtime_for,
    settings_from,
)

recs_app = typer.Typer(
    help="Recommendations: train on the workspace's purchases, cart adds and views, evaluate "
    "against popularity, roll back (see docs/recommendations.md).",
    no_args_is_help=True,
)
settings_app = typer.Typer(help="The workspace's weights, serving rules and schedule.")
recs_app.add_typer(settings_app, name="settings")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DATASETS = ("instacart", "movielens")


@recs_app.command("train")
def train(
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Train on the workspace's events: evaluate the models on a holdout, keep the best as
    the next version, make it active and refresh the recommended_items trait."""
    from opencdp.services import recs

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "recs.train", "/api/recs/train") as note,
    ):
        version = recs.train(rt, workspace, source="cli")
        note.target = version["version"]
    if as_json:
        print_json(version)
        return
    evaluation = version.get("evaluation") or {}
    lift = evaluation.get("lift")
    versus = "" if lift is None else f", {lift * 100:+.1f} % NDCG@10 over popularity"
    console.print(
        f"trained [bold]{version['version']}[/bold] ({version['kind']}{versus}) on "
        f"{version['interactions']:,} interactions of {version['users']:,} profiles and "
        f"{version['items']:,} products in {version['seconds']:.1f} s; it is active"
    )


@recs_app.command("evaluate")
def evaluate(
    holdout_days: Annotated[
        int | None,
        typer.Option(
            "--holdout-days",
            min=1,
            max=3650,
            help="Hold out the last N days (default: each customer's last basket).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Evaluate on a real dataset instead of the workspace: instacart (next basket) "
            "or movielens (last 10 ratings per user).",
        ),
    ] = None,
    as_json: AsJson = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the report as JSON.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as an HTML page with charts.")
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Each model against the popularity baseline: precision, recall, MAP and NDCG at 10 and
    catalog coverage."""
    from opencdp.cli import recs_report
    from opencdp.services import recs

    settings = settings_from(data_dir, database_url)
    if dataset is not None:
        if dataset not in DATASETS:
            console.print(f"[red]error:[/red] --dataset is one of {', '.join(DATASETS)}")
            raise typer.Exit(2)
        from opencdp.services.recs_datasets import evaluate_dataset

        with errors_reported():
            report = evaluate_dataset(dataset, settings.data_dir)
        title = f"Recommendations on {dataset}"
    else:
        with runtime_for(settings) as rt:
            report = recs.evaluate(rt, workspace, holdout_days)
        title = f"Recommendations in workspace {workspace}"
    if out is not None:
        recs_report.write_json(report.to_document(), out)
    if html is not None:
        recs_report.write_html(report, html, title)
    if as_json:
        print_json(report.to_document())
        return
    if not report.models:
        console.print("nothing to evaluate: no customer has a holdout and a history before it")
        return
    console.print(recs_report.table(report, title))


@recs_app.command("models")
def models(
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The trained versions, newest first."""
    from opencdp.services import recs

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        found = recs.models(rt, workspace)
    if as_json:
        print_json(found)
        return
    table = Table(title=f"Recommendation models of {workspace}")
    for column in ("version", "status", "model", "trained at", "interactions", "NDCG@10", "lift"):
        table.add_column(column)
    for v in found:
        evaluation = v["evaluation"] or {}
        chosen = (evaluation.get("models") or {}).get(v["kind"] or "", {})
        lift = evaluation.get("lift")
        table.add_row(
            v["version"] + (" (active)" if v["active"] else ""),
            v["status"] if not v["error"] else f"{v['status']}: {v['error']}",
            v["kind"] or "-",
            v["trained_at"],
            f"{v['interactions']:,}",
            f"{chosen['ndcg@10']:.4f}" if chosen else "-",
            f"{lift * 100:+.1f} %" if lift is not None else "-",
        )
    console.print(table)


@recs_app.command("rollback")
def rollback(
    version: Annotated[
        str | None,
        typer.Argument(help="The version to make active (default: the one before the active)."),
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Make an earlier version active again (every server within a few seconds)."""
    from opencdp.services import recs

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "recs.rollback", version) as note,
    ):
        active = recs.rollback(rt, workspace, version)
        note.target = active["version"]
    console.print(f"[bold]{active['version']}[/bold] ({active['kind']}) is active again")


@settings_app.command("show")
def settings_show(
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Print the settings as JSON, defaults filled in."""
    from opencdp.services import recs

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        print_json(recs.settings(rt, workspace))


@settings_app.command("apply")
def settings_apply(
    file: Annotated[Path, typer.Argument(help="A JSON or YAML settings document.")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Store the settings (weights, rules, train_every_hours, holdout); errors name the field."""
    from opencdp.services import recs

    document = read_document(file)
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "recs.settings.put", "/api/recs/settings"),
    ):
        print_json(recs.apply_settings(rt, workspace, document))
