"""Import runs: how far each import of a file got, so an interrupted import resumes there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from opencdp.storage.db import Database
from opencdp.storage.profiles import chunks
from opencdp.storage.rebuild import tag_run_events
from opencdp.storage.schema import events, identifiers, import_runs, merges, profiles, quarantine

RUNNING = "running"
COMPLETED = "completed"
REVERTED = "reverted"


@dataclass(frozen=True, slots=True)
class ImportRun:
    """One import of one file with one mapping into one source."""

    workspace_id: str
    id: str
    source_id: str
    kind: str
    file_name: str
    rows_done: int
    status: str
    started_us: int
    updated_us: int
    report: dict[str, Any]
    mapping: str | None = None
    reverted_us: int | None = None


class ImportRunStore:
    """Creates, checkpoints and completes import runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, workspace_id: str, run_id: str) -> ImportRun | None:
        """The run, or None if this file was never imported this way."""
        with self.db.read() as conn:
            row = conn.execute(
                select(import_runs).where(
                    import_runs.c.workspace_id == workspace_id, import_runs.c.id == run_id
                )
            ).first()
        if row is None:
            return None
        data = row._asdict()
        data["report"] = orjson.loads(data["report"]) if data["report"] else {}
        return ImportRun(**data)

    def start(
        self,
        workspace_id: str,
        run_id: str,
        *,
        source_id: str,
        kind: str,
        file_name: str,
        now_us: int,
        report: dict[str, Any],
        mapping: str | None = None,
    ) -> None:
        """Create the run (status running, nothing done), or reset a completed one (--force);
        ``mapping`` is the JSON of the mapping document it uses."""
        values = {
            "workspace_id": workspace_id,
            "id": run_id,
            "source_id": source_id,
            "kind": kind,
            "file_name": file_name[:500],
            "rows_done": 0,
            "status": RUNNING,
            "started_us": now_us,
            "updated_us": now_us,
            "report": orjson.dumps(report).decode(),
            "mapping": mapping,
            "reverted_us": None,
        }
        stmt = self.db.dialect.upsert(
            import_runs,
            ["workspace_id", "id"],
            ["rows_done", "status", "started_us", "updated_us", "report", "mapping", "reverted_us"],
        )
        with self.db.write() as conn:
            conn.execute(stmt, values)

    def checkpoint(
        self,
        workspace_id: str,
        run_id: str,
        rows_done: int,
        report: dict[str, Any],
        now_us: int,
        *,
        conn: Connection | None = None,
        status: str = RUNNING,
    ) -> None:
        """Record that every row numbered ``<= rows_done`` is imported (and the counts so far)."""
        stmt = (
            import_runs.update()
            .where(import_runs.c.workspace_id == workspace_id, import_runs.c.id == run_id)
            .values(
                rows_done=rows_done,
                status=status,
                updated_us=now_us,
                report=orjson.dumps(report, default=str).decode(),
            )
        )
        if conn is not None:
            conn.execute(stmt)
            return
        with self.db.write() as own:
            own.execute(stmt)

    def tag_events(self, workspace_id: str, run_id: str, message_ids: list[str]) -> None:
        """Record that the run stored these events (``import revert`` finds them by it)."""
        with self.db.write() as conn:
            tag_run_events(conn, workspace_id, run_id, message_ids)

    def mark_reverted(self, conn: Connection, workspace_id: str, run_id: str, now_us: int) -> None:
        """The run's events are gone: importing the file again starts afresh."""
        conn.execute(
            import_runs.update()
            .where(import_runs.c.workspace_id == workspace_id, import_runs.c.id == run_id)
            .values(status=REVERTED, reverted_us=now_us, updated_us=now_us)
        )

    def complete(
        self, workspace_id: str, run_id: str, rows_done: int, report: dict[str, Any], now_us: int
    ) -> None:
        """Mark the run completed with its final report."""
        self.checkpoint(workspace_id, run_id, rows_done, report, now_us, status=COMPLETED)

    def list(self, workspace_id: str, limit: int = 50) -> list[ImportRun]:
        """Latest runs first."""
        query = (
            select(import_runs)
            .where(import_runs.c.workspace_id == workspace_id)
            .order_by(import_runs.c.updated_us.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
        for r in rows:
            r["report"] = orjson.loads(r["report"]) if r["report"] else {}
        return [ImportRun(**r) for r in rows]

    def counts(self, workspace_id: str, source_id: str) -> dict[str, Any]:
        """What an import changes, counted: the source's events, the workspace's live user
        profiles, merges and quarantine rows per reason (compared before and after a run)."""
        with self.db.read() as conn:
            n_events = conn.execute(
                select(func.count())
                .select_from(events)
                .where(events.c.workspace_id == workspace_id, events.c.source_id == source_id)
            ).scalar_one()
            n_profiles = conn.execute(
                select(func.count())
                .select_from(profiles)
                .where(
                    profiles.c.workspace_id == workspace_id,
                    profiles.c.collection == "users",
                    profiles.c.merged_into.is_(None),
                )
            ).scalar_one()
            n_merges = conn.execute(
                select(func.count())
                .select_from(merges)
                .where(merges.c.workspace_id == workspace_id)
            ).scalar_one()
            by_reason = {
                str(reason): int(n)
                for reason, n in conn.execute(
                    select(quarantine.c.reason, func.count())
                    .where(
                        quarantine.c.workspace_id == workspace_id,
                        quarantine.c.source_id == source_id,
                    )
                    .group_by(quarantine.c.reason)
                )
            }
        return {
            "events": int(n_events),
            "profiles": int(n_profiles),
            "merges": int(n_merges),
            "quarantine": by_reason,
        }

    def known_customers(self, workspace_id: str, values: Sequence[str]) -> set[str]:
        """Which of ``values`` are already a user id or e-mail of a profile in the workspace."""
        found: set[str] = set()
        with self.db.read() as conn:
            for part in chunks(sorted(set(values))):
                found.update(
                    conn.execute(
                        select(identifiers.c.id_value).where(
                            identifiers.c.workspace_id == workspace_id,
                            identifiers.c.collection == "users",
                            identifiers.c.id_type.in_(("user_id", "email")),
                            identifiers.c.id_value.in_(part),
                        )
                    ).scalars()
                )
        return found
