"""The pure loyalty rules: the programme (validation, earning, multipliers, tiers) and the
ledger's arithmetic (lots spent oldest-expiring first, expiries, qualifying points), with
hypothesis properties over random ledgers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.loyalty import ledger
from opencdp.loyalty.ledger import Entry
from opencdp.loyalty.programme import ProgrammeError, parse_programme
from opencdp.loyalty.tokens import is_token_shaped, new_member_token

DAY = 86_400 * 1_000_000

BASE: dict[str, Any] = {
    "name": "Glow",
    "currency": "EUR",
    "points_per_unit": 2,
    "multipliers": {
        "categories": {"Skincare": 2, "Skincare > Serums": 3},
        "products": {"LIP-1": 5},
    },
    "bonuses": {"first_order": 100, "birthday_month": 2},
    "tiers": [{"name": "Member", "threshold": 0}, {"name": "Gold", "threshold": 1000}],
}


def test_earning_weights_line_items_and_adds_the_bonuses() -> None:
    programme = parse_programme(BASE)
    order = {
        "currency": "EUR",
        "products": [
            {"product_id": "A", "price": 10, "quantity": 2, "category": "Skincare > Creams"},
            {"product_id": "B", "price": 10, "category": "Skincare > Serums > Night"},
            {"product_id": "LIP-1", "price": 4, "category": "Skincare"},
            {"product_id": "C", "price": 1},
            {"product_id": "D"},  # no price: ignored
        ],
    }
    earning = programme.earning(order, {"C": "Skincare"}, first_order=True, birthday_month=False)
    assert earning is not None
    # (20x2 + 10x3 + 4x5 + 1x2) x 2 points per unit
    assert earning.base == (40 + 30 + 20 + 2) * 2
    assert earning.bonus == 100 and "first order +100" in earning.reason
    birthday = programme.earning(order, {}, first_order=False, birthday_month=True)
    assert birthday is not None and birthday.base == (40 + 30 + 20 + 1) * 2 * 2


def test_an_order_without_items_earns_on_its_total_and_other_currencies_earn_nothing() -> None:
    programme = parse_programme({**BASE, "rounding": "floor"})
    earning = programme.earning(
        {"total": "10.75", "currency": "eur"}, {}, first_order=False, birthday_month=False
    )
    assert earning is not None and earning.total == 21
    assert (
        programme.earning(
            {"total": 10, "currency": "USD"}, {}, first_order=True, birthday_month=False
        )
        is None
    )
    assert (
        programme.earning({"currency": "EUR"}, {}, first_order=True, birthday_month=False) is None
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tiers": [{"name": "A", "threshold": 5}]}, "tiers: the first tier's threshold is 0"),
        (
            {"tiers": [{"name": "A", "threshold": 0}, {"name": "B", "threshold": 0}]},
            "tiers: thresholds rising strictly",
        ),
        ({"expiry": "soon"}, "expiry: 'soon' is not a duration"),
        ({"points_per_unit": 0}, "points_per_unit: Input should be greater than 0"),
        ({"currency": "euro"}, "currency: String should match pattern"),
        ({"multipliers": {"products": {"X": -1}}}, "multipliers.products: 'X': a factor"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_programme_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProgrammeError) as caught:
        parse_programme({**BASE, **change})
    assert caught.value.message.startswith(message)


def test_tiers_follow_thresholds() -> None:
    programme = parse_programme(BASE)
    assert programme.tier_for(0) == "Member"
    assert programme.tier_for(999) == "Member"
    assert programme.tier_for(1000) == "Gold"
    assert parse_programme({"name": "No tiers"}).tier_for(10**6) is None


def test_tokens_are_unguessable_and_token_shaped() -> None:
    tokens = {new_member_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_token_shaped(t) and len(t) == 20 for t in tokens)
    assert not is_token_shaped("../etc") and not is_token_shaped("ab")


def test_redemptions_spend_the_lot_that_expires_first() -> None:
    entries = [
        Entry(1, ledger.EARN, 100, 0, expires_us=300 * DAY, order_id="o1"),
        Entry(2, ledger.EARN, 50, 10 * DAY, expires_us=100 * DAY, order_id="o2"),
        Entry(3, ledger.REDEEM, -60, 20 * DAY, dedup_key="redeem:r1"),
    ]
    lots = ledger.open_lots(entries)
    assert [(lot.id, lot.remaining) for lot in lots] == [(1, 90)]
    assert ledger.due_expiries(entries, 100 * DAY) == []
    assert ledger.expiring_within(entries, 280 * DAY, 30 * DAY) == 90


def test_a_refund_takes_its_own_orders_points_first() -> None:
    entries = [
        Entry(1, ledger.EARN, 100, 0, expires_us=100 * DAY, order_id="o1"),
        Entry(2, ledger.EARN, 50, 0, expires_us=300 * DAY, order_id="o2"),
        Entry(3, ledger.REVERSE, -50, DAY, order_id="o2", dedup_key="reverse:o2"),
    ]
    assert [(lot.id, lot.remaining) for lot in ledger.open_lots(entries)] == [(1, 100)]
    assert ledger.reversal_of(entries, "o2") == 0
    assert ledger.reversal_of(entries, "o1") == 100
    assert ledger.qualifying_points(entries, 0) == 100


_kinds = st.sampled_from([ledger.EARN, ledger.ADJUST, ledger.REDEEM, ledger.REVERSE])


@st.composite
def ledgers(draw: st.DrawFn) -> list[Entry]:
    entries: list[Entry] = []
    for n in range(1, draw(st.integers(0, 25)) + 1):
        kind = draw(_kinds)
        points = draw(st.integers(1, 500))
        at = draw(st.integers(0, 400)) * DAY
        if kind in (ledger.EARN, ledger.ADJUST) and draw(st.booleans()):
            expires = at + draw(st.integers(1, 400)) * DAY if kind == ledger.EARN else None
            order = f"o{draw(st.integers(0, 5))}" if kind == ledger.EARN else None
            entries.append(Entry(n, kind, points, at, expires_us=expires, order_id=order))
        else:
            order = f"o{draw(st.integers(0, 5))}" if kind == ledger.REVERSE else None
            entries.append(Entry(n, kind, -points, at, order_id=order))
    return entries


@given(ledgers())
def test_open_points_are_the_balance_when_it_is_positive(entries: list[Entry]) -> None:
    remaining = sum(lot.remaining for lot in ledger.open_lots(entries))
    assert remaining == max(0, ledger.balance(entries))
    assert all(lot.remaining > 0 for lot in ledger.open_lots(entries))


@given(ledgers(), st.integers(0, 900))
def test_writing_the_due_expiries_leaves_none_due(entries: list[Entry], day: int) -> None:
    now = day * DAY
    due = ledger.due_expiries(entries, now)
    after = entries + [
        Entry(1000 + i, ledger.EXPIRE, -points, now, dedup_key=f"expire:{lot}")
        for i, (lot, points) in enumerate(due)
    ]
    assert ledger.due_expiries(after, now) == []
    assert ledger.balance(after) == ledger.balance(entries) - sum(p for _l, p in due)
    assert ledger.expiring_within(after, now, 30 * DAY) == ledger.expiring_within(
        entries, now, 30 * DAY
    )
