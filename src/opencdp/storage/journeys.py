"""Journeys: their definitions, the instances walking them (whose ``wake_us`` are the durable
timers) and how many instances reached each step. SQL only; the rules live in
:mod:`opencdp.activate.journey_engine`.

Instances are read and written as plain dicts of their columns, ``context`` and ``events``
as Python values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, select, update

from opencdp.errors import NotFound
from opencdp.storage.db import Database
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import (
    ACTIVE_INSTANCES,
    computed_values,
    definitions,
    journey_instances,
    journey_steps,
    journeys,
    partial,
    profiles,
    traits,
)

ACTIVE = "active"
_JSON_COLUMNS = ("context", "events")
_MUTABLE = (
    "status",
    "step",
    "step_since_us",
    "wake_us",
    "ended_us",
    "exit_reason",
    "context",
    "events",
    "restarts",
    "updated_us",
)


@dataclass(frozen=True)
class JourneyRow:
    workspace_id: str
    key: str
    definition: dict[str, Any]
    preset: dict[str, Any] | None
    state: str
    version: int
    created_us: int
    updated_us: int


def _journey(r: Any) -> JourneyRow:
    m = dict(r._mapping)
    m["definition"] = orjson.loads(m["definition"])
    m["preset"] = orjson.loads(m["preset"]) if m["preset"] else None
    return JourneyRow(**m)


def _instance(r: Any) -> dict[str, Any]:
    m = dict(r._mapping)
    for c in _JSON_COLUMNS:
        m[c] = orjson.loads(m[c])
    return m


def _stored(instance: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(instance)
    for c in _JSON_COLUMNS:
        row[c] = orjson.dumps(row[c]).decode()
    return row


class JourneyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = db.dialect.insert_ignore(journey_instances)
        self._update = (
            update(journey_instances)
            .where(
                journey_instances.c.workspace_id == bindparam("b_workspace_id"),
                journey_instances.c.id == bindparam("b_id"),
            )
            .values({c: bindparam(c) for c in _MUTABLE})
        )
        self._reached = db.dialect.upsert_add(
            journey_steps, ("workspace_id", "journey_key", "step"), "reached"
        )

    # -- definitions ------------------------------------------------------------------------------
    def put(self, row: Mapping[str, Any]) -> bool:
        """Create or replace a journey (``definition``, ``preset`` as Python values); the
        version goes up by one. True when it was created."""
        values = {
            **row,
            "definition": orjson.dumps(row["definition"]).decode(),
            "preset": orjson.dumps(row["preset"]).decode() if row.get("preset") else None,
        }
        where = (journeys.c.workspace_id == row["workspace_id"], journeys.c.key == row["key"])
        with self.db.write() as conn:
            version = conn.execute(select(journeys.c.version).where(*where)).scalar_one_or_none()
            if version is None:
                conn.execute(journeys.insert().values(**values, version=1))
                return True
            kept = {
                k: v for k, v in values.items() if k not in ("workspace_id", "key", "created_us")
            }
            conn.execute(update(journeys).where(*where).values(**kept, version=version + 1))
            return False

    def get(self, workspace_id: str, key: str) -> JourneyRow:
        """The journey; raises NotFound."""
        with self.db.read() as conn:
            found = conn.execute(
                select(journeys).where(
                    journeys.c.workspace_id == workspace_id, journeys.c.key == key
                )
            ).one_or_none()
        if found is None:
            raise NotFound(f"no journey {key!r} in workspace {workspace_id!r}")
        return _journey(found)

    def of_workspace(self, workspace_id: str) -> list[JourneyRow]:
        with self.db.read() as conn:
            return self.of_workspace_in(conn, workspace_id)

    def of_workspace_in(self, conn: Connection, workspace_id: str) -> list[JourneyRow]:
        rows = conn.execute(
            select(journeys).where(journeys.c.workspace_id == workspace_id).order_by(journeys.c.key)
        )
        return [_journey(r) for r in rows]

    def workspaces(self, conn: Connection) -> list[str]:
        """The workspaces that have journeys."""
        return list(conn.execute(select(journeys.c.workspace_id).distinct()).scalars())

    def version(self, conn: Connection, workspace_id: str) -> tuple[int, int, int | None]:
        """What changes whenever a journey of the workspace is created, changed or deleted:
        (how many, the sum of their versions, the latest change)."""
        count, total, latest = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(journeys.c.version), 0),
                func.max(journeys.c.updated_us),
            ).where(journeys.c.workspace_id == workspace_id)
        ).one()
        return int(count), int(total), latest

    def set_state(self, workspace_id: str, key: str, state: str, now_us: int) -> None:
        """Pause or resume a journey (raises NotFound)."""
        with self.db.write() as conn:
            done = conn.execute(
                update(journeys)
                .where(journeys.c.workspace_id == workspace_id, journeys.c.key == key)
                .values(state=state, updated_us=now_us, version=journeys.c.version + 1)
            ).rowcount
        if not done:
            raise NotFound(f"no journey {key!r} in workspace {workspace_id!r}")

    def delete(self, workspace_id: str, key: str) -> None:
        """Remove the journey, its instances (and so their timers) and its counts."""
        with self.db.write() as conn:
            gone = conn.execute(
                delete(journeys).where(
                    journeys.c.workspace_id == workspace_id, journeys.c.key == key
                )
            ).rowcount
            if not gone:
                raise NotFound(f"no journey {key!r} in workspace {workspace_id!r}")
            for table in (journey_instances, journey_steps):
                conn.execute(
                    delete(table).where(
                        table.c.workspace_id == workspace_id, table.c.journey_key == key
                    )
                )

    # -- instances --------------------------------------------------------------------------------
    def active_of(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> list[dict[str, Any]]:
        """The active instances of these profiles, oldest first (locked on PostgreSQL until
        the transaction ends, so a timer cannot move one at the same time)."""
        out: list[dict[str, Any]] = []
        for part in chunks(sorted(set(profile_ids))):
            query = (
                select(journey_instances)
                .where(
                    journey_instances.c.workspace_id == workspace_id,
                    journey_instances.c.profile_id.in_(part),
                    partial(ACTIVE_INSTANCES, "journey_instances"),
                )
                .order_by(journey_instances.c.entered_us, journey_instances.c.id)
            )
            if not self.db.dialect.is_sqlite:
                query = query.with_for_update()
            out.extend(_instance(r) for r in conn.execute(query))
        return out

    def history_of(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[tuple[str, str], tuple[int, int | None]]:
        """(journey, profile) -> (instances ever, when the latest one ended) for these
        profiles: what the re-entry rules read."""
        out: dict[tuple[str, str], tuple[int, int | None]] = {}
        for part in chunks(sorted(set(profile_ids))):
            rows = conn.execute(
                select(
                    journey_instances.c.journey_key,
                    journey_instances.c.profile_id,
                    func.count(),
                    func.max(journey_instances.c.ended_us),
                )
                .where(
                    journey_instances.c.workspace_id == workspace_id,
                    journey_instances.c.profile_id.in_(part),
                )
                .group_by(journey_instances.c.journey_key, journey_instances.c.profile_id)
            )
            for key, pid, n, ended in rows:
                out[(key, pid)] = (int(n), ended)
        return out

    def due(self, conn: Connection, now_us: int, limit: int) -> list[dict[str, Any]]:
        """Active instances whose timer is due, earliest first (claimed: another scheduler
        on PostgreSQL skips them until this transaction ends)."""
        query = (
            select(journey_instances)
            .where(
                partial(ACTIVE_INSTANCES, "journey_instances"),
                journey_instances.c.wake_us <= now_us,
            )
            .order_by(journey_instances.c.wake_us)
            .limit(limit)
        )
        return [_instance(r) for r in conn.execute(self.db.dialect.lock_claim(query))]

    def next_due(self, conn: Connection) -> int | None:
        """When the earliest timer is due (None: no instance waits)."""
        return conn.execute(
            select(func.min(journey_instances.c.wake_us)).where(
                partial(ACTIVE_INSTANCES, "journey_instances")
            )
        ).scalar_one_or_none()

    def save(
        self,
        conn: Connection,
        created: Sequence[Mapping[str, Any]],
        changed: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert new instances (one already there is kept: the same event started it) and
        write the moves of existing ones."""
        if created:
            conn.execute(self._insert, [_stored(i) for i in created])
        if changed:
            rows = []
            for i in changed:
                row = _stored(i)
                rows.append(
                    {
                        "b_workspace_id": row["workspace_id"],
                        "b_id": row["id"],
                        **{c: row[c] for c in _MUTABLE},
                    }
                )
            conn.execute(self._update, rows)

    def count_reached(
        self, conn: Connection, workspace_id: str, counts: Mapping[tuple[str, str], int]
    ) -> None:
        """Add (journey, step) -> how many instances reached it now."""
        if counts:
            conn.execute(
                self._reached,
                [
                    {"workspace_id": workspace_id, "journey_key": k, "step": s, "reached": n}
                    for (k, s), n in sorted(counts.items())
                ],
            )

    def follow_merges(self, conn: Connection, workspace_id: str, survivors: Iterable[str]) -> int:
        """Move the instances of profiles merged into ``survivors`` onto them."""
        moved = 0
        for part in chunks(sorted(set(survivors))):
            absorbed = conn.execute(
                select(profiles.c.id, profiles.c.merged_into).where(
                    profiles.c.workspace_id == workspace_id, profiles.c.merged_into.in_(part)
                )
            ).all()
            for old, new in absorbed:
                moved += conn.execute(
                    update(journey_instances)
                    .where(
                        journey_instances.c.workspace_id == workspace_id,
                        journey_instances.c.profile_id == old,
                    )
                    .values(profile_id=new)
                ).rowcount
        return moved

    def facts_in(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """Profile -> ``{"traits": {…}, "audiences": {key: true}}``: traits with computed
        traits winning, and the audiences it is in (what splits and sends read)."""
        ids = sorted(set(profile_ids))
        out: dict[str, dict[str, Any]] = {p: {"traits": {}, "audiences": {}} for p in ids}
        for part in chunks(ids):
            for pid, key, value in conn.execute(
                select(traits.c.profile_id, traits.c.key, traits.c.value).where(
                    traits.c.workspace_id == workspace_id, traits.c.profile_id.in_(part)
                )
            ):
                out[pid]["traits"][key] = orjson.loads(value)
            for pid, key, value, kind in conn.execute(
                select(
                    computed_values.c.profile_id,
                    computed_values.c.key,
                    computed_values.c.value,
                    definitions.c.kind,
                )
                .select_from(
                    computed_values.join(
                        definitions,
                        and_(
                            definitions.c.workspace_id == computed_values.c.workspace_id,
                            definitions.c.key == computed_values.c.key,
                        ),
                    )
                )
                .where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.profile_id.in_(part),
                )
            ):
                parsed = orjson.loads(value)
                if kind == "audience":
                    if parsed is True:
                        out[pid]["audiences"][key] = True
                else:
                    out[pid]["traits"][key] = parsed
        return out

    # -- figures ----------------------------------------------------------------------------------
    def figures(self, workspace_id: str, key: str) -> dict[str, Any]:
        """How many instances entered, are active (per step), completed and exited early
        (per reason), and how many reached each step."""
        inst = journey_instances.c
        with self.db.read() as conn:
            by_status = conn.execute(
                select(inst.status, inst.step, inst.exit_reason, func.count())
                .where(inst.workspace_id == workspace_id, inst.journey_key == key)
                .group_by(inst.status, inst.step, inst.exit_reason)
            ).all()
            reached = conn.execute(
                select(journey_steps.c.step, journey_steps.c.reached).where(
                    journey_steps.c.workspace_id == workspace_id,
                    journey_steps.c.journey_key == key,
                )
            ).all()
        totals = {"entered": 0, "active": 0, "completed": 0, "exited": 0}
        in_step: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for status, step, reason, n in by_status:
            totals["entered"] += n
            totals[status] = totals.get(status, 0) + n
            if status == ACTIVE and step is not None:
                in_step[step] = in_step.get(step, 0) + n
            if status == "exited":
                label = reason or "exited"
                reasons[label] = reasons.get(label, 0) + n
        return {
            **totals,
            "in_step": in_step,
            "reached": {s: int(n) for s, n in reached},
            "exit_reasons": reasons,
        }

    def instances(
        self,
        workspace_id: str,
        key: str,
        *,
        status: str | None = None,
        profile_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """A journey's instances, the latest first."""
        inst = journey_instances.c
        where = [inst.workspace_id == workspace_id, inst.journey_key == key]
        if status is not None:
            where.append(inst.status == status)
        if profile_id is not None:
            where.append(inst.profile_id == profile_id)
        with self.db.read() as conn:
            rows = conn.execute(
                select(journey_instances)
                .where(*where)
                .order_by(inst.entered_us.desc(), inst.id)
                .limit(limit)
            )
            return [_instance(r) for r in rows]
