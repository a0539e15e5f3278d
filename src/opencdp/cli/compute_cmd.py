"""``opencdp traits …`` and ``opencdp audiences …``: computed traits and audiences kept as YAML
files in a repository, a thin shell over :mod:`opencdp.services.compute`."""

from __future__ import annotations

from pathlib import Path
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
    err,
    read_document,
    runtime_for,
    settings_from,
)
from opencdp.query.parser import DefinitionKind
from opencdp.services import compute

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Key = Annotated[str, typer.Argument(help="The definition's key, e.g. lifetime_value.")]
Query = Annotated[str, typer.Argument(help="A definition in the query language.")]
DefinitionType = Annotated[str, typer.Option("--type", help="USERS or ACCOUNTS.")]
DefinitionFile = Annotated[
    Path | None, typer.Argument(help="YAML or JSON file of definitions.", show_default=False)
]
Preset = Annotated[
    str | None,
    typer.Option("--preset", help="Apply a definition set that ships with OpenCDP: retail."),
]


def _app(kind: DefinitionKind, word: str, example: str) -> typer.Typer:
    # the names the API gives the same writes (web/access.py)
    action = "audience" if kind == "audience" else "computed_trait"
    path = "audiences" if kind == "audience" else "computed-traits"
    app = typer.Typer(
        help=f"{word.capitalize()}s in Segment's query language (see docs/compute.md).",
        no_args_is_help=True,
    )

    @app.command("apply")
    def apply(
        file: DefinitionFile = None,
        preset: Preset = None,
        as_json: Json = False,
        workspace: Workspace = "default",
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        """Create or replace the definitions of a file (or of a preset) and compute them.

        The file holds a list of {key, name, definition: {type, query}, enabled} (or a mapping
        of key to the rest), e.g.:

            - key: {example_key}
              definition: {{query: "{example}"}}
        """
        if (file is None) == (preset is None):
            err.print("[red]error:[/red] give a FILE or --preset NAME (e.g. --preset retail)")
            raise typer.Exit(2)
        document = read_document(file) if file is not None else None
        with (
            runtime_for(settings_from(data_dir, database_url)) as rt,
            audited(rt, workspace, f"{action}.put", f"/api/{path}") as note,
        ):
            if preset is not None:
                done = compute.apply_preset(rt, workspace, kind, preset)
            else:
                done = compute.apply_file(rt, workspace, kind, document)
            keys = ",".join(str(d.get("key")) for d in done)
            note.target = f"/api/{path}/{keys}"
        if as_json:
            console.print_json(orjson.dumps(done).decode())
            return
        _table(done, kind)

    apply.__doc__ = (
        (apply.__doc__ or "")
        .replace("{example_key}", example.split(":")[0])
        .replace("{example}", example.split(":", 1)[1])
    )

    @app.command("list")
    def list_definitions(
        as_json: Json = False,
        workspace: Workspace = "default",
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        """The definitions of the workspace with their status."""
        with runtime_for(settings_from(data_dir, database_url)) as rt:
            rows = [
                compute.describe(rt, r) for r in compute.store(rt).of_workspace(workspace, kind)
            ]
        if as_json:
            console.print_json(orjson.dumps(rows).decode())
            return
        _table(rows, kind)

    @app.command("show")
    def show(
        key: Key,
        workspace: Workspace = "default",
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        """One definition as JSON."""
        with runtime_for(settings_from(data_dir, database_url)) as rt:
            row = compute.describe(rt, compute.store(rt).get(workspace, key, kind))
        console.print_json(orjson.dumps(row).decode())

    @app.command("delete")
    def delete(
        key: Key,
        workspace: Workspace = "default",
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        """Delete a definition and the values it computed."""
        with (
            runtime_for(settings_from(data_dir, database_url)) as rt,
            audited(rt, workspace, f"{action}.delete", f"/api/{path}/{key}"),
        ):
            compute.delete_definition(rt, workspace, key, kind)
        console.print(f"deleted {word} {key}")

    @app.command("preview")
    def preview(
        query: Query,
        definition_type: DefinitionType = "USERS",
        workspace: Workspace = "default",
        data_dir: DataDir = None,
        database_url: DbUrl = None,
    ) -> None:
        """Compute a definition now without storing it: its size and a sample."""
        body = {"definition": {"type": definition_type, "query": query}}
        with runtime_for(settings_from(data_dir, database_url)) as rt:
            result = compute.preview(rt, workspace, body, kind)
        console.print_json(orjson.dumps(result).decode())

    return app


def _table(rows: list[dict[str, Any]], kind: DefinitionKind) -> None:
    table = Table("key", "name", "status", "size" if kind == "audience" else "computed at", "query")
    for r in rows:
        status = r["status"] if "error" not in r else f"{r['status']}: {r['error']}"
        last = str(r.get("size")) if kind == "audience" else (r["computed_at"] or "-")
        table.add_row(r["key"], r["name"], status, last, r["definition"]["query"])
    console.print(table)


traits_app = _app(
    "trait", "computed trait", "lifetime_value:event('Order Completed').sum(property('revenue'))"
)
audiences_app = _app(
    "audience", "audience", "recent_buyers:event('Order Completed').within(30 days).count() >= 1"
)
