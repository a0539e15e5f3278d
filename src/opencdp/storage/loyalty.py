"""The loyalty tables: the programme, members, their tokens and cards, the points ledger.

A member's ``balance`` is kept beside the ledger (in the same transaction as every entry) so
that a till's token lookup is one indexed read; a contract test holds it equal to the sum.
Redemption takes points with one conditional ``UPDATE … WHERE balance >= points``: of two
concurrent redemptions that together overdraw, the database lets one through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from opencdp.errors import Conflict
from opencdp.storage.db import Connection, Database
from opencdp.storage.hot_reads import HotReads
from opencdp.storage.loyalty_ledger import ACTIVE, LedgerStore
from opencdp.storage.profiles import chunks
from opencdp.storage.rows import plain
from opencdp.storage.schema import (
    loyalty_ledger,
    loyalty_members,
    loyalty_programmes,
    loyalty_tokens,
    profiles,
)

MERGED = "merged"
REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Member:
    workspace_id: str
    id: str
    profile_id: str | None
    status: str
    merged_into: str | None
    balance: int
    tier: str | None
    tier_since_us: int | None
    channel: str
    store_id: str | None
    enrolled_us: int
    updated_us: int


def _member(row: Any) -> Member:
    return Member(**{k: row._mapping[k] for k in Member.__slots__})


class LoyaltyStore(LedgerStore):
    """Reads and writes of the loyalty tables; writes take the caller's connection so that
    they share the transaction of what caused them."""

    def __init__(self, db: Database, hot: HotReads | None = None) -> None:
        self.db = db
        self.hot = hot or HotReads(db)
        lookup = (
            select(
                loyalty_tokens.c.token,
                loyalty_tokens.c.kind,
                loyalty_members.c.id,
                loyalty_members.c.profile_id,
                loyalty_members.c.status,
                loyalty_members.c.balance,
                loyalty_members.c.tier,
            )
            .join(
                loyalty_members,
                and_(
                    loyalty_members.c.workspace_id == loyalty_tokens.c.workspace_id,
                    loyalty_members.c.id == loyalty_tokens.c.member_id,
                ),
            )
            .where(
                loyalty_tokens.c.workspace_id == bindparam("ws"),
                loyalty_tokens.c.token == bindparam("token"),
                loyalty_tokens.c.status == ACTIVE,
            )
        )
        self._lookup_hot = self.hot.prepare(lookup, ("ws", "token"))
        self._upsert_programme = db.dialect.upsert(
            loyalty_programmes, ["workspace_id"], ["definition", "version", "updated_us"]
        )

    # -- the programme ------------------------------------------------------------------------
    def programme(self, workspace_id: str) -> tuple[dict[str, Any], int] | None:
        """The workspace's programme document and its version, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(loyalty_programmes.c.definition, loyalty_programmes.c.version).where(
                    loyalty_programmes.c.workspace_id == workspace_id
                )
            ).first()
        return (orjson.loads(row.definition), int(row.version)) if row is not None else None

    def put_programme(self, workspace_id: str, definition: Mapping[str, Any], now_us: int) -> int:
        """Store the programme; returns its new version."""
        with self.db.write() as conn:
            current = conn.execute(
                select(loyalty_programmes.c.version).where(
                    loyalty_programmes.c.workspace_id == workspace_id
                )
            ).scalar()
            version = int(current or 0) + 1
            conn.execute(
                self._upsert_programme,
                {
                    "workspace_id": workspace_id,
                    "definition": orjson.dumps(dict(definition)).decode(),
                    "version": version,
                    "updated_us": now_us,
                    "time_checked_us": now_us,  # kept on an update: the upsert leaves it
                },
            )
        return version

    def programmes_to_check(self) -> list[tuple[str, dict[str, Any], int]]:
        """(workspace, programme document, how far the timer got) of every programme."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    loyalty_programmes.c.workspace_id,
                    loyalty_programmes.c.definition,
                    loyalty_programmes.c.time_checked_us,
                    loyalty_programmes.c.updated_us,
                )
            )
            return [
                (r.workspace_id, orjson.loads(r.definition), int(r.time_checked_us or r.updated_us))
                for r in rows
            ]

    def set_time_checked(self, conn: Connection, workspace_id: str, until_us: int) -> None:
        conn.execute(
            update(loyalty_programmes)
            .where(loyalty_programmes.c.workspace_id == workspace_id)
            .values(time_checked_us=until_us)
        )

    # -- members ------------------------------------------------------------------------------
    def add_member(
        self, conn: Connection, member: Mapping[str, Any], tokens: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert a member and its tokens."""
        conn.execute(loyalty_members.insert(), [dict(member)])
        self.add_tokens(conn, tokens)

    def member(self, workspace_id: str, member_id: str) -> Member | None:
        with self.db.read() as conn:
            return self.member_in(conn, workspace_id, member_id)

    def member_in(self, conn: Connection, workspace_id: str, member_id: str) -> Member | None:
        row = conn.execute(
            select(loyalty_members).where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == member_id,
            )
        ).first()
        return _member(row) if row is not None else None

    def members_in(
        self, conn: Connection, workspace_id: str, member_ids: Iterable[str]
    ) -> dict[str, Member]:
        out: dict[str, Member] = {}
        for part in chunks(sorted(set(member_ids))):
            rows = conn.execute(
                select(loyalty_members).where(
                    loyalty_members.c.workspace_id == workspace_id,
                    loyalty_members.c.id.in_(part),
                )
            )
            out.update((r.id, _member(r)) for r in rows)
        return out

    def active_of_profiles(
        self, conn: Connection | None, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, Member]:
        """Profile id → its active member (the oldest, should there be two)."""
        if conn is None:
            with self.db.read() as read:
                return self.active_of_profiles(read, workspace_id, profile_ids)
        out: dict[str, Member] = {}
        for part in chunks(sorted(set(profile_ids))):
            rows = conn.execute(
                select(loyalty_members)
                .where(
                    loyalty_members.c.workspace_id == workspace_id,
                    loyalty_members.c.profile_id.in_(part),
                    loyalty_members.c.status == ACTIVE,
                )
                .order_by(loyalty_members.c.enrolled_us, loyalty_members.c.id)
            )
            for r in rows:
                out.setdefault(r.profile_id, _member(r))
        return out

    def on_absorbed_profiles(
        self, conn: Connection, workspace_id: str, survivors: Iterable[str]
    ) -> list[tuple[Member, str]]:
        """Active members whose profile was merged into one of ``survivors``, with that
        survivor (their profile id is repointed by :meth:`absorb`)."""
        out: list[tuple[Member, str]] = []
        for part in chunks(sorted(set(survivors))):
            rows = conn.execute(
                select(loyalty_members, profiles.c.merged_into.label("survivor"))
                .join(profiles, profiles.c.id == loyalty_members.c.profile_id)
                .where(
                    loyalty_members.c.workspace_id == workspace_id,
                    loyalty_members.c.status == ACTIVE,
                    profiles.c.merged_into.in_(part),
                )
                .order_by(loyalty_members.c.enrolled_us, loyalty_members.c.id)
            )
            out.extend((_member(r), r.survivor) for r in rows)
        return out

    def lock_members(self, conn: Connection, workspace_id: str, member_ids: Iterable[str]) -> None:
        """Lock the members' rows for the transaction (PostgreSQL; SQLite has one writer),
        in id order so that two transactions never wait for each other in a circle: what is
        read of their ledgers then stays true until the commit."""
        if self.db.dialect.is_sqlite:
            return
        for part in chunks(sorted(set(member_ids))):
            conn.execute(
                select(loyalty_members.c.id)
                .where(
                    loyalty_members.c.workspace_id == workspace_id,
                    loyalty_members.c.id.in_(part),
                )
                .order_by(loyalty_members.c.id)
                .with_for_update()
            ).all()

    def resync_balance(
        self, conn: Connection, workspace_id: str, member_id: str, now_us: int
    ) -> None:
        """Set the member's balance to the sum of its ledger (after entries moved to it)."""
        total = (
            select(func.coalesce(func.sum(loyalty_ledger.c.points), 0))
            .where(
                loyalty_ledger.c.workspace_id == workspace_id,
                loyalty_ledger.c.member_id == member_id,
            )
            .scalar_subquery()
        )
        conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == member_id,
            )
            .values(balance=total, updated_us=now_us)
        )

    def bind(self, conn: Connection, workspace_id: str, member_id: str, profile_id: str) -> None:
        """Give an enrolled member the profile its enrolment event resolved to."""
        for table in (loyalty_members, loyalty_tokens, loyalty_ledger):
            key = table.c.id if table is loyalty_members else table.c.member_id
            conn.execute(
                update(table)
                .where(table.c.workspace_id == workspace_id, key == member_id)
                .values(profile_id=profile_id)
            )

    def absorb(
        self,
        conn: Connection,
        workspace_id: str,
        absorbed: Member,
        into: Member,
        now_us: int,
    ) -> None:
        """Merge member ``absorbed`` into ``into``: its ledger entries and tokens move (no
        point lost or doubled: each entry keeps its key), the survivor's balance becomes the
        sum of both ledgers, the absorbed member is kept as ``merged`` for the record. Both
        rows are locked first, so a redemption at the till either finishes before (its entry
        moves too) or finds the absorbed member gone."""
        self.lock_members(conn, workspace_id, [absorbed.id, into.id])
        moved = {"member_id": into.id, "profile_id": into.profile_id}
        for table in (loyalty_ledger, loyalty_tokens):
            conn.execute(
                update(table)
                .where(table.c.workspace_id == workspace_id, table.c.member_id == absorbed.id)
                .values(**moved)
            )
        conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == absorbed.id,
            )
            .values(status=MERGED, merged_into=into.id, balance=0, updated_us=now_us)
        )
        self.resync_balance(conn, workspace_id, into.id, now_us)

    def move(
        self, conn: Connection, workspace_id: str, member_id: str, profile_id: str, now_us: int
    ) -> None:
        """Repoint a member (and its rows) at the profile that absorbed its own."""
        self.bind(conn, workspace_id, member_id, profile_id)
        conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == member_id,
            )
            .values(updated_us=now_us)
        )

    def add_balances(
        self, conn: Connection, workspace_id: str, deltas: Mapping[str, int], now_us: int
    ) -> None:
        """Add each member's delta to its balance."""
        rows = [
            {"ws": workspace_id, "mid": member_id, "delta": delta, "now": now_us}
            for member_id, delta in sorted(deltas.items())
            if delta
        ]
        if not rows:
            return
        conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == bindparam("ws"),
                loyalty_members.c.id == bindparam("mid"),
            )
            .values(
                balance=loyalty_members.c.balance + bindparam("delta"),
                updated_us=bindparam("now"),
            ),
            rows,
        )

    def take(
        self, conn: Connection, workspace_id: str, member_id: str, points: int, now_us: int
    ) -> bool:
        """Take ``points`` from an active member's balance if it holds them; False when it
        does not (nothing changed)."""
        result = conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == member_id,
                loyalty_members.c.status == ACTIVE,
                loyalty_members.c.balance >= points,
            )
            .values(balance=loyalty_members.c.balance - points, updated_us=now_us)
        )
        return bool(result.rowcount == 1)

    def set_tiers(
        self,
        conn: Connection,
        workspace_id: str,
        tiers: Mapping[str, str | None],
        now_us: int,
    ) -> None:
        """Give members new tiers (one statement for all)."""
        if not tiers:
            return
        conn.execute(
            update(loyalty_members)
            .where(
                loyalty_members.c.workspace_id == workspace_id,
                loyalty_members.c.id == bindparam("mid"),
            )
            .values(tier=bindparam("new_tier"), tier_since_us=now_us, updated_us=now_us),
            [{"mid": mid, "new_tier": tier} for mid, tier in sorted(tiers.items())],
        )

    # -- tokens -------------------------------------------------------------------------------
    def lookup(self, workspace_id: str, token: str) -> dict[str, Any] | None:
        """The till's scan: an active token's member (tokens move with merges, so it is the
        live one), in one indexed read on a hot connection."""
        rows = self.hot.rows(self._lookup_hot, {"ws": workspace_id, "token": token})
        if not rows:
            return None
        keys = ("token", "kind", "id", "profile_id", "status", "balance", "tier")
        return dict(zip(keys, rows[0], strict=True))

    def tokens_of(self, workspace_id: str, member_id: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(loyalty_tokens)
                .where(
                    loyalty_tokens.c.workspace_id == workspace_id,
                    loyalty_tokens.c.member_id == member_id,
                )
                .order_by(loyalty_tokens.c.created_us, loyalty_tokens.c.token)
            )
            return [plain(r) for r in rows]

    def token_taken(self, conn: Connection, workspace_id: str, token: str) -> bool:
        return self.token_in(conn, workspace_id, token) is not None

    def token_in(self, conn: Connection, workspace_id: str, token: str) -> dict[str, Any] | None:
        """The ``loyalty_tokens`` row of ``token`` in any status (a revoked number is never
        issued again), or None."""
        row = conn.execute(
            select(loyalty_tokens).where(
                loyalty_tokens.c.workspace_id == workspace_id,
                loyalty_tokens.c.token == token,
            )
        ).first()
        return plain(row) if row is not None else None

    def add_tokens(self, conn: Connection, tokens: Sequence[Mapping[str, Any]]) -> None:
        """Insert tokens; a token or card number another member got meanwhile raises
        Conflict (``card_taken``) and the transaction is undone."""
        if not tokens:
            return
        try:
            conn.execute(loyalty_tokens.insert(), [dict(t) for t in tokens])
        except IntegrityError:
            raise Conflict(
                "that card number was just given to another member", code="card_taken"
            ) from None

    def revoke_digital(
        self, conn: Connection, workspace_id: str, member_id: str, now_us: int
    ) -> int:
        """Revoke the member's active digital tokens (a lost phone, a leaked card image)."""
        result = conn.execute(
            update(loyalty_tokens)
            .where(
                loyalty_tokens.c.workspace_id == workspace_id,
                loyalty_tokens.c.member_id == member_id,
                loyalty_tokens.c.kind == "digital",
                loyalty_tokens.c.status == ACTIVE,
            )
            .values(status=REVOKED, revoked_us=now_us)
        )
        return int(result.rowcount or 0)

    def revoke_card(
        self, conn: Connection, workspace_id: str, member_id: str, card: str, now_us: int
    ) -> bool:
        """Revoke one of the member's active physical cards (lost or stolen); False when
        ``card`` is not one."""
        result = conn.execute(
            update(loyalty_tokens)
            .where(
                loyalty_tokens.c.workspace_id == workspace_id,
                loyalty_tokens.c.member_id == member_id,
                loyalty_tokens.c.token == card,
                loyalty_tokens.c.kind == "card",
                loyalty_tokens.c.status == ACTIVE,
            )
            .values(status=REVOKED, revoked_us=now_us)
        )
        return bool(result.rowcount)


def token_row(
    workspace_id: str, member_id: str, profile_id: str | None, token: str, kind: str, now_us: int
) -> dict[str, Any]:
    """A ``loyalty_tokens`` row: an active ``digital`` token or physical ``card``."""
    return {
        "workspace_id": workspace_id,
        "token": token,
        "member_id": member_id,
        "profile_id": profile_id,
        "kind": kind,
        "status": ACTIVE,
        "created_us": now_us,
        "revoked_us": None,
    }


def member_row(
    workspace_id: str,
    member_id: str,
    profile_id: str | None,
    *,
    channel: str,
    store_id: str | None,
    enrolled_us: int,
    now_us: int,
) -> dict[str, Any]:
    """A new active ``loyalty_members`` row with nothing on its balance."""
    return {
        "workspace_id": workspace_id,
        "id": member_id,
        "profile_id": profile_id,
        "status": ACTIVE,
        "merged_into": None,
        "balance": 0,
        "tier": None,
        "tier_since_us": None,
        "channel": channel,
        "store_id": store_id,
        "enrolled_us": enrolled_us,
        "updated_us": now_us,
    }
