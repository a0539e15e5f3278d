"""The ``opencdp`` command line: a thin shell over the runtime (Typer + Rich)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from opencdp.cli import access_cmd, admin_cmd, consent_cmd, export_cmd
from opencdp.cli.catalog_cmd import import_inventory, inventory_app, product_app
from opencdp.cli.clv_cmd import clv_app
from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    err,
    errors_reported,
    runtime_for,
    settings_from,
)
from opencdp.cli.compute_cmd import audiences_app, traits_app
from opencdp.cli.destination_cmd import deliveries_app, destination_app
from opencdp.cli.governance_cmd import plan_app, quarantine_app, source_settings
from opencdp.cli.import_cmd import import_app
from opencdp.cli.journey_cmd import journey_app
from opencdp.cli.loyalty_cmd import loyalty_app
from opencdp.cli.privacy_cmd import privacy_app
from opencdp.cli.qr_cmd import qr_app
from opencdp.cli.recs_cmd import recs_app
from opencdp.services.privacy import install as install_privacy

app = typer.Typer(
    name="opencdp",
    help="OpenCDP: a Segment-compatible customer data platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(
    help="Sources: the senders of events and their write keys.", no_args_is_help=True
)
token_app = typer.Typer(help="Access tokens for the Profile API and /api.", no_args_is_help=True)
profile_app = typer.Typer(
    help="Look at profiles and why identifiers belong together.", no_args_is_help=True
)
events_app = typer.Typer(help="Look at the event stream.", no_args_is_help=True)
rules_app = typer.Typer(help="Identity rules of a workspace.", no_args_is_help=True)
app.add_typer(access_cmd.workspace_app, name="workspace")
app.add_typer(source_app, name="source")
app.add_typer(token_app, name="token")
app.add_typer(profile_app, name="profile")
app.add_typer(events_app, name="events")
app.add_typer(rules_app, name="identity-rules")
app.add_typer(plan_app, name="plan")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(import_app, name="import")
app.add_typer(traits_app, name="traits")
app.add_typer(destination_app, name="destination")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(journey_app, name="journey")
app.add_typer(privacy_app, name="privacy")
app.add_typer(audiences_app, name="audiences")
app.add_typer(clv_app, name="clv")
app.add_typer(recs_app, name="recs")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(qr_app, name="qr")
app.add_typer(product_app, name="product")
app.add_typer(inventory_app, name="inventory")
import_app.command("inventory")(import_inventory)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Run no worker process (same as --workers 0)."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worker processes beside the HTTP processes (default: the workers setting, 1). "
            "More than one needs PostgreSQL.",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, help="HTTP processes sharing the port."),
    ] = 1,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Run the HTTP API and its worker(s) as supervised processes until SIGTERM or Ctrl-C."""
    from opencdp.serve import serve as run_serve

    settings = settings_from(data_dir, database_url, host=host, port=port)
    _logging(settings.log_level)
    count = 0 if no_worker else (settings.workers if workers is None else workers)
    with errors_reported():
        status = run_serve(settings, processes=processes, workers=count, console=err)
    raise typer.Exit(status)


