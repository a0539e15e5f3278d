"""The quarantine: every event that was blocked, failed validation or failed processing, kept
whole with a typed reason, queryable and replayable.

A row is *open* until it is closed (``resolved_us`` set) with a ``resolution``: ``replayed``
(a replay, or the same message id sent again, was stored), ``duplicate`` (a replay found the
message stored already), ``forwarded`` (a replay forwarded it to another source), ``imported``
(a later import stored the record) or ``dismissed`` (an operator closed it, with a note why).
Closed rows stay for the record until pruned.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.sql import Select

from opencdp.storage.db import Database
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import quarantine

BUCKETS_US = {"hour": 3_600_000_000, "day": 86_400_000_000}


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """One event kept aside with the reason it could not be used."""

    id: int
    workspace_id: str
    source_id: str | None
    message_id: str | None
    stage: str
    reason: str
    detail: str
    event_type: str | None
    event_name: str | None
    payload: str
    created_us: int
    plan_id: str | None = None
    plan_revision: int | None = None
    violations: str | None = None
    replays: int = 0
    last_replay_us: int | None = None
    resolved_us: int | None = None
    resolution: str | None = None
    resolution_note: str | None = None
    import_run_id: str | None = None
    profile_id: str | None = None  # the profile the message was stored on, once known

    @property
    def violation_list(self) -> list[dict[str, Any]]:
        return list(orjson.loads(self.violations)) if self.violations else []


@dataclass(frozen=True)
class QuarantineFilter:
    """Which quarantined events a list, count or replay is about."""

    workspace_id: str
    source_id: str | None = None
    reason: str | None = None
    event_name: str | None = None
    event_type: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    ids: tuple[int, ...] = ()
    status: str = "open"  # open | resolved | all
    exclude_reasons: tuple[str, ...] = ()

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = quarantine.c
        query = query.where(c.workspace_id == self.workspace_id)
        if self.source_id:
            query = query.where(c.source_id == self.source_id)
        if self.reason:
            query = query.where(c.reason == self.reason)
        if self.event_name:
            query = query.where(c.event_name == self.event_name)
        if self.event_type:
            query = query.where(c.event_type == self.event_type)
        if self.since_us is not None:
            query = query.where(c.created_us >= self.since_us)
        if self.until_us is not None:
            query = query.where(c.created_us < self.until_us)
        if self.ids:
            query = query.where(c.id.in_(self.ids))
        if self.exclude_reasons:
            query = query.where(c.reason.not_in(self.exclude_reasons))
        if self.status == "open":
            query = query.where(c.resolved_us.is_(None))
        elif self.status == "resolved":
            query = query.where(c.resolved_us.is_not(None))
        return query


class QuarantineStore:
    """Reads, counts and updates quarantined events."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._upsert = db.dialect.upsert(
            quarantine,
            ["workspace_id", "message_id"],
            [
                "source_id",
                "stage",
                "reason",
                "detail",
                "event_type",
                "event_name",
                "payload",
                "created_us",
                "plan_id",
                "plan_revision",
                "violations",
                "resolved_us",
                "resolution",
                "resolution_note",
                "import_run_id",
            ],
        )

    def add(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Store rows made by :func:`opencdp.collect.rejection.quarantine_row` (which always
        gives a message id); a message already quarantined has its row updated (and opened
        again, if it was closed), so retries and re-imports do not pile up."""
        # One statement may not update a row twice (PostgreSQL): the last row of a key wins.
        latest = {(row["workspace_id"], row["message_id"]): row for row in rows}
        if latest:
            conn.execute(self._upsert, list(latest.values()))

    def list(
        self,
        workspace_id: str,
        *,
        reason: str | None = None,
        source_id: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        where: QuarantineFilter | None = None,
    ) -> list[QuarantineRow]:
        """Newest first, filtered; page with ``before_id``."""
        flt = where or QuarantineFilter(workspace_id, source_id=source_id, reason=reason)
        query = flt.apply(select(quarantine))
        if before_id is not None:
            query = query.where(quarantine.c.id < before_id)
        query = query.order_by(quarantine.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            return [QuarantineRow(**r._asdict()) for r in conn.execute(query)]

    def get(self, workspace_id: str, row_id: int) -> QuarantineRow | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(quarantine).where(
                    quarantine.c.workspace_id == workspace_id, quarantine.c.id == row_id
                )
            ).first()
        return QuarantineRow(**row._asdict()) if row else None

    def counts(self, workspace_id: str, where: QuarantineFilter | None = None) -> dict[str, int]:
        """Open quarantined events per reason."""
        flt = where or QuarantineFilter(workspace_id)
        query = flt.apply(select(quarantine.c.reason, func.count())).group_by(quarantine.c.reason)
        with self.db.read() as conn:
            return {reason: int(n) for reason, n in conn.execute(query)}

    def counts_total(self) -> int:
        """Rows in quarantine, all workspaces (to measure what an operation added)."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(quarantine)).scalar_one())

    def stats(self, where: QuarantineFilter, bucket: str = "day") -> dict[str, Any]:
        """Counts per reason, per source, per event name, and per reason over time."""
        size = BUCKETS_US[bucket]
        c = quarantine.c
        slot = (c.created_us // size).label("slot")
        with self.db.read() as conn:
            by_reason: dict[str, int] = dict(
                conn.execute(where.apply(select(c.reason, func.count())).group_by(c.reason)).all()
            )
            by_source: dict[str | None, int] = dict(
                conn.execute(
                    where.apply(select(c.source_id, func.count())).group_by(c.source_id)
                ).all()
            )
            by_event = conn.execute(
                where.apply(select(c.event_name, func.count()))
                .group_by(c.event_name)
                .order_by(func.count().desc())
                .limit(20)
            ).all()
            series = conn.execute(
                where.apply(select(slot, c.reason, func.count()))
                .group_by(slot, c.reason)
                .order_by(slot)
            ).all()
        timeline: dict[int, dict[str, int]] = {}
        for s, reason, n in series:
            timeline.setdefault(int(s) * size, {})[reason] = int(n)
        return {
            "total": sum(int(n) for n in by_reason.values()),
            "by_reason": {k: int(v) for k, v in by_reason.items()},
            "by_source": {str(k): int(v) for k, v in by_source.items()},
            "by_event": {str(k): int(v) for k, v in by_event},
            "bucket": bucket,
            "over_time": sorted(timeline.items()),
        }

    def for_replay(
        self, where: QuarantineFilter, limit: int, after_id: int = 0
    ) -> builtins.list[QuarantineRow]:
        """Rows to replay, oldest first, after ``after_id``."""
        query = (
            where.apply(select(quarantine))
            .where(quarantine.c.id > after_id)
            .order_by(quarantine.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [QuarantineRow(**r._asdict()) for r in conn.execute(query)]

    def resolve(self, conn: Connection, ids: Sequence[int], resolution: str, now_us: int) -> None:
        """Mark rows as resolved by a replay (they stay, for the record)."""
        if ids:
            conn.execute(
                update(quarantine)
                .where(quarantine.c.id.in_(list(ids)))
                .values(
                    resolved_us=now_us,
                    resolution=resolution,
                    replays=quarantine.c.replays + 1,
                    last_replay_us=now_us,
                )
            )

    def close_stored(
        self,
        conn: Connection,
        workspace_id: str,
        message_ids: Sequence[str],
        resolution: str,
        now_us: int,
    ) -> int:
        """Close the open rows of messages that were just stored (a later import, a replay or
        the same message sent again succeeded); one UPDATE per slice of ids. Returns how many
        rows were closed."""
        closed = 0
        for part in chunks(sorted(set(message_ids))):
            result = conn.execute(
                update(quarantine)
                .where(
                    quarantine.c.workspace_id == workspace_id,
                    quarantine.c.message_id.in_(part),
                    quarantine.c.resolved_us.is_(None),
                )
                .values(resolved_us=now_us, resolution=resolution)
            )
            closed += int(result.rowcount or 0)
        return closed

    def record_profiles(
        self, conn: Connection, workspace_id: str, profile_ids: Mapping[str, str]
    ) -> int:
        """Record on the rows of these messages (message id → the profile its event was just
        stored on) that profile, so that the registry of personal data finds them by profile.
        Open and closed rows alike: a replay closes its rows before the worker stores the
        event. One SELECT per slice of ids, then one executemany UPDATE of the rows whose
        profile differs. Returns how many rows were updated."""
        changed: list[dict[str, str]] = []
        for part in chunks(sorted(profile_ids)):
            rows = conn.execute(
                select(quarantine.c.message_id, quarantine.c.profile_id).where(
                    quarantine.c.workspace_id == workspace_id,
                    quarantine.c.message_id.in_(part),
                )
            )
            changed.extend(
                {"b_message_id": m, "b_profile_id": profile_ids[m]}
                for m, stored in rows
                if stored != profile_ids[m]
            )
        if changed:
            conn.execute(
                update(quarantine)
                .where(
                    quarantine.c.workspace_id == workspace_id,
                    quarantine.c.message_id == bindparam("b_message_id"),
                )
                .values(profile_id=bindparam("b_profile_id")),
                changed,
            )
        return len(changed)

    def dismiss(
        self, workspace_id: str, ids: Sequence[int], note: str, now_us: int
    ) -> tuple[builtins.list[int], builtins.list[int], builtins.list[int]]:
        """Close open rows of the workspace as ``dismissed`` with ``note``; returns the ids
        dismissed, the ids not found in the workspace, and the ids that were closed already."""
        wanted = sorted(set(ids))
        with self.db.write() as conn:
            found: dict[int, int | None] = {}
            for part in chunks(wanted):
                claim = select(quarantine.c.id, quarantine.c.resolved_us).where(
                    quarantine.c.workspace_id == workspace_id, quarantine.c.id.in_(part)
                )
                if not self.db.dialect.is_sqlite:
                    claim = claim.with_for_update()
                found.update({int(i): r for i, r in conn.execute(claim)})
            open_ids = [i for i in wanted if i in found and found[i] is None]
            for part in chunks(open_ids):
                conn.execute(
                    update(quarantine)
                    .where(quarantine.c.id.in_(part), quarantine.c.resolved_us.is_(None))
                    .values(resolved_us=now_us, resolution="dismissed", resolution_note=note)
                )
        return (
            open_ids,
            [i for i in wanted if i not in found],
            [i for i in wanted if i in found and found[i] is not None],
        )

    def prune_resolved(self, resolved_before_us: int) -> int:
        """Forget rows a replay resolved before this time; open rows always stay."""
        with self.db.write() as conn:
            result = conn.execute(
                delete(quarantine).where(
                    quarantine.c.resolved_us.is_not(None),
                    quarantine.c.resolved_us < resolved_before_us,
                )
            )
            return int(result.rowcount or 0)

    def claim_open(self, conn: Connection, ids: Sequence[int]) -> set[int]:
        """Which of these rows are still open, locked for ``conn``'s transaction (a concurrent
        replay or dismissal may have closed some since they were read)."""
        found: set[int] = set()
        for part in chunks(sorted(set(ids))):
            claim = select(quarantine.c.id).where(
                quarantine.c.id.in_(part), quarantine.c.resolved_us.is_(None)
            )
            if not self.db.dialect.is_sqlite:
                claim = claim.with_for_update()
            found.update(int(i) for i in conn.execute(claim).scalars())
        return found

    def count_replay(self, conn: Connection, ids: Sequence[int], now_us: int) -> None:
        """Count a replay that changed nothing else on these rows (they failed the same way)."""
        for part in chunks(sorted(set(ids))):
            conn.execute(
                update(quarantine)
                .where(quarantine.c.id.in_(part))
                .values(replays=quarantine.c.replays + 1, last_replay_us=now_us)
            )

    def still_failing(
        self, conn: Connection, row_id: int, fields: dict[str, Any], now_us: int
    ) -> None:
        """Record the new reason of a row that failed again on replay."""
        conn.execute(
            update(quarantine)
            .where(quarantine.c.id == row_id)
            .values(**fields, replays=quarantine.c.replays + 1, last_replay_us=now_us)
        )
