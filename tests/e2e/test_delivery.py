"""End to end: a real server (each backend), the unmodified Segment SDK, and a webhook
receiver on loopback that gets each subscribed event signed per Standard Webhooks, counted in
the per-destination metrics; a dispatcher killed with SIGKILL mid-send loses nothing."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from opencdp.activate.signing import new_secret
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.e2e.test_audience_membership import wait_for
from tests.e2e.test_sdks import segment_client
from tests.support.receiver import Answer, Receiver
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


def destination(server: LiveServer, receiver: Receiver, secret: str) -> None:
    body = {
        "type": "webhook",
        "settings": {
            "url": receiver.url,
            "secret": secret,
            "allow_http": True,
            "allow_private_targets": True,
            "retry": {"initial_backoff": "1 second", "max_age": "7 days"},
        },
        "subscriptions": [
            {"name": "orders", "condition": 'type = "track" and event = "Order Completed"'}
        ],
    }
    r = httpx.put(f"{server.url}/api/destinations/erp", json=body, headers=basic(server.token))
    assert r.status_code == 200, r.text


def test_an_order_reaches_the_webhook_signed(live_server_any: Any) -> None:
    server = live_server_any
    secret = new_secret()
    errors: list[Any] = []
    with Receiver() as receiver:
        destination(server, receiver, secret)
        client = segment_client(server, lambda *a: errors.append(a))
        user = f"u-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        client.track(user, "Product Viewed", {"product_id": "p1"}, timestamp=now)
        client.track(user, "Order Completed", {"order_id": "o-1", "revenue": 25.0}, timestamp=now)
        client.flush()
        assert wait_for(lambda: receiver.requests, timeout=30)
        time.sleep(0.5)  # nothing else is on its way
        [got] = receiver.requests
        Webhook(secret).verify(got.body, got.headers, json_parse=False)
        event = got.json()
        assert (event["event"], event["userId"], event["properties"]["order_id"]) == (
            "Order Completed",
            user,
            "o-1",
        )
        listed = httpx.get(
            f"{server.url}/api/deliveries",
            params={"destination": "erp", "status": "delivered"},
            headers=basic(server.token),
        ).json()["data"]
        assert [d["id"] for d in listed] == [got.headers["webhook-id"]]
        # /metrics of the HTTP process sums what the worker process's dispatcher counted
        erp = {"workspace": "default", "destination": "erp"}
        assert wait_for(
            lambda: sample(server, "opencdp_deliveries_total", **erp, outcome="delivered") == 1,
            timeout=10,
        )
        assert sample(server, "opencdp_deliveries_total", **erp, outcome="dead") == 0
        assert sample(server, "opencdp_delivery_latency_seconds_count", **erp) == 1
        assert sample(server, "opencdp_deliveries_waiting", **erp, status="pending") == 0
        assert sample(server, "opencdp_delivery_oldest_waiting_seconds", **erp) == 0
        client.shutdown()
    assert not errors


def sample(server: LiveServer, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics (None when absent)."""
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_serve_can_run_the_dispatcher_as_a_process_of_its_own(tmp_path: Path) -> None:
    # Given serve with the dispatcher in its own process (the workers send nothing)
    server = LiveServer(
        tmp_path / "own", WRITE_KEY, TOKEN, OPENCDP_DISPATCHER_PROCESS="true"
    ).start()
    try:
        assert len(server.pids()) == 4  # supervisor, HTTP, worker, dispatcher
        with Receiver() as receiver:
            secret = new_secret()
            destination(server, receiver, secret)
            # When an order is tracked
            order = {"order_id": "o-9", "revenue": 9.0}
            r = httpx.post(
                f"{server.url}/v1/track",
                json={"userId": "u-own", "event": "Order Completed", "properties": order},
                headers=basic(WRITE_KEY),
            )
            assert r.status_code == 200
            # Then it reaches the receiver, signed
            assert wait_for(lambda: receiver.requests, timeout=30)
            Webhook(secret).verify(
                receiver.requests[0].body, receiver.requests[0].headers, json_parse=False
            )
            # and the HTTP process's /metrics has what the dispatcher process counted
            erp = {"workspace": "default", "destination": "erp"}
            assert wait_for(
                lambda: sample(server, "opencdp_deliveries_total", **erp, outcome="delivered") == 1,
                timeout=10,
            )
    finally:
        server.stop()


def test_a_dispatcher_killed_mid_send_loses_nothing(tmp_path: Path) -> None:
    # Given a server (its worker sends the outbox) and a slow receiver
    lease = {"OPENCDP_DISPATCHER_LEASE_SECONDS": "3"}
    server = LiveServer(tmp_path / "live", WRITE_KEY, TOKEN, args=("--workers", "1"), **lease)
    server.start()
    sending = threading.Event()
    try:
        with Receiver() as receiver:

            def slow(_r: Any) -> Answer:
                sending.set()
                time.sleep(0.3)
                return Answer(200)

            receiver.answer = slow
            destination(server, receiver, new_secret())
            batch = [
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": f"u{i % 7}",
                    "messageId": f"order-{i}",
                    "properties": {"order_id": f"o{i}"},
                }
                for i in range(40)
            ]
            r = httpx.post(
                f"{server.url}/v1/batch", json={"batch": batch}, headers=basic(WRITE_KEY)
            )
            assert r.status_code == 200
            assert sending.wait(30)
            server.kill()  # SIGKILL to the supervisor, its worker and its dispatcher, mid-send
            # When a worker (with its dispatcher) runs again
            dispatcher = LiveServer(tmp_path / "live", WRITE_KEY, TOKEN, worker=True, **lease)
            dispatcher.start()
            try:
                expected = {f"o{i}" for i in range(40)}
                assert wait_for(
                    lambda: (
                        {r.json()["properties"]["order_id"] for r in receiver.requests} >= expected
                    ),
                    timeout=60,
                )
            finally:
                dispatcher.stop()
            # Then every order arrived, a repeat only ever under the id it first had
            ids: dict[str, set[str]] = {}
            for got in receiver.requests:
                ids.setdefault(got.json()["properties"]["order_id"], set()).add(
                    got.headers["webhook-id"]
                )
            assert set(ids) == expected and all(len(v) == 1 for v in ids.values())
    finally:
        server.stop()
