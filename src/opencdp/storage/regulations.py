"""Privacy requests (``regulations``) and suppressed subjects (``suppressions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select, tuple_, update

from opencdp.privacy.regulations import UNFINISHED
from opencdp.storage.db import Database
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import deliveries, regulations, suppressions


@dataclass(frozen=True)
class Regulation:
    """A privacy request as stored. ``progress`` records the steps done (``step``), the rows
    removed per store (``report``), the profiles it reached (``profiles``) and each
    destination's forwarding (``destinations``)."""

    workspace_id: str
    id: str
    regulation_type: str
    subject_type: str
    subjects: list[str]
    status: str
    progress: dict[str, Any]
    error: str | None
    requested_by: str | None
    created_us: int
    updated_us: int
    finished_us: int | None


@dataclass(frozen=True)
class Suppression:
    workspace_id: str
    subject_hash: str
    subject_type: str
    subject_id: str | None
    regulation_id: str
    created_us: int


class RegulationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Regulations --------------------------------------------------------------------------
    def insert(self, conn: Connection, regulation: Regulation) -> None:
        conn.execute(regulations.insert().values(**_row(regulation)))

    def get(self, workspace_id: str, regulation_id: str) -> Regulation | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(regulations).where(
                    regulations.c.workspace_id == workspace_id, regulations.c.id == regulation_id
                )
            ).first()
        return _regulation(row._asdict()) if row is not None else None

    def page(
        self,
        workspace_id: str,
        *,
        statuses: Sequence[str] = (),
        types: Sequence[str] = (),
        before: tuple[int, str] | None = None,
        limit: int = 50,
    ) -> list[Regulation]:
        """Newest first; ``before`` is the (created_us, id) of the last one of a page."""
        query = select(regulations).where(regulations.c.workspace_id == workspace_id)
        if statuses:
            query = query.where(regulations.c.status.in_(list(statuses)))
        if types:
            query = query.where(regulations.c.regulation_type.in_(list(types)))
        if before is not None:
            created, rid = before
            query = query.where(
                (regulations.c.created_us < created)
                | ((regulations.c.created_us == created) & (regulations.c.id < rid))
            )
        query = query.order_by(regulations.c.created_us.desc(), regulations.c.id.desc())
        with self.db.read() as conn:
            return [_regulation(r._asdict()) for r in conn.execute(query.limit(limit))]

    def unfinished(self, limit: int = 20) -> list[tuple[str, str]]:
        """(workspace, id) of regulations not finished yet, oldest first (every workspace)."""
        query = (
            select(regulations.c.workspace_id, regulations.c.id)
            .where(regulations.c.status.in_(list(UNFINISHED)))
            .order_by(regulations.c.created_us)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [(ws, rid) for ws, rid in conn.execute(query)]

    def lock(self, conn: Connection, workspace_id: str, regulation_id: str) -> Regulation | None:
        """The regulation, locked for the rest of ``conn``'s transaction (PostgreSQL: other
        runners skip it; SQLite's single writer serializes them anyway); None when another
        runner holds it or it is finished."""
        query = select(regulations).where(
            regulations.c.workspace_id == workspace_id,
            regulations.c.id == regulation_id,
            regulations.c.status.in_(list(UNFINISHED)),
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        return _regulation(row._asdict()) if row is not None else None

    def save(self, conn: Connection, regulation: Regulation) -> None:
        """Write the regulation's status, progress, error, subjects and times."""
        values = _row(regulation)
        conn.execute(
            update(regulations)
            .where(
                regulations.c.workspace_id == regulation.workspace_id,
                regulations.c.id == regulation.id,
            )
            .values(
                {
                    k: values[k]
                    for k in (
                        "status",
                        "progress",
                        "error",
                        "subjects",
                        "updated_us",
                        "finished_us",
                    )
                }
            )
        )

    # Forwarded deletions (deliveries without a profile that carry a regulation's identifiers)
    def delivery_states(
        self, conn: Connection, workspace_id: str, ids: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, str | None, int]]:
        """(destination, delivery id) -> (status, last error, updated_us)."""
        out: dict[tuple[str, str], tuple[str, str | None, int]] = {}
        for part in chunks(sorted(set(ids)), 500):
            rows = conn.execute(
                select(
                    deliveries.c.destination_id,
                    deliveries.c.id,
                    deliveries.c.status,
                    deliveries.c.last_error,
                    deliveries.c.updated_us,
                ).where(
                    deliveries.c.workspace_id == workspace_id,
                    tuple_(deliveries.c.destination_id, deliveries.c.id).in_(list(part)),
                )
            )
            for destination, delivery_id, status, error, updated in rows:
                out[(destination, delivery_id)] = (status, error, updated)
        return out

    def drop_deliveries(
        self, conn: Connection, workspace_id: str, ids: Sequence[tuple[str, str]]
    ) -> int:
        removed = 0
        for part in chunks(sorted(set(ids)), 500):
            result = conn.execute(
                delete(deliveries).where(
                    deliveries.c.workspace_id == workspace_id,
                    tuple_(deliveries.c.destination_id, deliveries.c.id).in_(list(part)),
                )
            )
            removed += result.rowcount or 0
        return removed

    # Suppressions -------------------------------------------------------------------------
    def suppress(self, conn: Connection, rows: Sequence[Suppression]) -> None:
        """Add suppressions (a subject already suppressed keeps its first row)."""
        if rows:
            conn.execute(
                self.db.dialect.insert_ignore(suppressions), [dict(row.__dict__) for row in rows]
            )

    def unsuppress(self, conn: Connection, workspace_id: str, hashes: Sequence[str]) -> int:
        """Lift the suppressions of these subjects and of everything suppressed with them
        (the other identifiers of the same person, by the same regulations)."""
        if not hashes:
            return 0
        by = select(suppressions.c.regulation_id).where(
            suppressions.c.workspace_id == workspace_id,
            suppressions.c.subject_hash.in_(list(hashes)),
        )
        result = conn.execute(
            delete(suppressions).where(
                suppressions.c.workspace_id == workspace_id,
                suppressions.c.regulation_id.in_(by.scalar_subquery()),
            )
        )
        return result.rowcount or 0

    def forget_values(self, conn: Connection, workspace_id: str, hashes: Sequence[str]) -> None:
        """Keep only the hash of these suppressed subjects (their person is deleted)."""
        if hashes:
            conn.execute(
                update(suppressions)
                .where(
                    suppressions.c.workspace_id == workspace_id,
                    suppressions.c.subject_hash.in_(list(hashes)),
                )
                .values(subject_id=None)
            )

    def suppressed_hashes(self, workspace_id: str) -> frozenset[str]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(suppressions.c.subject_hash).where(
                    suppressions.c.workspace_id == workspace_id
                )
            )
            return frozenset(h for (h,) in rows)

    def list_suppressions(self, workspace_id: str) -> list[Suppression]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(suppressions)
                .where(suppressions.c.workspace_id == workspace_id)
                .order_by(suppressions.c.created_us, suppressions.c.subject_hash)
            )
            return [Suppression(**r._asdict()) for r in rows]


def _row(r: Regulation) -> dict[str, Any]:
    return {
        "workspace_id": r.workspace_id,
        "id": r.id,
        "regulation_type": r.regulation_type,
        "subject_type": r.subject_type,
        "subjects": orjson.dumps(r.subjects).decode(),
        "status": r.status,
        "progress": orjson.dumps(r.progress).decode(),
        "error": r.error,
        "requested_by": r.requested_by,
        "created_us": r.created_us,
        "updated_us": r.updated_us,
        "finished_us": r.finished_us,
    }


def _regulation(row: dict[str, Any]) -> Regulation:
    return Regulation(
        **{
            **row,
            "subjects": orjson.loads(row["subjects"]),
            "progress": orjson.loads(row["progress"]),
        }
    )
