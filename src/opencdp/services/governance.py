"""The governance service: plan lifecycle, enforcement settings, dry runs, quarantine queries and
replay. The HTTP API and the CLI are thin shells over these functions."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.errors import NotFound, RequestError
from opencdp.govern import CompiledPlan, EnforcementSettings, PlanError, TrackingPlan, enforce
from opencdp.govern.dryrun import DryRunReport
from opencdp.govern.enforce import strip_protocols
from opencdp.govern.plan import parse_plan
from opencdp.imports.convert import INVALID_ROW
from opencdp.imports.mapping import ImportMapping
from opencdp.services.import_replay import replay_import_rows
from opencdp.services.quarantine_replay import ReplayResult, replay
from opencdp.storage.plans import WORKSPACE_SCOPE, SchemaConfig
from opencdp.storage.quarantine import BUCKETS_US, QuarantineFilter
from opencdp.timeutil import isoformat_us, parse_timestamp, to_us

if TYPE_CHECKING:
    from opencdp.runtime import Runtime

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DRY_RUN_DAYS = 3650
MAX_DISMISS = 10_000  # row ids per dismissal
MAX_NOTE = 2000  # characters of a dismissal reason


def plan_error(exc: PlanError) -> RequestError:
    return RequestError(f"invalid tracking plan: {exc}", code="invalid_plan")


def parse_plan_document(doc: Any, plan_id: str | None = None) -> TrackingPlan:
    """A plan from a document, or a 400 naming the place in the document that is wrong."""
    try:
        return parse_plan(doc, plan_id=plan_id)
    except PlanError as exc:
        raise plan_error(exc) from None


def save_plan(runtime: Runtime, workspace_id: str, plan: TrackingPlan) -> tuple[TrackingPlan, bool]:
    """Store a plan as a new revision (unless unchanged); takes effect at once in this process."""
    stored, created = runtime.plans.save(workspace_id, plan, runtime.now_us())
    runtime.governance.invalidate()
    return stored, created


def get_plan(
    runtime: Runtime, workspace_id: str, plan_id: str, revision: int | None = None
) -> TrackingPlan:
    plan = runtime.plans.get(workspace_id, plan_id, revision)
    if plan is None:
        raise NotFound(
            f"no tracking plan {plan_id!r} in workspace {workspace_id!r}", code="plan_not_found"
        )
    return plan


def delete_plan(runtime: Runtime, workspace_id: str, plan_id: str) -> None:
    if not runtime.plans.delete(workspace_id, plan_id, runtime.now_us()):
        raise NotFound(
            f"no tracking plan {plan_id!r} in workspace {workspace_id!r}", code="plan_not_found"
        )
    runtime.governance.invalidate()


def scope_for(runtime: Runtime, workspace_id: str, source: str | None) -> str:
    """The settings scope of a source given by name or id (``*``: the workspace)."""
    if source in (None, "", WORKSPACE_SCOPE, "workspace"):
        return WORKSPACE_SCOPE
    assert source is not None
    found = runtime.admin.find_source(workspace_id, source)
    if found is None:
        raise NotFound(
            f"no source {source!r} in workspace {workspace_id!r}; see `opencdp source list`",
            code="source_not_found",
        )
    return found.id


def schema_config(runtime: Runtime, workspace_id: str, scope: str) -> SchemaConfig:
    """The stored configuration of a scope (defaults when none is stored)."""
    return runtime.plans.config(workspace_id, scope) or SchemaConfig(
        workspace_id, scope, None, EnforcementSettings(), 0
    )


def set_schema_config(
    runtime: Runtime,
    workspace_id: str,
    scope: str,
    *,
    tracking_plan_id: str | object | None = ...,
    settings: Any = ...,
    changes: dict[str, Any] | None = None,
) -> SchemaConfig:
    """Attach a plan and/or settings to a scope; what is not given stays as it was."""
    current = schema_config(runtime, workspace_id, scope)
    plan_id = current.tracking_plan_id if tracking_plan_id is ... else tracking_plan_id
    if plan_id is not None and not isinstance(plan_id, str):
        raise RequestError("trackingPlanId must be a string or null", code="invalid_settings")
    if plan_id is not None and runtime.plans.get(workspace_id, plan_id) is None:
        raise NotFound(
            f"no tracking plan {plan_id!r} in workspace {workspace_id!r}", code="plan_not_found"
        )
    try:
        new_settings = current.settings if settings is ... else current.settings.merged(settings)
        for key, value in (changes or {}).items():
            new_settings = new_settings.with_value(key, value)
    except PlanError as exc:
        raise RequestError(
            f"invalid enforcement settings: {exc}", code="invalid_settings"
        ) from None
    for target in (
        new_settings.forwarding_blocked_events_to,
        new_settings.forwarding_violations_to,
    ):
        found = runtime.admin.source_by_id(target) if target is not None else None
        # Only a source of the same workspace: an admin of one workspace must not be able to
        # write events into another (and ids of other workspaces are not confirmed either).
        if target is not None and (found is None or found.workspace_id != workspace_id):
            raise NotFound(
                f"forwarding target {target!r} is not a source id of workspace {workspace_id!r}",
                code="source_not_found",
            )
        if found is not None and scope == found.id:
            raise RequestError("a source cannot forward to itself", code="invalid_settings")
    config = runtime.plans.set_config(workspace_id, scope, plan_id, new_settings, runtime.now_us())
    runtime.governance.invalidate()
    return config


def apply_plan_document(
    runtime: Runtime,
    workspace_id: str,
    doc: Any,
    *,
    dry_run: bool = False,
    days: float = 7.0,
) -> dict[str, Any]:
    """Apply a plan file: store the plan, attach it to the sources (or the workspace) it names,
    with the settings it gives. With ``dry_run`` nothing is stored: the result says what the
    plan would have done to the events of the last ``days`` days instead.

    The file is a plan document plus optional ``sources`` (names or ids), ``workspace``
    (true: the plan applies to every source without its own) and ``settings``.
    """
    plan = parse_plan_document(doc)
    meta = plan.meta
    sources = meta.get("sources")
    sources = [] if sources is None else sources
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise RequestError("sources must be a list of source names or ids", code="invalid_plan")
    scopes = [scope_for(runtime, workspace_id, s) for s in sources]
    if meta.get("workspace") is True:
        scopes.append(WORKSPACE_SCOPE)
    settings_doc = meta.get("settings")
    try:
        settings = EnforcementSettings.from_dict(settings_doc) if settings_doc is not None else None
    except PlanError as exc:
        raise RequestError(
            f"invalid enforcement settings: {exc}", code="invalid_settings"
        ) from None
    current = runtime.plans.get(workspace_id, plan.id)
    out: dict[str, Any] = {
        "plan_id": plan.id,
        "current_revision": current.revision if current else None,
        "changed": current is None or not current.same_rules(plan),
        "scopes": ["workspace" if s == WORKSPACE_SCOPE else s for s in scopes],
    }
    if dry_run:
        out["dry_run"] = dry_run_plan(
            runtime, workspace_id, plan, days=days, scopes=scopes or None, settings=settings
        )
        return out
    stored, created = save_plan(runtime, workspace_id, plan)
    for scope in scopes:
        set_schema_config(
            runtime,
            workspace_id,
            scope,
            tracking_plan_id=stored.id,
            settings=settings.to_dict() if settings is not None else ...,
        )
    out.update({"revision": stored.revision, "created_revision": created})
    return out


def dry_run_plan(
    runtime: Runtime,
    workspace_id: str,
    plan: TrackingPlan,
    *,
    days: float = 7.0,
    scopes: list[str] | None = None,
    settings: EnforcementSettings | None = None,
    page: int = 2000,
) -> dict[str, Any]:
    """What ``plan`` would have done to the stored events of the last ``days`` days (and to the
    events now in quarantine), with each source's settings unless ``settings`` is given."""
    compiled = CompiledPlan(plan)
    if scopes is None:
        using = runtime.plans.scopes_using(workspace_id, plan.id)
        scopes = using or [WORKSPACE_SCOPE]
    if WORKSPACE_SCOPE in scopes:
        source_ids = [s.id for s in runtime.admin.list_sources(workspace_id)]
    else:
        source_ids = list(scopes)
    per_source = {
        sid: settings
        or (
            runtime.plans.effective(workspace_id, sid) or schema_config(runtime, workspace_id, sid)
        ).settings
        for sid in source_ids
    }
    if not 0 < days <= MAX_DRY_RUN_DAYS:
        raise RequestError(
            f"days must be more than 0 and at most {MAX_DRY_RUN_DAYS}", code="invalid_request"
        )
    since_us = runtime.now_us() - int(days * 86_400_000_000)
    report = DryRunReport()
    # Keyset paging along the primary key (workspace, message id): every page is an index
    # range scan, so the whole dry run reads the workspace's events once.
    last = ""
    while source_ids:
        rows = runtime.profiles.events_of_sources(workspace_id, source_ids, since_us, last, page)
        for _mid, source_id, payload in rows:
            message = strip_protocols(orjson.loads(payload))
            report.add(message, enforce(compiled, per_source[source_id], message))
        if len(rows) < page:
            break
        last = rows[-1][0]
    for sid in source_ids:
        where = QuarantineFilter(workspace_id, source_id=sid, since_us=since_us)
        for row in runtime.quarantine.for_replay(where, 100_000):
            if row.reason not in ("unplanned_event", "schema_violation"):
                continue
            message = orjson.loads(row.payload)
            if isinstance(message, dict):
                report.add_quarantined(enforce(compiled, per_source[sid], strip_protocols(message)))
    out = report.to_dict()
    out.update({"days": days, "sources": source_ids, "plan_id": plan.id})
    return out


