"""End-to-end: a tracking plan kept as a file, applied with the CLI, enforced on events a real
SDK sends to a real server, fixed over the HTTP API, and the quarantine replayed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from opencdp.cli.main import app
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

ORDER_RULE = {
    "type": "TRACK",
    "key": "Order Completed",
    "version": 1,
    "jsonSchema": {
        "type": "object",
        "properties": {
            "properties": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
                "required": ["order_id", "total"],
            }
        },
        "required": ["properties"],
    },
}


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[LiveServer]:
    # Plans take effect in the server at once (no governance cache) so the test need not wait.
    srv = LiveServer(
        tmp_path / "live", WRITE_KEY, TOKEN, database_url, OPENCDP_GOVERNANCE_REFRESH_SECONDS="0"
    ).start()
    yield srv
    srv.stop()


def cli(server: LiveServer, *args: str) -> str:
    db = ["--database-url", server.database_url] if server.database_url else []
    result = CliRunner().invoke(app, [*args, "--data-dir", str(server.data_dir), *db])
    assert result.exit_code == 0, result.output
    return result.output


def api(server: LiveServer, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=basic(TOKEN), timeout=30, **kw)


def wait_for_events(server: LiveServer, user_id: str, n: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    data: list[Any] = []
    while time.monotonic() < deadline:
        r = api(
            server, "GET", f"/v1/spaces/default/collections/users/profiles/user_id:{user_id}/events"
        )
        if r.status_code == 200:
            data = r.json()["data"]
            if len(data) >= n:
                return data
        time.sleep(0.2)
    raise AssertionError(f"{user_id} has {len(data)} events, expected {n}")


def test_plan_file_sdk_quarantine_fix_and_replay(server: LiveServer, tmp_path: Path) -> None:
    from segment.analytics import Client

    user = f"u-{uuid.uuid4().hex[:8]}"
    errors: list[Any] = []
    client = Client(
        WRITE_KEY, host=server.url, on_error=lambda e, b: errors.append(e), upload_interval=0.1
    )
    # Given events sent before any plan exists
    client.track(user_id=user, event="Order Completed", properties={"order_id": "o1", "total": 5})
    client.track(user_id=user, event="Coupon Applied", properties={"coupon": "X"})
    client.flush()
    wait_for_events(server, user, 2)

    # When a strict plan file is tried with a dry run
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        yaml.safe_dump(
            {
                "id": "web",
                "name": "Web shop",
                "sources": ["bootstrap"],
                "settings": {
                    "track": {"allowUnplannedEvents": False, "allowEventOnViolations": False}
                },
                "rules": [ORDER_RULE],
            }
        )
    )
    out = cli(server, "plan", "apply", str(plan_file), "--dry-run", "--days", "1")
    # Then it reports that the coupon event would be blocked, and stores nothing
    assert "would block: unplanned_event" in out and "Coupon Applied" in out
    assert api(server, "GET", "/api/tracking-plans").json()["data"] == []

    # When the plan is applied and the SDK sends good, invalid and unplanned events
    out = cli(server, "plan", "apply", str(plan_file))
    assert "stored as revision 1" in out
    client.track(user_id=user, event="Order Completed", properties={"order_id": "o2", "total": 7})
    client.track(user_id=user, event="Order Completed", properties={"order_id": "o3", "total": "7"})
    client.track(user_id=user, event="Coupon Applied", properties={"coupon": "Y"})
    client.flush()
    assert errors == []  # blocked events are answered 200: the SDK does not retry them
    wait_for_events(server, user, 3)

    # Then the quarantine holds the two blocked events with their reasons
    q = api(server, "GET", "/api/quarantine").json()
    assert q["counts"] == {"schema_violation": 1, "unplanned_event": 1}
    violation = next(r for r in q["data"] if r["reason"] == "schema_violation")
    assert violation["violations"][0]["field"] == "properties.total"
    assert violation["plan_id"] == "web" and violation["plan_revision"] == 1
    assert violation["payload"]["properties"]["order_id"] == "o3"
    only = api(server, "GET", "/api/quarantine", params={"event": "Coupon Applied"}).json()
    assert [r["reason"] for r in only["data"]] == ["unplanned_event"]
    stats = api(server, "GET", "/api/quarantine/stats", params={"bucket": "hour"}).json()
    assert stats["by_reason"] == {"schema_violation": 1, "unplanned_event": 1}
    assert "unplanned_event" in cli(server, "quarantine", "stats")
    listed = cli(server, "quarantine", "list", "--json", "--reason", "unplanned_event")
    assert '"event_name": "Coupon Applied"' in listed
    assert '"order_id": "o3"' in cli(server, "quarantine", "show", str(violation["id"]))

    # When the plan is fixed over the API and the quarantine replayed (twice)
    coupon = {"type": "TRACK", "key": "Coupon Applied", "version": 1, "jsonSchema": None}
    r = api(
        server,
        "PUT",
        "/api/tracking-plans/web",
        json={"name": "Web shop", "rules": [ORDER_RULE, coupon]},
    )
    assert r.status_code == 200 and r.json()["revision"] == 2
    first = api(server, "POST", "/api/quarantine/replay", json={"reason": "unplanned_event"}).json()
    second = api(server, "POST", "/api/quarantine/replay", json={}).json()
    # Then the coupon event is processed once; the invalid order stays with its reason
    assert (first["replayed"], first["still_failing"]) == (1, 0)
    assert (second["replayed"], second["still_failing"]) == (0, 1)
    events = wait_for_events(server, user, 4)
    time.sleep(0.5)
    assert len(wait_for_events(server, user, 4)) == 4
    assert sorted(e["event"] for e in events).count("Coupon Applied") == 2
    left = api(server, "GET", "/api/quarantine").json()
    assert left["counts"] == {"schema_violation": 1}
    assert left["data"][0]["plan_revision"] == 2


def test_governance_api_errors(server: LiveServer) -> None:
    bad = api(server, "PUT", "/api/tracking-plans/web", json={"rules": [{"type": "TRACK"}]})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_plan" and "rules[0].key" in bad.json()["message"]
    assert (
        api(server, "PUT", "/api/tracking-plans/web", content=b"{").json()["code"] == "invalid_json"
    )
    assert api(server, "GET", "/api/tracking-plans/nope").status_code == 404
    extra = api(server, "PUT", "/api/tracking-plans/web", json={"rules": [], "sources": ["x"]})
    assert extra.status_code == 400 and "sources" in extra.json()["message"]
    r = api(
        server,
        "PUT",
        "/api/sources/bootstrap/schema-settings",
        json={"settings": {"track": {"x": 1}}},
    )
    assert r.status_code == 400 and "settings.track.x" in r.json()["message"]
    r = api(
        server, "PUT", "/api/sources/bootstrap/schema-settings", json={"trackingPlanId": "nope"}
    )
    assert r.status_code == 404
    assert api(server, "GET", "/api/sources/nope/schema-settings").status_code == 404
    assert api(server, "GET", "/api/quarantine", params={"since": "soon"}).status_code == 400
    assert api(server, "GET", "/api/quarantine/stats", params={"bucket": "week"}).status_code == 400
    assert api(server, "GET", "/api/quarantine/999").status_code == 404
    assert api(server, "GET", "/api/quarantine/9223372036854775808").status_code == 404
    for params in ({"since": "99999999999d"}, {"until": "3000000d"}, {"since": "1000000w"}):
        r = api(server, "GET", "/api/quarantine", params=params)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", params
    for body in (
        {"dry_run": "true"},
        {"ids": [18446744073709551615]},
        {"since": "99999999999d"},
        {"status": "all"},
    ):
        r = api(server, "POST", "/api/quarantine/replay", json=body)
        assert r.status_code == 400, body
    api(server, "PUT", "/api/tracking-plans/p", json={"rules": []})
    r = api(server, "POST", "/api/tracking-plans/p/dry-run", json={"days": 1e300})
    assert r.status_code == 400
    anon = httpx.get(server.url + "/api/tracking-plans", timeout=10)
    assert anon.status_code == 401 and anon.json()["code"] == "authentication_error"


def test_blocked_single_event_is_200_and_counted(server: LiveServer) -> None:
    rules = [ORDER_RULE]
    assert api(server, "PUT", "/api/tracking-plans/web", json={"rules": rules}).status_code == 200
    r = api(
        server,
        "PUT",
        "/api/sources/bootstrap/schema-settings",
        json={"trackingPlanId": "web", "settings": {"track": {"allowUnplannedEvents": False}}},
    )
    assert r.status_code == 200
    sent = httpx.post(
        server.url + "/v1/track",
        headers=basic(WRITE_KEY),
        json={"userId": "u", "event": "Unplanned Thing"},
        timeout=10,
    )
    assert sent.status_code == 200
    body = sent.json()
    assert (body["accepted"], body["quarantined"]) == (0, 1)
    assert body["errors"][0]["code"] == "unplanned_event"
    # a malformed event is still a 400
    bad = httpx.post(
        server.url + "/v1/track", headers=basic(WRITE_KEY), json={"userId": "u"}, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["code"] == "missing_event"
