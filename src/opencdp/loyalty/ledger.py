"""The points ledger's arithmetic: which earned points are still open, which expire when, what
counts towards a tier. Pure: the worker and the services read a member's entries and ask.

Entries are append-only and signed: ``earn`` (an order's points, and its bonus), ``adjust``
(by an operator, either sign), ``redeem`` (negative), ``reverse`` (a refunded order's points
taken back, negative), ``expire`` (negative, naming the lot it expires). Every entry has a key
that makes it happen once (``dedup_key``): ``earn:<order id>``, ``reverse:<order id>``,
``redeem:<reference>``, ``expire:<lot id>``, …

Points are spent oldest first: a redemption, an adjustment down or a debt takes from the open
lot that expires first; a reversal takes from its own order's lots first; an expiry from the
lot it names. A lot is a positive entry (an earn, or an adjustment up, which never expires).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EARN = "earn"
REDEEM = "redeem"
ADJUST = "adjust"
EXPIRE = "expire"
REVERSE = "reverse"
KINDS = (EARN, REDEEM, ADJUST, EXPIRE, REVERSE)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row, as the arithmetic needs it."""

    id: int
    kind: str
    points: int
    at_us: int
    expires_us: int | None = None
    order_id: str | None = None
    dedup_key: str = ""

    @property
    def expired_lot(self) -> int | None:
        """The lot an ``expire`` entry expires."""
        if self.kind != EXPIRE or not self.dedup_key.startswith("expire:"):
            return None
        try:
            return int(self.dedup_key.removeprefix("expire:"))
        except ValueError:
            return None


@dataclass(slots=True)
class Lot:
    """Points earned together and not spent yet."""

    id: int
    remaining: int
    expires_us: int | None
    order_id: str | None


def open_lots(entries: Iterable[Entry]) -> list[Lot]:
    """The lots with points left after every negative entry took its share, in the order
    they are spent (the first to expire first; never-expiring last)."""
    lots: list[Lot] = []
    debt = 0
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.points > 0:
            lot = Lot(entry.id, entry.points, entry.expires_us, entry.order_id)
            paid = min(debt, lot.remaining)
            lot.remaining -= paid
            debt -= paid
            lots.append(lot)
            continue
        owed = -entry.points
        if entry.kind == EXPIRE and entry.expired_lot is not None:
            owed = _take(owed, [lot for lot in lots if lot.id == entry.expired_lot])
        elif entry.kind == REVERSE and entry.order_id is not None:
            owed = _take(owed, [lot for lot in lots if lot.order_id == entry.order_id])
        owed = _take(owed, _spending_order(lots))
        debt += owed
    return [lot for lot in _spending_order(lots) if lot.remaining > 0]


def balance(entries: Iterable[Entry]) -> int:
    """The sum of the points: what a member has (negative after a refund of spent points)."""
    return sum(e.points for e in entries)


def expiring_within(entries: Iterable[Entry], now_us: int, horizon_us: int) -> int:
    """Open points that expire after ``now_us`` and no later than ``now_us + horizon_us``
    (``points_expiring_30d``)."""
    return sum(
        lot.remaining
        for lot in open_lots(entries)
        if lot.expires_us is not None and now_us < lot.expires_us <= now_us + horizon_us
    )


def due_expiries(entries: Iterable[Entry], now_us: int) -> list[tuple[int, int]]:
    """``(lot id, points)`` of the lots whose time is up and that still hold points: each
    becomes one ``expire`` entry of ``-points`` keyed ``expire:<lot id>``."""
    return [
        (lot.id, lot.remaining)
        for lot in open_lots(entries)
        if lot.expires_us is not None and lot.expires_us <= now_us
    ]


def qualifying_points(entries: Iterable[Entry], since_us: int) -> int:
    """Points earned since ``since_us`` less those reversed since then: what a tier needs.
    Redemptions and expiries do not lower a tier."""
    return max(
        0,
        sum(e.points for e in entries if e.kind in (EARN, REVERSE) and e.at_us >= since_us),
    )


def reversal_of(entries: Sequence[Entry], order_id: str) -> int:
    """The points a refund of ``order_id`` takes back: what the order earned (its bonus too),
    less what was taken back already."""
    return sum(e.points for e in entries if e.order_id == order_id and e.kind in (EARN, REVERSE))


def _spending_order(lots: list[Lot]) -> list[Lot]:
    never = 2**63
    return sorted(lots, key=lambda lot: (lot.expires_us or never, lot.id))


def _take(owed: int, lots: Iterable[Lot]) -> int:
    for lot in lots:
        if owed <= 0:
            break
        taken = min(owed, lot.remaining)
        lot.remaining -= taken
        owed -= taken
    return owed
