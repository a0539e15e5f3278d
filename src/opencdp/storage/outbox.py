"""The outbox: deliveries to destinations, written in the transaction that caused them and
sent by a dispatcher (SQL only; the policy is :mod:`opencdp.activate.retry`).

A delivery is ``pending`` until its first attempt, ``retrying`` after a failed attempt worth
repeating, then ``delivered`` or ``dead`` — or ``suppressed_by_consent`` when the profile does
not consent to what the destination serves (never attempted, not a failure; a replay checks
consent again), or ``skipped_out_of_stock`` when what it announces no longer holds. A dispatcher *leases* the due deliveries it sends
(``leased_until_us``): if it dies mid-send, the lease runs out and another sends them again
under the same ``id`` (at least once; the receiver de-duplicates on it). Per destination and
profile, deliveries go out in the order they were enqueued: one that waits for a retry holds
back the later ones of the same pair, and no others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, tuple_, update

from opencdp.storage.db import Database
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import WAITING_DELIVERIES, deliveries, destinations, partial

PENDING, RETRYING, DELIVERED, DEAD = "pending", "retrying", "delivered", "dead"
SUPPRESSED = "suppressed_by_consent"
#: not sent: what it announces no longer holds (a product sold out again before the send)
STALE = "skipped_out_of_stock"
WAITING = (PENDING, RETRYING)
STATUSES = (PENDING, RETRYING, DELIVERED, DEAD, SUPPRESSED, STALE)


@dataclass(frozen=True)
class DeliveryRow:
    seq: int
    workspace_id: str
    id: str
    destination_id: str
    subscription: str
    profile_id: str | None
    message_id: str
    payload: str
    status: str
    attempts: int
    next_attempt_us: int
    leased_until_us: int | None
    created_us: int
    updated_us: int
    delivered_us: int | None
    last_status_code: int | None
    last_error: str | None
    last_request: str | None
    last_response: str | None


@dataclass(frozen=True)
class Backlog:
    """One destination's deliveries still in the outbox's hands (for ``/metrics``)."""

    workspace_id: str
    destination_id: str
    pending: int
    retrying: int
    dead: int
    #: enqueueing (or replay) time of its oldest waiting delivery; None when none waits
    oldest_waiting_us: int | None


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._enqueue = db.dialect.bulk_insert(
            deliveries, conflict=("workspace_id", "destination_id", "id")
        )
        self._record = db.dialect.bulk_update(deliveries, ("seq",))

    def enqueue(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add deliveries in ``conn``'s transaction (one already there under the same
        destination and id is kept as it is: enqueueing is idempotent)."""
        for part in chunks(list(rows), 2000):
            self._enqueue.write(conn, [dict(r) for r in part])

    def claim(
        self,
        now_us: int,
        lease_us: int,
        limit: int,
        exclude: Sequence[tuple[str, str]] = (),
    ) -> list[DeliveryRow]:
        """Lease up to ``limit`` due deliveries of enabled destinations (not those of
        ``exclude``: (workspace, destination) pairs still sending), oldest first, leaving out
        any that a waiting earlier delivery of the same destination and profile holds back."""
        waiting = partial(WAITING_DELIVERIES, "deliveries")
        free = or_(deliveries.c.leased_until_us.is_(None), deliveries.c.leased_until_us < now_us)
        enabled = (
            select(destinations.c.id)
            .where(
                destinations.c.workspace_id == deliveries.c.workspace_id,
                destinations.c.id == deliveries.c.destination_id,
                destinations.c.enabled.is_(True),
            )
            .exists()
        )
        conditions = [waiting, deliveries.c.next_attempt_us <= now_us, free, enabled]
        if exclude:
            pair = tuple_(deliveries.c.workspace_id, deliveries.c.destination_id)
            conditions.append(pair.not_in(list(exclude)))
        due = (
            select(deliveries)
            .where(*conditions)
            .order_by(deliveries.c.next_attempt_us, deliveries.c.seq)
            .limit(limit)
        )
        with self.db.read() as conn:  # most rounds find nothing: no write transaction then
            if conn.execute(due.with_only_columns(deliveries.c.seq).limit(1)).first() is None:
                return []
        with self.db.write() as conn:
            rows = [
                DeliveryRow(**r._mapping) for r in conn.execute(self.db.dialect.lock_claim(due))
            ]
            if not rows:
                return []
            held = self._held_back(conn, rows, now_us)
            rows = [
                r
                for r in rows
                if r.seq < held.get((r.workspace_id, r.destination_id, r.profile_id), r.seq + 1)
            ]
            for part in chunks([r.seq for r in rows]):
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.seq.in_(part))
                    .values(leased_until_us=now_us + lease_us)
                )
        return sorted(rows, key=lambda r: r.seq)

    def _held_back(
        self, conn: Connection, rows: Sequence[DeliveryRow], now_us: int
    ) -> dict[tuple[str, str, str | None], int]:
        """(workspace, destination, profile) → the first waiting delivery of that pair that
        cannot go now (not due, or leased by another dispatcher): nothing after it may. Read
        per destination for the claimed profiles (an index seek each), whatever the backlog."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for r in rows:
            if r.profile_id:
                wanted.setdefault((r.workspace_id, r.destination_id), set()).add(r.profile_id)
        out: dict[tuple[str, str, str | None], int] = {}
        blocked = or_(
            deliveries.c.next_attempt_us > now_us,
            and_(
                deliveries.c.leased_until_us.is_not(None),
                deliveries.c.leased_until_us >= now_us,
            ),
        )
        for (ws, dest), profiles in sorted(wanted.items()):
            for part in chunks(sorted(profiles)):
                query = (
                    select(deliveries.c.profile_id, func.min(deliveries.c.seq))
                    .where(
                        deliveries.c.workspace_id == ws,
                        deliveries.c.destination_id == dest,
                        deliveries.c.profile_id.in_(part),
                        deliveries.c.status.in_(WAITING),
                        blocked,
                    )
                    .group_by(deliveries.c.profile_id)
                )
                for pid, seq in conn.execute(query):
                    out[(ws, dest, pid)] = int(seq)
        return out

    def record(
        self,
        outcomes: Sequence[Mapping[str, Any]],
        delivered: Sequence[int] = (),
        *,
        now_us: int = 0,
        status_code: int | None = None,
    ) -> None:
        """Store attempts' outcomes, releasing their leases: ``outcomes`` each a row with
        ``seq`` and the columns it sets; ``delivered``, the ``seq`` of deliveries accepted
        at ``now_us`` with ``status_code`` (one statement for them all: the common case)."""
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for o in outcomes:
            row = {**o, "leased_until_us": None}
            by_columns.setdefault(tuple(sorted(row)), []).append(row)
        with self.db.write() as conn:
            for rows in by_columns.values():
                for part in chunks(rows, 2000):
                    self._record.write(conn, part)
            for seqs in chunks(list(delivered)):
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.seq.in_(seqs))
                    .values(
                        status=DELIVERED,
                        attempts=deliveries.c.attempts + 1,
                        delivered_us=now_us,
                        updated_us=now_us,
                        last_status_code=status_code,
                        last_error=None,
                        last_request=None,
                        last_response=None,
                        leased_until_us=None,
                    )
                )

    def wake(self, workspace_id: str, destination_id: str, now_us: int) -> int:
        """Make every delivery of the destination that waits for a retry due now (its
        receiver answered again); returns how many."""
        with self.db.write() as conn:
            return int(
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.workspace_id == workspace_id,
                        deliveries.c.destination_id == destination_id,
                        deliveries.c.status == RETRYING,
                        deliveries.c.next_attempt_us > now_us,
                    )
                    .values(next_attempt_us=now_us)
                ).rowcount
            )

    def replay(
        self,
        workspace_id: str,
        now_us: int,
        *,
        destination_id: str | None = None,
        status: str = DEAD,
        ids: Iterable[str] = (),
    ) -> int:
        """Queue deliveries again under their ids (dead letters after a fix, or delivered ones
        to send again): due now, their age counted afresh; returns how many."""
        conditions = [deliveries.c.workspace_id == workspace_id, deliveries.c.status == status]
        if destination_id is not None:
            conditions.append(deliveries.c.destination_id == destination_id)
        wanted = list(ids)
        if wanted:
            conditions.append(deliveries.c.id.in_(wanted))
        with self.db.write() as conn:
            return int(
                conn.execute(
                    update(deliveries)
                    .where(*conditions)
                    .values(
                        status=PENDING,
                        next_attempt_us=now_us,
                        created_us=now_us,
                        updated_us=now_us,
                        leased_until_us=None,
                    )
                ).rowcount
            )

    def page(
        self,
        workspace_id: str,
        *,
        destination_id: str | None,
        status: str | None,
        limit: int,
        after: int | None,
    ) -> list[DeliveryRow]:
        """Deliveries in enqueueing order (``after``: the last ``seq`` of the previous page)."""
        query = select(deliveries).where(deliveries.c.workspace_id == workspace_id)
        if destination_id is not None:
            query = query.where(deliveries.c.destination_id == destination_id)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if after is not None:
            query = query.where(deliveries.c.seq > after)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(deliveries.c.seq).limit(limit))
            return [DeliveryRow(**r._mapping) for r in rows]

    def get(self, workspace_id: str, delivery_id: str) -> list[DeliveryRow]:
        """The deliveries with this id (one per destination that has it)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.workspace_id == workspace_id, deliveries.c.id == delivery_id)
                .order_by(deliveries.c.seq)
            )
            return [DeliveryRow(**r._mapping) for r in rows]

    def summary(self, workspace_id: str, destination_id: str) -> dict[str, Any]:
        """Counts by status and the enqueueing time of the oldest waiting delivery."""
        with self.db.read() as conn:
            counts = dict.fromkeys(STATUSES, 0)
            for status, n in conn.execute(
                select(deliveries.c.status, func.count())
                .where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.destination_id == destination_id,
                )
                .group_by(deliveries.c.status)
            ):
                counts[status] = int(n)
            oldest = conn.execute(
                select(func.min(deliveries.c.created_us)).where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.destination_id == destination_id,
                    deliveries.c.status.in_(WAITING),
                )
            ).scalar_one()
        return {"counts": counts, "oldest_waiting_us": oldest}

    def backlog(self) -> list[Backlog]:
        """Every configured destination (of every workspace) with its waiting deliveries by
        status, its dead letters and the enqueueing time of its oldest waiting delivery; zeros
        for one with none. One grouped statement, whatever the number of destinations."""
        kept = deliveries.c.status.in_((*WAITING, DEAD))
        joined = destinations.outerjoin(
            deliveries,
            and_(
                deliveries.c.workspace_id == destinations.c.workspace_id,
                deliveries.c.destination_id == destinations.c.id,
                kept,
            ),
        )
        query = (
            select(
                destinations.c.workspace_id,
                destinations.c.id,
                deliveries.c.status,
                func.count(deliveries.c.seq),
                func.min(deliveries.c.created_us),
            )
            .select_from(joined)
            .group_by(destinations.c.workspace_id, destinations.c.id, deliveries.c.status)
        )
        found: dict[tuple[str, str], dict[str, Any]] = {}
        with self.db.read() as conn:
            for ws, dest, status, n, oldest in conn.execute(query):
                row = found.setdefault(
                    (ws, dest), {PENDING: 0, RETRYING: 0, DEAD: 0, "oldest": None}
                )
                if status is None:  # no delivery at all: the outer join's empty row
                    continue
                row[status] = int(n)
                if status in WAITING and oldest is not None:
                    before = row["oldest"]
                    row["oldest"] = int(oldest) if before is None else min(before, int(oldest))
        return [
            Backlog(ws, dest, r[PENDING], r[RETRYING], r[DEAD], r["oldest"])
            for (ws, dest), r in sorted(found.items())
        ]
