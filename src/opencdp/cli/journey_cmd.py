"""``opencdp journey …``: journeys from YAML or JSON files or presets, their figures and
instances, a thin shell over :mod:`opencdp.services.journeys`."""

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
from opencdp.services import journeys as service

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Key = Annotated[str, typer.Argument(help="The journey's key, e.g. abandoned-cart.")]

journey_app = typer.Typer(
    help="Journeys: entry, waits, splits, sends, with durable timers (docs/activation.md).",
    no_args_is_help=True,
)


@journey_app.command("apply")
def apply(
    file: Annotated[
        Path | None,
        typer.Argument(help="YAML or JSON: a journey, or {preset, settings}."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Its key (default: the file's key, or its name).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="abandoned-cart, welcome, back-in-stock or loyalty-welcome, instead of a file.",
        ),
    ] = None,
    destination: Annotated[
        str | None, typer.Option("--destination", help="A preset's destination id.")
    ] = None,
    wait: Annotated[
        str | None, typer.Option("--wait", help="A preset's wait, e.g. '1 hour'.")
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create or replace a journey (checked in full first); under-way instances go on."""
    body: dict[str, Any] = {}
    if file is not None:
        document = read_document(file)
        if not isinstance(document, dict):
            err.print(f"[red]error:[/red] {file}: write a mapping (entry, steps, …)")
            raise typer.Exit(1)
        body.update(document)
    if preset is not None:
        body["preset"] = preset
    if destination is not None or wait is not None:
        settings = dict(body.get("settings") or {})
        if destination is not None:
            settings["destination"] = destination
        if wait is not None:
            settings["wait"] = wait
        body["settings"] = settings
    if not body:
        err.print("[red]error:[/red] give a journey file, or --preset NAME --destination ID")
        raise typer.Exit(2)
    name = key or body.get("key") or (file.stem if file is not None else preset)
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "journey.put", f"/api/journeys/{name}"),
    ):
        view, created = service.put_journey(rt, workspace, str(name), body)
    console.print(f"{'created' if created else 'replaced'} journey {name} ({view['state']})")


@journey_app.command("list")
def list_journeys(
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The workspace's journeys and their figures."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = service.list_journeys(rt, workspace)
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table("key", "name", "state", "entered", "active", "completed", "exited")
    for r in rows:
        table.add_row(
            r["key"],
            r["name"],
            r["state"],
            *(str(r[k]) for k in ("entered", "active", "completed", "exited")),
        )
    console.print(table)


@journey_app.command("show")
def show(
    key: Key,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """One journey: state, figures and per-step counts (--json: with its definition)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        view = service.get_journey(rt, workspace, key)
    if as_json:
        console.print_json(orjson.dumps(view).decode())
        return
    console.print(
        f"[bold]{view['name']}[/bold] ({key}): {view['state']}, version {view['version']}\n"
        f"entered {view['entered']}, active {view['active']}, completed {view['completed']}, "
        f"exited early {view['exited']}"
    )
    table = Table("step", "kind", "reached", "waiting now")
    for s in view["steps"]:
        table.add_row(str(s["key"]), s["kind"], str(s["reached"]), str(s["active"]))
    console.print(table)
    for reason, n in sorted(view["exit_reasons"].items()):
        console.print(f"exited: {reason}: {n}")


@journey_app.command("pause")
def pause(
    key: Key,
    resume: Annotated[bool, typer.Option("--resume", help="Let entries start again.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Stop new entries (instances under way go on); --resume starts them again."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(
            rt, workspace, "journey.resume" if resume else "journey.pause", f"/api/journeys/{key}"
        ),
    ):
        service.set_state(rt, workspace, key, "active" if resume else "paused")
    console.print(f"journey {key} {'resumed' if resume else 'paused'}")


@journey_app.command("delete")
def delete(
    key: Key,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete a journey with its instances and their timers."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "journey.delete", f"/api/journeys/{key}"),
    ):
        service.delete_journey(rt, workspace, key)
    console.print(f"deleted journey {key}")


@journey_app.command("instances")
def instances(
    key: Key,
    status: Annotated[
        str | None, typer.Option("--status", help="active, completed or exited.")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="One profile's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A journey's instances, the latest first."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = service.list_instances(
            rt, workspace, key, status=status, profile_id=profile, limit=limit
        )
    console.print_json(orjson.dumps(rows).decode())


@journey_app.command("tick")
def tick(
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Move every instance whose timer is due now (the worker does this every second)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        moved = service.run_due(rt)
    console.print(f"moved {moved} instances")
