"""Loyalty in the worker: each stored batch's enrolments, orders, refunds and merges, in the
batch's transaction (so a crash redoes them with the batch, and the ledger's keys make the redo
harmless).

* ``Loyalty Enrolled`` binds the member the enrolment API made (``properties.member_id``) to
  the profile the event resolved to, or enrols the profile (an SDK's or the self-service
  profile's event). A profile that is a member already keeps its member: the new one's tokens
  and points move to it. ``properties.card_number`` adds a physical card.
* ``Order Completed`` earns, once per ``order_id`` in the workspace, for the profile's member:
  the programme's points (line items weighted by product and category multipliers, the
  catalog's category when an item names none) and a first-order bonus.
* ``Order Refunded`` takes back what its order earned (whoever holds those points now).
* A merge of two member profiles merges their members: the absorbed member's entries and
  tokens move to the survivor's member, each entry with its key, so no point is lost or doubled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.loyalty import ledger
from opencdp.loyalty.programme import Programme, product_id_of
from opencdp.storage.loyalty import member_row, token_row
from opencdp.timeutil import parse_timestamp, to_us

if TYPE_CHECKING:
    from opencdp.resolve.batch import BatchChanges
    from opencdp.retail.loyalty_book import LoyaltyBook
    from opencdp.storage.db import Connection
    from opencdp.storage.loyalty import LoyaltyStore, Member

ENROLLED = "Loyalty Enrolled"
ORDER_COMPLETED = "Order Completed"
ORDER_REFUNDED = "Order Refunded"
_WATCHED = frozenset({ENROLLED, ORDER_COMPLETED, ORDER_REFUNDED})
#: the identifier type physical loyalty cards resolve by
CARD_TYPE = "loyalty_card"


@dataclass(frozen=True)
class _Event:
    message_id: str
    profile_id: str
    name: str
    properties: Mapping[str, Any]
    at_us: int
    payload: Mapping[str, Any]


def order_id_of(properties: Mapping[str, Any]) -> str | None:
    """An order's id: ``order_id``, else ``orderId``, else ``checkout_id``."""
    for key in ("order_id", "orderId", "checkout_id"):
        value = properties.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:200]
    return None


def new_member_id(seed: str) -> str:
    """A member id derived from what made it (the enrolment's message id): a redone batch
    makes the same member."""
    return "mem_" + hashlib.blake2b(seed.encode(), digest_size=10).hexdigest()


