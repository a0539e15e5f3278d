"""Invariant 6, batch = real time: definitions kept up to date by the worker, micro-batch by
micro-batch (events out of order, sent twice, profiles merged mid-stream), hold exactly what a
batch computation over all history gives — on both backends, for random event streams and
random definitions of the grammar."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.services import compute
from tests.conftest import make_settings
from tests.contract.test_definition_sql import (
    NOW,
    catalogs,
    definitions,
    product_definitions,
    product_timelines,
    store_catalog,
    timelines,
)

_workspaces = itertools.count()


@pytest.fixture
def frozen_runtime(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path, database_url), FrozenClock(NOW))
    yield rt
    rt.close()


@st.composite
def streams(draw: Any) -> list[list[dict[str, Any]]]:
    """Micro-batches of a stream: the people's messages shuffled, some sent twice, and
    anonymous visits that an identify later merges into a known person."""
    messages = [m for person in draw(timelines()) for m in person]
    if draw(st.booleans()):  # events and line items about products of the catalog
        messages += [m for person in draw(product_timelines()) for m in person]
    for i in range(draw(st.integers(0, 3))):
        anon = f"anon-{i}"
        messages.append(
            {
                "type": "track",
                "event": "Order Completed",
                "anonymousId": anon,
                "messageId": f"anon-{i}-o",
                "timestamp": NOW.isoformat(),
                "properties": {"total": draw(st.sampled_from([1, "3", 2.5])), "category": "b"},
            }
        )
        messages.append(
            {
                "type": "identify",
                "anonymousId": anon,
                "userId": f"u{draw(st.integers(0, 2))}",
                "messageId": f"anon-{i}-id",
                "timestamp": NOW.isoformat(),
            }
        )
    messages = draw(st.permutations(messages))
    if messages:
        messages += draw(st.lists(st.sampled_from(messages), max_size=3))  # duplicates
    cuts = sorted(draw(st.lists(st.integers(0, len(messages)), max_size=3)))
    bounds = [0, *cuts, len(messages)]
    return [messages[a:b] for a, b in itertools.pairwise(bounds) if b > a]


#: Per-profile functions as whole computed traits (OpenCDP extensions): over event streams,
#: over a trait the stream changes (``stamp``, defined before them) and over an identify's trait.
FUNCTIONS = [
    "days_since(trait('stamp'))",
    "days_since(event('Product Viewed').first(timestamp()))",
    "days_since(trait('plan'))",
    "divide(event('Order Completed').within(30 days).count(), 4)",
    "divide(event('Order Completed').items('products').sum(property('total')), 2.5)",
    "divide(trait('plan'), -2)",
    "rfm_segment(event('Order Completed').count(), event('Page Viewed').count())",
]
STAMPS = [
    "event('Order Completed').last(timestamp())",
    "event('Order Completed').where(property('category') = 'b').first(timestamp())",
    "event('Order Completed').items('products').last(timestamp())",
]


@st.composite
def with_functions(draw: Any) -> list[tuple[str, str]]:
    """Random definitions, then maybe a trait of event times and functions of the language."""
    defined: list[tuple[str, str]] = draw(st.lists(definitions(), min_size=1, max_size=3))
    defined += draw(st.lists(product_definitions(), max_size=2))  # reading the catalog
    functions = draw(st.lists(st.sampled_from(FUNCTIONS), max_size=2, unique=True))
    if any("trait('stamp')" in f for f in functions):
        defined.append((draw(st.sampled_from(STAMPS)), "stamp"))
    return defined + [(f, "trait") for f in functions]


#: Tests of a definition's value in a definition that reads it (``trait('d0') …``).
ON_A_DEFINITION = [" >= 1", " = 0", " != 'b'", ".exists()", ".absent()", " = true"]


def dependents(data: st.DataObject, keys: list[str]) -> list[tuple[str, str]]:
    """Audiences on the values of earlier definitions (chains too): real time evaluates them
    after what they read, for the profiles whose read values changed."""
    out: list[tuple[str, str]] = []
    for _ in range(data.draw(st.integers(1, 2))):
        read = data.draw(st.sampled_from(keys + [f"d{len(keys) + i}" for i in range(len(out))]))
        query = f"trait('{read}'){data.draw(st.sampled_from(ON_A_DEFINITION))}"
        if data.draw(st.booleans()):
            other = data.draw(
                st.sampled_from(["event('Product Viewed').count() >= 1", "trait('plan') = 'x'"])
            )
            query += data.draw(st.sampled_from([" AND ", " OR "])) + other
        if data.draw(st.booleans()):
            query = f"NOT ({query})"
        out.append((query, "audience"))
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=streams(), defined=with_functions(), catalog=catalogs(), data=st.data())
def test_real_time_equals_batch(
    frozen_runtime: Runtime,
    batches: list[list[dict[str, Any]]],
    defined: list[tuple[str, str]],
    catalog: dict[str, dict[str, Any]],
    data: st.DataObject,
) -> None:
    rt = frozen_runtime
    ws = f"w{next(_workspaces)}"
    rt.admin.ensure_workspace(ws, ws, rt.now_us())
    store_catalog(rt, ws, catalog)  # what product() reads (and a decoy it must not)
    source, _key = rt.admin.add_source(ws, "s", rt.now_us())
    # A first person makes the trait 'plan' known, so definitions may read it
    seed = {"type": "identify", "userId": "seed", "messageId": "seed", "traits": {"plan": "x"}}
    rt.collector.ingest_messages(source, [seed])
    rt.processor.run_until_idle()
    named = ["stamp" if kind == "stamp" else f"d{i}" for i, (_q, kind) in enumerate(defined)]
    defined = defined + dependents(data, named)
    keys = []
    for i, (query, kind) in enumerate(defined):
        key, kind = ("stamp", "trait") if kind == "stamp" else (f"d{i}", kind)
        body = {"definition": {"type": "USERS", "query": query}}
        described = compute.put_definition(rt, ws, kind, key, body)  # type: ignore[arg-type]
        # A known limit, not a disagreement between batch and real time: SQLite's parser
        # refuses the SQL of the most deeply nested generated definitions (its parser stack
        # holds 100 levels); the definition is marked failed with that error, in both modes.
        assume("parser stack overflow" not in str(described.get("error")))
        assert described["status"] == "ready", described
        keys.append(key)
    for batch in batches:
        rt.collector.ingest_messages(source, batch)
        rt.processor.run_until_idle()
    incremental = {key: compute.store(rt).values_by_key(ws, key) for key in keys}
    for key in keys:
        done = rt.compute.compute(ws, key)
        assert (done.changed, done.entered, done.exited) == (0, 0, 0), (key, defined)
        assert compute.store(rt).values_by_key(ws, key) == incremental[key]


def test_a_new_profile_skips_only_what_nothing_touched(frozen_runtime: Runtime) -> None:
    """Real time evaluates a definition only for the profiles whose events, traits or read
    values the batch changed; a new profile that nothing a definition reads touched gets its
    value over an empty timeline. Both must agree with batch, dependents included."""
    rt = frozen_runtime
    ws = f"w{next(_workspaces)}"
    rt.admin.ensure_workspace(ws, ws, rt.now_us())
    source, _key = rt.admin.add_source(ws, "s", rt.now_us())
    seed = {"type": "identify", "userId": "seed", "messageId": "seed", "traits": {"plan": "x"}}
    rt.collector.ingest_messages(source, [seed])
    rt.processor.run_until_idle()
    defined = {
        "orders": ("trait", "event('Order Completed').count()"),
        "buyer": ("audience", "trait('orders') >= 1"),
        "no_orders": ("audience", "event('Order Completed').count() = 0"),
        "browsing_non_buyer": ("audience", "NOT (trait('buyer') = true) AND trait('plan') = 'x'"),
    }
    for key, (kind, query) in defined.items():
        body = {"definition": {"type": "USERS", "query": query}}
        assert compute.put_definition(rt, ws, kind, key, body)["status"] == "ready"  # type: ignore[arg-type]
    now = rt.clock.now().isoformat()

    def send(*messages: dict[str, Any]) -> None:
        rt.collector.ingest_messages(source, list(messages))
        rt.processor.run_until_idle()

    # Given a new buyer, a new browser with a plan, and an existing person who buys later
    send(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "a",
            "messageId": "1",
            "timestamp": now,
        },
        {"type": "page", "name": "Home", "userId": "b", "messageId": "2", "timestamp": now},
        {
            "type": "identify",
            "userId": "b",
            "messageId": "3",
            "traits": {"plan": "x"},
            "timestamp": now,
        },
        {"type": "page", "name": "Home", "userId": "c", "messageId": "4", "timestamp": now},
    )
    send(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "c",
            "messageId": "5",
            "timestamp": now,
        }
    )
    store = compute.store(rt)
    incremental = {key: store.values_by_key(ws, key) for key in defined}
    # Then a batch recompute changes nothing
    for key in defined:
        done = rt.compute.compute(ws, key)
        assert (done.changed, done.entered, done.exited) == (0, 0, 0), key
        assert store.values_by_key(ws, key) == incremental[key]
    assert len(incremental["buyer"]) == 2 and len(incremental["no_orders"]) == 2
    assert len(incremental["browsing_non_buyer"]) == 2  # the seed and b
