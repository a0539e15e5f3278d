"""Privacy requests (regulations, in Segment's shape): suppress, delete, forward the deletion,
lift a suppression — and prove what was done.

A request is stored first (``INITIALIZED``); suppressing types refuse the person's events at
once (this process) and within the collector's cache time everywhere. Deleting types then run
in steps, each recorded in the regulation's ``progress`` so that a process that dies half-way
leaves a regulation that the next run resumes (:func:`run_regulations`, called by the worker
every second):

1. ``requested`` → ``erased``: the subjects are resolved to the whole person (every profile
   merged into theirs, every identifier); report files are redacted; then in one transaction
   the person's rows leave every store (:mod:`opencdp.services.erasure`), the deletion is
   queued in the outbox for each destination that supports it (``delete`` messages, which
   hold the identifiers the receiver needs), and the counts per store are recorded.
2. ``erased`` → ``forwarded``: once each forwarded deletion is delivered or dead, its status
   is recorded per destination and the delivery (with its identifiers) is removed.
3. ``forwarded`` → ``scrub``: the subjects are replaced by keyed hashes.
4. ``scrub`` → ``done``: the data files are scrubbed (:func:`scrub_files`: the last copies
   of everything above leave the files), then the overall status is set (Segment's rule:
   ``FAILED`` when a destination failed; the per-store report shows the internal deletion).

A suppressing deletion waits until every process refuses the person before it deletes, so an
event accepted meanwhile cannot bring them back after the deletion.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, replace
from typing import Any

import orjson

from opencdp.activate.destinations import registered
from opencdp.collect.suppression import TTL_SECONDS
from opencdp.errors import NotFound, RequestError
from opencdp.ids import new_id
from opencdp.privacy.redaction import needles, redact
from opencdp.privacy.regulations import (
    FAILED,
    FINISHED,
    INITIALIZED,
    RUNNING,
    SUBJECT_TYPES,
    TYPES,
    UNFINISHED,
    InvalidRegulation,
    check_request,
    overall_status,
    subject_hash,
)
from opencdp.runtime import Runtime
from opencdp.services.erasure import erase_in, redact_report_files, scrub_files
from opencdp.services.import_runs import REPORTS_DIR
from opencdp.services.recs_erasure import scrub_models
from opencdp.storage.outbox import DEAD, DELIVERED, PENDING
from opencdp.storage.regulations import Regulation, Suppression
from opencdp.timeutil import isoformat_us

log = logging.getLogger(__name__)

#: how long a suppressing deletion waits for every process to refuse the person
SETTLE_US = int((TTL_SECONDS + 1) * 1_000_000)
#: the subscription name of forwarded deletions in the outbox
FORWARD_SUBSCRIPTION = "privacy.delete"
#: identifier types the collector can recognise, and the subject type each one is
COLLECTED_TYPES = {
    "user_id": "USER_ID",
    "anonymous_id": "ANONYMOUS_ID",
    "email": "EMAIL",
    "phone": "PHONE",
}


@dataclass(frozen=True)
class Person:
    """A resolved subject: the live profile and every identifier it (and what was merged
    into it) holds."""

    profile_id: str
    identifiers: tuple[tuple[str, str], ...]


def create_regulation_from(
    rt: Runtime, workspace_id: str, body: dict[str, Any], *, requested_by: str
) -> Regulation:
    """:func:`create_regulation` from a request body in Segment's shape (unknown fields are
    refused)."""
    try:
        request = check_request(body)
    except InvalidRegulation as exc:
        raise RequestError(exc.message, code=exc.code) from None
    return create_regulation(
        rt,
        workspace_id,
        request.regulation_type.name,
        request.subject_type,
        list(request.subjects),
        requested_by=requested_by,
    )


def create_regulation(
    rt: Runtime,
    workspace_id: str,
    regulation_type: Any,
    subject_type: Any,
    subject_ids: Any,
    *,
    requested_by: str,
) -> Regulation:
    """Store a privacy request and start it: a suppression takes effect now, a deletion
    without suppression runs now (a suppressing one once every process refuses the person).
    Raises RequestError (code and message name the wrong field) for a bad request."""
    try:
        request = check_request(
            {
                "regulationType": regulation_type,
                "subjectType": subject_type,
                "subjectIds": subject_ids,
            }
        )
    except InvalidRegulation as exc:
        raise RequestError(exc.message, code=exc.code) from None
    kind = request.regulation_type
    now = rt.now_us()
    regulation = Regulation(
        workspace_id=workspace_id,
        id=new_id("reg"),
        regulation_type=kind.name,
        subject_type=request.subject_type,
        subjects=list(request.subjects),
        status=INITIALIZED,
        progress={"step": "requested"},
        error=None,
        requested_by=requested_by,
        created_us=now,
        updated_us=now,
        finished_us=None,
    )
    people = people_of(rt, workspace_id, request.subject_type, request.subjects)
    with rt.db.write() as conn:
        rt.regulations.insert(conn, regulation)
        if kind.suppress:
            rows = _suppressions(rt, regulation, people, keep_values=not kind.delete)
            rt.regulations.suppress(conn, rows)
            if not kind.delete:
                regulation = _finished(regulation, now, {"suppressed": len(rows)})
        if kind.unsuppress:
            hashes = [subject_hash(rt.admin.key, *s) for s in _subjects(regulation, people)]
            lifted = rt.regulations.unsuppress(conn, workspace_id, hashes)
            regulation = _finished(regulation, now, {"unsuppressed": lifted})
        if regulation.status == FINISHED:
            rt.regulations.save(conn, regulation)
    rt.suppressions.invalidate()
    if kind.delete and not kind.suppress:
        return run_regulation(rt, workspace_id, regulation.id) or regulation
    return regulation


def install(rt: Runtime) -> None:
    """Let the runtime's worker move regulations along with its timers (every second, on
    the first worker only): what any process that runs a worker calls once."""
    if run_regulations not in [getattr(h, "__wrapped__", None) for h in rt.timer_hooks]:

        def hook() -> int:
            return run_regulations(rt)

        hook.__wrapped__ = run_regulations  # type: ignore[attr-defined]
        rt.timer_hooks.append(hook)


def people_of(
    rt: Runtime, workspace_id: str, subject_type: str, subjects: tuple[str, ...] | list[str]
) -> list[Person]:
    """The persons the subjects name (a subject no profile holds names nobody)."""
    found: dict[str, Person] = {}
    for value in subjects:
        try:
            id_type = SUBJECT_TYPES[subject_type]
            if id_type is None:
                profile_id = rt.profiles.resolve_id(workspace_id, value, "users").id
            else:
                held = rt.profiles.find(workspace_id, "users", id_type, value)
                profile_id = rt.profiles.resolve_id(workspace_id, held).id
        except NotFound:
            continue
        if profile_id not in found:
            rows = rt.profiles.identifiers(workspace_id, profile_id)
            found[profile_id] = Person(profile_id, tuple((r.id_type, r.id_value) for r in rows))
    return list(found.values())


def run_regulations(rt: Runtime, limit: int = 20) -> int:
    """Move every unfinished regulation as far as it can go now (resuming any that a process
    left half-way); returns how many changed. The worker calls this every second."""
    moved = 0
    for workspace_id, regulation_id in rt.regulations.unfinished(limit):
        before = rt.regulations.get(workspace_id, regulation_id)
        try:
            after = run_regulation(rt, workspace_id, regulation_id)
        except Exception as exc:  # recorded, retried on the next run
            # the stack, not the message: a message can quote a row's values
            stack = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "regulation %s failed a step: %s\n%s", regulation_id, type(exc).__name__, stack
            )
            message = _without_person(rt, before, f"{type(exc).__name__}: {exc}")
            _record_error(rt, workspace_id, regulation_id, message)
            continue
        if after is not None and before is not None and after.progress != before.progress:
            moved += 1
    return moved


def run_regulation(rt: Runtime, workspace_id: str, regulation_id: str) -> Regulation | None:
    """Run the regulation's next steps; returns it as it is now (None when another runner
    holds it)."""
    regulation = rt.regulations.get(workspace_id, regulation_id)
    if regulation is None or regulation.status not in UNFINISHED:
        return regulation
    kind = TYPES[regulation.regulation_type]
    if kind.suppress and rt.now_us() < regulation.created_us + SETTLE_US:
        return regulation  # not every process refuses the person yet
    if regulation.progress.get("step") == "requested":
        erased = _erase(rt, regulation, forward=kind.forward)
        if erased is None:
            return None
        regulation = erased
    if regulation.progress.get("step") == "erased":
        regulation = _follow_forwards(rt, regulation)
    if regulation.progress.get("step") == "forwarded":
        regulation = _forget_subjects(rt, regulation)
    if regulation.progress.get("step") == "scrub":
        regulation = _finish(rt, regulation)
    return regulation


def _erase(rt: Runtime, regulation: Regulation, *, forward: bool) -> Regulation | None:
    ws = regulation.workspace_id
    people = people_of(rt, ws, regulation.subject_type, regulation.subjects)
    named = [] if regulation.subject_type == "PROFILE_ID" else list(regulation.subjects)
    values = sorted({*named, *(v for p in people for _t, v in p.identifiers)})
    # Files first: redacting them again after a crash changes nothing.
    files = redact_report_files(rt.settings.data_dir / REPORTS_DIR, values)
    hashes = sorted({subject_hash(rt.admin.key, *s) for s in _subjects(regulation, people)})
    now = rt.now_us()
    with rt.db.write() as conn:
        locked = rt.regulations.lock(conn, ws, regulation.id)
        if locked is None or locked.progress.get("step") != "requested":
            return None
        forwards = _forward_rows(rt, locked, people, now) if forward else []
        removed, _searched = erase_in(rt, conn, ws, [p.profile_id for p in people], values)
        rt.outbox.enqueue(conn, forwards)
        rt.regulations.forget_values(conn, ws, hashes)
        report = dict(sorted(removed.items()))
        if files:
            report["report_files"] = files
        destinations: dict[str, dict[str, Any]] = {}
        for row in forwards:
            entry = destinations.setdefault(
                row["destination_id"], {"status": RUNNING, "deliveries": []}
            )
            entry["deliveries"].append(row["id"])
        progress = {
            "step": "erased",
            "report": report,
            "profiles": len(people),
            "hashes": hashes,
            "destinations": destinations,
        }
        erased = replace(locked, status=RUNNING, progress=progress, updated_us=now)
        rt.regulations.save(conn, erased)
    return erased


def _forward_rows(
    rt: Runtime, regulation: Regulation, people: list[Person], now: int
) -> list[dict[str, Any]]:
    """A ``delete`` delivery per person for every enabled destination whose type supports
    deletion."""
    types = registered()
    targets = [
        d
        for d in rt.destinations.of_workspace(regulation.workspace_id)
        if d.enabled and getattr(types.get(d.type), "supports_deletion", False)
    ]
    rows: list[dict[str, Any]] = []
    for n, person in enumerate(people):
        message_id = f"{regulation.id}-{n}"
        payload = orjson.dumps(delete_message(regulation, person, message_id, now)).decode()
        for d in targets:
            rows.append(
                {
                    "workspace_id": regulation.workspace_id,
                    "id": "del_" + message_id.removeprefix("reg_") + "_" + d.id[:20],
                    "destination_id": d.id,
                    "subscription": FORWARD_SUBSCRIPTION,
                    "profile_id": None,  # the profile is gone; consent does not gate this
                    "message_id": message_id,
                    "payload": payload,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_us": now,
                    "created_us": now,
                    "updated_us": now,
                }
            )
    return rows


def delete_message(
    regulation: Regulation, person: Person, message_id: str, now: int
) -> dict[str, Any]:
    """What a destination receives when a person is deleted: Segment's ``delete`` call, with
    every identifier of the person so that the receiver can find them."""
    first: dict[str, str] = {}
    for kind, value in person.identifiers:
        first.setdefault(kind, value)
    traits = {k: first[k] for k in ("email", "phone") if k in first}
    message: dict[str, Any] = {
        "type": "delete",
        "messageId": message_id,
        "timestamp": isoformat_us(now),
        "context": {
            "traits": traits,
            "externalIds": [
                {"id": value, "type": kind, "collection": "users", "encoding": "none"}
                for kind, value in person.identifiers
            ],
            "regulation": {"id": regulation.id, "type": regulation.regulation_type},
        },
    }
    if "user_id" in first:
        message["userId"] = first["user_id"]
    if "anonymous_id" in first:
        message["anonymousId"] = first["anonymous_id"]
    return message


def _follow_forwards(rt: Runtime, regulation: Regulation) -> Regulation:
    ws = regulation.workspace_id
    destinations = regulation.progress.get("destinations", {})
    wanted = [(d, i) for d, entry in destinations.items() for i in entry["deliveries"]]
    with rt.db.write() as conn:
        locked = rt.regulations.lock(conn, ws, regulation.id)
        if locked is None or locked.progress.get("step") != "erased":
            return locked or regulation
        states = rt.regulations.delivery_states(conn, ws, wanted)
        updated: dict[str, dict[str, Any]] = {}
        for destination, entry in destinations.items():
            ids = entry["deliveries"]
            seen = [states.get((destination, i)) for i in ids]
            if any(s is not None and s[0] not in (DELIVERED, DEAD) for s in seen):
                updated[destination] = entry  # still on its way
                continue
            failed = [s for s in seen if s is None or s[0] == DEAD]
            status = FAILED if failed else FINISHED
            error = None
            if failed:
                error = (failed[0][1] if failed[0] is not None else None) or "not delivered"
            finished_at = max((s[2] for s in seen if s is not None), default=rt.now_us())
            updated[destination] = {
                "status": status,
                "errString": error,
                "finishedAt": isoformat_us(finished_at),
                "deliveries": ids,
            }
        done = all(e["status"] in (FINISHED, FAILED) for e in updated.values())
        progress = {**locked.progress, "destinations": updated}
        if done:
            rt.regulations.drop_deliveries(conn, ws, wanted)  # they hold the identifiers
            progress["step"] = "forwarded"
        regulation = replace(locked, progress=progress, updated_us=rt.now_us())
        rt.regulations.save(conn, regulation)
    return regulation


def _forget_subjects(rt: Runtime, regulation: Regulation) -> Regulation:
    """Replace the subjects by keyed hashes — before the scrub, so that the scrub also takes
    the request's own earlier copies of them out of the files."""
    with rt.db.write() as conn:
        locked = rt.regulations.lock(conn, regulation.workspace_id, regulation.id)
        if locked is None or locked.progress.get("step") != "forwarded":
            return locked or regulation
        hashed = [
            "hash:" + subject_hash(rt.admin.key, locked.subject_type, s)[:32]
            for s in locked.subjects
        ]
        progress = {**locked.progress, "step": "scrub"}
        progress.pop("hashes", None)
        forgotten = replace(locked, subjects=hashed, progress=progress, updated_us=rt.now_us())
        rt.regulations.save(conn, forgotten)
    return forgotten


