"""End to end: a real server (each backend), the unmodified Segment SDK, and an audience a
profile enters and leaves as its events arrive — read back through the API and the Profile API."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import basic
from tests.e2e.test_sdks import segment_client

pytestmark = pytest.mark.e2e

# Bought in the last 30 days and did not ask for a refund
QUERY = (
    "event('Order Completed').within(30 days).count() >= 1 AND event('Order Refunded').count() = 0"
)


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_profile_enters_and_leaves_an_audience_in_real_time(live_server_any: Any) -> None:
    server = live_server_any
    auth = basic(server.token)
    user = f"u-{uuid.uuid4().hex[:8]}"
    errors: list[Any] = []
    client = segment_client(server, lambda *a: errors.append(a))
    # The trait and event names must be known before a definition may read traits; this one
    # reads events only, so it can be defined on an empty workspace.
    r = httpx.put(
        f"{server.url}/api/audiences/recent_buyers",
        json={"name": "Recent buyers", "definition": {"type": "USERS", "query": QUERY}},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["size"] == 0

    traits = f"{server.url}/v1/spaces/default/collections/users/profiles/user_id:{user}/traits"

    def member() -> bool | None:
        found = httpx.get(traits, headers=auth)
        return found.json()["traits"].get("recent_buyers") if found.status_code == 200 else None

    now = datetime.now(UTC)
    client.identify(user, {"email": f"{user}@example.com"}, timestamp=now)
    client.track(user, "Order Completed", {"order_id": "o-1", "revenue": 25.0}, timestamp=now)
    client.flush()
    assert wait_for(member) is True
    assert httpx.get(f"{server.url}/api/audiences/recent_buyers", headers=auth).json()["size"] == 1

    client.track(user, "Order Refunded", {"order_id": "o-1"}, timestamp=now)
    client.flush()
    assert wait_for(lambda: member() is None)
    assert not errors
    members = httpx.get(f"{server.url}/api/audiences/recent_buyers/members", headers=auth).json()
    assert members["data"] == []
    events = httpx.get(traits.replace("/traits", "/events?limit=20"), headers=auth).json()["data"]
    names = [e["event"] for e in events]
    assert names.count("Audience Entered") == 1 and names.count("Audience Exited") == 1
    client.shutdown()