@app.command()
def worker(
    slot: Annotated[
        int | None,
        typer.Option(min=0, help="Process only this slot's inbox partitions (0-based)."),
    ] = None,
    slots: Annotated[
        int | None,
        typer.Option(min=1, help="How many worker slots share the inbox (with --slot)."),
    ] = None,
    no_dispatcher: Annotated[
        bool,
        typer.Option(
            "--no-dispatcher",
            help="Do not send the outbox from this process (run `opencdp dispatcher` instead).",
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Process the inbox in this process until SIGTERM or Ctrl-C, and send the outbox to the
    destinations beside it. Scale out on PostgreSQL with several: ``--slot I --slots N`` each
    processes its own partitions in order; without a slot, workers share all partitions."""
    if (slot is None) != (slots is None) or (
        slot is not None and slots is not None and slot >= slots
    ):
        err.print("[red]error:[/red] give --slot I and --slots N together, with I < N")
        raise typer.Exit(2)
    settings = settings_from(data_dir, database_url)
    _logging(settings.log_level)
    with runtime_for(settings) as rt:
        install_privacy(rt)
        if slot is not None and slots is not None:
            rt.worker.take_slot(slot, slots)
        where = f", slot {slot} of {slots}" if slot is not None else ""
        if not no_dispatcher and settings.dispatcher_in_worker:
            rt.dispatcher.start()
            where += ", sending the outbox"
        err.print(f"worker on {rt.db.describe()}{where}; Ctrl-C to stop")
        rt.worker.run_until_terminated()


@app.command()
def dispatcher(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Send the outbox's deliveries to their destinations until SIGTERM or Ctrl-C (beside
    workers started with --no-dispatcher; several may run on PostgreSQL)."""
    settings = settings_from(data_dir, database_url)
    _logging(settings.log_level)
    with runtime_for(settings) as rt:
        err.print(f"dispatcher on {rt.db.describe()}; Ctrl-C to stop")
        rt.dispatcher.run_until_terminated()


@app.command()
def status(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Inbox backlog, worker lag, profile and quarantine counts."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        oldest = rt.inbox.oldest_pending_received_us()
        lag = max(0.0, (rt.now_us() - oldest) / 1e6) if oldest else 0.0
        table = Table(show_header=False)
        table.add_row("database", rt.db.describe())
        table.add_row("inbox pending", str(rt.inbox.pending()))
        table.add_row("worker lag", f"{lag:.1f} s")
        table.add_row("profiles (users)", str(rt.profiles.count_profiles("default", "users")))
        table.add_row("profiles (accounts)", str(rt.profiles.count_profiles("default", "accounts")))
        table.add_row("quarantine", orjson.dumps(rt.quarantine.counts("default")).decode())
        console.print(table)


@app.command()
def demo(
    customers: Annotated[
        int | None, typer.Option(help="Load only the first N CDNOW customers.")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API afterwards.")
    ] = True,
    port: Annotated[int | None, typer.Option(help="TCP port to serve on.")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Load the real CDNOW history plus an omnichannel layer, resolve identities, then serve."""
    from opencdp.demo.loader import run_demo

    settings = settings_from(data_dir, database_url, port=port)
    with errors_reported():
        run_demo(settings, customers=customers, serve=serve_after, console=err)


# Sources ---------------------------------------------------------------------------------
source_app.command("add")(access_cmd.source_add)  # --help lists commands in this order


@source_app.command("list")
def source_list(
    workspace: Workspace = "default", data_dir: DataDir = None, database_url: DbUrl = None
) -> None:
    """List the sources of a workspace."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        table = Table("id", "name", "write key", "enabled", "catalog")
        for s in rt.admin.list_sources(workspace):
            table.add_row(
                s.id,
                s.name,
                s.write_key_hint,
                "yes" if s.enabled else "no",
                "yes" if s.catalog else "",
            )
        console.print(table)


# Tokens ----------------------------------------------------------------------------------
token_app.command("add")(access_cmd.token_add)


@token_app.command("list")
def token_list(
    workspace: Workspace = "default", data_dir: DataDir = None, database_url: DbUrl = None
) -> None:
    """List the access tokens of a workspace."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        table = Table("id", "name", "role", "token", "instance admin")
        for t in rt.admin.list_tokens(workspace):
            table.add_row(t.id, t.name, t.role, t.token_hint, "yes" if t.instance_admin else "")
        console.print(table)


# Profiles --------------------------------------------------------------------------------
def _locate(rt: Any, workspace: str, ref: str) -> str:
    if ":" in ref:
        id_type, _, value = ref.partition(":")
        from opencdp.identity import normalize_email, normalize_phone

        id_type = id_type.strip().lower()
        if id_type == "email":
            value = normalize_email(value) or value
        elif id_type == "phone":
            value = normalize_phone(value, rt.settings.default_phone_region) or value
        collection = "accounts" if id_type == "group_id" else "users"
        return str(rt.profiles.find(workspace, collection, id_type, value))
    return str(rt.profiles.resolve_id(workspace, ref).id)


@profile_app.command("show")
def profile_show(
    ref: Annotated[
        str, typer.Argument(help="TYPE:VALUE (e.g. email:ann@example.com) or a profile id.")
    ],
    events: Annotated[int, typer.Option(help="How many recent events to show.")] = 10,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A profile's identifiers, traits and latest events."""
    from opencdp.timeutil import isoformat_us

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        pid = _locate(rt, workspace, ref)
        console.print(f"[bold]{pid}[/bold]")
        ids = Table("type", "value", "first seen")
        for r in rt.profiles.identifiers(workspace, pid):
            ids.add_row(r.id_type, r.id_value, isoformat_us(r.created_us))
        console.print(ids)
        traits = Table("trait", "value", "updated", "source")
        for key, tv in sorted(rt.profiles.traits(workspace, pid).items()):
            traits.add_row(
                key,
                orjson.dumps(tv.value).decode(),
                isoformat_us(tv.event_us),
                tv.source_id or "",
            )
        console.print(traits)
        table = Table("time", "type", "event", "message id")
        for e in rt.profiles.events(workspace, pid, limit=events):
            table.add_row(isoformat_us(e.timestamp_us), e.type, e.event or "", e.message_id)
        console.print(table)


@profile_app.command("explain")
def profile_explain(
    ref: Annotated[
        str, typer.Argument(help="TYPE:VALUE (e.g. email:ann@example.com) or a profile id.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Why these identifiers belong to one profile: every link and merge, with its message and rule."""
    from opencdp.services.identity import explain_profile

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        body = explain_profile(rt, workspace, _locate(rt, workspace, ref))
        if as_json:
            sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
            return
        console.print(
            f"[bold]{body['profile_id']}[/bold] ({body['collection']}), created {body['created_at']}"
        )
        table = Table("identifier", "linked by rule", "message", "source", "linked at")
        for i in body["identifiers"]:
            table.add_row(
                f"{i['type']}:{i['value']}",
                i["rule"],
                i["message_id"] or "",
                i["source_id"] or "",
                i["linked_at"],
            )
        console.print(table)
        if body["merges"]:
            merges = Table("merged profile", "into", "rule", "bridging identifiers", "message")
            for m in body["merges"]:
                merges.add_row(
                    m["from_profile_id"],
                    m["into_profile_id"],
                    m["rule"],
                    ", ".join(m["bridging_identifiers"]),
                    m["message_id"] or "",
                )
            console.print(merges)
        else:
            console.print("no merges: every identifier was linked directly")


# Identity rules --------------------------------------------------------------------------
@rules_app.command("show")
def rules_show(
    workspace: Workspace = "default", data_dir: DataDir = None, database_url: DbUrl = None
) -> None:
    """The identity rules in force (defaults plus the workspace's overrides), as JSON."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        body = {
            "rules": rt.identity_config(workspace).to_dict(),
            "overrides": rt.admin.identity_config(workspace),
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


@rules_app.command("set")
def rules_set(
    file: Annotated[
        typer.FileText, typer.Argument(help="A JSON file of overrides ({} resets to defaults).")
    ],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Replace the workspace's identity-rule overrides (applies to events processed from now on)."""
    from opencdp.services.identity import set_identity_rules

    try:
        overrides = orjson.loads(file.read())
    except orjson.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] {file.name} is not valid JSON: {exc}")
        raise typer.Exit(1) from None
    if not isinstance(overrides, dict):
        err.print(f"[red]error:[/red] {file.name} must hold a JSON object of overrides")
        raise typer.Exit(1)
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "identity_rules.put", f"/api/workspaces/{workspace}/identity-rules"),
    ):
        set_identity_rules(rt, workspace, overrides)
        console.print(f"identity rules of workspace {workspace} updated")


# Events ----------------------------------------------------------------------------------
@events_app.command("tail")
def events_tail(
    n: Annotated[int, typer.Option("-n", help="How many of the latest events to show.")] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The latest events received (from the inbox), newest last."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        rows = rt.inbox.latest(n)
        last = 0
        for row in rows:
            _print_inbox_row(row)
            last = row.seq
        while follow:
            time.sleep(0.5)
            rows = rt.inbox.after(last, 1000)
            for row in rows:
                _print_inbox_row(row)
                last = row.seq


def _print_inbox_row(row: Any) -> None:
    msg = orjson.loads(row.payload)
    who = msg.get("userId") or msg.get("anonymousId") or ""
    what = msg.get("event") or msg.get("name") or ""
    state = "processed" if row.processed_us else "pending"
    console.print(
        f"{msg.get('timestamp', '')}  {msg.get('type', ''):8} {what:24} {who:28} {row.message_id}  [dim]{state}[/dim]"
    )


# Defined with the other governance commands, listed after `source add` and `source list`.
source_app.command("settings")(source_settings)
source_app.command("disable")(admin_cmd.source_disable)
source_app.command("enable")(admin_cmd.source_enable)
source_app.command("rotate-key")(admin_cmd.source_rotate_key)
token_app.command("revoke")(access_cmd.token_revoke)
token_app.command("rotate")(access_cmd.token_rotate)
app.command("audit")(access_cmd.audit)
profile_app.command("consent")(consent_cmd.profile_consent)
profile_app.command("export")(export_cmd.export)


def main() -> None:
    """Entry point of the ``opencdp`` script."""
    app()