class LoyaltyListener:
    """The batch listener (see the module docstring)."""

    def __init__(self, book: LoyaltyBook, tokens: Any) -> None:
        self.book = book
        self.store: LoyaltyStore = book.store
        #: makes a member's first digital token: ``(conn, workspace_id) -> token``
        self.tokens = tokens

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        ws = changes.workspace_id
        if not (_WATCHED & changes.events) and not changes.merged:
            return
        programme = self.book.programme(ws)
        if programme is None:
            return
        events = [e for e in _events(changes) if e.name in _WATCHED]
        touched: set[str] = set()
        if changes.merged:
            touched |= self._merge(conn, ws, changes.merged_into)
        enrolments = [e for e in events if e.name == ENROLLED]
        if enrolments:
            touched |= self._enrol(conn, ws, enrolments)
        entries: list[dict[str, Any]] = []
        extra: dict[str, dict[str, Any]] = {}
        refunds = [e for e in events if e.name == ORDER_REFUNDED]
        # an order refunded in its own batch earns nothing: its refund leaves the marker
        refunded = {oid for e in refunds if (oid := order_id_of(e.properties)) is not None}
        orders = [
            e
            for e in events
            if e.name == ORDER_COMPLETED and order_id_of(e.properties) not in refunded
        ]
        if orders:
            entries += self._earn(conn, ws, programme, orders, extra)
        if refunds:
            entries += self._reverse(conn, ws, refunds)
        if entries or touched:
            self.book.record(
                conn,
                ws,
                entries,
                refresh=touched,
                channel="loyalty",
                actor="worker",
                event_properties=extra,
            )

    # -- merges -------------------------------------------------------------------------------
    def _merge(self, conn: Connection, ws: str, survivors: frozenset[str]) -> set[str]:
        touched: set[str] = set()
        now_us = self._now()
        for member, survivor in self.store.on_absorbed_profiles(conn, ws, survivors):
            current = self.store.active_of_profiles(conn, ws, [survivor]).get(survivor)
            if current is None or current.id == member.id:
                self.store.move(conn, ws, member.id, survivor, now_us)
                touched.add(member.id)
            else:
                keep, gone = _older_first(current, member)
                if keep.profile_id != survivor:
                    self.store.move(conn, ws, keep.id, survivor, now_us)
                    keep = self.store.member_in(conn, ws, keep.id) or keep
                self.store.absorb(conn, ws, gone, keep, now_us)
                touched.add(keep.id)
        return touched

    # -- enrolments ---------------------------------------------------------------------------
    def _enrol(self, conn: Connection, ws: str, enrolments: list[_Event]) -> set[str]:
        touched: set[str] = set()
        now_us = self._now()
        current = self.store.active_of_profiles(conn, ws, {e.profile_id for e in enrolments})
        for event in enrolments:
            props = event.properties
            existing = current.get(event.profile_id)
            named = props.get("member_id")
            member: Member | None = None
            if isinstance(named, str) and named:
                member = self.store.member_in(conn, ws, named)
            if member is not None and member.profile_id is None:
                if existing is None:
                    self.store.bind(conn, ws, member.id, event.profile_id)
                    member = self.store.member_in(conn, ws, member.id)
                    assert member is not None
                    current[event.profile_id] = member
                else:  # the profile is a member already: one member per person
                    self.store.absorb(conn, ws, member, existing, now_us)
                    member = existing
            elif member is None and existing is None:
                member_id = new_member_id(f"{ws}\x1f{event.message_id}")
                found = self.store.member_in(conn, ws, member_id)
                if found is None:
                    channel, store = props.get("channel"), props.get("store_id")
                    row = member_row(
                        ws,
                        member_id,
                        event.profile_id,
                        channel=channel if channel in ("online", "store", "self") else "event",
                        store_id=str(store)[:100] if isinstance(store, str | int) else None,
                        enrolled_us=event.at_us,
                        now_us=now_us,
                    )
                    token = self.tokens(conn, ws)
                    self.store.add_member(
                        conn,
                        row,
                        [token_row(ws, member_id, event.profile_id, token, "digital", now_us)],
                    )
                    found = self.store.member_in(conn, ws, member_id)
                member = found
                if member is not None and member.status == "active":
                    current[event.profile_id] = member
            else:
                member = existing or member
            if member is None:
                continue
            card = props.get("card_number")
            if isinstance(card, str | int) and not isinstance(card, bool) and str(card).strip():
                number = str(card).strip()[:64]
                if not self.store.token_taken(conn, ws, number):
                    self.store.add_tokens(
                        conn, [token_row(ws, member.id, member.profile_id, number, "card", now_us)]
                    )
            touched.add(member.id)
        return touched

    # -- orders and refunds -------------------------------------------------------------------
    def _earn(
        self,
        conn: Connection,
        ws: str,
        programme: Programme,
        orders: list[_Event],
        extra: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        members = self.store.active_of_profiles(conn, ws, {e.profile_id for e in orders})
        keyed = [
            (e, oid)
            for e in orders
            if e.profile_id in members and (oid := order_id_of(e.properties)) is not None
        ]
        if not keyed:
            return []
        done = self.store.existing_keys(
            conn,
            ws,
            [f"{kind}:{oid}" for _e, oid in keyed for kind in (ledger.EARN, ledger.REVERSE)],
        )
        earned_before = self.store.earned_members(conn, ws, [m.id for m in members.values()])
        wanted = {
            pid
            for e, _oid in keyed
            for item in _items(e.properties)
            if (pid := product_id_of(item)) is not None and not item.get("category")
        }
        categories = self.store.product_categories(conn, ws, wanted) if wanted else {}
        birthdays = (
            self.store.birthday_months(conn, ws, {e.profile_id for e, _ in keyed})
            if programme.spec.bonuses.birthday_month > 1
            else {}
        )
        expiry = programme.expiry
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event, order_id in keyed:
            if order_id in seen or f"earn:{order_id}" in done or f"reverse:{order_id}" in done:
                continue
            seen.add(order_id)
            member = members[event.profile_id]
            month = _month(event.at_us)
            earning = programme.earning(
                event.properties,
                categories,
                first_order=member.id not in earned_before,
                birthday_month=birthdays.get(event.profile_id) == month,
            )
            expires_us = (
                event.at_us + int(expiry.total_seconds() * 1_000_000)
                if expiry is not None
                else None
            )
            if earning is None or earning.total <= 0:
                continue
            if expires_us is not None and expires_us <= self._now():
                continue  # an order older than the expiry (history, a late import): no points
            earned_before.add(member.id)
            row = {
                "member_id": member.id,
                "profile_id": member.profile_id,
                "kind": ledger.EARN,
                "points": earning.total,
                "dedup_key": f"earn:{order_id}",
                "order_id": order_id,
                "reason": earning.reason,
                "expires_us": expires_us,
                "message_id": event.message_id,
                "actor": "worker",
                "at_us": event.at_us,
            }
            extra[f"earn:{order_id}"] = {"base_points": earning.base, "bonus_points": earning.bonus}
            out.append(row)
        return out

    def _reverse(self, conn: Connection, ws: str, refunds: list[_Event]) -> list[dict[str, Any]]:
        keyed = [(e, oid) for e in refunds if (oid := order_id_of(e.properties)) is not None]
        if not keyed:
            return []
        by_order = self.store.entries_of_orders(conn, ws, {oid for _e, oid in keyed})
        members = self.store.active_of_profiles(conn, ws, {e.profile_id for e, _ in keyed})
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event, order_id in keyed:
            if order_id in seen:
                continue
            seen.add(order_id)
            found = by_order.get(order_id, [])
            holders = self.store.members_in(conn, ws, {mid for mid, _e in found})
            if found:
                member_id = found[0][0]
                holder = holders.get(member_id)
                points = ledger.reversal_of([e for _m, e in found], order_id)
                profile_id = holder.profile_id if holder is not None else None
            elif event.profile_id in members:
                # refunded before its order was seen: a marker of 0 points keeps the order
                # from earning when it arrives
                member_id, points = members[event.profile_id].id, 0
                profile_id = members[event.profile_id].profile_id
            else:
                continue
            out.append(
                {
                    "member_id": member_id,
                    "profile_id": profile_id,
                    "kind": ledger.REVERSE,
                    "points": -max(0, points),
                    "dedup_key": f"reverse:{order_id}",
                    "order_id": order_id,
                    "reason": "order refunded",
                    "message_id": event.message_id,
                    "actor": "worker",
                    "at_us": event.at_us,
                }
            )
        return out

    def _now(self) -> int:
        return to_us(self.book.clock.now())


def _events(changes: BatchChanges) -> list[_Event]:
    out: list[_Event] = []
    for stored in changes.stored:
        try:
            payload = orjson.loads(stored.payload)
        except orjson.JSONDecodeError:
            continue
        if payload.get("type") != "track" or payload.get("event") not in _WATCHED:
            continue
        properties = payload.get("properties")
        try:
            at_us = to_us(parse_timestamp(payload.get("timestamp")))
        except (ValueError, TypeError):
            continue
        out.append(
            _Event(
                stored.message_id,
                stored.profile_id,
                payload["event"],
                properties if isinstance(properties, dict) else {},
                at_us,
                payload,
            )
        )
    return out


def _items(properties: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = properties.get("products")
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _month(at_us: int) -> int:
    from opencdp.timeutil import from_us

    return from_us(at_us).month


def _older_first(a: Member, b: Member) -> tuple[Member, Member]:
    return (a, b) if (a.enrolled_us, a.id) <= (b.enrolled_us, b.id) else (b, a)
