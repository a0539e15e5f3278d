"""Consent per category on both backends: Segment's ``context.consent.categoryPreferences`` on
events becomes ``consent.<category>`` traits, destinations that declare ``consent_categories``
receive only consenting profiles (the rest is ``suppressed_by_consent``), the workspace's
default decides for a category without a record, the consent API records changes as events,
audiences read consent, and a withdrawal mid-journey stops the next send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.privacy.workspace_settings import WorkspaceSettings
from opencdp.runtime import Runtime
from opencdp.services.consent import get_consent, set_consent
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.mail import MailServer
from tests.support.receiver import Receiver

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONSENT_EVENT = "Segment Consent Preference Updated"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hook(client: TestClient, receiver: Receiver, name: str = "ads", **settings: Any) -> None:
    body = {
        "type": "webhook",
        "settings": {
            "url": receiver.url,
            "allow_http": True,
            "allow_private_targets": True,
            **settings,
        },
        "subscriptions": [{"name": "orders", "condition": 'event = "Order Completed"'}],
    }
    answer = client.put(f"/api/destinations/{name}", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text


def consent(user: str, n: int, at: Any, **categories: bool) -> dict[str, Any]:
    return {
        "type": "track",
        "event": CONSENT_EVENT,
        "userId": user,
        "messageId": f"{user}-consent-{n}",
        "timestamp": at.isoformat(),
        "context": {"consent": {"categoryPreferences": categories}},
    }


def order(user: str, n: int = 1) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"{user}-order-{n}",
        "properties": {"order_id": f"{user}-{n}"},
    }


def send(client: TestClient, rt: Runtime, *events: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()
    return dict(answer.json())


def deliveries(client: TestClient, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/deliveries", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def traits(client: TestClient, ref: str) -> dict[str, Any]:
    url = f"/v1/spaces/default/collections/users/profiles/{ref}/traits?limit=200"
    answer = client.get(url, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["traits"])


def sent_to(receiver: Receiver) -> list[str]:
    return [r.json()["userId"] for r in receiver.requests]


def test_the_same_event_reaches_a_consenting_profile_and_not_a_withdrawn_one(
    client: TestClient, rt: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    # Given an ad tool serving marketing, and an ERP that declares no category
    hook(client, receiver, consent_categories=["marketing"])
    with Receiver() as erp:
        hook(client, erp, name="erp")
        # And ann consents to marketing, bob consented and then withdrew
        now = clock.now()
        send(
            client,
            rt,
            consent("ann", 1, now, marketing=True, analytics=False),
            consent("bob", 1, now - timedelta(hours=2), marketing=True),
            consent("bob", 2, now - timedelta(hours=1), marketing=False),
        )
        # When both place the same order
        send(client, rt, order("ann"), order("bob"))
        rt.dispatcher.run_until_idle()
        # Then the ad tool got ann's only; the ERP (no category) got both
        assert sent_to(receiver) == ["ann"]
        assert sorted(sent_to(erp)) == ["ann", "bob"]
    # And bob's delivery is suppressed_by_consent: listed, filterable, never attempted
    held = deliveries(client, destination="ads", status="suppressed_by_consent")
    assert [(d["status"], d["attempts"]) for d in held] == [("suppressed_by_consent", 0)]
    assert held[0]["message_id"] == "bob-order-1"
    assert deliveries(client, destination="ads", status="dead") == []
    view = client.get("/api/destinations/ads", headers=AUTH).json()
    assert view["deliveries"]["suppressed_by_consent"] == 1
    assert view["deliveries"]["delivered"] == 1
    # And a replay checks consent again: bob consents, the replay sends it
    send(client, rt, consent("bob", 3, clock.now(), marketing=True))
    body = {"destination": "ads", "status": "suppressed_by_consent"}
    answer = client.post("/api/deliveries/replay", json=body, headers=AUTH)
    assert answer.json() == {"replayed": 1}
    rt.dispatcher.run_until_idle()
    assert sent_to(receiver) == ["ann", "bob"]


def test_consent_traits_carry_time_source_and_message(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    # An older event processed later does not win (last write wins by event time)
    send(client, rt, consent("cy", 2, now, marketing=False))
    send(client, rt, consent("cy", 1, now - timedelta(days=1), marketing=True, ads=True))
    found = get_consent(rt, "default", "user_id:cy")["categoryPreferences"]
    assert found["marketing"]["value"] is False
    assert found["marketing"]["message_id"] == "cy-consent-2"
    assert found["ads"] == {
        "value": True,
        "timestamp": found["ads"]["timestamp"],
        "source_id": found["marketing"]["source_id"],
        "message_id": "cy-consent-1",
    }
    assert found["marketing"]["source_id"] is not None
    # Only the categories an event names change
    send(client, rt, {**consent("cy", 3, now + timedelta(seconds=1), ads=False)})
    found = get_consent(rt, "default", "user_id:cy")["categoryPreferences"]
    assert (found["marketing"]["value"], found["ads"]["value"]) == (False, False)
    # Consent on any event counts, not only on the consent event
    tracked = {**order("cy", 9), "timestamp": (now + timedelta(seconds=2)).isoformat()}
    tracked["context"] = {"consent": {"categoryPreferences": {"marketing": True}}}
    send(client, rt, tracked)
    assert traits(client, "user_id:cy")["consent.marketing"] is True


def test_a_missing_record_follows_the_workspace_default(
    client: TestClient, rt: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    # Given a destination serving marketing; dan has no consent record, eve withdrew
    hook(client, receiver, consent_categories=["marketing"])
    send(client, rt, consent("eve", 1, clock.now(), marketing=False))
    # When the workspace is opt-in (the default), dan's order is held back
    assert rt.admin.workspace_settings("default").consent_default == "opt-in"
    send(client, rt, order("dan"), order("eve"))
    rt.dispatcher.run_until_idle()
    assert receiver.requests == []
    # When it is opt-out, no record counts as consent; a withdrawal still holds
    rt.admin.set_workspace_settings("default", WorkspaceSettings(consent_default="opt-out"))
    send(client, rt, order("dan", 2), order("eve", 2))
    rt.dispatcher.run_until_idle()
    assert sent_to(receiver) == ["dan"]
    held = deliveries(client, status="suppressed_by_consent")
    assert sorted(d["message_id"] for d in held) == ["dan-order-1", "eve-order-1", "eve-order-2"]


def test_a_destination_in_several_categories_needs_all_of_them(
    client: TestClient, rt: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    hook(client, receiver, consent_categories=["marketing", "ads"], purposes=["analytics"])
    now = clock.now()
    send(
        client,
        rt,
        consent("fay", 1, now, marketing=True, ads=True, analytics=True),
        consent("gus", 1, now, marketing=True, ads=True),
    )
    send(client, rt, order("fay"), order("gus"))
    rt.dispatcher.run_until_idle()
    assert sent_to(receiver) == ["fay"]


def test_consent_categories_are_validated(client: TestClient, receiver: Receiver) -> None:
    for bad in (["1st"], ["x" * 35], [""], [" ads"], [7]):
        body = {
            "type": "webhook",
            "settings": {"url": receiver.url, "allow_http": True, "consent_categories": bad},
        }
        answer = client.put("/api/destinations/ads", json=body, headers=AUTH)
        assert answer.status_code == 400, bad
        assert "consent_categories" in answer.json()["message"]


def test_consent_traits_from_identify_and_contacts_are_ignored(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    # Given identify, context.traits and group traits that try to set consent
    identify = {
        "type": "identify",
        "userId": "hal",
        "messageId": "hal-1",
        "traits": {"name": "Hal", "consent.marketing": True},
        "context": {"traits": {"consent.ads": True}},
    }
    group = {
        "type": "group",
        "userId": "hal",
        "groupId": "acme",
        "messageId": "hal-g",
        "traits": {"name": "Acme", "consent.marketing": True},
    }
    send(client, rt, identify, group)
    contact = {"identifiers": {"user_id": "hal"}, "traits": {"consent.analytics": True}}
    assert client.post("/api/contacts", json=contact, headers=AUTH).status_code == 200
    # Then the other traits are set, and no consent at all
    found = traits(client, "user_id:hal")
    assert found["name"] == "Hal"
    assert not [k for k in found if k.startswith("consent")]
    account = client.get(
        "/v1/spaces/default/collections/accounts/profiles/group_id:acme/traits", headers=AUTH
    ).json()["traits"]
    assert account == {"name": "Acme"}
    assert get_consent(rt, "default", "user_id:hal")["categoryPreferences"] == {}


def test_a_merge_keeps_the_later_consent(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    now = clock.now()
    # Given an anonymous visitor who withdrew (later) and a user who consented (earlier),
    # as two profiles
    anon = {**consent("x", 1, now, marketing=False, ads=True), "messageId": "anon-consent"}
    del anon["userId"]
    anon["anonymousId"] = "anon-7"
    send(client, rt, anon)
    send(client, rt, consent("ivy", 1, now - timedelta(hours=1), marketing=True, email=True))
    assert traits(client, "user_id:ivy")["consent.marketing"] is True
    # When an identify call links them
    link = {"type": "identify", "userId": "ivy", "anonymousId": "anon-7", "messageId": "link"}
    send(client, rt, link)
    # Then the merged profile keeps the later value of each category
    merged = traits(client, "user_id:ivy")
    assert traits(client, "anonymous_id:anon-7") == merged
    assert (merged["consent.marketing"], merged["consent.ads"], merged["consent.email"]) == (
        False,
        True,
        True,
    )


def test_the_consent_event_needs_its_preferences(client: TestClient, rt: Runtime) -> None:
    bare = {"type": "track", "event": CONSENT_EVENT, "userId": "jo", "messageId": "c-bare"}
    non_bool = {
        **bare,
        "messageId": "c-yes",
        "context": {"consent": {"categoryPreferences": {"marketing": "yes"}}},
    }
    digit = {
        **order("jo"),
        "messageId": "c-digit",
        "context": {"consent": {"categoryPreferences": {"1st": True}}},
    }
    good = consent("jo", 1, rt.clock.now(), marketing=True)
    send(client, rt, bare, non_bool, digit, good)
    listed = client.get("/api/quarantine", headers=AUTH).json()["data"]
    reasons = {q["message_id"]: q["reason"] for q in listed}
    assert reasons == {
        "c-bare": "consent_preferences_missing",
        "c-yes": "invalid_consent_preferences",
        "c-digit": "invalid_consent_preferences",
    }
    details = {q["message_id"]: q["detail"] for q in listed}
    assert "must be true or false" in details["c-yes"]
    assert "starts with a digit" in details["c-digit"]
    # The valid one was applied
    assert traits(client, "user_id:jo")["consent.marketing"] is True
    # A single call answers 400 naming the problem
    answer = client.post("/v1/track", json={**bare, "messageId": "c2"}, headers=basic(WRITE_KEY))
    assert answer.status_code == 400
    assert "categoryPreferences" in answer.text


def test_the_consent_api_records_changes_as_events(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    send(
        client,
        rt,
        {"type": "identify", "userId": "kim", "messageId": "k1", "traits": {"email": "K@x.org"}},
    )
    url = "/api/profiles/email:k@x.org/consent"
    # When a consent change is PUT (addressed by e-mail)
    body = {"categoryPreferences": {"marketing": True, "analytics": False}}
    answer = client.put(url, json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["messageId"]
    profile_id = answer.json()["profile_id"]
    # Then it is applied by the worker, not before
    assert client.get(url, headers=AUTH).json()["categoryPreferences"] == {}
    rt.processor.run_until_idle()
    got = client.get(f"/api/profiles/{profile_id}/consent", headers=AUTH).json()
    assert got["profile_id"] == profile_id and got["default"] == "opt-in"
    assert got["categoryPreferences"]["marketing"]["value"] is True
    assert got["categoryPreferences"]["analytics"]["value"] is False
    assert got["categoryPreferences"]["marketing"]["message_id"] == message_id
    source_id = got["categoryPreferences"]["marketing"]["source_id"]
    assert source_id == rt.admin.find_source("default", "opencdp").id  # type: ignore[union-attr]
    # And the event is on the timeline with its provenance
    [event] = [e for e in rt.profiles.events("default", profile_id, limit=10) if e.event]
    assert event.event == CONSENT_EVENT and event.message_id == message_id
    assert event.payload["context"]["opencdp"]["channel"] == "api"
    assert event.payload["context"]["consent"]["categoryPreferences"] == body["categoryPreferences"]
    # Bad bodies name what to fix; an unknown profile is 404
    for bad in (
        {"categoryPreferences": {"marketing": "yes"}},
        {"categoryPreferences": {"9lives": True}},
        {"categoryPreferences": {}},
        {"marketing": True},
        [],
    ):
        answer = client.put(url, json=bad, headers=AUTH)
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == "invalid_consent"
    nobody = client.put("/api/profiles/user_id:nobody/consent", json=body, headers=AUTH)
    assert nobody.status_code == 404
    assert client.get("/api/profiles/user_id:nobody/consent", headers=AUTH).status_code == 404


def test_read_and_support_tokens_cannot_change_consent(client: TestClient, rt: Runtime) -> None:
    send(client, rt, {"type": "identify", "userId": "lea", "messageId": "l1"})
    body = {"categoryPreferences": {"marketing": True}}
    for role in ("read", "support"):
        _token, secret = rt.admin.add_token("default", f"t-{role}", rt.now_us(), scope=role)
        headers = {"Authorization": f"Bearer {secret}"}
        url = "/api/profiles/user_id:lea/consent"
        assert client.put(url, json=body, headers=headers).status_code == 403
        assert client.get(url, headers=headers).status_code == 200
    audited = rt.audit.query("default", action="consent.get")  # the support read
    assert any(e.profile_id for e in audited)


def test_audiences_read_consent_in_real_time_and_batch(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    body = {"name": "Mailable", "definition": {"query": "trait('consent.marketing') = true"}}
    assert client.put("/api/audiences/mailable", json=body, headers=AUTH).status_code == 200
    now = clock.now()
    send(client, rt, consent("mo", 1, now, marketing=True), consent("ned", 1, now, ads=True))
    # Real time: mo entered, ned did not
    assert client.get("/api/audiences/mailable", headers=AUTH).json()["size"] == 1
    assert traits(client, "user_id:mo")["mailable"] is True
    # A withdrawal takes mo out in real time; a batch recompute agrees
    send(client, rt, consent("mo", 2, now + timedelta(seconds=1), marketing=False))
    assert client.get("/api/audiences/mailable", headers=AUTH).json()["size"] == 0
    recomputed = client.post("/api/audiences/mailable/recompute", headers=AUTH).json()
    assert recomputed == {"size": 0, "entered": 0, "exited": 0}
    send(client, rt, consent("ned", 2, now + timedelta(seconds=1), marketing=True))
    recomputed = client.post("/api/audiences/mailable/recompute", headers=AUTH).json()
    assert recomputed == {"size": 1, "entered": 0, "exited": 0}


def test_a_withdrawal_mid_journey_stops_the_next_send(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    with MailServer() as mail:
        # Given a mail destination serving marketing and a two-mail drip journey
        smtp = {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": mail.port,
                "from": "Shop <shop@example.com>",
                "starttls": False,
                "consent_categories": ["marketing"],
            },
        }
        assert client.put("/api/destinations/mail", json=smtp, headers=AUTH).status_code == 200
        drip = {
            "entry": {"event": 'event = "Signed Up"'},
            "steps": [
                {"key": "day1", "wait": "1 day"},
                {"key": "mail1", "send": {"destination": "mail", "template": {"text": "1"}}},
                {"key": "day2", "wait": "1 day"},
                {"key": "mail2", "send": {"destination": "mail", "template": {"text": "2"}}},
            ],
        }
        assert client.put("/api/journeys/drip", json=drip, headers=AUTH).status_code == 200
        # And pia, who consents, signs up
        ident = {
            "type": "identify",
            "userId": "pia",
            "messageId": "p1",
            "traits": {"email": "pia@example.com"},
            "timestamp": clock.now().isoformat(),
            "context": {"consent": {"categoryPreferences": {"marketing": True}}},
        }
        signup = {
            "type": "track",
            "event": "Signed Up",
            "userId": "pia",
            "messageId": "p2",
            "timestamp": clock.now().isoformat(),
        }
        send(client, rt, ident, signup)
        # When the first day passes, the first mail goes
        clock.advance(24 * 3600 + 1)
        rt.journey_runner.run_until_idle()
        rt.dispatcher.run_until_idle()
        assert len(mail.mails) == 1
        # When she withdraws through the API, mid-journey
        body = {"categoryPreferences": {"marketing": False}}
        answer = client.put("/api/profiles/user_id:pia/consent", json=body, headers=AUTH)
        assert answer.status_code == 202
        rt.processor.run_until_idle()
        # Then the second mail is not sent: suppressed_by_consent
        clock.advance(24 * 3600 + 1)
        rt.journey_runner.run_until_idle()
        rt.dispatcher.run_until_idle()
        assert len(mail.mails) == 1
        statuses = sorted(d["status"] for d in deliveries(client, destination="mail"))
        assert statuses == ["delivered", "suppressed_by_consent"]


def test_set_consent_is_the_shared_use_case(rt: Runtime, client: TestClient) -> None:
    send(client, rt, {"type": "identify", "userId": "quin", "messageId": "q1"})
    message_id = set_consent(
        rt, "default", "user_id:quin", {"email": True}, channel="self-service", actor="customer"
    )
    rt.processor.run_until_idle()
    found = get_consent(rt, "default", "user_id:quin")["categoryPreferences"]
    assert found["email"]["value"] is True and found["email"]["message_id"] == message_id
    profile_id = rt.profiles.find("default", "users", "user_id", "quin")
    [event] = [
        e for e in rt.profiles.events("default", profile_id, limit=5) if e.message_id == message_id
    ]
    assert event.payload["context"]["opencdp"] == {"channel": "self-service", "actor": "customer"}


def test_the_cli_shows_and_sets_consent(client: TestClient, rt: Runtime) -> None:
    from typer.testing import CliRunner

    from opencdp.cli.main import app

    send(client, rt, {"type": "identify", "userId": "rex", "messageId": "r1"})
    options = ["--data-dir", str(rt.settings.data_dir)]
    options += ["--database-url", rt.settings.resolved_database_url()]
    runner = CliRunner()
    args = ["profile", "consent", "user_id:rex", "--set", "marketing=true", "--set", "ads=no"]
    result = runner.invoke(app, [*args, "--json", *options])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert {c: r["value"] for c, r in body["categoryPreferences"].items()} == {
        "ads": False,
        "marketing": True,
    }
    # The worker of this runtime sees the same (the CLI applied it)
    assert get_consent(rt, "default", "user_id:rex")["categoryPreferences"]["ads"]["value"] is False
    shown = runner.invoke(app, ["profile", "consent", "user_id:rex", *options])
    assert shown.exit_code == 0 and "marketing" in shown.output and "opt-in" in shown.output
    bad = runner.invoke(app, ["profile", "consent", "user_id:rex", "--set", "ads", *options])
    assert bad.exit_code == 2 and "CATEGORY=true" in bad.output
    wrong = runner.invoke(app, ["profile", "consent", "user_id:rex", "--set", "1x=true", *options])
    assert wrong.exit_code == 1 and "starts with a digit" in wrong.output


def test_leaving_an_audience_reaches_a_destination_the_profile_does_not_consent_to(
    client: TestClient, rt: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    # Given an ad list synced from the buyers audience, serving marketing
    body = {
        "type": "webhook",
        "settings": {
            "url": receiver.url,
            "allow_http": True,
            "allow_private_targets": True,
            "consent_categories": ["marketing"],
        },
        "subscriptions": [{"name": "buyers", "audience": "buyers", "identify": False}],
    }
    definition = {"definition": {"query": "trait('vip') = true"}}
    send(client, rt, {"type": "identify", "userId": "someone", "traits": {"vip": False}})
    assert client.put("/api/audiences/buyers", json=definition, headers=AUTH).status_code == 200
    answer = client.put("/api/destinations/ads", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    # And ann, who consents, enters it and is on the list
    now = clock.now()
    identify = {"type": "identify", "userId": "ann", "traits": {"vip": True}}
    send(client, rt, consent("ann", 1, now, marketing=True), {**identify, "messageId": "i1"})
    rt.dispatcher.run_until_idle()
    assert [r.json()["event"] for r in receiver.requests] == ["Audience Entered"]
    # When she withdraws and then leaves the audience
    later = now + timedelta(minutes=1)
    send(client, rt, consent("ann", 2, later, marketing=False))
    demoted = {**identify, "traits": {"vip": False}, "messageId": "i2"}
    send(client, rt, {**demoted, "timestamp": (later + timedelta(minutes=1)).isoformat()})
    rt.dispatcher.run_until_idle()
    # Then the list is told to drop her (a removal serves her withdrawal), and nothing else
    assert [r.json()["event"] for r in receiver.requests] == ["Audience Entered", "Audience Exited"]
    assert deliveries(client, destination="ads", status="suppressed_by_consent") == []


def test_a_workspace_plan_that_blocks_unplanned_events_does_not_block_the_consent_api(
    client: TestClient, rt: Runtime
) -> None:
    # Given a workspace-wide plan that blocks every event it does not list
    plan = {"name": "Strict", "rules": [{"type": "TRACK", "key": "Order Completed"}]}
    assert client.put("/api/tracking-plans/strict", json=plan, headers=AUTH).status_code == 200
    enforce = {"trackingPlanId": "strict", "settings": {"track": {"allowUnplannedEvents": False}}}
    answer = client.put("/api/workspaces/default/schema-settings", json=enforce, headers=AUTH)
    assert answer.status_code == 200, answer.text
    send(client, rt, order("ann"))
    assert send(client, rt, consent("ann", 1, rt.clock.now(), marketing=True))["quarantined"] == 1
    # When consent is set through the API (OpenCDP's own source: no plan applies to it)
    answer = client.put(
        "/api/profiles/user_id:ann/consent",
        json={"categoryPreferences": {"marketing": True}},
        headers=AUTH,
    )
    assert answer.status_code == 202, answer.text
    rt.processor.run_until_idle()
    # Then it is stored
    assert traits(client, "user_id:ann")["consent.marketing"] is True
    # And nobody can name a source of theirs after OpenCDP's to slip past a plan
    answer = client.post("/api/sources", json={"name": "opencdp"}, headers=AUTH)
    assert answer.status_code in (400, 404, 405), answer.text
