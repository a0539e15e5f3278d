"""Per destination, on both backends, to a real receiver on loopback: the /metrics series of
each destination."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opencdp.activate.signing import new_secret
from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import make_settings
from tests.contract.test_activation import AUTH, ORDERS, START, order, put, send, webhook
from tests.support.receiver import Answer, Receiver


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def rt(tmp_path: Path, database_url: str | None, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(tmp_path, database_url), clock)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, start_worker=False)) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def destination(receiver: Receiver, path: str, **settings: Any) -> dict[str, Any]:
    """A webhook destination on ``path`` of the receiver, subscribed to orders."""
    hook = {**webhook(receiver, new_secret(), **settings), "url": f"{receiver.base}{path}"}
    return {"type": "webhook", "settings": hook, "subscriptions": [ORDERS]}


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_per_destination_after_deliveries_retries_and_dead_letters(
    client: TestClient, rt: Runtime, receiver: Receiver, clock: FrozenClock
) -> None:
    # Given a destination whose receiver takes ann's orders, fails bob's, refuses cyd's
    put(client, "erp", destination(receiver, "/hook"))
    quiet = destination(receiver, "/quiet")
    quiet["subscriptions"] = [{"name": "none", "condition": 'event = "Never Sent"'}]
    put(client, "quiet", quiet)
    status = {"ann": 200, "bob": 503, "cyd": 422}
    receiver.answer = lambda r: Answer(status[r.json()["customer"]])
    send(client, rt, order("ann", 1), order("ann", 2), order("bob", 1), order("bob", 2))
    send(client, rt, order("cyd", 1))
    # When they are sent 2 s after they were enqueued, and scraped 90 s later
    clock.advance(2)
    rt.dispatcher.run_until_idle()
    clock.advance(90)
    samples = scrape(client)
    erp = {"workspace": "default", "destination": "erp"}
    quiet_labels = {"workspace": "default", "destination": "quiet"}
    # Then the outcomes are counted
    for outcome, n in (("delivered", 2), ("retry", 1), ("dead", 1)):
        assert value(samples, "opencdp_deliveries_total", **erp, outcome=outcome) == n
    # and the outbox is read: bob-1 retrying, bob-2 waiting behind it, cyd-1 dead
    assert value(samples, "opencdp_deliveries_waiting", **erp, status="pending") == 1
    assert value(samples, "opencdp_deliveries_waiting", **erp, status="retrying") == 1
    assert value(samples, "opencdp_deliveries_dead", **erp) == 1
    assert value(samples, "opencdp_delivery_oldest_waiting_seconds", **erp) == 92
    # a destination with nothing in the outbox has zeros, and no outcomes
    assert value(samples, "opencdp_deliveries_waiting", **quiet_labels, status="pending") == 0
    assert value(samples, "opencdp_deliveries_dead", **quiet_labels) == 0
    assert value(samples, "opencdp_delivery_oldest_waiting_seconds", **quiet_labels) == 0
    assert value(samples, "opencdp_deliveries_total", **quiet_labels, outcome="delivered") is None
    # the latency from enqueueing to acceptance: two deliveries after 2 s
    assert value(samples, "opencdp_delivery_latency_seconds_count", **erp) == 2
    assert value(samples, "opencdp_delivery_latency_seconds_sum", **erp) == 4
    assert value(samples, "opencdp_delivery_latency_seconds_bucket", **erp, le="1.0") == 0
    assert value(samples, "opencdp_delivery_latency_seconds_bucket", **erp, le="2.5") == 2
    # the metrics that were there before keep their names
    assert value(samples, "opencdp_delivery_attempts_total", destination="erp", verdict="retry")
    assert value(samples, "opencdp_deliveries_enqueued_total") == 5
    # When bob's receiver recovers
    status["bob"] = 200
    rt.dispatcher.run_until_idle()
    samples = scrape(client)
    for outcome, n in (("delivered", 4), ("retry", 1), ("dead", 1)):
        assert value(samples, "opencdp_deliveries_total", **erp, outcome=outcome) == n
    assert value(samples, "opencdp_deliveries_waiting", **erp, status="pending") == 0
    assert value(samples, "opencdp_deliveries_waiting", **erp, status="retrying") == 0
    assert value(samples, "opencdp_delivery_oldest_waiting_seconds", **erp) == 0
    assert value(samples, "opencdp_delivery_latency_seconds_count", **erp) == 4
    assert client.get("/api/destinations/erp", headers=AUTH).json()["deliveries"]["dead"] == 1


def test_metrics_still_answer_when_the_outbox_cannot_be_read(
    client: TestClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away() -> None:
        raise RuntimeError("the database is away")

    monkeypatch.setattr(rt.outbox, "backlog", away)
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "opencdp_deliveries_enqueued_total" in answer.text
    assert "opencdp_deliveries_waiting" not in answer.text
