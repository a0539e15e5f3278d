"""Per destination, on both backends, to a real receiver on loopback: a rate limit that holds
back only its own destination (by the injected clock), parallel sends that AIMD narrows after
429s, and the /metrics series of each destination."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opencdp.activate.signing import new_secret
from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from tests.contract.test_activation import (
    AUTH,
    ORDERS,
    deliveries,
    order,
    put,
    send,
    webhook,
)
from tests.support.receiver import Answer, Received, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def destination(receiver: Receiver, path: str, **settings: Any) -> dict[str, Any]:
    """A webhook destination on ``path`` of the receiver, subscribed to orders."""
    hook = {**webhook(receiver, new_secret(), **settings), "url": f"{receiver.base}{path}"}
    return {"type": "webhook", "settings": hook, "subscriptions": [ORDERS]}


def sent(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    with receiver._lock:
        return [r.json() for r in receiver.requests if r.path == path]


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- rate limit -----------------------------------------------------------------------------------


def test_a_rate_limited_destination_sends_at_its_rate_while_another_drains(
    client: TestClient, rt: Runtime, receiver: Receiver, clock: FrozenClock
) -> None:
    # Given two destinations of the same orders, one limited to 5 messages a second
    put(client, "slow", destination(receiver, "/slow", rate_limit=5))
    put(client, "fast", destination(receiver, "/fast"))
    users = ("ann", "bob", "cyd", "dan")
    send(client, rt, *(order(u, n) for u in users for n in range(1, 9)))  # 32 orders
    # When one round goes: the limited one sends one second's worth, the other everything
    assert rt.dispatcher.run_once() == 32 + 5
    assert (len(sent(receiver, "/fast")), len(sent(receiver, "/slow"))) == (32, 5)
    assert {d["status"] for d in deliveries(client, destination="fast")} == {"delivered"}
    held = deliveries(client, destination="slow", status="pending")
    assert len(held) == 27 and {d["attempts"] for d in held} == {0}  # not attempted
    assert rt.dispatcher.run_until_idle() == 0  # the clock has not moved: nothing more
    # Then, as the injected clock moves, at most rate * elapsed + one second's worth
    elapsed, seen = 0.0, []
    for step in (0.5, 0.5, 1.0, 0.25, 0.75, 2.0, 1.0, 1.0, 1.0):
        clock.advance(step)
        elapsed += step
        rt.dispatcher.run_until_idle()
        seen.append(len(sent(receiver, "/slow")))
        assert seen[-1] <= 5 * elapsed + 5
    # (a round the limit cut short waits for a full bucket; a pause refills one bucket only)
    assert seen == [5, 10, 15, 15, 20, 25, 30, 32, 32]
    slow = deliveries(client, destination="slow")
    assert {d["status"] for d in slow} == {"delivered"} and {d["attempts"] for d in slow} == {1}
    for user in users:  # in order per profile
        got = [b["order"] for b in sent(receiver, "/slow") if b["customer"] == user]
        assert got == [f"{user}-{n}" for n in range(1, 9)]


def test_the_running_dispatcher_leaves_a_destination_out_until_its_bucket_can_pay(
    client: TestClient, rt: Runtime, receiver: Receiver, clock: FrozenClock
) -> None:
    put(client, "slow", destination(receiver, "/slow", rate_limit=2))
    put(client, "fast", destination(receiver, "/fast"))
    send(client, rt, *(order(u, n) for u in ("ann", "bob") for n in range(1, 6)))
    claimed: list[set[str]] = []
    claim = rt.outbox.claim

    def watched(*args: Any, **kwargs: Any) -> Any:
        rows = claim(*args, **kwargs)
        claimed.append({r.destination_id for r in rows})
        return rows

    rt.outbox.claim = watched  # type: ignore[method-assign]
    rt.dispatcher.start()
    try:
        wait_for(lambda: len(sent(receiver, "/fast")) == 10 and len(sent(receiver, "/slow")) == 2)
        before = len(claimed)
        time.sleep(0.5)  # several poll intervals by the real clock; the injected one is frozen
        assert len(sent(receiver, "/slow")) == 2
        assert len(claimed) > before and not any("slow" in c for c in claimed[before:])
        clock.advance(1.0)
        wait_for(lambda: len(sent(receiver, "/slow")) == 4)
    finally:
        rt.dispatcher.stop()
    assert len(sent(receiver, "/slow")) == 4


# -- concurrency and AIMD -------------------------------------------------------------------------


class InFlight:
    """Answers that count the requests in flight: each first waits (up to 2 s) until
    ``gather`` requests are in flight at once, then any takes ``hold`` seconds."""

    def __init__(self, status: int = 200, gather: int = 1, hold: float = 0.02) -> None:
        self.status, self.gather, self.hold = status, gather, hold
        self.now = self.peak = 0
        self.gathered = False
        self._lock = threading.Lock()

    def __call__(self, _r: Received) -> Answer:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.gathered |= self.now >= self.gather
        deadline = time.monotonic() + 2
        while not self.gathered and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.hold)
        with self._lock:
            self.now -= 1
        return Answer(self.status)


def test_parallel_sends_keep_each_profile_in_order_and_slow_down_after_429s(
    client: TestClient, rt: Runtime, receiver: Receiver, clock: FrozenClock
) -> None:
    put(client, "erp", destination(receiver, "/hook", concurrency=4))
    users = [f"u{i:02}" for i in range(60)]
    # Given a receiver that answers 429 while four sends are in flight at once
    receiver.answer = first = InFlight(429, gather=4)
    send(client, rt, *(order(u, 1) for u in users))
    rt.dispatcher.run_until_idle()
    assert first.peak == 4  # four lanes (60 profiles fill every lane)
    assert {d["status"] for d in deliveries(client, destination="erp")} == {"retrying"}
    # When the retries go: half as many in parallel
    receiver.answer = second = InFlight(200, gather=2)
    clock.advance(5)
    rt.dispatcher.run_until_idle()
    assert second.peak == 2
    # and after that clean round one more
    receiver.answer = third = InFlight(200, gather=3)
    send(client, rt, *(order(u, 2) for u in users), *(order("ann", n) for n in range(1, 6)))
    rt.dispatcher.run_until_idle()
    assert third.peak == 3
    assert {d["status"] for d in deliveries(client, destination="erp")} == {"delivered"}
    got = [r.json()["order"] for r in receiver.requests if r.json()["customer"] == "ann"]
    assert got == [f"ann-{n}" for n in range(1, 6)]  # one profile: one lane, in order


def test_one_send_at_a_time_by_default(client: TestClient, rt: Runtime, receiver: Receiver) -> None:
    put(client, "erp", destination(receiver, "/hook"))
    receiver.answer = answers = InFlight(200, gather=2, hold=0.01)
    send(client, rt, order("ann", 1), order("bob", 1))
    rt.dispatcher.run_until_idle()
    assert answers.peak == 1 and len(receiver.requests) == 2


# -- metrics --------------------------------------------------------------------------------------


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
