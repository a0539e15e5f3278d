"""The self-service profile on every backend: a link opens one customer's profile; edits and
consent become events with provenance; identifiers cannot be edited; export and deletion work;
any wrong, expired, forged or foreign link gets the same answer; rate limit; CORS per
workspace."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.privacy import self_token
from opencdp.privacy.workspace_settings import WorkspaceSettings
from opencdp.runtime import Runtime
from tests.conftest import TOKEN, WRITE_KEY, basic

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WS = "default"


def send(client: TestClient, rt: Runtime, *events: dict[str, Any]) -> None:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()


def link(client: TestClient, ref: str, **body: Any) -> str:
    answer = client.post(f"/api/profiles/{ref}/self-service-link", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def as_customer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def people(client: TestClient, rt: Runtime) -> None:
    send(
        client,
        rt,
        {
            "type": "identify",
            "userId": "ann",
            "traits": {"email": "ann@example.com", "name": "Ann"},
        },
        {
            "type": "identify",
            "userId": "bob",
            "traits": {"email": "bob@example.com", "name": "Bob"},
        },
    )


def test_a_link_opens_the_customers_own_profile_and_edits_become_events(
    client: TestClient, rt: Runtime
) -> None:
    people(client, rt)
    me = as_customer(link(client, "email:ann@example.com"))
    mine = client.get("/api/self/profile", headers=me).json()
    assert mine["traits"]["name"] == "Ann" and "bob" not in str(mine)
    assert "email" not in mine["editable_traits"] and "first_name" in mine["editable_traits"]
    # When she edits her name and withdraws marketing consent
    edit = client.patch("/api/self/profile", json={"traits": {"first_name": "Anna"}}, headers=me)
    assert edit.status_code == 202, edit.text
    consent = {"categoryPreferences": {"marketing": False}}
    assert client.put("/api/self/consent", json=consent, headers=me).status_code == 202
    rt.processor.run_until_idle()
    # Then both are on her profile with the provenance of the events
    after = client.get("/api/self/profile", headers=me).json()
    assert after["traits"]["first_name"] == "Anna"
    assert after["consent"]["marketing"]["value"] is False
    [event] = [
        e
        for e in rt.profiles.events(WS, after["profile_id"], limit=50)
        if e.message_id == edit.json()["messageId"]
    ]
    assert event.payload["context"]["opencdp"] == {"channel": "self-service", "actor": "customer"}
    # And identifiers (which could join her to someone else) and unlisted traits are refused
    for traits in ({"email": "bob@example.com"}, {"plan": "gold"}):
        refused = client.patch("/api/self/profile", json={"traits": traits}, headers=me)
        assert (refused.status_code, refused.json()["code"]) == (400, "trait_not_editable")
    assert [e.action for e in rt.audit.query(WS, action="self")] == [
        "self.profile.edit",
        "self.consent.put",
    ]


def test_any_wrong_link_gets_the_same_answer(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    people(client, rt)
    rt.admin.add_workspace("b2b", "B2B", rt.now_us())
    good = link(client, "email:ann@example.com", ttl=120)
    _version, payload, _signature = good.split(".")
    forged = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    # a correctly signed link naming Ann's profile in another workspace
    ann = rt.profiles.find(WS, "users", "user_id", "ann")
    key = self_token.link_key(rt.admin.key)
    foreign = self_token.issue(key, "b2b", ann, rt.now_us() // 1_000_000 + 600, b"n" * 16)
    answers = []
    for token in (None, "nonsense", forged, good.replace(payload, payload[::-1]), foreign):
        headers = as_customer(token) if token else {}
        answers.append(client.get("/api/self/profile", headers=headers))
    clock.advance(121)
    answers.append(client.get("/api/self/profile", headers=as_customer(good)))
    bodies = {(a.status_code, a.text) for a in answers}
    assert len(bodies) == 1 and answers[0].status_code == 401, bodies
    assert answers[0].json()["code"] == "invalid_link"


def test_export_and_deletion_through_the_link(client: TestClient, rt: Runtime) -> None:
    people(client, rt)
    me = as_customer(link(client, "email:ann@example.com"))
    exported = client.post("/api/self/export", headers=me)
    assert exported.status_code == 200 and exported.json()["traits"]
    assert "bob@example.com" not in exported.text
    deleted = client.post("/api/self/deletion", headers=me)
    assert deleted.status_code == 202 and deleted.json()["regulateId"].startswith("reg_")
    # the link opens nothing any more, and Bob is there
    assert client.get("/api/self/profile", headers=me).status_code == 401
    assert rt.profiles.find(WS, "users", "user_id", "bob")


def test_rate_limit_and_cors_per_workspace(client: TestClient, rt: Runtime) -> None:
    people(client, rt)
    rt.admin.set_workspace_settings(
        WS, WorkspaceSettings(self_service_origins=("https://shop.example",))
    )
    me = as_customer(link(client, "user_id:ann"))
    allowed = client.get("/api/self/profile", headers={**me, "Origin": "https://shop.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.get("/api/self/profile", headers={**me, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options(
        "/api/self/profile",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "PATCH"},
    )
    assert preflight.status_code == 204
    assert (
        client.options("/api/self/profile", headers={"Origin": "https://evil.example"}).status_code
        == 403
    )
    # Past the limit (60 a minute, bursts of 10) the customer is asked to wait
    codes = [client.get("/api/self/profile", headers=me).status_code for _ in range(15)]
    assert 429 in codes and codes[0] == 200
