"""Computed traits and audiences through the HTTP API on both backends: define, compute,
members, preview, recompute, the errors a user gets, and the membership events on timelines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic

NOW = datetime.now(UTC)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, start_worker=False)) as c:
        yield c


def send(client: TestClient, runtime: Runtime, batch: list[dict[str, Any]]) -> None:
    assert (
        client.post("/v1/batch", json={"batch": batch}, headers=basic(WRITE_KEY)).status_code == 200
    )
    runtime.processor.run_until_idle()


def order(
    user: str, n: int, days_ago: float, revenue: float, category: str = "shoes"
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"{user}-o{n}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": {"revenue": revenue, "category": category},
    }


def identify(user: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"{user}-id", "traits": traits}


@pytest.fixture
def shop(client: TestClient, runtime: Runtime) -> TestClient:
    send(
        client,
        runtime,
        [
            identify("ann", email="ann@example.com", plan="pro"),
            identify("bob", email="bob@example.com", plan="free"),
            order("ann", 1, 3, 120.0),
            order("ann", 2, 10, 30.5, "bags"),
            order("bob", 1, 100, 99.0),
        ],
    )
    return client


AUTH = basic(TOKEN)


def test_a_computed_trait_is_computed_and_shown_on_the_profile(shop: TestClient) -> None:
    body = {
        "name": "Lifetime value",
        "definition": {
            "type": "USERS",
            "query": "event('Order Completed').sum(property('revenue'))",
        },
    }
    r = shop.put("/api/computed-traits/lifetime_value", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["definition"] == body["definition"]
    traits = shop.get(
        "/v1/spaces/default/collections/users/profiles/user_id:ann/traits", headers=AUTH
    ).json()["traits"]
    assert traits["lifetime_value"] == 150.5 and traits["plan"] == "pro"
    listed = shop.get("/api/computed-traits", headers=AUTH).json()["data"]
    assert [d["key"] for d in listed] == ["lifetime_value"]
    assert (
        shop.get("/api/computed-traits/lifetime_value", headers=AUTH).json()["name"]
        == "Lifetime value"
    )


def test_an_audience_has_members_and_its_entries_are_on_the_timeline(
    shop: TestClient, runtime: Runtime
) -> None:
    body = {
        "name": "Recent buyers",
        "definition": {"query": "event('Order Completed').within(30 days).count() >= 1"},
    }
    r = shop.put("/api/audiences/recent_buyers", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready" and r.json()["size"] == 1
    page = shop.get("/api/audiences/recent_buyers/members?limit=10", headers=AUTH).json()
    assert page["cursor"]["has_more"] is False
    [member] = page["data"]
    assert {"type": "user_id", "id": "ann"} in member["external_ids"]
    # Membership shows on the Profile API as the boolean trait key: true (Segment's way)
    profile = "/v1/spaces/default/collections/users/profiles/user_id:{}/traits"
    assert shop.get(profile.format("ann"), headers=AUTH).json()["traits"]["recent_buyers"] is True
    assert "recent_buyers" not in shop.get(profile.format("bob"), headers=AUTH).json()["traits"]
    events = runtime.profiles.events("default", member["profile_id"], limit=20)
    entered = [e for e in events if e.event == "Audience Entered"]
    assert len(entered) == 1
    assert entered[0].payload["properties"]["audience_key"] == "recent_buyers"
    # Bob orders now: the worker adds him in real time, and a batch recompute agrees
    send(shop, runtime, [order("bob", 2, 1, 10.0)])
    assert shop.get("/api/audiences/recent_buyers", headers=AUTH).json()["size"] == 2
    assert shop.get(profile.format("bob"), headers=AUTH).json()["traits"]["recent_buyers"] is True
    assert shop.post("/api/audiences/recent_buyers/recompute", headers=AUTH).json() == {
        "size": 2,
        "entered": 0,
        "exited": 0,
    }
    csv_page = shop.get("/api/audiences/recent_buyers/members?format=csv", headers=AUTH)
    assert csv_page.headers["content-type"].startswith("text/csv")
    assert csv_page.text.splitlines()[0] == "profile_id,type,id"
    assert "bob@example.com" in csv_page.text


def test_members_page_with_a_cursor(shop: TestClient) -> None:
    body = {"definition": {"query": "trait('email').exists()"}}
    assert shop.put("/api/audiences/with_email", json=body, headers=AUTH).json()["size"] == 2
    first = shop.get("/api/audiences/with_email/members?limit=1", headers=AUTH).json()
    assert first["cursor"]["has_more"] is True
    second = shop.get(
        f"/api/audiences/with_email/members?limit=1&next={first['cursor']['next']}", headers=AUTH
    ).json()
    assert second["cursor"]["has_more"] is False
    assert first["data"][0]["profile_id"] < second["data"][0]["profile_id"]


def test_an_audience_on_a_computed_trait_is_computed_after_it(shop: TestClient) -> None:
    trait = {"definition": {"query": "event('Order Completed').sum(property('revenue'))"}}
    shop.put("/api/computed-traits/ltv", json=trait, headers=AUTH)
    audience = {"definition": {"query": "trait('ltv') > 50"}}
    assert shop.put("/api/audiences/spenders", json=audience, headers=AUTH).json()["size"] == 2
    # Changing the trait recomputes the audience that reads it: Bob's order is 100 days old
    trait = {
        "definition": {"query": "event('Order Completed').within(5 days).sum(property('revenue'))"}
    }
    assert shop.put("/api/computed-traits/ltv", json=trait, headers=AUTH).status_code == 200
    assert shop.get("/api/audiences/spenders", headers=AUTH).json()["size"] == 1


def test_preview_stores_nothing(shop: TestClient) -> None:
    r = shop.post(
        "/api/audiences/preview",
        json={"definition": {"query": "trait('plan') = 'pro'"}},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json()["size"] == 1
    assert r.json()["sample"][0]["external_ids"]
    assert shop.get("/api/audiences", headers=AUTH).json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "code", "needle"),
    [
        (
            "/api/audiences/a",
            {"definition": {"query": "event('A').count( >= 1"}},
            "invalid_definition",
            "line 1, column 19",
        ),
        (
            "/api/audiences/a",
            {"definition": {"query": "event('A').count()"}},
            "invalid_definition",
            "needs a condition",
        ),
        (
            "/api/computed-traits/a",
            {"definition": {"query": "event('A').count() > 1"}},
            "invalid_definition",
            "needs a value",
        ),
        (
            "/api/audiences/a",
            {"definition": {"query": "trait('nobody_has_it') = 1"}},
            "invalid_definition",
            "is unknown",
        ),
        (
            "/api/audiences/a",
            {"definition": {"query": "trait('a') = 1"}},
            "invalid_definition",
            "its own value",
        ),
        (
            "/api/audiences/a",
            {"definition": {"type": "PEOPLE", "query": "trait('plan') = 1"}},
            "invalid_definition",
            "USERS",
        ),
        ("/api/audiences/a", {"query": "trait('plan') = 1"}, "invalid_definition", "unknown keys"),
        (
            "/api/audiences/not-a-key",
            {"definition": {"query": "trait('plan') = 1"}},
            "invalid_key",
            "not a valid key",
        ),
    ],
)
def test_bad_definitions_are_refused_clearly(
    shop: TestClient, path: str, body: dict[str, Any], code: str, needle: str
) -> None:
    r = shop.put(path, json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert needle in r.json()["message"]


def test_cycles_and_shared_keys_are_refused(shop: TestClient) -> None:
    shop.put(
        "/api/audiences/pro", json={"definition": {"query": "trait('plan') = 'pro'"}}, headers=AUTH
    )
    shop.put(
        "/api/audiences/b", json={"definition": {"query": "trait('pro') = true"}}, headers=AUTH
    )
    r = shop.put(
        "/api/audiences/pro", json={"definition": {"query": "trait('b') = true"}}, headers=AUTH
    )
    assert r.status_code == 400 and "cycle: pro → b → pro" in r.json()["message"]
    r = shop.put(
        "/api/computed-traits/pro", json={"definition": {"query": "trait('plan')"}}, headers=AUTH
    )
    assert r.status_code == 400 and r.json()["code"] == "key_taken"


def test_delete_and_not_found(shop: TestClient) -> None:
    shop.put(
        "/api/audiences/pro", json={"definition": {"query": "trait('plan') = 'pro'"}}, headers=AUTH
    )
    assert shop.delete("/api/audiences/pro", headers=AUTH).status_code == 200
    r = shop.get("/api/audiences/pro", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert shop.get("/api/audiences/pro/members", headers=AUTH).status_code == 404


def test_a_definition_sql_cannot_express_is_computed_by_the_reference(shop: TestClient) -> None:
    body = {
        "definition": {"query": "event('Order Completed').expires_after(1800 seconds).count() = 0"}
    }
    r = shop.put("/api/audiences/no_session", json=body, headers=AUTH)
    assert r.json()["status"] == "ready" and r.json()["size"] == 2


def test_the_profile_api_filters_traits_by_class(shop: TestClient) -> None:
    # Given a computed trait and an audience beside ann's own traits
    trait = {"definition": {"query": "event('Order Completed').count()"}}
    assert shop.put("/api/computed-traits/order_count", json=trait, headers=AUTH).is_success
    audience = {"definition": {"query": "trait('order_count') >= 2"}}
    assert shop.put("/api/audiences/repeat", json=audience, headers=AUTH).is_success
    url = "/v1/spaces/default/collections/users/profiles/user_id:ann/traits"
    # Then ?class= picks Segment's classes, and no class gives everything
    everything = shop.get(url, headers=AUTH).json()["traits"]
    assert {"email", "plan", "order_count", "repeat"} <= everything.keys()
    assert shop.get(f"{url}?class=computed_trait", headers=AUTH).json()["traits"] == {
        "order_count": 2
    }
    assert shop.get(f"{url}?class=audience", headers=AUTH).json()["traits"] == {"repeat": True}
    wrong = shop.get(f"{url}?class=plain", headers=AUTH)
    assert wrong.status_code == 400 and "computed_trait" in wrong.text


def test_a_definition_failing_in_real_time_stops_neither_the_batch_nor_the_others(
    shop: TestClient, runtime: Runtime
) -> None:
    # Given two audiences, one of which the database cannot evaluate for a number too large
    # for it (PostgreSQL's numeric overflows on 1e999999)
    big = {
        "definition": {
            "query": "event('Order Completed').where(property('revenue') > 5).count() >= 1"
        }
    }
    assert shop.put("/api/audiences/over_five", json=big, headers=AUTH).is_success
    plain = {"definition": {"query": "event('Order Completed').count() >= 1"}}
    assert shop.put("/api/audiences/buyers", json=plain, headers=AUTH).is_success
    # When an order with such a number arrives
    odd = order("cy", 1, 1, 0.0)
    odd["properties"]["revenue"] = "1e999999"
    send(shop, runtime, [odd])
    # Then the order is stored and the other audience has cy; the failing one says why
    # (or, where the database can read the number, has cy too)
    assert runtime.inbox.pending() == 0
    cy = runtime.profiles.find("default", "users", "user_id", "cy")
    assert cy is not None
    assert compute_members(shop, "buyers") >= 3
    status = shop.get("/api/audiences/over_five", headers=AUTH).json()
    assert status["status"] == "failed" or compute_members(shop, "over_five") == 3


def compute_members(client: TestClient, key: str) -> int:
    return int(client.get(f"/api/audiences/{key}", headers=AUTH).json()["size"])


def test_a_disabled_audience_is_not_recomputed(shop: TestClient) -> None:
    body = {"definition": {"query": "event('Order Completed').count() >= 1"}, "enabled": False}
    assert shop.put("/api/audiences/paused", json=body, headers=AUTH).json()["status"] == "disabled"
    answer = shop.post("/api/audiences/paused/recompute", headers=AUTH)
    assert answer.status_code == 400 and answer.json()["code"] == "disabled"
    assert shop.get("/api/audiences/paused", headers=AUTH).json()["status"] == "disabled"


def test_a_file_applied_again_computes_each_definition_once(
    shop: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opencdp.services import compute

    compute.apply_preset(runtime, "default", "trait", "retail")
    computed: list[str] = []
    original = runtime.compute.compute

    def counted(workspace_id: str, key: str) -> Any:
        computed.append(key)
        return original(workspace_id, key)

    monkeypatch.setattr(runtime.compute, "compute", counted)
    done = compute.apply_preset(runtime, "default", "trait", "retail")
    assert sorted(computed) == sorted(d["key"] for d in done)  # each once, dependents too


@pytest.mark.parametrize("key", ["_hidden", "trailing\n", "1st"])
def test_keys_start_with_a_letter_and_hold_nothing_else(shop: TestClient, key: str) -> None:
    from urllib.parse import quote

    body = {"definition": {"query": "event('Order Completed').count()"}}
    answer = shop.put(f"/api/computed-traits/{quote(key)}", json=body, headers=AUTH)
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_key"