def _finish(rt: Runtime, regulation: Regulation) -> Regulation:
    # before the status says so: a crash here scrubs again
    scrub_models(rt, regulation.workspace_id)
    scrub_files(rt)
    now = rt.now_us()
    with rt.db.write() as conn:
        locked = rt.regulations.lock(conn, regulation.workspace_id, regulation.id)
        if locked is None or locked.progress.get("step") != "scrub":
            return locked or regulation
        statuses = {d: e["status"] for d, e in locked.progress.get("destinations", {}).items()}
        finished = replace(
            locked,
            status=overall_status(True, statuses),
            progress={**locked.progress, "step": "done"},
            error=None,  # a step that failed on the way was done again
            updated_us=now,
            finished_us=now,
        )
        rt.regulations.save(conn, finished)
    return finished


def _finished(regulation: Regulation, now: int, report: dict[str, Any]) -> Regulation:
    return replace(
        regulation,
        status=FINISHED,
        progress={"step": "done", "report": report},
        updated_us=now,
        finished_us=now,
    )


def _subjects(regulation: Regulation, people: list[Person]) -> list[tuple[str, str]]:
    """(subject type, value) the collector can recognise: the named subjects and every
    identifier of the persons they resolved to."""
    out: list[tuple[str, str]] = []
    if regulation.subject_type != "PROFILE_ID":
        out += [(regulation.subject_type, s) for s in regulation.subjects]
    for person in people:
        out += [(COLLECTED_TYPES[t], v) for t, v in person.identifiers if t in COLLECTED_TYPES]
    return list(dict.fromkeys(out))