# -- quarantine --------------------------------------------------------------------------------
def parse_time(value: str | None, now: datetime, name: str) -> int | None:
    """An ISO-8601 time, or a time relative to now such as ``24h``, ``7d``, ``30m``."""
    if value is None or value == "":
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        try:
            delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
            return to_us(now - delta)
        except (OverflowError, ValueError):
            raise RequestError(
                f"{name} {value!r} reaches too far back; use a time after 0001-01-01",
                code="invalid_request",
            ) from None
    try:
        return to_us(parse_timestamp(value))
    except ValueError:
        raise RequestError(
            f"{name} must be an ISO-8601 time or a duration like 24h or 7d; got {value!r}",
            code="invalid_request",
        ) from None


def quarantine_filter(
    runtime: Runtime,
    workspace_id: str,
    *,
    source: str | None = None,
    reason: str | None = None,
    event: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: list[int] | None = None,
    status: str = "open",
) -> QuarantineFilter:
    """A validated quarantine filter from user input (names or ids of sources, relative times)."""
    if status not in ("open", "resolved", "all"):
        raise RequestError("status must be open, resolved or all", code="invalid_request")
    now = runtime.clock.now()
    scope = scope_for(runtime, workspace_id, source) if source else WORKSPACE_SCOPE
    source_id = None if scope == WORKSPACE_SCOPE else scope
    return QuarantineFilter(
        workspace_id,
        source_id=source_id,
        reason=reason or None,
        event_name=event or None,
        event_type=event_type or None,
        since_us=parse_time(since, now, "since"),
        until_us=parse_time(until, now, "until"),
        ids=tuple(ids or ()),
        status=status,
    )


