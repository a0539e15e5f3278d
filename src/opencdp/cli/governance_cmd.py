"""``opencdp plan …``, ``opencdp source settings`` and ``opencdp quarantine …``: a thin shell
over :mod:`opencdp.services.governance`."""

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
    errors_reported,
    read_document,
    runtime_for,
    settings_from,
)
from opencdp.imports.mapping import load_mapping
from opencdp.imports.presets import resolve_mapping
from opencdp.services import governance as gov
from opencdp.timeutil import isoformat_us

plan_app = typer.Typer(
    help="Tracking plans: the events and properties a source may send.", no_args_is_help=True
)
quarantine_app = typer.Typer(
    help="Events kept aside (blocked, invalid or failed), and their replay.", no_args_is_help=True
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _dump(doc: Any) -> None:
    console.print_json(orjson.dumps(doc).decode())


# -- plans ---------------------------------------------------------------------------------------
@plan_app.command("apply")
def plan_apply(
    file: Annotated[
        Path, typer.Argument(help="Plan file (YAML or JSON), e.g. kept in a repository.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Store nothing; report what the plan would have done.")
    ] = False,
    days: Annotated[
        float, typer.Option(help="Dry run: look at the events of the last N days.")
    ] = 7.0,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create or update a tracking plan from a file, and attach it to the sources it names.

    The file holds id, name, rules ([{type, key, version, jsonSchema}]) and optionally
    sources (names or ids), workspace: true, and settings (Segment's enforcement settings).
    """
    doc = read_document(file)
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "tracking_plan.put", record=not dry_run) as note,
    ):
        out = gov.apply_plan_document(rt, workspace, doc, dry_run=dry_run, days=days)
        note.target = f"/api/tracking-plans/{out.get('plan_id')}"
    if as_json:
        _dump(out)
        return
    if dry_run:
        _print_dry_run(out)
        return
    verb = "stored as revision" if out["created_revision"] else "unchanged at revision"
    console.print(f"plan [bold]{out['plan_id']}[/bold] {verb} {out['revision']}")
    for scope in out["scopes"]:
        console.print(f"  enforced on {scope}")
    if not out["scopes"]:
        console.print(
            "  not attached here: name `sources:` (or `workspace: true`) in the file, or run "
            f"`opencdp source settings SOURCE --plan {out['plan_id']}`"
        )


def _print_dry_run(out: dict[str, Any]) -> None:
    report = out["dry_run"]
    console.print(
        f"Dry run of plan [bold]{out['plan_id']}[/bold] over the last {report['days']:g} days "
        f"({len(report['sources'])} source(s)); nothing was changed."
    )
    table = Table(show_header=False)
    table.add_row("events checked", str(report["events"]))
    table.add_row("would pass", str(report["would_pass"]))
    table.add_row("  of which changed (omitted fields)", str(report["would_pass_changed"]))
    table.add_row("with violations", str(report["with_violations"]))
    for reason, n in report["would_block"].items():
        table.add_row(f"would block: {reason}", str(n))
    q = report["quarantined"]
    table.add_row("quarantined now / would pass", f"{q['checked']} / {q['would_pass']}")
    console.print(table)
    if report["unplanned_events"]:
        t = Table("unplanned event", "events")
        for name, n in report["unplanned_events"].items():
            t.add_row(name, str(n))
        console.print(t)
    if report["violations"]:
        t = Table("event", "violation", "field", "rule", "events")
        for v in report["violations"][:20]:
            t.add_row(v["event"], v["type"], v["field"], v["rule"], str(v["count"]))
        console.print(t)


@plan_app.command("list")
def plan_list(
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The tracking plans of a workspace, with the sources they are enforced on."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        plans = [(p, rt.plans.scopes_using(workspace, p.id)) for p in rt.plans.list(workspace)]
    if as_json:
        _dump([{**p.to_dict(), "scopes": s} for p, s in plans])
        return
    table = Table("id", "name", "revision", "rules", "enforced on")
    for p, scopes in plans:
        table.add_row(p.id, p.name, str(p.revision), str(len(p.rules)), ", ".join(scopes) or "-")
    console.print(table)


@plan_app.command("show")
def plan_show(
    plan_id: str,
    revision: Annotated[int | None, typer.Option(help="An older revision.")] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Print a plan as JSON (it can be saved and applied again)."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        _dump(gov.get_plan(rt, workspace, plan_id, revision).to_dict())


@plan_app.command("delete")
def plan_delete(
    plan_id: str,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Retire a plan: sources using it stop enforcing (its revisions are kept)."""
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "tracking_plan.delete", f"/api/tracking-plans/{plan_id}"),
    ):
        gov.delete_plan(rt, workspace, plan_id)
    console.print(f"plan {plan_id} retired")


def source_settings(
    source: Annotated[str, typer.Argument(help="Source name or id; 'workspace' for the default.")],
    plan: Annotated[
        str | None, typer.Option("--plan", help="Tracking plan to enforce ('none' to detach).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A setting, e.g. track.allowUnplannedEvents=false, "
            "track.commonEventOnViolations=BLOCK, forwardingViolationsTo=src_…",
        ),
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show or change the tracking plan and enforcement settings of a source."""
    changes: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]error:[/red] --set needs KEY=VALUE, got {item!r}")
            raise typer.Exit(1)
        lowered = value.strip().lower()
        changes[key.strip()] = (
            True
            if lowered == "true"
            else False
            if lowered == "false"
            else None
            if lowered in ("null", "none", "")
            else value.strip()
        )
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        scope = gov.scope_for(rt, workspace, source)
        if plan is not None or changes:
            with audited(
                rt, workspace, "schema_settings.put", f"/api/sources/{source}/schema-settings"
            ):
                config = gov.set_schema_config(
                    rt,
                    workspace,
                    scope,
                    tracking_plan_id=(None if plan.lower() == "none" else plan)
                    if plan is not None
                    else ...,
                    changes=changes,
                )
        else:
            config = gov.schema_config(rt, workspace, scope)
    _dump(config.to_dict())


# -- quarantine ----------------------------------------------------------------------------------
Source = Annotated[str | None, typer.Option("--source", help="Source name or id.")]
Reason = Annotated[
    str | None, typer.Option("--reason", help="e.g. schema_violation, unplanned_event.")
]
Event = Annotated[str | None, typer.Option("--event", help="Event name.")]
Since = Annotated[
    str | None, typer.Option("--since", help="ISO-8601 time or a duration (24h, 7d).")
]
Until = Annotated[str | None, typer.Option("--until", help="ISO-8601 time or a duration ago.")]
Status = Annotated[str, typer.Option("--status", help="open, resolved or all.")]


@quarantine_app.command("list")
def quarantine_list(
    source: Source = None,
    reason: Reason = None,
    event: Event = None,
    since: Since = None,
    until: Until = None,
    status: Status = "open",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Quarantined events, newest first."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        where = gov.quarantine_filter(
            rt,
            workspace,
            source=source,
            reason=reason,
            event=event,
            since=since,
            until=until,
            status=status,
        )
        rows = rt.quarantine.list(workspace, limit=limit, where=where)
    if as_json:
        _dump([gov.quarantine_json(r, payload=False) for r in rows])
        return
    closed = status != "open"
    table = Table(
        "id", "quarantined at", "reason", "event", "source", *(["resolution"] * closed), "detail"
    )
    for r in rows:
        table.add_row(
            str(r.id),
            isoformat_us(r.created_us),
            r.reason,
            f"{r.event_type or '?'} {r.event_name or ''}".strip(),
            r.source_id or "-",
            *([r.resolution or "open"] * closed),
            r.detail[:120],
        )
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(
    row_id: Annotated[int, typer.Argument(help="Id from `quarantine list`.")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """One quarantined event, whole: reason, violations, plan version and payload."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        row = rt.quarantine.get(workspace, row_id)
    if row is None:
        err.print(f"[red]error:[/red] no quarantined event {row_id} in workspace {workspace!r}")
        raise typer.Exit(1)
    _dump(gov.quarantine_json(row))


@quarantine_app.command("stats")
def quarantine_stats(
    source: Source = None,
    reason: Reason = None,
    event: Event = None,
    since: Since = None,
    until: Until = None,
    status: Status = "open",
    bucket: Annotated[str, typer.Option(help="hour or day.")] = "day",
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Counts per reason, per source and per event, and per reason over time."""
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        where = gov.quarantine_filter(
            rt,
            workspace,
            source=source,
            reason=reason,
            event=event,
            since=since,
            until=until,
            status=status,
        )
        stats = gov.quarantine_stats(rt, where, bucket)
    if as_json:
        _dump(stats)
        return
    console.print(f"{stats['total']} quarantined event(s)")
    t = Table("reason", "events")
    for k, v in sorted(stats["by_reason"].items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(v))
    console.print(t)
    reasons = sorted(stats["by_reason"])
    if stats["over_time"]:
        t = Table(bucket, *reasons)
        for slot in stats["over_time"]:
            t.add_row(
                slot["start"][: 10 if bucket == "day" else 13],
                *(str(slot["counts"].get(r, 0)) for r in reasons),
            )
        console.print(t)


@quarantine_app.command("replay")
def quarantine_replay(
    source: Source = None,
    reason: Reason = None,
    event: Event = None,
    since: Since = None,
    until: Until = None,
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="Replay this row (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100_000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; say what would pass.")
    ] = False,
    process: Annotated[
        bool, typer.Option("--process/--no-process", help="Process replayed events right away.")
    ] = True,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            "-m",
            help="Import rows (invalid_row): convert them with this mapping file or preset "
            "instead of the one their import used.",
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="With --mapping: the kind it imports, if the file does not say."),
    ] = None,
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Re-run quarantined events through the current tracking plan.

    Events that now pass are processed exactly once (their message ids make sure of it); the
    others stay in quarantine with their new reason. Rows of import files (invalid_row) are
    converted again from the original row, with the mapping their import used (or --mapping);
    a row that still does not convert keeps its diagnostic (row and column).
    """
    replay_mapping = None
    if mapping is not None:
        with errors_reported():
            replay_mapping = (
                resolve_mapping(mapping, kind) if kind else load_mapping(mapping, kind=None)
            )
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        where = gov.quarantine_filter(
            rt,
            workspace,
            source=source,
            reason=reason,
            event=event,
            since=since,
            until=until,
            ids=ids,
        )
        with audited(rt, workspace, "quarantine.replay", record=not dry_run):
            result = gov.replay_quarantine(
                rt, where, limit=limit, dry_run=dry_run, process=process, mapping=replay_mapping
            )
    out = result.to_dict()
    if as_json:
        _dump(out)
        return
    prefix = "dry run: would replay" if dry_run else "replayed"
    console.print(
        f"{out['selected']} selected; {prefix} {out['replayed']}; duplicates {out['duplicates']}; "
        f"forwarded {out['forwarded']}; still failing {out['still_failing']}"
        + (f" {out['still_failing_by_reason']}" if out["still_failing"] else "")
        + (f"; processed {out['processed']}" if out["processed"] else "")
    )


@quarantine_app.command("dismiss")
def quarantine_dismiss(
    ids: Annotated[list[int], typer.Argument(help="Ids from `quarantine list`.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why they are dismissed (kept with the rows).")
    ],
    as_json: Json = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Close quarantined events that will never be fixed, saying why.

    They stay for the record (``quarantine show``, ``list --status resolved``) with the
    resolution ``dismissed`` and the reason; replays leave them alone.
    """
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "quarantine.dismiss"),
    ):
        out = gov.dismiss_quarantine(rt, workspace, ids, reason)
    if as_json:
        _dump(out)
        return
    console.print(f"dismissed {len(out['dismissed'])}: {_ids(out['dismissed'])}")
    if out["closed"]:
        console.print(f"closed already, left as they were: {_ids(out['closed'])}")
    if out["not_found"]:
        console.print(f"not in workspace {workspace!r}: {_ids(out['not_found'])}")


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids) or "-"
