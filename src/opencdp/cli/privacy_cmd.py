"""``opencdp privacy …``: deletion and suppression requests and their status, a thin shell over
:mod:`opencdp.services.privacy` (the same regulations as ``/api/regulations``)."""

from __future__ import annotations

import time
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
    runtime_for,
    settings_from,
)
from opencdp.errors import NotFound
from opencdp.privacy.regulations import SUBJECT_TYPES, UNFINISHED
from opencdp.services import privacy as service
from opencdp.services.audit import cli_actor

Ids = Annotated[list[str], typer.Argument(help="The subjects: user ids, e-mails, phones, …")]
SubjectType = Annotated[
    str,
    typer.Option(
        "--subject-type",
        "-t",
        help=f"What the ids are: {', '.join(SUBJECT_TYPES)}.",
        case_sensitive=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Wait = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Run it to the end here and show the report.")
]

privacy_app = typer.Typer(
    help="Privacy requests: delete or suppress a person, lift a suppression (docs/privacy.md).",
    no_args_is_help=True,
)


def _request(
    kind: str,
    ids: list[str],
    subject_type: str,
    workspace: str,
    data_dir: str | None,
    database_url: str | None,
    *,
    wait: bool,
    as_json: bool,
) -> None:
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "regulation.create") as note,
    ):
        regulation = service.create_regulation(
            rt, workspace, kind, subject_type.upper(), ids, requested_by=cli_actor()
        )
        note.target = regulation.id
        if wait:
            deadline = time.monotonic() + 600
            while regulation.status in UNFINISHED and time.monotonic() < deadline:
                rt.dispatcher.run_until_idle()  # forwarded deletions, when any
                regulation = service.run_regulation(rt, workspace, regulation.id) or regulation
                if regulation.status in UNFINISHED:
                    time.sleep(0.5)
        _show(service.regulation_view(regulation), as_json)


@privacy_app.command("delete")
def delete(
    ids: Ids,
    subject_type: SubjectType = "USER_ID",
    suppress: Annotated[
        bool, typer.Option("--suppress", help="Also refuse their events from now on.")
    ] = False,
    internal: Annotated[
        bool,
        typer.Option("--internal", help="Do not tell destinations (Segment's *_INTERNAL types)."),
    ] = False,
    wait: Wait = True,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Delete the whole person each subject names (every identifier of their profile) from
    every store, and tell destinations that support it."""
    kind = {
        (False, False): "DELETE_ONLY",
        (True, False): "SUPPRESS_WITH_DELETE",
        (False, True): "DELETE_INTERNAL",
        (True, True): "SUPPRESS_WITH_DELETE_INTERNAL",
    }[(suppress, internal)]
    _request(kind, ids, subject_type, workspace, data_dir, database_url, wait=wait, as_json=as_json)


@privacy_app.command("suppress")
def suppress(
    ids: Ids,
    subject_type: SubjectType = "USER_ID",
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Refuse the events of each person named from now on (nothing is deleted)."""
    _request(
        "SUPPRESS_ONLY",
        ids,
        subject_type,
        workspace,
        data_dir,
        database_url,
        wait=False,
        as_json=as_json,
    )


@privacy_app.command("unsuppress")
def unsuppress(
    ids: Ids,
    subject_type: SubjectType = "USER_ID",
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Lift the suppression of each subject (and of what was suppressed with it)."""
    _request(
        "UNSUPPRESS",
        ids,
        subject_type,
        workspace,
        data_dir,
        database_url,
        wait=False,
        as_json=as_json,
    )


@privacy_app.command("status")
def status(
    regulation_id: Annotated[
        str | None, typer.Argument(help="A regulation id; without one, the latest requests.")
    ] = None,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A regulation's status and per-store report, or the latest regulations."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        if regulation_id is not None:
            found = rt.regulations.get(workspace, regulation_id)
            if found is None:
                raise NotFound(
                    f"no regulation {regulation_id!r}; `opencdp privacy status` lists them"
                )
            _show(service.regulation_view(found), as_json)
            return
        rows = [service.list_view(r) for r in rt.regulations.page(workspace, limit=50)]
    if as_json:
        console.print_json(orjson.dumps(rows).decode())
        return
    table = Table("id", "type", "subject", "status", "created", "finished")
    for r in rows:
        table.add_row(
            r["id"],
            r["regulationType"],
            r["subjectType"],
            r["status"],
            r["createdAt"],
            r["finishedAt"] or "-",
        )
    console.print(table)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(orjson.dumps(view).decode())
        return
    console.print(
        f"regulation [bold]{view['id']}[/bold] {view['regulationType']} "
        f"({view['subjectType']}): [bold]{view['overallStatus']}[/bold]"
    )
    report = view.get("report") or {}
    if report:
        table = Table("store (or action)", "rows")
        for store, n in sorted(report.items()):
            table.add_row(store, str(n))
        console.print(table)
    for stream in view.get("streamStatus", []):
        for d in stream["destinationStatus"]:
            console.print(f"  destination {d['name']}: {d['status']} {d.get('errString') or ''}")
    if view.get("error"):
        err.print(f"[yellow]last error:[/yellow] {view['error']}")
