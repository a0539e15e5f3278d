"""The durable inbox: a queue in the system-of-record database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from opencdp.storage.db import Database
from opencdp.storage.quarantine import QuarantineStore
from opencdp.storage.schema import inbox


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One claimed event waiting to be processed."""

    seq: int
    workspace_id: str
    source_id: str
    message_id: str
    received_us: int
    payload: str


class InboxStore:
    """Appends to, claims from and prunes the inbox."""

    def __init__(self, db: Database, quarantine: QuarantineStore) -> None:
        self.db = db
        self.quarantine = quarantine
        self._insert_inbox = db.dialect.bulk_insert_ignore(inbox)
        self._mark_placed = db.dialect.bulk_update(inbox, ("seq",))

    def append(
        self, conn: Connection, events: Sequence[dict[str, Any]], rejected: Sequence[dict[str, Any]]
    ) -> None:
        """Insert events (duplicates of a stored messageId are dropped) and quarantine rows."""
        self._insert_inbox.write(conn, events)
        if rejected:
            self.quarantine.add(conn, rejected)

    def claim(
        self, conn: Connection, limit: int, partitions: Sequence[int] | None = None
    ) -> list[InboxRow]:
        """The oldest unprocessed events (of these ``partitions`` only, when given), in
        arrival order, locked for this transaction."""
        query = (
            select(
                inbox.c.seq,
                inbox.c.workspace_id,
                inbox.c.source_id,
                inbox.c.message_id,
                inbox.c.received_us,
                inbox.c.payload,
            )
            .where(inbox.c.processed_us.is_(None))
            .order_by(inbox.c.seq)
            .limit(limit)
        )
        if partitions is not None:
            query = query.where(inbox.c.partition.in_(list(partitions)))
        rows = conn.execute(self.db.dialect.lock_claim(query)).all()
        return [InboxRow(*row) for row in rows]

    def mark_processed(
        self,
        conn: Connection,
        seqs: Sequence[int],
        now_us: int,
        profile_ids: Mapping[int, str] | None = None,
    ) -> None:
        """Mark events done; they stay until the dedup window passes.

        ``profile_ids`` (seq → the profile the event was stored on) is recorded on those rows
        in one bulk UPDATE, so that the registry of personal data finds them by profile;
        the other rows keep ``profile_id`` NULL."""
        placed = (
            {seq: profile_ids[seq] for seq in seqs if seq in profile_ids} if profile_ids else {}
        )
        rest = [seq for seq in seqs if seq not in placed]
        for chunk in _chunks(rest, 5000):
            conn.execute(update(inbox).where(inbox.c.seq.in_(chunk)).values(processed_us=now_us))
        rows = [
            {"seq": seq, "processed_us": now_us, "profile_id": pid} for seq, pid in placed.items()
        ]
        for part in _chunks(rows, 5000):
            self._mark_placed.write(conn, part)

    def pending_message_ids(
        self, conn: Connection, workspace_id: str, message_ids: Sequence[str]
    ) -> set[str]:
        """Which of these message ids wait in the inbox, unprocessed."""
        found: set[str] = set()
        for chunk in _chunks(list(message_ids), 5000):
            found.update(
                conn.execute(
                    select(inbox.c.message_id).where(
                        inbox.c.workspace_id == workspace_id,
                        inbox.c.message_id.in_(chunk),
                        inbox.c.processed_us.is_(None),
                    )
                ).scalars()
            )
        return found

    def forget_processed(
        self, conn: Connection, workspace_id: str, message_ids: Sequence[str]
    ) -> None:
        """Delete the processed rows of these message ids (a replay of an event whose
        processing failed makes way for itself: the inbox keeps one row per message id)."""
        for chunk in _chunks(list(message_ids), 5000):
            conn.execute(
                delete(inbox).where(
                    inbox.c.workspace_id == workspace_id,
                    inbox.c.message_id.in_(chunk),
                    inbox.c.processed_us.is_not(None),
                )
            )

    def latest(self, n: int) -> list[Any]:
        """The ``n`` newest inbox rows (processed or not), oldest first (``events tail``)."""
        with self.db.read() as conn:
            rows = conn.execute(select(inbox).order_by(inbox.c.seq.desc()).limit(n)).all()
        return list(reversed(rows))

    def after(self, seq: int, limit: int) -> list[Any]:
        """Inbox rows newer than ``seq``, oldest first (``events tail -f``)."""
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(inbox).where(inbox.c.seq > seq).order_by(inbox.c.seq).limit(limit)
                ).all()
            )

    def pending(self) -> int:
        """How many events wait to be processed."""
        with self.db.read() as conn:
            return self.count_pending(conn)

    def count_pending(self, conn: Connection) -> int:
        """How many events wait to be processed, as ``conn``'s transaction sees it."""
        return int(
            conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.processed_us.is_(None))
            ).scalar_one()
        )

    def pending_upper_bound(self, conn: Connection) -> int:
        """At least as many as wait to be processed, from two index look-ups: every pending
        row lies between the oldest pending ``seq`` and the newest ``seq``."""
        oldest = conn.execute(
            select(func.min(inbox.c.seq)).where(inbox.c.processed_us.is_(None))
        ).scalar()
        if oldest is None:
            return 0
        newest = conn.execute(select(func.max(inbox.c.seq))).scalar_one()
        return int(newest) - int(oldest) + 1

    def serialize_appends(self, conn: Connection) -> None:
        """Make concurrent appenders (several HTTP processes) take turns until ``conn``'s
        transaction ends, so that an exact backlog count stays true until the commit. SQLite
        writers already take turns (``BEGIN IMMEDIATE``); PostgreSQL takes an advisory lock."""
        lock = self.db.dialect.transaction_lock(_APPEND_LOCK_KEY)
        if lock is not None:
            conn.execute(lock)

    def oldest_pending_received_us(self) -> int | None:
        """Receive time of the oldest unprocessed event (for lag), or None when idle."""
        with self.db.read() as conn:
            return conn.execute(
                select(inbox.c.received_us)
                .where(inbox.c.processed_us.is_(None))
                .order_by(inbox.c.seq)
                .limit(1)
            ).scalar()

    def prune(self, processed_before_us: int) -> int:
        """Forget processed events older than the dedup window; returns how many."""
        with self.db.write() as conn:
            result = conn.execute(
                delete(inbox).where(
                    inbox.c.processed_us.is_not(None), inbox.c.received_us < processed_before_us
                )
            )
            return int(result.rowcount or 0)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


#: The advisory lock key of inbox appends that must not overshoot the backlog limit.
_APPEND_LOCK_KEY = 0x6F63_6470_6962  # "ocdpib"
