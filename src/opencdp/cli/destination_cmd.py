"""``opencdp destination …`` and ``opencdp deliveries …``: where data goes out and what
happened to it, a thin shell over :mod:`opencdp.services.destinations`."""

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
from opencdp.services import destinations as service

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DestinationId = Annotated[str, typer.Argument(help="The destination's id, e.g. erp.")]

destination_app = typer.Typer(
    help="Destinations: where events go out (see docs/activation.md).", no_args_is_help=True
)
deliveries_app = typer.Typer(
    help="Deliveries in the outbox: pending, retrying, delivered, dead.", no_args_is_help=True
)


def _value(text: str) -> Any:
    """A ``--set`` value: JSON when it reads as JSON (numbers, true, lists), else the text."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@destination_app.command("add")
def add(
    destination_id: DestinationId,
    file: Annotated[
        Path | None,
        typer.Argument(help="YAML or JSON: {type, enabled, settings, subscriptions}."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--type", help="webhook, segment, smtp, file…")
    ] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="A setting KEY=VALUE (VALUE read as JSON when it is)."),
    ] = None,
    subscribe: Annotated[
        list[str] | None,
        typer.Option(
            "--subscribe",
            help="A subscription NAME=CONDITION in FQL, e.g. orders='event = \"Order Completed\"'.",
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it switched off.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create or replace a destination, from a file or from options (all checked first)."""
    body: dict[str, Any] = {}
    if file is not None:
        document = read_document(file)
        if not isinstance(document, dict):
            err.print(f"[red]error:[/red] {file}: write a mapping of type, settings, subscriptions")
            raise typer.Exit(1)
        body.update(document)
    if kind is not None:
        body["type"] = kind
    settings = dict(body.get("settings") or {})
    for item in setting or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            err.print(f"[red]error:[/red] --set {item!r}: write KEY=VALUE")
            raise typer.Exit(2)
        settings[key] = _value(text)
    body["settings"] = settings
    subscriptions = list(body.get("subscriptions") or [])
    for item in subscribe or []:
        name, sep, condition = item.partition("=")
        if not sep or not name:
            err.print(f"[red]error:[/red] --subscribe {item!r}: write NAME=CONDITION")
            raise typer.Exit(2)
        subscriptions.append({"name": name, "condition": condition})
    body["subscriptions"] = subscriptions
    if disabled:
        body["enabled"] = False
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "destination.put", f"/api/destinations/{destination_id}"),
    ):
        view, created = service.put_destination(rt, workspace, destination_id, body)
    console.print(f"{'created' if created else 'replaced'} destination {destination_id}")
    console.print_json(orjson.dumps(view).decode())


@destination_app.command("list")
def list_destinations(
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The workspace's destinations with their health and delivery counts."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = service.list_destinations(rt, workspace)
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table(
        "id", "type", "enabled", "health", "pending", "retrying", "delivered", "dead", "no consent"
    )
    for r in rows:
        d = r["deliveries"]
        table.add_row(
            r["id"],
            r["type"],
            "yes" if r["enabled"] else "no",
            r["health"],
            *(str(d.get(k, 0)) for k in ("pending", "retrying", "delivered", "dead")),
            str(d.get("suppressed_by_consent", 0)),
        )
    console.print(table)


@destination_app.command("show")
def show(
    destination_id: DestinationId,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """One destination as JSON (secrets masked)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        view = service.get_destination(rt, workspace, destination_id)
    console.print_json(orjson.dumps(view).decode())


@destination_app.command("test")
def test(
    destination_id: DestinationId,
    subscription: Annotated[
        str | None, typer.Option("--subscription", help="Shape it with this one's mapping.")
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Send one sample event now and show what the receiver answered."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "destination.test", f"/api/destinations/{destination_id}/test"),
    ):
        result = service.test_destination(rt, workspace, destination_id, subscription=subscription)
    console.print_json(orjson.dumps(result).decode())
    if result["verdict"] != "delivered":
        raise typer.Exit(1)


@destination_app.command("disable")
def disable(
    destination_id: DestinationId,
    enable: Annotated[bool, typer.Option("--enable", help="Switch it on again instead.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Switch a destination off (nothing new is routed to it; waiting deliveries wait) or, with
    --enable, on."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "destination.put", f"/api/destinations/{destination_id}"),
    ):
        service.set_enabled(rt, workspace, destination_id, enable)
    console.print(f"destination {destination_id} {'enabled' if enable else 'disabled'}")


@destination_app.command("delete")
def delete(
    destination_id: DestinationId,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete a destination and its deliveries."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "destination.delete", f"/api/destinations/{destination_id}"),
    ):
        service.delete_destination(rt, workspace, destination_id)
    console.print(f"deleted destination {destination_id}")


# -- deliveries -----------------------------------------------------------------------------------


@deliveries_app.command("list")
def list_deliveries(
    destination: Annotated[
        str | None, typer.Option("--destination", help="Only this one's.")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, retrying, delivered or dead.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    after: Annotated[str | None, typer.Option("--next", help="cursor.next of a page.")] = None,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Deliveries in the order they were enqueued."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        page = service.list_deliveries(
            rt, workspace, destination=destination, status=status, limit=limit, after=after
        )
    if as_json:
        console.print_json(orjson.dumps(page).decode())
        return
    table = Table("id", "destination", "status", "attempts", "last code", "last error", "created")
    for d in page["data"]:
        table.add_row(
            d["id"],
            d["destination"],
            d["status"],
            str(d["attempts"]),
            str(d["last_status_code"] or ""),
            (d["last_error"] or "")[:60],
            d["created_at"],
        )
    console.print(table)
    if page["cursor"]["has_more"]:
        console.print(f"more: --next {page['cursor']['next']}")


@deliveries_app.command("show")
def show_delivery(
    delivery_id: Annotated[str, typer.Argument(help="A delivery's id (msg_…).")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A delivery with its event, the last request and the last answer."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = service.get_delivery(rt, workspace, delivery_id)
    console.print_json(orjson.dumps(rows).decode())


@deliveries_app.command("retry")
def retry(
    delivery_ids: Annotated[list[str], typer.Argument(help="Delivery ids (msg_…).")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Send these deliveries again now: dead ones, or retrying ones without waiting."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "delivery.replay", "/api/deliveries/replay"),
    ):
        n = sum(
            service.replay_deliveries(rt, workspace, {"status": s, "ids": delivery_ids})["replayed"]
            for s in ("dead", "retrying")
        )
    console.print(f"{n} deliveries queued again")


@deliveries_app.command("replay")
def replay(
    destination: Annotated[str, typer.Option("--destination", help="The destination's id.")],
    status: Annotated[
        str,
        typer.Option(
            "--status",
            help="dead (after a fix), delivered (send again) or suppressed_by_consent "
            "(consent is checked again).",
        ),
    ] = "dead",
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Queue all of a destination's dead (or delivered) deliveries again, under their ids."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(
            rt, workspace, "delivery.replay", f"/api/deliveries/replay?destination={destination}"
        ),
    ):
        done = service.replay_deliveries(
            rt, workspace, {"destination": destination, "status": status}
        )
    console.print(f"{done['replayed']} deliveries queued again")