def _suppressions(
    rt: Runtime, regulation: Regulation, people: list[Person], *, keep_values: bool
) -> list[Suppression]:
    return [
        Suppression(
            workspace_id=regulation.workspace_id,
            subject_hash=subject_hash(rt.admin.key, kind, value),
            subject_type=kind,
            subject_id=value if keep_values else None,
            regulation_id=regulation.id,
            created_us=regulation.created_us,
        )
        for kind, value in _subjects(regulation, people)
    ]


def _without_person(rt: Runtime, regulation: Regulation | None, message: str) -> str:
    """``message`` with the person's values taken out: an error can quote a row (a driver
    quotes its parameters), and the regulation keeps its error after the person is gone."""
    if regulation is None:
        return message
    values = list(regulation.subjects)
    try:
        people = people_of(rt, regulation.workspace_id, regulation.subject_type, values)
    except Exception:  # the store that failed the step may fail this read too
        people = []
    values += [v for p in people for _t, v in p.identifiers]
    return redact(message, needles(values))


def _record_error(rt: Runtime, workspace_id: str, regulation_id: str, error: str) -> None:
    with rt.db.write() as conn:
        locked = rt.regulations.lock(conn, workspace_id, regulation_id)
        if locked is not None:
            failing = replace(locked, error=error[:2000], updated_us=rt.now_us())
            rt.regulations.save(conn, failing)


