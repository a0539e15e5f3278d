"""End-to-end: the abandoned-cart journey as a shop runs it. segment-analytics-python sends
``Product Added`` over a real socket to the HTTP app served by uvicorn; the worker (in the
app's lifespan, as ``opencdp serve`` runs it) stores the events and starts the instances; the
clock moves an hour; the worker's timer tick moves the instance and the dispatcher mails the
cart to a real SMTP server on loopback. Another shopper orders within the hour and gets
nothing.

The server runs in this process so that its injected clock can be moved (a subprocess would
have to sleep an hour); everything between the SDK and the SMTP server is the deployed code.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings
from tests.support.mail import MailServer
from tests.support.pg import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    url: str
    runtime: Runtime
    clock: FrozenClock


@pytest.fixture
def served(tmp_path: Path, database_url: str | None) -> Iterator[Served]:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    runtime = Runtime(
        make_settings(tmp_path, database_url, worker_poll_interval=0.05, recs_train_every_hours=0),
        clock,
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime, start_worker=True), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: _ready(url), timeout=30), "the server did not start"
    yield Served(url, runtime, clock)
    server.should_exit = True
    thread.join(timeout=20)
    runtime.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    return None


def test_an_abandoned_cart_is_mailed_an_hour_later_and_an_order_cancels_it(
    served: Served,
) -> None:
    from segment.analytics import Client

    auth = basic(TOKEN)
    with MailServer() as mail:
        # Given an SMTP destination and the abandoned-cart preset with a one-hour wait
        smtp = {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": mail.port,
                "from": "Shop <shop@example.com>",
                "starttls": False,
            },
        }
        r = httpx.put(f"{served.url}/api/destinations/mail", json=smtp, headers=auth)
        assert r.status_code == 200, r.text
        preset = {"preset": "abandoned-cart", "settings": {"wait": "1 hour", "destination": "mail"}}
        r = httpx.put(f"{served.url}/api/journeys/abandoned-cart", json=preset, headers=auth)
        assert r.status_code == 200, r.text

        # When the SDK sends ann's cart, and bob's cart followed by his order
        errors: list[Any] = []
        client = Client(
            WRITE_KEY,
            host=served.url,
            on_error=lambda *a: errors.append(a),
            max_retries=2,
            upload_interval=0.1,
        )
        ann, bob = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("ann", "bob"))
        now = served.clock.now()
        client.identify(ann, {"email": "ann@example.com", "first_name": "Ann"}, timestamp=now)
        client.identify(bob, {"email": "bob@example.com"}, timestamp=now)
        for product in (
            {"product_id": "p1", "name": "Trail shoe", "price": 89.9, "currency": "EUR"},
            {"product_id": "p2", "name": "Rain jacket", "price": 120, "currency": "EUR"},
        ):
            client.track(ann, "Product Added", {"cart_id": "c-ann", **product}, timestamp=now)
        client.track(bob, "Product Added", {"cart_id": "c-bob", "name": "Mat"}, timestamp=now)
        client.track(bob, "Order Completed", {"order_id": "o-1", "revenue": 25}, timestamp=now)
        client.flush()
        client.shutdown()
        assert not errors

        def figures() -> dict[str, Any]:
            answer = httpx.get(f"{served.url}/api/journeys/abandoned-cart", headers=auth)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        # Then both carts entered; bob's order ended his at once
        assert wait_for(lambda: figures()["entered"] == 2 and figures()["exited"] == 1, 30)
        time.sleep(0.5)
        assert mail.mails == []  # nothing before the hour

        # When the clock moves an hour
        served.clock.advance(3601)

        # Then ann gets one e-mail listing her cart, and bob nothing
        assert wait_for(lambda: mail.mails, timeout=30)
        assert wait_for(lambda: figures()["completed"] == 1, timeout=10)
        time.sleep(0.5)
        (sent,) = mail.mails
        assert sent.rcpt_tos == ["ann@example.com"]
        text = sent.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "Hello Ann" in text and "Trail shoe" in text and "Rain jacket" in text
        assert "Mat" not in text
        steps = {s["key"]: s["reached"] for s in figures()["steps"]}
        assert steps == {"wait_for_order": 2, "reminder": 1}
        delivered = httpx.get(
            f"{served.url}/api/deliveries",
            params={"destination": "mail", "status": "delivered"},
            headers=auth,
        ).json()["data"]
        assert len(delivered) == 1
