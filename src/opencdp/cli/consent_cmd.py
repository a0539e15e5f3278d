"""``opencdp profile consent ID [--set CATEGORY=true|false …]``: show a profile's consent per
category, or change it first (registered on the ``profile`` group in main.py)."""

from __future__ import annotations

import sys
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
from opencdp.services.audit import cli_actor

_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_assignments(assignments: list[str]) -> dict[str, bool]:
    """``["marketing=true", "ads=false"]`` → ``{"marketing": True, "ads": False}``; exits
    with a message naming the one that is not CATEGORY=true|false."""
    out: dict[str, bool] = {}
    for item in assignments:
        category, sep, value = item.partition("=")
        flag = _BOOLEANS.get(value.strip().lower())
        if not sep or not category or flag is None:
            err.print(f"[red]error:[/red] --set {item!r}: write CATEGORY=true or CATEGORY=false")
            raise typer.Exit(2)
        out[category] = flag
    return out


def profile_consent(
    ref: Annotated[
        str, typer.Argument(help="TYPE:VALUE (e.g. email:ann@example.com) or a profile id.")
    ],
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="CATEGORY=true|false; repeat for several. Recorded as a consent event and "
            "applied by the worker (here: at once).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A profile's consent per category (value, time, source, message), after setting the
    categories given with --set."""
    from opencdp.services.consent import get_consent, set_consent

    wanted = parse_assignments(assignments or [])
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        if wanted:
            with audited(
                rt, workspace, "consent.put", "/api/profiles/{profile_id}/consent"
            ) as note:
                message_id = set_consent(
                    rt, workspace, ref, wanted, channel="cli", actor=cli_actor()
                )
                rt.processor.run_until_idle()  # apply it now, as a running worker would
                note.profile_id = str(get_consent(rt, workspace, ref)["profile_id"])
            if not as_json:
                console.print(f"recorded as message {message_id}")
        body = get_consent(rt, workspace, ref)
    if as_json:
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console.print(
        f"[bold]{body['profile_id']}[/bold]: a category without a record counts as "
        f"{'consent' if body['default'] == 'opt-out' else 'no consent'} ({body['default']})"
    )
    table = Table("category", "value", "since", "source", "message")
    preferences: dict[str, Any] = body["categoryPreferences"]
    for category, record in preferences.items():
        table.add_row(
            category,
            orjson.dumps(record["value"]).decode(),
            record["timestamp"],
            record["source_id"] or "",
            record["message_id"] or "",
        )
    console.print(table)
