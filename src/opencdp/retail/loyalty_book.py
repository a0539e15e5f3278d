"""The loyalty book: writes ledger entries exactly once, keeps balances and tiers, and puts what
changed on the member's timeline.

Everything a member's points go through — an order the worker sees, a refund, a redemption at
the till, an adjustment by an operator, an expiry found by the timer — ends in
:meth:`LoyaltyBook.record`, in the transaction of its cause:

1. entries whose key (``earn:<order id>``, ``redeem:<reference>``, …) the ledger holds already
   are dropped: exactly once, also when a batch or a request is redone;
2. the rest are appended and their points added to the members' balances;
3. each touched member's tier (qualifying points in the programme's period), open points and
   points expiring within 30 days are worked out from its entries
   (:mod:`opencdp.loyalty.ledger`);
4. ``Points Earned`` / ``Points Redeemed`` / ``Points Reversed`` / ``Points Adjusted`` /
   ``Points Expired`` and ``Tier Changed`` events and one ``identify`` with the traits
   ``points_balance``, ``loyalty_tier``, ``points_expiring_30d`` and ``loyalty_member_id`` are
   written to the inbox (:class:`~opencdp.retail.derived.DerivedEvents`), so journeys confirm
   them and the Profile API shows them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opencdp.loyalty import ledger
from opencdp.loyalty.programme import Programme, ProgrammeError, parse_programme
from opencdp.retail.derived import DerivedEvents, addressed
from opencdp.storage.profiles import addresses
from opencdp.timeutil import isoformat_us, to_us
from opencdp.ttl_cache import TtlCache

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.storage.db import Connection
    from opencdp.storage.loyalty import LoyaltyStore, Member

log = logging.getLogger(__name__)

#: the horizon of ``points_expiring_30d``
EXPIRING_HORIZON = timedelta(days=30)
_HORIZON_US = int(EXPIRING_HORIZON.total_seconds() * 1_000_000)

#: ledger kind -> the event that tells the member about it
EVENT_OF_KIND = {
    ledger.EARN: "Points Earned",
    ledger.REDEEM: "Points Redeemed",
    ledger.REVERSE: "Points Reversed",
    ledger.ADJUST: "Points Adjusted",
    ledger.EXPIRE: "Points Expired",
}
TIER_CHANGED = "Tier Changed"
TRAITS = ("points_balance", "loyalty_tier", "points_expiring_30d", "loyalty_member_id")


@dataclass
class Recorded:
    """What :meth:`LoyaltyBook.record` wrote."""

    #: dedup key -> ledger entry id of the entries appended
    appended: dict[str, int] = field(default_factory=dict)
    #: dedup keys that were there already (nothing written)
    existing: set[str] = field(default_factory=set)
    #: member id -> balance after
    balances: dict[str, int] = field(default_factory=dict)


class LoyaltyBook:
    """See the module docstring."""

    def __init__(self, store: LoyaltyStore, events: DerivedEvents, clock: Clock) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self._programmes: TtlCache[str, Programme | None] = TtlCache(clock, 2.0)

    def programme(self, workspace_id: str) -> Programme | None:
        """The workspace's programme (cached briefly), or None."""

        def load() -> Programme | None:
            found = self.store.programme(workspace_id)
            if found is None:
                return None
            try:
                return parse_programme(found[0])
            except ProgrammeError as exc:  # stored before a rule tightened: say so, earn nothing
                log.error("the loyalty programme of %s no longer validates: %s", workspace_id, exc)
                return None

        return self._programmes.get(workspace_id, load)

    def forget(self, workspace_id: str) -> None:
        self._programmes.forget(workspace_id)

    # -- writing ------------------------------------------------------------------------------
    def record(
        self,
        conn: Connection,
        workspace_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        refresh: Iterable[str] = (),
        channel: str,
        actor: str,
        event_properties: Mapping[str, Mapping[str, Any]] | None = None,
        prepaid: Iterable[str] = (),
    ) -> Recorded:
        """Append ``entries`` (rows of ``loyalty_ledger`` without ids) exactly once, then
        bring the touched members and those in ``refresh`` up to date (see the module
        docstring). ``event_properties`` adds properties to the event of an entry, by key;
        ``prepaid`` names entries whose points the caller took from the balance already (a
        redemption's conditional update)."""
        now_us = to_us(self.clock.now())
        out = Recorded()
        # what is read of the members' ledgers below stays true until the commit
        self.store.lock_members(
            conn, workspace_id, {e["member_id"] for e in entries} | set(refresh)
        )
        keys = [str(e["dedup_key"]) for e in entries]
        out.existing = self.store.existing_keys(conn, workspace_id, keys) if keys else set()
        fresh: list[dict[str, Any]] = []
        seen = set(out.existing)
        for entry in entries:
            if entry["dedup_key"] in seen:
                continue
            seen.add(entry["dedup_key"])
            fresh.append({**entry, "workspace_id": workspace_id, "recorded_us": now_us})
        ids = self.store.append(conn, fresh)
        deltas: dict[str, int] = defaultdict(int)
        paid = set(prepaid)
        for entry, entry_id in zip(fresh, ids, strict=True):
            out.appended[entry["dedup_key"]] = entry_id
            if entry["dedup_key"] not in paid:
                deltas[entry["member_id"]] += int(entry["points"])
        self.store.add_balances(conn, workspace_id, deltas, now_us)
        touched = {e["member_id"] for e in fresh} | set(refresh)
        messages = self._refresh(
            conn,
            workspace_id,
            touched,
            now_us,
            [(e, i) for e, i in zip(fresh, ids, strict=True)],
            event_properties or {},
            out,
        )
        self.events.append(conn, workspace_id, messages, channel=channel, actor=actor)
        return out

    def expire_due(self, conn: Connection, workspace_id: str, member_ids: Iterable[str]) -> int:
        """Write the expiries that are due for these members, and refresh them (their
        ``points_expiring_30d`` and tier move with time too); returns the entries written."""
        now_us = to_us(self.clock.now())
        wanted = set(member_ids)
        self.store.lock_members(conn, workspace_id, wanted)  # a redemption waits, or went first
        members = [m for m in self.store.members_in(conn, workspace_id, wanted).values()]
        active = [m for m in members if m.status == "active"]
        if not active:
            return 0
        by_member = self.store.entries_of(conn, workspace_id, [m.id for m in active])
        entries: list[dict[str, Any]] = []
        for member in active:
            for lot_id, points in ledger.due_expiries(by_member.get(member.id, []), now_us):
                entries.append(
                    {
                        "member_id": member.id,
                        "profile_id": member.profile_id,
                        "kind": ledger.EXPIRE,
                        "points": -points,
                        "dedup_key": f"expire:{lot_id}",
                        "reason": "points expired",
                        "at_us": now_us,
                        "actor": "worker",
                    }
                )
        recorded = self.record(
            conn,
            workspace_id,
            entries,
            refresh=[m.id for m in active],
            channel="loyalty",
            actor="worker",
        )
        return len(recorded.appended)

    # -- refreshing ---------------------------------------------------------------------------
    def _refresh(
        self,
        conn: Connection,
        workspace_id: str,
        member_ids: set[str],
        now_us: int,
        fresh: Sequence[tuple[Mapping[str, Any], int]],
        extra: Mapping[str, Mapping[str, Any]],
        out: Recorded,
    ) -> list[dict[str, Any]]:
        if not member_ids:
            return []
        programme = self.programme(workspace_id)
        members = self.store.members_in(conn, workspace_id, member_ids)
        by_member = self.store.entries_of(conn, workspace_id, members)
        tiers: dict[str, str | None] = {}
        per_member: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for member in members.values():
            out.balances[member.id] = member.balance
            if member.status != "active":
                continue
            entries = by_member.get(member.id, [])
            tier = member.tier
            if programme is not None:
                since = now_us - int(programme.qualification_period.total_seconds() * 1_000_000)
                tier = programme.tier_for(ledger.qualifying_points(entries, since))
            if tier != member.tier:
                tiers[member.id] = tier
                per_member[member.id].append(
                    _track(
                        TIER_CHANGED,
                        {"member_id": member.id, "previous_tier": member.tier, "tier": tier},
                        now_us,
                    )
                )
            per_member[member.id].append(
                {
                    "type": "identify",
                    "traits": {
                        "points_balance": member.balance,
                        "loyalty_tier": tier,
                        "points_expiring_30d": ledger.expiring_within(entries, now_us, _HORIZON_US),
                        "loyalty_member_id": member.id,
                    },
                    "timestamp": isoformat_us(now_us),
                }
            )
        if tiers:
            self.store.set_tiers(conn, workspace_id, tiers, now_us)
        for entry, entry_id in fresh:
            holder = members.get(entry["member_id"])
            if holder is None:
                continue
            points = int(entry["points"])
            properties = {
                "member_id": holder.id,
                "points": abs(points),
                "balance": holder.balance,
                "order_id": entry.get("order_id"),
                "reason": entry.get("reason"),
                "entry_id": entry_id,
                **extra.get(str(entry["dedup_key"]), {}),
            }
            message = _track(
                EVENT_OF_KIND[str(entry["kind"])],
                {k: v for k, v in properties.items() if v is not None},
                now_us,
            )
            message["messageId"] = f"loyalty-{workspace_id}-{entry_id}"
            per_member[holder.id].insert(0, message)
        found = addresses(
            conn, workspace_id, [m.profile_id for m in members.values() if m.profile_id]
        )
        messages: list[dict[str, Any]] = []
        for member_id, items in per_member.items():
            member = members[member_id]
            address = found.get(member.profile_id or "")
            if address is None:  # not bound yet, or a profile without identifiers: no timeline
                continue
            messages.extend(addressed(address, m) for m in items)
        return messages


def _track(event: str, properties: dict[str, Any], now_us: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "properties": properties,
        "timestamp": isoformat_us(now_us),
    }


def member_traits(member: Member) -> dict[str, Any]:
    """The member as the API shows it."""
    return {
        "id": member.id,
        "profile_id": member.profile_id,
        "status": member.status,
        "merged_into": member.merged_into,
        "balance": member.balance,
        "tier": member.tier,
        "channel": member.channel,
        "store_id": member.store_id,
        "enrolled_at": isoformat_us(member.enrolled_us),
    }
