"""The reference semantics: definitions parsed and evaluated over one profile at a fixed now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opencdp.query.evaluate import Evaluator, EventRecord, ProfileData, event_name
from opencdp.query.parser import parse

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def ev(
    name: str, when: datetime, n: int = 0, source: str | None = "web", **props: Any
) -> EventRecord:
    context = props.pop("context", {})
    return EventRecord(name, when, props, context, source, when, f"m{n}")


def run(query: str, profile: ProfileData, kind: str = "audience", now: datetime = NOW) -> Any:
    definition = parse(query, kind, "ACCOUNTS" if profile.users else "USERS")  # type: ignore[arg-type]
    return Evaluator(now).evaluate(definition.root, profile)


SHOPPER = ProfileData(
    traits={
        "plan": "pro",
        "email": "a@x.co",
        "country": "FR",
        "trial_ends_at": (NOW + timedelta(days=2)).isoformat(),
        "signup_date": "2022-01-01T00:00:00Z",
        "avg_order_value": 80,
        "vip_customers": True,
        "address": {"city": "Lyon"},
    },
    events=[
        ev(
            "Order Completed",
            ago(days=3),
            1,
            revenue=120,
            total="120.00",
            category="shoes",
            cart_id="c1",
        ),
        ev("Order Completed", ago(days=40), 2, revenue=50, total=50, category="bags"),
        ev("Order Completed", ago(days=200), 3, revenue="30.5", total=30.5, category="shoes"),
        ev("Order Completed", ago(days=5), 4, source="src_qa_shop", revenue=999, category="qa"),
        ev(
            "Product Viewed",
            ago(days=1),
            5,
            price=250,
            category="shoes",
            brand="Acme",
            product_id="p1",
        ),
        ev(
            "Product Viewed",
            ago(days=2),
            6,
            price=300,
            category="shoes",
            brand="Zeta",
            product_id="p2",
        ),
        ev(
            "Product Viewed",
            ago(days=6),
            7,
            price=210,
            category="shoes",
            brand="Acme",
            product_id="p1",
        ),
        ev("Product Viewed", ago(days=20), 8, price=10, category="socks", brand="Acme"),
        ev("Product Added", ago(days=2), 9, cart_id="c2", product_id="p2"),
        ev("Product Added", ago(days=4), 10, cart_id="c1", product_id="p1"),
        ev("Page Viewed", ago(days=10), 11, context={"page": {"url": "https://x.co/pricing"}}),
        ev("Page Viewed", ago(minutes=20), 12, context={"campaign": {"source": "news"}}),
        ev("Page Viewed", ago(minutes=5), 13),
    ],
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("event('Order Completed').within(30 days).count() >= 1", True),
        ("event('Order Completed').count() = 0", False),
        (
            "event('Order Completed').count() >= 1 AND NOT "
            "(event('Order Completed').within(90 days).count() >= 1)",
            False,
        ),
        (
            "event('Product Viewed').where(property('price') > 200 AND "
            "property('category') = 'shoes').within(7 days).count() >= 3",
            True,
        ),
        ("event('Order Completed').within(30 days).sum(property('revenue')) >= 500", True),
        (
            "event('Order Completed').sources({exclude: ['src_qa_shop']}).within(30 days)"
            ".sum(property('revenue')) >= 500",
            False,
        ),
        ("trait('plan').one_of('pro','enterprise') AND trait('email').exists()", True),
        ("trait('trial_ends_at').within_next(3 days)", True),
        ("trait('trial_ends_at').within_next(1 days)", False),
        ("trait('signup_date').before_last(365 days)", True),
        ("trait('country') != 'DE' OR trait('country').absent()", True),
        ("trait('missing') != 'DE'", False),
        ("trait('missing').none_of('DE')", True),
        (
            "event('Page Viewed').where(context('page.url').contains('/pricing'))"
            ".between(7 days, 30 days).count() >= 1",
            True,
        ),
        (
            "event('Product Added').where(NOT (event('Order Completed')"
            ".within(parent: 1 days).count() >= 1)).within(7 days).count() >= 1",
            True,
        ),
        (
            "event('Product Added').where(event('Order Completed').where(property('cart_id') "
            "= property(parent: 'cart_id')).within(parent: 2 days).count() = 0)"
            ".within(7 days).count() >= 2",
            False,  # cart c1 was ordered a day after it was filled; only c2 is abandoned
        ),
        (
            "event('Order Completed').where(property('total') >= trait('avg_order_value'))"
            ".within(60 days).count() >= 1",
            True,
        ),
        (
            "trait('vip_customers') = 'true' AND event('Email Opened').within(14 days).count() = 0",
            True,
        ),
        ("trait('address.city') = 'Lyon'", True),
        ("trait('avg_order_value') = '80'", True),
        ("trait('plan').contains('r') AND trait('plan').starts_with('p')", True),
        ("trait('plan').omits('r')", False),
        ("trait('signup_date').after_date('2021-12-31')", True),
        ("trait('signup_date').before_date(2021-12-31)", False),
    ],
)
def test_worked_audiences(query: str, expected: bool) -> None:
    assert run(query, SHOPPER) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("event('Order Completed').count()", 4),
        ("event('Order Completed').within(90 days).sum(property('revenue'))", 1169),
        ("event('Order Completed').sum(property('revenue'))", 1199.5),
        ("event('Order Completed').avg(property('total'))", 66.83333333333333),
        ("event('Order Completed').min(property('total'))", 30.5),
        ("event('Order Completed').max(property('category') as string)", "shoes"),
        ("event('Order Completed').first(property('category'))", "shoes"),
        ("event('Order Completed').last(property('category'))", "shoes"),
        ("event('Product Viewed').within(30 days).mode(property('category'), 2)", "shoes"),
        ("event('Product Viewed').mode(property('brand'), 4)", None),
        ("event('Page Viewed').first(context('campaign.source'))", "news"),
        ("event('Product Viewed').unique(property('brand'))", ["Acme", "Zeta"]),
        ("event('Product Viewed').unique(property('brand')).count()", 2),
        ("event('Page Viewed').expires_after(1800 seconds).count()", 2),
        ("event('Email Opened').count()", 0),
        ("event('Email Opened').sum(property('x'))", 0),
        ("event('Email Opened').avg(property('x'))", None),
        ("event('Email Opened').unique(property('x'))", []),
        ("trait('plan')", "pro"),
    ],
)
def test_worked_traits(query: str, expected: Any) -> None:
    assert run(query, SHOPPER, "trait") == expected


def test_a_session_that_expired_counts_nothing() -> None:
    later = NOW + timedelta(hours=2)
    assert (
        run("event('Page Viewed').expires_after(1800 seconds).count()", SHOPPER, "trait", later)
        == 0
    )


def test_mode_ties_go_to_the_alphabetically_first_value() -> None:
    p = ProfileData(events=[ev("V", ago(days=1), i, c=c) for i, c in enumerate("bbaa")])
    assert run("event('V').mode(property('c'), 1)", p, "trait") == "a"


def test_windows_are_inclusive_and_future_events_fall_outside() -> None:
    p = ProfileData(events=[ev("V", ago(days=30), 1), ev("V", NOW + timedelta(hours=1), 2)])
    assert run("event('V').within(30 days).count()", p, "trait") == 1
    assert run("event('V').count()", p, "trait") == 2


def test_accounts_any_and_all() -> None:
    active = ProfileData(events=[ev("Logged In", ago(days=1), 1)])
    idle = ProfileData(events=[ev("Logged In", ago(days=60), 2)])
    account = ProfileData(users=[active, idle])
    assert run("ANY event('Logged In').within(14 days).count() >= 1", account) is True
    assert run("ALL event('Logged In').within(14 days).count() >= 1", account) is False
    assert (
        run("ALL NOT event('Logged In').within(14 days).count() >= 1", ProfileData(users=[idle]))
        is True
    )
    # An account without users satisfies no ALL (not the vacuous truth)
    no_users = ProfileData(traits={"x": 1})
    d = parse("ALL trait('x') = 1", definition_type="ACCOUNTS")
    assert Evaluator(NOW).evaluate(d.root, no_users) is False


def test_event_names_of_calls() -> None:
    assert event_name({"type": "track", "event": "Order Completed"}) == "Order Completed"
    assert event_name({"type": "page", "name": "Home"}) == "Page Viewed"
    assert event_name({"type": "screen"}) == "Screen Viewed"
    assert event_name({"type": "identify"}) is None


# -- OpenCDP's extensions: items() and timestamp() -------------------------------------------------


def order(when: datetime, n: int, products: Any, channel: str = "web", **props: Any) -> EventRecord:
    return ev("Order Completed", when, n, products=products, context={"channel": channel}, **props)


BASKETS = ProfileData(
    events=[
        order(
            ago(days=10),
            1,
            [
                {"sku": "a1", "category": "shoes", "brand": "Acme", "price": 50},
                "not an item",
                {"sku": "a2", "category": "bags", "brand": "Zeta", "price": "20"},
                None,
                [{"sku": "nested"}],
                {"sku": "a3", "category": "shoes", "brand": "Zeta", "price": 30},
            ],
            channel="app",
        ),
        order(ago(days=2), 2, [{"sku": "b1", "category": "hats", "brand": "Acme", "price": 5}]),
        order(ago(days=1), 3, {"sku": "not-a-list", "category": "socks"}),  # an object, no array
        order(ago(hours=5), 4, "a1,a2"),  # text
        ev("Order Completed", ago(hours=4), 5, revenue=10),  # no products at all
        order(ago(hours=3), 6, []),
        order(ago(hours=2), 7, [42, True, "x"]),  # no object among them
    ]
)


def test_items_are_the_object_elements_of_each_events_array() -> None:
    assert run("event('Order Completed').items('products').count()", BASKETS, "trait") == 4
    assert run(
        "event('Order Completed').items('products').unique(property('sku'))", BASKETS, "trait"
    ) == ["a1", "a2", "a3", "b1"]
    assert (
        run("event('Order Completed').items('products').sum(property('price'))", BASKETS, "trait")
        == 105
    )
    # the event stream itself is untouched
    assert run("event('Order Completed').count()", BASKETS, "trait") == 7


def test_a_profile_without_line_items_has_an_empty_stream() -> None:
    none = ProfileData(events=BASKETS.events[2:])
    assert run("event('Order Completed').items('products').count()", none, "trait") == 0
    assert (
        run("event('Order Completed').items('products').first(property('sku'))", none, "trait")
        is None
    )
    assert (
        run("event('Order Completed').items('products').unique(property('sku'))", none, "trait")
        == []
    )


def test_mode_over_items_counts_line_items_not_orders() -> None:
    # shoes: two lines of one order; bags and hats: one line each (orders do not weigh)
    assert (
        run(
            "event('Order Completed').items('products').mode(property('category'), 1)",
            BASKETS,
            "trait",
        )
        == "shoes"
    )
    assert (
        run(
            "event('Order Completed').items('products').mode(property('category'), 3)",
            BASKETS,
            "trait",
        )
        is None
    )
    # Acme 2, Zeta 2: the tie breaks alphabetically
    assert (
        run(
            "event('Order Completed').items('products').mode(property('brand'), 1)",
            BASKETS,
            "trait",
        )
        == "Acme"
    )


def test_where_after_items_reads_the_item_and_context_reads_the_event() -> None:
    assert run(
        "event('Order Completed').items('products').where(property('category') = 'shoes')"
        ".unique(property('brand'))",
        BASKETS,
        "trait",
    ) == ["Acme", "Zeta"]
    assert run(
        "event('Order Completed').items('products').where(context('channel') = 'web')"
        ".unique(property('sku'))",
        BASKETS,
        "trait",
    ) == ["b1"]
    # property() after items() no longer sees the event's own properties
    with_revenue = ProfileData(events=[order(ago(days=1), 1, [{"sku": "s"}], revenue=99)])
    assert (
        run(
            "event('Order Completed').items('products').where(property('revenue') = 99).count()",
            with_revenue,
            "trait",
        )
        == 0
    )
    # a where() before items() filters the orders, by the order's properties
    assert (
        run(
            "event('Order Completed').where(property('revenue') = 99).items('products').count()",
            with_revenue,
            "trait",
        )
        == 1
    )


def test_windows_before_items_keep_the_orders_of_the_window() -> None:
    assert run(
        "event('Order Completed').within(5 days).items('products').unique(property('sku'))",
        BASKETS,
        "trait",
    ) == ["b1"]


def test_first_and_last_item_follow_the_array_order_within_an_event() -> None:
    same_time = ago(days=1)
    profile = ProfileData(
        events=[
            order(same_time, 1, [{"sku": "z-first"}, {"sku": "m"}, {"sku": "a-last"}]),
            order(ago(days=3), 2, [{"sku": "older"}]),
        ]
    )
    items = "event('Order Completed').items('products')"
    assert run(f"{items}.first(property('sku'))", profile, "trait") == "older"
    assert run(f"{items}.last(property('sku'))", profile, "trait") == "a-last"
    only_newest = ProfileData(events=profile.events[:1])
    assert run(f"{items}.first(property('sku'))", only_newest, "trait") == "z-first"


def test_timestamp_first_and_last_are_the_event_times_as_text() -> None:
    profile = ProfileData(
        events=[
            ev("Order Completed", datetime(2024, 5, 20, 8, 30, 15, 123456, tzinfo=UTC), 1),
            ev("Order Completed", datetime(2024, 3, 1, tzinfo=UTC), 2),
            ev("Order Completed", datetime(2024, 5, 31, 23, 0, tzinfo=UTC), 3),
            ev("Product Viewed", datetime(2024, 6, 1, tzinfo=UTC), 4),
        ]
    )
    first = run("event('Order Completed').first(timestamp())", profile, "trait")
    last = run("event('Order Completed').last(timestamp())", profile, "trait")
    assert (first, last) == ("2024-03-01T00:00:00.000Z", "2024-05-31T23:00:00.000Z")
    # milliseconds, truncated (as the events API shows times)
    assert (
        run("event('Order Completed').within(20 days).first(timestamp())", profile, "trait")
        == "2024-05-20T08:30:15.123Z"
    )
    assert run("event('Signed In').last(timestamp())", profile, "trait") is None
    # the time of a line item is its order's
    orders = ProfileData(events=[order(datetime(2024, 4, 2, 9, tzinfo=UTC), 1, [{"sku": "x"}])])
    assert (
        run("event('Order Completed').items('products').last(timestamp())", orders, "trait")
        == "2024-04-02T09:00:00.000Z"
    )


def test_per_profile_functions_evaluate_over_one_profile() -> None:
    profile = ProfileData(
        traits={"last_order_at": "2024-05-22T18:00:00.000Z", "r": 5, "f": "1"},
        events=[ev("Signed In", ago(days=d), d) for d in (1, 3, 9, 27, 29)],
    )
    assert run("days_since(trait('last_order_at'))", profile, "trait") == 9
    assert run("divide(event('Signed In').within(28 days).count(), 4)", profile, "trait") == 1
    assert run("rfm_segment(trait('r'), trait('f'))", profile, "trait") == "New customers"
    assert run("days_since(trait('missing'))", profile, "trait") is None
    with pytest.raises(ValueError, match="in batch"):
        run("quintile(trait('r'))", profile, "trait")
