"""The retail preset on a small shop (both backends): every trait's value checked by hand —
line items, channels, event times, the per-profile functions and the RFM scores over the
population — and how each kind stays current: per-profile values in real time, population
values (quintiles) and what reads them on the schedule, a CLV without a model as a failure
that says what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.timeutil import isoformat
from opencdp.web.app import create_app
from tests.conftest import TOKEN, basic, make_settings
from tests.contract.test_storage_contract import source

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
WS = "default"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def line(category: str, brand: str) -> dict[str, Any]:
    return {"product_id": f"{category}-{brand}", "category": category, "brand": brand}


def order(
    user: str,
    n: int,
    when: datetime,
    revenue: float,
    channel: str | None = None,
    products: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {"revenue": revenue}
    if products is not None:
        properties["products"] = products
    message: dict[str, Any] = {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": f"{user}-o{n}",
        "timestamp": when.isoformat(),
        "properties": properties,
    }
    if channel is not None:
        message["context"] = {"channel": channel}
    return message


def signed_in(user: str, n: int, when: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Signed In",
        "messageId": f"{user}-s{n}",
        "timestamp": when.isoformat(),
    }


SHOP = [
    # Ann: three orders, web and app, mostly Acme shoes; eight log-ins in the last four weeks
    order("ann", 1, days_ago(100), 100, "web", [line("shoes", "Acme"), line("bags", "Acme")]),
    order("ann", 2, days_ago(40), 50.5, "app", [line("shoes", "Zeta")]),
    order("ann", 3, days_ago(3), 299.5, "web", [line("shoes", "Acme"), line("hats", "Zeta")]),
    *(signed_in("ann", i, days_ago(1 + 3 * i)) for i in range(8)),
    signed_in("ann", 9, days_ago(30)),  # outside the four weeks
    # Bob: one order in the store
    order("bob", 1, days_ago(10), 20, "store", [line("books", "Penguin")]),
    # Cat: two orders, the older one two Lego lines; a log-in
    order("cat", 1, days_ago(200), 80, "web", [line("toys", "Lego"), line("toys", "Lego")]),
    order("cat", 2, days_ago(60), 120, "web", [line("books", "Penguin")]),
    signed_in("cat", 1, days_ago(2)),
    # Dan: four orders of 150 in the app, the last yesterday
    *(
        order("dan", i, days_ago(d), 150, "app", [line("shoes", "Acme")])
        for i, d in enumerate((300, 15, 5, 1))
    ),
    # Eve: one old order, no line items, no channel
    order("eve", 1, days_ago(400), 30),
    # Fay never ordered; she signs in
    signed_in("fay", 1, days_ago(1)),
    signed_in("fay", 2, days_ago(20)),
]


@pytest.fixture
def shop(tmp_path: Path, database_url: str | None) -> Iterator[tuple[Runtime, FrozenClock]]:
    clock = FrozenClock(NOW)
    rt = Runtime(make_settings(tmp_path, database_url), clock)
    rt.collector.ingest_messages(source(rt), SHOP)
    rt.processor.run_until_idle()
    yield rt, clock
    rt.close()


def by_user(rt: Runtime, key: str) -> dict[str, Any]:
    """What definition ``key`` holds, by user id (profiles without a value left out)."""
    values = compute.store(rt).values_by_key(WS, key)
    users = {}
    for user in ("ann", "bob", "cat", "dan", "eve", "fay"):
        pid = rt.profiles.find(WS, "users", "user_id", user)
        if pid in values:
            users[user] = values[pid]
    return users


def members(rt: Runtime, key: str) -> set[str]:
    return {user for user, v in by_user(rt, key).items() if v is True}


CLV = {"predicted_clv_12m", "p_alive", "predicted_orders_12m"}


def at(when: datetime) -> str:
    return isoformat(when)


def test_the_retail_preset_by_hand_then_real_time_then_the_schedule(
    shop: tuple[Runtime, FrozenClock],
) -> None:
    rt, clock = shop
    # Given the retail preset applied to the shop
    traits = compute.apply_preset(rt, WS, "trait", "retail")
    audiences = compute.apply_preset(rt, WS, "audience", "retail")
    assert {d["status"] for d in traits + audiences if d["key"] not in CLV} == {"ready"}
    # the CLV traits wait for a fitted model, and say so
    for d in traits:
        if d["key"] in CLV:
            assert d["status"] == "failed" and "opencdp clv fit" in d["error"], d

    # Then every value is what the orders say
    assert by_user(rt, "order_count") == {
        "ann": 3,
        "bob": 1,
        "cat": 2,
        "dan": 4,
        "eve": 1,
        "fay": 0,
    }
    assert by_user(rt, "lifetime_value") == {
        "ann": 450,
        "bob": 20,
        "cat": 200,
        "dan": 600,
        "eve": 30,
        "fay": 0,
    }
    assert by_user(rt, "average_order_value") == {
        "ann": 150,
        "bob": 20,
        "cat": 100,
        "dan": 150,
        "eve": 30,
    }
    assert by_user(rt, "first_order_at") == {
        "ann": at(days_ago(100)),
        "bob": at(days_ago(10)),
        "cat": at(days_ago(200)),
        "dan": at(days_ago(300)),
        "eve": at(days_ago(400)),
    }
    assert by_user(rt, "last_order_at") == {
        "ann": at(days_ago(3)),
        "bob": at(days_ago(10)),
        "cat": at(days_ago(60)),
        "dan": at(days_ago(1)),
        "eve": at(days_ago(400)),
    }
    assert by_user(rt, "first_order_at")["ann"] == "2024-02-22T12:00:00.000Z"
    assert by_user(rt, "days_since_last_order") == {
        "ann": 3,
        "bob": 10,
        "cat": 60,
        "dan": 1,
        "eve": 400,
    }
    # line items: shoes 3 lines of ann's 5, Acme 3; Cat's two Lego lines outweigh one book
    assert by_user(rt, "favorite_category") == {
        "ann": "shoes",
        "bob": "books",
        "cat": "toys",
        "dan": "shoes",
    }
    assert by_user(rt, "favorite_brand") == {
        "ann": "Acme",
        "bob": "Penguin",
        "cat": "Lego",
        "dan": "Acme",
    }
    categories = by_user(rt, "categories_purchased")
    assert {u: c for u, c in categories.items() if c} == {
        "ann": ["bags", "hats", "shoes"],
        "bob": ["books"],
        "cat": ["books", "toys"],
        "dan": ["shoes"],
    }
    channels = by_user(rt, "channels")
    assert {u: c for u, c in channels.items() if c} == {
        "ann": ["app", "web"],
        "bob": ["store"],
        "cat": ["web"],
        "dan": ["app"],
    }
    assert by_user(rt, "logins_per_week") == {
        "ann": 2,
        "bob": 0,
        "cat": 0.25,
        "dan": 0,
        "eve": 0,
        "fay": 0.5,
    }
    # RFM over the five customers (Fay has no order: not ranked)
    assert by_user(rt, "rfm_recency") == {"dan": 5, "ann": 4, "bob": 3, "cat": 2, "eve": 1}
    # order counts 1, 1, 2, 3, 4: the two single orders share the bottom score
    assert by_user(rt, "rfm_frequency") == {"dan": 5, "ann": 4, "cat": 3, "bob": 1, "eve": 1}
    assert by_user(rt, "rfm_monetary") == {"dan": 5, "ann": 4, "cat": 3, "eve": 2, "bob": 1}
    assert by_user(rt, "rfm_segment") == {
        "dan": "Champions",  # (5, 5)
        "ann": "Champions",  # (4, 4)
        "bob": "Need attention",  # (3, 1)
        "cat": "At risk",  # (2, 3)
        "eve": "Lost",  # (1, 1)
    }
    assert members(rt, "champions") == {"ann", "dan"}
    assert members(rt, "at_risk") == {"cat"}
    assert members(rt, "lapsed_customers") == {"eve"}
    assert members(rt, "recent_buyers") == {"ann", "bob", "dan"}
    assert members(rt, "high_value") == {"dan"}

    # When Bob orders again, a minute later, in the app (real time: ingest and the worker)
    clock.advance(60)
    new_order = order("bob", 2, clock.now(), 500, "app", [line("games", "Nintendo")])
    rt.collector.ingest_messages(source(rt), [new_order])
    rt.processor.run_until_idle()

    # Then his per-profile values move at once
    bob = {key: by_user(rt, key).get("bob") for key in (t["key"] for t in traits)}
    assert bob["order_count"] == 2
    assert bob["lifetime_value"] == 520
    assert bob["average_order_value"] == 260
    assert bob["last_order_at"] == at(NOW + timedelta(seconds=60))
    assert bob["first_order_at"] == at(days_ago(10))
    assert bob["days_since_last_order"] == 0
    assert bob["categories_purchased"] == ["books", "games"]
    assert bob["channels"] == ["app", "store"]
    assert bob["favorite_category"] == "books"  # one line each: the alphabetical first
    assert bob["favorite_brand"] == "Nintendo"
    assert "bob" in members(rt, "high_value")
    # but the ranks over the population wait for the schedule, and so does what reads them
    assert (bob["rfm_recency"], bob["rfm_frequency"], bob["rfm_monetary"]) == (3, 1, 1)
    assert bob["rfm_segment"] == "Need attention"
    assert by_user(rt, "rfm_recency")["dan"] == 5
    # and a batch computation agrees with real time on what real time keeps (batch = real time)
    for key in ("order_count", "days_since_last_order", "logins_per_week", "rfm_segment"):
        assert compute.compute(rt, WS, key).changed == 0, key
    with TestClient(create_app(rt, start_worker=False)) as client:
        answer = client.post("/api/audiences/high_value/recompute", headers=basic(TOKEN))
        assert answer.json() == {"size": 2, "entered": 0, "exited": 0}

    # When the refresh interval passes (an hour) and the scheduled work runs
    clock.advance(2 * 3600)
    refreshed_at = rt.now_us()
    done = rt.worker.run_scheduled(force=True)

    # Then the population values are recomputed, then the segment, then the audiences reading it
    recomputed = {
        row.key for row in compute.store(rt).of_workspace(WS) if row.computed_us == refreshed_at
    }
    assert recomputed == {
        # time alone changes them
        "days_since_last_order",
        "logins_per_week",
        "lapsed_customers",
        "recent_buyers",
        # the catalog changes without events (product('brand'), product('category'))
        "favorite_brand",
        "favorite_category",
        # over the population
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        # (the CLV traits are retried, and still wait for a model)
        *CLV,
        # and what reads those, after them
        "rfm_segment",
        "champions",
        "at_risk",
        "churn_risk",
    }
    assert done == len(recomputed)
    assert by_user(rt, "rfm_recency") == {"bob": 5, "dan": 4, "ann": 3, "cat": 2, "eve": 1}
    # counts 1, 2, 2, 3, 4
    assert by_user(rt, "rfm_frequency") == {"dan": 5, "ann": 4, "cat": 2, "bob": 2, "eve": 1}
    assert by_user(rt, "rfm_monetary") == {"dan": 5, "bob": 4, "ann": 3, "cat": 2, "eve": 1}
    assert by_user(rt, "rfm_segment") == {
        "bob": "Promising",  # (5, 2)
        "dan": "Champions",  # (4, 5)
        "ann": "Loyal",  # (3, 4)
        "cat": "Hibernating",  # (2, 2)
        "eve": "Lost",  # (1, 1)
    }
    assert members(rt, "champions") == {"dan"}
    assert members(rt, "at_risk") == set()
    # each exit is on the timeline
    ann = rt.profiles.find(WS, "users", "user_id", "ann")
    exits = [
        e.payload["properties"]["audience_key"]
        for e in rt.profiles.events(WS, ann, limit=50)
        if e.event == "Audience Exited"
    ]
    assert exits == ["champions"]
    # and nothing is due again before another interval
    assert rt.worker.run_scheduled(force=True) == 0


def test_a_clv_without_a_fitted_model_fails_and_says_what_is_missing(
    shop: tuple[Runtime, FrozenClock],
) -> None:
    rt, clock = shop
    compute.apply_preset(rt, WS, "trait", "retail")
    body = {"definition": {"query": "clv('p_alive')"}}
    described = compute.put_definition(rt, WS, "trait", "p_alive", body)
    assert described["status"] == "failed"
    error = described["error"]
    assert "model" in error and "opencdp clv fit" in error, error
    assert compute.store(rt).values_by_key(WS, "p_alive") == {}
    # Real time does not touch it (a population function), nor do the others fail with it
    rt.collector.ingest_messages(source(rt), [order("eve", 2, NOW, 10)])
    rt.processor.run_until_idle()
    assert compute.store(rt).get(WS, "p_alive").status == "failed"
    assert by_user(rt, "order_count")["eve"] == 2
    # The schedule tries again, and it fails again the same way
    clock.advance(2 * 3600)
    rt.worker.run_scheduled(force=True)
    row = compute.store(rt).get(WS, "p_alive")
    assert (row.status, row.error) == ("failed", error)
    assert compute.store(rt).get(WS, "rfm_recency").status == "ready"


def test_an_unknown_preset_names_the_ones_there_are(shop: tuple[Runtime, FrozenClock]) -> None:
    rt, _clock = shop
    with pytest.raises(RequestError) as caught:
        compute.apply_preset(rt, WS, "trait", "nope")
    assert caught.value.code == "unknown_preset"
    assert "'nope'" in str(caught.value) and "retail" in str(caught.value)
    assert compute.store(rt).of_workspace(WS) == []


def test_a_function_of_constants_gives_everyone_its_value(
    shop: tuple[Runtime, FrozenClock],
) -> None:
    rt, _clock = shop
    everyone = {"ann", "bob", "cat", "dan", "eve", "fay"}
    expected = {
        "divide(10, 4)": 2.5,
        "days_since('2024-05-01T12:00:00Z')": 31,
        "rfm_segment(5, 1)": "New customers",
        "quintile(5)": 1,
    }
    for i, query in enumerate(expected):
        described = compute.put_definition(
            rt, WS, "trait", f"c{i}", {"definition": {"query": query}}
        )
        assert described["status"] == "ready", described
        assert by_user(rt, f"c{i}") == dict.fromkeys(everyone, expected[query]), query
    # A new profile gets the per-profile ones in real time (the rank waits for the schedule)
    rt.collector.ingest_messages(source(rt), [signed_in("gil", 1, NOW)])
    rt.processor.run_until_idle()
    gil = rt.profiles.find(WS, "users", "user_id", "gil")
    values = [compute.store(rt).values_by_key(WS, f"c{i}").get(gil) for i in range(4)]
    assert values == [2.5, 31, "New customers", None]
