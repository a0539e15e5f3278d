"""The points ledger's table: entries written exactly once by key, read per member or per
order, and what earning reads besides the ledger (catalog categories, birthdays). The members'
own table is :mod:`opencdp.storage.loyalty`, whose store extends this one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from opencdp.errors import Conflict
from opencdp.loyalty.ledger import Entry
from opencdp.storage.db import Connection, Database
from opencdp.storage.profiles import chunks
from opencdp.storage.rows import plain
from opencdp.storage.schema import loyalty_ledger, loyalty_members, products, traits

ACTIVE = "active"
#: the Conflict code of an entry whose key a concurrent transaction wrote first
DUPLICATE_ENTRY = "duplicate_entry"


class LedgerStore:
    """Reads and writes of ``loyalty_ledger``; writes take the caller's connection."""

    db: Database

    # -- the ledger ---------------------------------------------------------------------------
    def existing_keys(self, conn: Connection, workspace_id: str, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` the ledger holds already (exactly once)."""
        found: set[str] = set()
        for part in chunks(sorted(set(keys))):
            found.update(
                conn.execute(
                    select(loyalty_ledger.c.dedup_key).where(
                        loyalty_ledger.c.workspace_id == workspace_id,
                        loyalty_ledger.c.dedup_key.in_(part),
                    )
                ).scalars()
            )
        return found

    def append(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append entries (keys checked by the caller; a duplicate raises, which redoes the
        batch); returns their ids in order."""
        if not rows:
            return []
        columns = [c.name for c in loyalty_ledger.columns if c.name != "id"]
        full = [{c: row.get(c) for c in columns} for row in rows]
        try:
            inserted = conn.execute(
                loyalty_ledger.insert().returning(
                    loyalty_ledger.c.id, sort_by_parameter_order=True
                ),
                full,
            )
        except IntegrityError:
            # another transaction wrote one of these keys meanwhile: undone, tried again
            raise Conflict(
                "an entry with the same key was written meanwhile", code=DUPLICATE_ENTRY
            ) from None
        return [int(i) for i in inserted.scalars().all()]

    def entries_of(
        self, conn: Connection | None, workspace_id: str, member_ids: Iterable[str]
    ) -> dict[str, list[Entry]]:
        """Every entry of each member, oldest first."""
        if conn is None:
            with self.db.read() as read:
                return self.entries_of(read, workspace_id, member_ids)
        out: dict[str, list[Entry]] = defaultdict(list)
        for part in chunks(sorted(set(member_ids))):
            rows = conn.execute(
                select(loyalty_ledger)
                .where(
                    loyalty_ledger.c.workspace_id == workspace_id,
                    loyalty_ledger.c.member_id.in_(part),
                )
                .order_by(loyalty_ledger.c.id)
            )
            for r in rows:
                out[r.member_id].append(_entry(r))
        return dict(out)

    def entries_of_orders(
        self, conn: Connection, workspace_id: str, order_ids: Iterable[str]
    ) -> dict[str, list[tuple[str, Entry]]]:
        """Order id → (member id, entry) of the entries that name the order."""
        out: dict[str, list[tuple[str, Entry]]] = defaultdict(list)
        for part in chunks(sorted(set(order_ids))):
            rows = conn.execute(
                select(loyalty_ledger)
                .where(
                    loyalty_ledger.c.workspace_id == workspace_id,
                    loyalty_ledger.c.order_id.in_(part),
                )
                .order_by(loyalty_ledger.c.id)
            )
            for r in rows:
                out[r.order_id].append((r.member_id, _entry(r)))
        return dict(out)

    def earned_members(
        self, conn: Connection, workspace_id: str, member_ids: Iterable[str]
    ) -> set[str]:
        """The members among ``member_ids`` with an earn entry already (no first order)."""
        found: set[str] = set()
        for part in chunks(sorted(set(member_ids))):
            found.update(
                conn.execute(
                    select(loyalty_ledger.c.member_id)
                    .where(
                        loyalty_ledger.c.workspace_id == workspace_id,
                        loyalty_ledger.c.member_id.in_(part),
                        loyalty_ledger.c.kind == "earn",
                    )
                    .distinct()
                ).scalars()
            )
        return found

    def ledger_page(
        self, workspace_id: str, member_id: str, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """A member's entries, newest first."""
        query = (
            select(loyalty_ledger)
            .where(
                loyalty_ledger.c.workspace_id == workspace_id,
                loyalty_ledger.c.member_id == member_id,
            )
            .order_by(loyalty_ledger.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(loyalty_ledger.c.id < before)
        with self.db.read() as conn:
            return [plain(r) for r in conn.execute(query)]

    def entry_by_key(self, conn: Connection, workspace_id: str, key: str) -> dict[str, Any] | None:
        row = conn.execute(
            select(loyalty_ledger).where(
                loyalty_ledger.c.workspace_id == workspace_id,
                loyalty_ledger.c.dedup_key == key,
            )
        ).first()
        return plain(row) if row is not None else None

    def ledger_sums(self, workspace_id: str) -> dict[str, int]:
        """Member id → the sum of its entries (what ``balance`` must equal)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(loyalty_ledger.c.member_id, func.sum(loyalty_ledger.c.points))
                .where(loyalty_ledger.c.workspace_id == workspace_id)
                .group_by(loyalty_ledger.c.member_id)
            )
            return {r[0]: int(r[1]) for r in rows}

    def members_touched_by_time(
        self,
        conn: Connection,
        workspace_id: str,
        after_us: int,
        until_us: int,
        windows: Sequence[int],
    ) -> set[str]:
        """The active members with an earn entry whose expiry, or whose expiry less one of
        ``windows`` (the 30-day horizon), or whose time plus one of them (the qualification
        period) falls in ``(after_us, until_us]``: the members whose expiries, expiring points
        or tier the passing of time changed."""
        expires, at = loyalty_ledger.c.expires_us, loyalty_ledger.c.at_us
        conditions = [and_(expires > after_us, expires <= until_us)]
        for window in windows:
            conditions.append(and_(expires > after_us + window, expires <= until_us + window))
            conditions.append(and_(at > after_us - window, at <= until_us - window))
        rows = conn.execute(
            select(loyalty_ledger.c.member_id)
            .join(
                loyalty_members,
                and_(
                    loyalty_members.c.workspace_id == loyalty_ledger.c.workspace_id,
                    loyalty_members.c.id == loyalty_ledger.c.member_id,
                ),
            )
            .where(
                loyalty_ledger.c.workspace_id == workspace_id,
                loyalty_ledger.c.kind == "earn",
                loyalty_members.c.status == ACTIVE,
                or_(*conditions),
            )
            .distinct()
        )
        return set(rows.scalars())

    # -- what earning reads besides the ledger -------------------------------------------------
    def product_categories(
        self, conn: Connection, workspace_id: str, product_ids: Iterable[str]
    ) -> dict[str, str]:
        """Product id → its category path in the catalog (products without one left out)."""
        out: dict[str, str] = {}
        for part in chunks(sorted(set(product_ids))):
            rows = conn.execute(
                select(products.c.id, products.c.category).where(
                    products.c.workspace_id == workspace_id,
                    products.c.id.in_(part),
                    products.c.category.is_not(None),
                )
            )
            out.update((r.id, r.category) for r in rows)
        return out

    def birthday_months(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, int]:
        """Profile id → the month of its ``birthday`` trait (an ISO date), when it has one."""
        out: dict[str, int] = {}
        for part in chunks(sorted(set(profile_ids))):
            rows = conn.execute(
                select(traits.c.profile_id, traits.c.value).where(
                    traits.c.workspace_id == workspace_id,
                    traits.c.profile_id.in_(part),
                    traits.c.key == "birthday",
                )
            )
            for pid, value in rows:
                month = _month_of(value)
                if month is not None:
                    out[pid] = month
        return out


def _entry(row: Any) -> Entry:
    m = row._mapping
    return Entry(
        id=int(m["id"]),
        kind=m["kind"],
        points=int(m["points"]),
        at_us=int(m["at_us"]),
        expires_us=m["expires_us"],
        order_id=m["order_id"],
        dedup_key=m["dedup_key"],
    )


def _month_of(stored: str) -> int | None:
    """The month of a stored ``birthday`` value: JSON text of ``"1990-04-17"`` (or with a time)."""
    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, str) or len(value) < 7 or value[4] != "-":
        return None
    try:
        month = int(value[5:7])
    except ValueError:
        return None
    return month if 1 <= month <= 12 else None