# Reads ----------------------------------------------------------------------------------
def regulation_view(regulation: Regulation) -> dict[str, Any]:
    """A regulation in the Public API's shape, plus the per-store report."""
    destinations = regulation.progress.get("destinations", {})
    out: dict[str, Any] = {
        "id": regulation.id,
        "workspaceId": regulation.workspace_id,
        "overallStatus": regulation.status,
        "regulationType": regulation.regulation_type,
        "subjectType": regulation.subject_type,
        "subjects": regulation.subjects,
        "createdAt": isoformat_us(regulation.created_us),
        "finishedAt": isoformat_us(regulation.finished_us) if regulation.finished_us else None,
        "streamStatus": [
            {
                "id": "opencdp",
                "destinationStatus": [
                    {
                        "name": name,
                        "id": name,
                        "status": entry["status"],
                        "errString": entry.get("errString"),
                        "finishedAt": entry.get("finishedAt"),
                    }
                    for name, entry in sorted(destinations.items())
                ],
            }
        ],
        "report": regulation.progress.get("report", {}),
        "profiles": regulation.progress.get("profiles", 0),
        "step": regulation.progress.get("step"),
    }
    if regulation.error:
        out["error"] = regulation.error
    return out


def list_view(regulation: Regulation) -> dict[str, Any]:
    """A regulation as ``GET /regulations`` lists it (Segment's fields)."""
    return {
        "id": regulation.id,
        "workspaceId": regulation.workspace_id,
        "subjectType": regulation.subject_type,
        "subjects": regulation.subjects,
        "status": regulation.status,
        "regulationType": regulation.regulation_type,
        "createdAt": isoformat_us(regulation.created_us),
        "finishedAt": isoformat_us(regulation.finished_us) if regulation.finished_us else None,
    }


def suppressed_view(rt: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    """``[{subjectType, subjectIds}]``: the value where it is kept (SUPPRESS_ONLY), else
    ``hash:…`` (the person was deleted: only the keyed hash remains)."""
    grouped: dict[str, list[str]] = {}
    for s in rt.regulations.list_suppressions(workspace_id):
        shown = s.subject_id if s.subject_id is not None else "hash:" + s.subject_hash[:32]
        grouped.setdefault(s.subject_type, []).append(shown)
    return [{"subjectType": k, "subjectIds": v} for k, v in sorted(grouped.items())]