def replay_quarantine(
    runtime: Runtime,
    where: QuarantineFilter,
    *,
    limit: int = 100_000,
    dry_run: bool = False,
    process: bool = False,
    mapping: ImportMapping | None = None,
) -> ReplayResult:
    """Replay matching events through the current plan; optionally process them right away.

    Rows of import files (``invalid_row``) are converted again from their original rows, with
    ``mapping`` or the mapping their run used, and processed as the import does.
    """
    if where.status != "open":  # resolved rows were replayed already: never twice
        where = dataclasses.replace(where, status="open")
    result = ReplayResult(dry_run=dry_run)
    if where.reason in (None, INVALID_ROW):
        replay_import_rows(runtime, where, result, limit=limit, dry_run=dry_run, mapping=mapping)
    if where.reason != INVALID_ROW and result.selected < limit:
        replay(runtime, where, limit=limit - result.selected, dry_run=dry_run, result=result)
    if process and not dry_run and (result.replayed or result.forwarded):
        result.processed += runtime.processor.run_until_idle()
    return result


def dismiss_quarantine(
    runtime: Runtime, workspace_id: str, ids: Any, reason: Any
) -> dict[str, list[int]]:
    """Close open quarantine rows of the workspace as ``dismissed``, with the operator's reason.

    Answers which ids were dismissed, which are not in the workspace (``not_found``) and which
    were closed already (``closed``; their resolution stays as it was).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise RequestError("reason must say why the rows are dismissed", code="invalid_request")
    if len(reason) > MAX_NOTE:
        raise RequestError(f"reason may be at most {MAX_NOTE} characters", code="invalid_request")
    if (
        not isinstance(ids, list | tuple)
        or not ids
        or len(ids) > MAX_DISMISS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 1 << 63 for i in ids)
    ):
        raise RequestError(
            f"ids must be a list of 1 to {MAX_DISMISS} quarantine row ids", code="invalid_request"
        )
    dismissed, not_found, closed = runtime.quarantine.dismiss(
        workspace_id, ids, reason.strip(), runtime.now_us()
    )
    return {"dismissed": dismissed, "not_found": not_found, "closed": closed}


def quarantine_stats(runtime: Runtime, where: QuarantineFilter, bucket: str) -> dict[str, Any]:
    """Counts per reason, source and event, and per reason per ``bucket`` (hour or day), each
    bucket named by its ISO-8601 start."""
    if bucket not in BUCKETS_US:
        raise RequestError("bucket must be hour or day", code="invalid_request")
    stats = runtime.quarantine.stats(where, bucket)
    stats["over_time"] = [
        {"start": isoformat_us(start), "counts": counts} for start, counts in stats["over_time"]
    ]
    return stats


def quarantine_json(row: Any, *, payload: bool = True) -> dict[str, Any]:
    """The API shape of a quarantined event."""
    out: dict[str, Any] = {
        "id": row.id,
        "source_id": row.source_id,
        "message_id": row.message_id,
        "stage": row.stage,
        "reason": row.reason,
        "detail": row.detail,
        "violations": row.violation_list,
        "plan_id": row.plan_id,
        "plan_revision": row.plan_revision,
        "event_type": row.event_type,
        "event_name": row.event_name,
        "created_at": isoformat_us(row.created_us),
        "replays": row.replays,
        "resolved_at": isoformat_us(row.resolved_us) if row.resolved_us else None,
        "resolution": row.resolution,
        "resolution_note": row.resolution_note,
        "import_run_id": row.import_run_id,
    }
    if payload:
        try:
            out["payload"] = orjson.loads(row.payload)
        except orjson.JSONDecodeError:
            out["payload"] = row.payload
    return out
