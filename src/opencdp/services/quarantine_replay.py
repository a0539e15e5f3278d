"""Replay of quarantined events through the current tracking plan (an adapter).

An event that now passes goes back into the inbox with its original message id, so the worker
processes it exactly once (an id already processed, or already waiting in the inbox, is not
queued again). One that still fails stays in quarantine with its new reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.collect.collector import inbox_row
from opencdp.collect.envelope import Envelope
from opencdp.collect.normalize import NormalizedEvent
from opencdp.collect.rejection import Rejection, rejection_fields
from opencdp.govern.enforce import strip_protocols
from opencdp.imports.convert import INVALID_ROW
from opencdp.storage.quarantine import QuarantineFilter, QuarantineRow
from opencdp.timeutil import from_us, parse_timestamp

if TYPE_CHECKING:
    from opencdp.runtime import Runtime


@dataclass
class ReplayResult:
    """What a replay did (or, for a dry run, would do)."""

    selected: int = 0
    replayed: int = 0
    duplicates: int = 0
    forwarded: int = 0
    still_failing: Counter[str] = field(default_factory=Counter)
    processed: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            "replayed": self.replayed,
            "duplicates": self.duplicates,
            "forwarded": self.forwarded,
            "still_failing": sum(self.still_failing.values()),
            "still_failing_by_reason": dict(self.still_failing),
            "processed": self.processed,
            "dry_run": self.dry_run,
        }


def replay(
    runtime: Runtime,
    where: QuarantineFilter,
    *,
    limit: int = 100_000,
    dry_run: bool = False,
    chunk: int = 500,
    result: ReplayResult | None = None,
) -> ReplayResult:
    """Re-run open quarantined events matching ``where`` through normalization and the plan
    (adding to ``result`` when one is given).

    Rows of import files that the converter refused (``invalid_row``) are no Segment messages:
    :mod:`opencdp.services.import_replay` converts them again instead, and they are left out here.
    """
    result = result or ReplayResult(dry_run=dry_run)
    where = dataclasses.replace(where, exclude_reasons=(*where.exclude_reasons, INVALID_ROW))
    runtime.governance.invalidate()  # the plan may have just been fixed
    last_id = 0
    start = result.selected
    while result.selected - start < limit:
        # Keyset paging by id: rows that fail again stay open but are behind us.
        rows = runtime.quarantine.for_replay(
            where, min(chunk, limit - (result.selected - start)), after_id=last_id
        )
        if not rows:
            break
        last_id = rows[-1].id
        result.selected += len(rows)
        _replay_rows(runtime, rows, result, dry_run)
    return result


def _replay_rows(
    runtime: Runtime, rows: list[QuarantineRow], result: ReplayResult, dry_run: bool
) -> None:
    now = runtime.clock.now()
    now_us = runtime.now_us()
    collector = runtime.collector
    passing: list[tuple[QuarantineRow, NormalizedEvent, Any]] = []
    failing: list[tuple[QuarantineRow, Rejection]] = []
    forwarded_rows: list[dict[str, Any]] = []
    forwarded_ids: list[int] = []
    for row in rows:
        source = runtime.governance.source(row.source_id) if row.source_id else None
        try:
            raw = orjson.loads(row.payload)
        except orjson.JSONDecodeError:
            raw = row.payload
        if source is None:
            failing.append(
                (row, Rejection("unknown_source", "the source of this event no longer exists", raw))
            )
            continue
        if isinstance(raw, dict) and row.message_id and "messageId" not in raw:
            # The id was generated when the event was first received: keep it, so that
            # replaying twice cannot make two events.
            raw = {**raw, "messageId": row.message_id}
        raw = strip_protocols(raw)  # judged afresh: an earlier plan's record goes
        outcome = collector.judge(
            source,
            raw,
            Envelope([raw], None),
            _received_at(raw, row, now),
            forwarded_rows,
            collector.governance_for(source),
        )
        if outcome is None:
            forwarded_ids.append(row.id)
        elif isinstance(outcome, NormalizedEvent):
            passing.append((row, outcome, source))
        else:
            failing.append((row, outcome))
    if dry_run:
        result.forwarded += len(forwarded_ids)
        result.replayed += len(passing)
        for _, rejection in failing:
            result.still_failing[rejection.reason] += 1
        return
    with runtime.db.write() as conn:
        ws = rows[0].workspace_id
        # Claim: a concurrent replay may have resolved some of these rows since they were read.
        still_open = runtime.quarantine.claim_open(conn, [r.id for r in rows])
        passing = [p for p in passing if p[0].id in still_open]
        failing = [f for f in failing if f[0].id in still_open]
        forwarded_ids = [i for i in forwarded_ids if i in still_open]
        result.forwarded += len(forwarded_ids)
        for _, rejection in failing:
            result.still_failing[rejection.reason] += 1
        ids = [ev.message_id for _, ev, _ in passing]
        processed = runtime.profiles.known_message_ids(conn, ws, ids) if ids else set()
        pending = runtime.inbox.pending_message_ids(conn, ws, ids) if ids else set()
        fresh = [(r, ev, s) for r, ev, s in passing if ev.message_id not in processed | pending]
        duplicates = [r.id for r, ev, _ in passing if ev.message_id in processed | pending]
        if fresh:
            # A processed inbox row of the same id (a processing error) makes way for the replay.
            runtime.inbox.forget_processed(conn, ws, [ev.message_id for _, ev, _ in fresh])
        runtime.inbox.append(conn, [inbox_row(s, ev) for _, ev, s in fresh] + forwarded_rows, [])
        runtime.quarantine.resolve(conn, [r.id for r, _, _ in fresh], "replayed", now_us)
        runtime.quarantine.resolve(conn, duplicates, "duplicate", now_us)
        runtime.quarantine.resolve(conn, forwarded_ids, "forwarded", now_us)
        for row, rejection in failing:
            runtime.quarantine.still_failing(
                conn, row.id, rejection_fields(rejection, row.stage), now_us
            )
    result.replayed += len(fresh)
    result.duplicates += len(duplicates)


def _received_at(raw: Any, row: QuarantineRow, now: datetime) -> datetime:
    """When the event first arrived: its ``receivedAt`` if stored, else when it was quarantined."""
    if isinstance(raw, dict) and isinstance(raw.get("receivedAt"), str):
        try:
            return parse_timestamp(raw["receivedAt"])
        except ValueError:
            pass
    return from_us(row.created_us) if row.created_us else now
