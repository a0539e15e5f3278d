"""``opencdp import inventory FILE``, ``opencdp product show ID`` and ``opencdp inventory set
PRODUCT_ID --location L --quantity N`` / ``inventory history PRODUCT_ID``. Thin: every command
calls :mod:`opencdp.services.catalog`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    err,
    print_json,
    runtime_for,
    settings_from,
)
from opencdp.services.audit import cli_actor
from opencdp.services.catalog import InventoryImport

product_app = typer.Typer(help="The product catalog.", no_args_is_help=True)
inventory_app = typer.Typer(help="Stock levels per product and location.", no_args_is_help=True)

ProductId = Annotated[str, typer.Argument(help="The product id (SKU).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
#: the row errors an import prints (all are counted; --errors prints more)
SHOWN_ERRORS = 20


@product_app.command("show")
def product_show(
    product_id: ProductId,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A product as GET /api/products/{id} answers it: fields, attributes, stock per location,
    variants."""
    from opencdp.services import catalog

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        view, _etag = catalog.get_product(rt, workspace, product_id)
    if as_json:
        print_json(view)
        return
    table = Table("field", "value", title=f"product {view['id']}")
    for key in ("sku", "name", "brand", "category", "price", "currency", "url", "image_url"):
        if view.get(key) is not None:
            table.add_row(key, str(view[key]))
    if view.get("parent_id"):
        table.add_row("variant of", view["parent_id"])
    if view.get("variants"):
        table.add_row("variants", ", ".join(view["variants"]))
    for key, value in sorted(view["attributes"].items()):
        table.add_row(f"attributes.{key}", orjson.dumps(value).decode())
    table.add_row("in stock", "yes" if view["in_stock"] else "no")
    table.add_row("updated", view["updated_at"])
    console.print(table)
    if view["stock"]:
        stock = Table("location", "quantity", "updated", title="stock")
        for level in view["stock"]:
            stock.add_row(level["location"], str(level["quantity"]), level["updated_at"])
        console.print(stock)


@inventory_app.command("set")
def inventory_set(
    product_id: ProductId,
    location: Annotated[
        str, typer.Option("--location", "-l", help="web (the web warehouse) or a store id.")
    ],
    quantity: Annotated[int, typer.Option("--quantity", "-q", help="Units on hand (0 or more).")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Set a product's stock at one location (a restock answers back-in-stock requests)."""
    from opencdp.services import catalog

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "inventory.put", f"/api/inventory/{product_id}"),
    ):
        level = catalog.set_inventory(
            rt, workspace, product_id, {"location": location, "quantity": quantity}, cli_actor()
        )
    console.print(f"{level['product_id']} at {level['location']}: {level['quantity']}")


@inventory_app.command("history")
def inventory_history(
    product_id: ProductId,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A product's stock changes, newest first."""
    from opencdp.services import catalog

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        body = catalog.inventory_history(rt, workspace, product_id, limit)
    if as_json:
        print_json(body)
        return
    table = Table("at", "location", "quantity", "delta", "channel", "reference")
    for row in body["data"]:
        table.add_row(
            row["at"],
            row["location"],
            str(row["quantity"]),
            f"{row['delta']:+d}",
            row["channel"],
            row["reference"] or "",
        )
    console.print(table)


def import_inventory(
    file: Annotated[
        Path, typer.Argument(help="CSV or JSON Lines: product_id, location, quantity.")
    ],
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, max=10_000, help="Rows per transaction.")
    ] = 1000,
    errors: Annotated[
        int, typer.Option("--errors", min=0, help="How many refused rows to list.")
    ] = SHOWN_ERRORS,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Set stock levels from a file (one row per product and location; bulk, in chunks).
    Rows that are invalid or name a product the catalog does not have are refused and listed
    with what to fix; the others are written. Restocks answer back-in-stock requests."""
    from opencdp.services import catalog

    if not file.is_file():
        err.print(f"[red]error:[/red] {file}: no such file")
        raise typer.Exit(1)
    total = file.stat().st_size
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=err,
        ) as bar,
        audited(rt, workspace, "inventory.import", file.name),
    ):
        task = bar.add_task(file.name, total=total, rows=0)
        report = catalog.import_inventory(
            rt,
            workspace,
            file,
            chunk_size=chunk_size,
            progress=lambda done, rows: bar.update(task, completed=done, rows=rows),
        )
    _print_report(report, errors)
    if report.rejected and not report.written:
        raise typer.Exit(1)


def _print_report(report: InventoryImport, shown: int) -> None:
    console.print(
        f"[bold]{report.file}[/bold]: {report.rows:,} rows, {report.written:,} levels written "
        f"({report.changed:,} changed, {report.restocked:,} back in stock), "
        f"{report.rejected:,} refused"
    )
    if report.errors and shown:
        table = Table("line", "what to fix", title="refused rows")
        for number, message in sorted(report.errors)[:shown]:
            table.add_row(str(number), message)
        console.print(table)
        if report.rejected > shown:
            console.print(f"… and {report.rejected - shown:,} more (--errors N lists more)")
