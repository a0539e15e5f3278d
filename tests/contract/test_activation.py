"""Activation on both backends, through the HTTP API, the worker and the dispatcher, to a
real webhook receiver on loopback: subscriptions with FQL conditions and Actions mappings,
Standard Webhooks signatures, retries by the injected clock, dead letters and replay, order
per profile, membership events, and the 400s bad configuration gets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from opencdp.activate.signing import new_secret
from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.receiver import Answer, Receiver

#: The orders' timestamp: when the module was imported, at or before each test's clock.
START = datetime.now(UTC).replace(microsecond=0)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def webhook(receiver: Receiver, secret: str, **settings: Any) -> dict[str, Any]:
    return {
        "url": receiver.url,
        "secret": secret,
        "allow_http": True,
        "allow_private_targets": True,
        "retry": {"initial_backoff": "1 second", "max_age": "7 days"},
        **settings,
    }


ORDERS = {
    "name": "orders",
    "condition": 'type = "track" and event = "Order Completed"',
    "mapping": {
        "order": {"@path": "$.properties.order_id"},
        "total": {"@path": "$.properties.revenue"},
        "customer": {"@path": "$.userId"},
    },
}


def order(user: str, n: int, revenue: float = 10.0) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": START.isoformat(),
        "properties": {"order_id": f"{user}-{n}", "revenue": revenue},
    }


def send(client: TestClient, rt: Runtime, *events: dict[str, Any]) -> None:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()


def put(client: TestClient, destination: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.put(f"/api/destinations/{destination}", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def deliveries(client: TestClient, **params: str) -> list[dict[str, Any]]:
    answer = client.get("/api/deliveries", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def test_subscribed_events_arrive_mapped_and_signed(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    # Given a webhook destination subscribed to orders, with a mapping and a secret
    secret = new_secret()
    view = put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, secret), "subscriptions": [ORDERS]},
    )
    assert view["settings"]["secret"] == "********" and view["health"] == "ok"
    # When a customer orders twice and browses once
    page = {"type": "page", "name": "Home", "userId": "ann", "messageId": "ann-page"}
    send(client, rt, order("ann", 1, 120.0), page, order("ann", 2, 30.5))
    assert [d["status"] for d in deliveries(client, destination="erp")] == ["pending", "pending"]
    rt.dispatcher.run_until_idle()
    # Then the receiver got the two orders, shaped by the mapping, each verifiable
    assert receiver.bodies() == [
        {"order": "ann-1", "total": 120.0, "customer": "ann"},
        {"order": "ann-2", "total": 30.5, "customer": "ann"},
    ]
    for got in receiver.requests:
        Webhook(secret).verify(got.body, got.headers, json_parse=False)
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("OpenCDP/")
    listed = deliveries(client, destination="erp", status="delivered")
    assert [d["id"] for d in listed] == [r.headers["webhook-id"] for r in receiver.requests]
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in listed)
    shown = client.get("/api/destinations/erp", headers=AUTH).json()
    assert shown["deliveries"]["delivered"] == 2 and shown["deliveries"]["pending"] == 0


def test_a_receiver_down_for_a_day_gets_everything_once_it_recovers(
    client: TestClient, rt: Runtime, receiver: Receiver, clock: FrozenClock
) -> None:
    put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, new_secret()), "subscriptions": [ORDERS]},
    )
    down = {"on": True}
    receiver.answer = lambda _r: Answer(503) if down["on"] else Answer(200)
    send(client, rt, *(order(u, n) for u in ("ann", "bob") for n in (1, 2, 3)))
    # a day of failed attempts, the clock moving an hour at a time
    for _ in range(24):
        rt.dispatcher.run_until_idle()
        clock.advance(3600)
    statuses = {d["message_id"]: d["status"] for d in deliveries(client, destination="erp")}
    assert {statuses["ann-1"], statuses["bob-1"]} == {"retrying"}
    assert {statuses[f"{u}-{n}"] for u in ("ann", "bob") for n in (2, 3)} == {"pending"}
    failed = len(receiver.requests)
    # only the head of each profile's queue was tried: later orders wait behind it
    assert {r.json()["order"] for r in receiver.requests} == {"ann-1", "bob-1"}
    down["on"] = False
    clock.advance(6 * 3600)  # the next attempt is due by now
    rt.dispatcher.run_until_idle()
    got = receiver.requests[failed:]
    assert sorted(r.json()["order"] for r in got) == sorted(
        f"{u}-{n}" for u in ("ann", "bob") for n in (1, 2, 3)
    )
    for user in ("ann", "bob"):  # in order per profile
        assert [r.json()["order"] for r in got if r.json()["customer"] == user] == [
            f"{user}-{n}" for n in (1, 2, 3)
        ]
    # every retry carried the same id: the receiver de-duplicates on it
    ids = {r.json()["order"]: set() for r in receiver.requests}
    for r in receiver.requests:
        ids[r.json()["order"]].add(r.headers["webhook-id"])
    assert all(len(v) == 1 for v in ids.values())
    assert {d["status"] for d in deliveries(client, destination="erp")} == {"delivered"}


def test_a_refused_delivery_is_a_dead_letter_replayed_after_a_fix(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, new_secret()), "subscriptions": [ORDERS]},
    )
    receiver.answer = lambda _r: Answer(422, body=b'{"error": "unknown customer"}')
    send(client, rt, order("ann", 1))
    rt.dispatcher.run_until_idle()
    [dead] = deliveries(client, destination="erp", status="dead")
    assert (dead["attempts"], dead["last_status_code"]) == (1, 422)
    shown = client.get(f"/api/deliveries/{dead['id']}", headers=AUTH).json()["data"][0]
    assert shown["last_response"]["body"] == '{"error": "unknown customer"}'
    assert (
        shown["last_request"]["url"] == receiver.url
        and "webhook-signature" not in shown["last_request"]["headers"]
    )
    receiver.answer = lambda _r: Answer(200)
    answer = client.post(
        "/api/deliveries/replay", json={"destination": "erp", "status": "dead"}, headers=AUTH
    )
    assert answer.json() == {"replayed": 1}
    rt.dispatcher.run_until_idle()
    [delivered] = deliveries(client, destination="erp", status="delivered")
    assert delivered["id"] == dead["id"]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [dead["id"], dead["id"]]


def test_gone_disables_the_destination(client: TestClient, rt: Runtime, receiver: Receiver) -> None:
    put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, new_secret()), "subscriptions": [ORDERS]},
    )
    receiver.answer = lambda _r: Answer(410)
    send(client, rt, order("ann", 1), order("bob", 1))
    rt.dispatcher.run_until_idle()
    shown = client.get("/api/destinations/erp", headers=AUTH).json()
    assert (shown["enabled"], shown["health"]) == (False, "gone")
    assert len(receiver.requests) == 1  # the other waits until the destination is enabled


def test_batches_and_membership_events(client: TestClient, rt: Runtime, receiver: Receiver) -> None:
    audience = {
        "name": "audiences",
        "condition": 'event = "Audience Entered" or event = "Audience Exited"',
    }
    put(
        client,
        "crm",
        {
            "type": "webhook",
            "settings": webhook(receiver, new_secret(), batch_size=50),
            "subscriptions": [audience],
        },
    )
    body = {"definition": {"type": "USERS", "query": "event('Order Completed').count() >= 2"}}
    assert client.put("/api/audiences/repeat_buyers", json=body, headers=AUTH).status_code == 200
    send(
        client,
        rt,
        order("ann", 1),
        order("ann", 2),
        order("bob", 1),
        order("cyd", 1),
        order("cyd", 2),
    )
    rt.dispatcher.run_until_idle()
    [request] = receiver.requests  # one batch
    entered = request.json()
    assert sorted(e["properties"]["audience_key"] for e in entered) == [
        "repeat_buyers",
        "repeat_buyers",
    ]
    assert {e["event"] for e in entered} == {"Audience Entered"}


def test_mask_keeps_the_stored_secret_and_test_sends_one_sample(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    secret = new_secret()
    put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, secret), "subscriptions": [ORDERS]},
    )
    shown = client.get("/api/destinations/erp", headers=AUTH).json()
    put(
        client, "erp", {"type": "webhook", "settings": shown["settings"], "subscriptions": [ORDERS]}
    )
    answer = client.post("/api/destinations/erp/test", headers=AUTH)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["verdict"], result["status"]) == ("delivered", 200)
    [got] = receiver.requests
    Webhook(secret).verify(got.body, got.headers, json_parse=False)  # the secret survived
    assert got.json() == {"order": "test-order", "total": 42.5, "customer": "test-user"}
    assert deliveries(client) == []  # a test is not a delivery


@pytest.mark.parametrize(
    "body, code, names",
    [
        ({"type": "carrier-pigeon"}, "unknown_destination_type", "webhook"),
        ({"type": "webhook", "settings": {"url": "ftp://x"}}, "invalid_settings", "settings.url"),
        (
            {"type": "webhook", "settings": {"url": "http://example.com/h"}},
            "invalid_settings",
            "allow_http",
        ),
        (
            {"type": "webhook", "settings": {"url": "https://127.0.0.1/h"}},
            "invalid_settings",
            "allow_private_targets",
        ),
        (
            {"type": "webhook", "settings": {"url": "https://example.com/h", "secret": "nope"}},
            "invalid_settings",
            "settings.secret",
        ),
        (
            {
                "type": "webhook",
                "settings": {"url": "https://example.com/h", "headers": {"webhook-id": "x"}},
            },
            "invalid_settings",
            "webhook-id",
        ),
        (
            {
                "type": "webhook",
                "settings": {"url": "https://example.com/h", "retry": {"max_age": "forever"}},
            },
            "invalid_settings",
            "settings.retry.max_age",
        ),
        (
            {"type": "webhook", "settings": {"url": "https://example.com/h", "colour": "red"}},
            "invalid_settings",
            "settings.colour",
        ),
        (
            {
                "type": "webhook",
                "settings": {"url": "https://example.com/h"},
                "subscriptions": [{"name": "a", "condition": 'event = "x" and'}],
            },
            "invalid_condition",
            "subscriptions[0].condition",
        ),
        (
            {
                "type": "webhook",
                "settings": {"url": "https://example.com/h"},
                "subscriptions": [{"name": "a", "mapping": {"x": {"@pth": "$.a"}}}],
            },
            "invalid_mapping",
            "subscriptions[0].mapping",
        ),
        (
            {
                "type": "webhook",
                "settings": {"url": "https://example.com/h"},
                "subscriptions": [{"name": "a"}, {"name": "a"}],
            },
            "invalid_subscriptions",
            "used twice",
        ),
    ],
)
def test_bad_configuration_is_refused_before_anything_is_stored(
    client: TestClient, body: dict[str, Any], code: str, names: str
) -> None:
    answer = client.put("/api/destinations/erp", json=body, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == code and names in error["message"], error
    assert client.get("/api/destinations/erp", headers=AUTH).status_code == 404


def test_a_contact_created_once_is_announced_once(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    created = {"name": "new-customers", "condition": 'event = "Contact Created"'}
    put(
        client,
        "hybris",
        {
            "type": "webhook",
            "settings": webhook(receiver, new_secret()),
            "subscriptions": [created],
        },
    )
    body = {
        "identifiers": {"email": "noor@example.com", "user_id": "noor"},
        "traits": {"first_name": "Noor"},
    }
    first = client.post("/api/contacts", json=body, headers=AUTH)
    again = client.post("/api/contacts", json=body, headers=AUTH)
    assert (first.status_code, again.status_code) == (201, 200)
    rt.dispatcher.run_until_idle()
    [announced] = receiver.bodies()
    assert announced["event"] == "Contact Created" and announced["userId"] == "noor"
    assert announced["properties"]["profile_id"] == first.json()["profile_id"]
    assert announced["properties"]["traits"] == {"first_name": "Noor", "email": "noor@example.com"}
    assert {(i["type"], i["id"]) for i in announced["properties"]["identifiers"]} == {
        ("email", "noor@example.com"),
        ("user_id", "noor"),
    }


def test_an_audience_subscription_gets_segments_messages_and_a_backfill(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    # Given an audience with one member before the destination exists
    query = "event('Order Completed').count() >= 2 AND event('Order Refunded').count() = 0"
    body = {"definition": {"type": "USERS", "query": query}}
    assert client.put("/api/audiences/repeat_buyers", json=body, headers=AUTH).status_code == 200
    ann = {
        "type": "identify",
        "userId": "ann",
        "traits": {"email": "ann@example.com"},
        "messageId": "ann-id",
    }
    send(client, rt, ann, order("ann", 1), order("ann", 2))
    # When a destination subscribes to the audience (identify and track)
    sync = {"name": "sync", "audience": "repeat_buyers"}
    put(
        client,
        "crm",
        {
            "type": "webhook",
            "settings": webhook(receiver, new_secret(), batch_size=10),
            "subscriptions": [sync],
        },
    )
    rt.dispatcher.run_until_idle()
    # Then the current member arrives as an entry, in Segment's shapes
    backfill = [m for r in receiver.requests for m in r.json()]
    by_type = {m["type"]: m for m in backfill}
    assert set(by_type) == {"identify", "track"} and len(backfill) == 2
    identify, track = by_type["identify"], by_type["track"]
    assert identify["userId"] == "ann" and identify["traits"] == {
        "repeat_buyers": True,
        "email": "ann@example.com",
    }
    assert track["event"] == "Audience Entered"
    assert track["properties"] == {"audience_key": "repeat_buyers", "repeat_buyers": True}
    assert track["context"]["traits"] == {"email": "ann@example.com"}
    personas = track["context"]["personas"]
    assert (personas["computation_class"], personas["computation_key"], personas["space_id"]) == (
        "audience",
        "repeat_buyers",
        "default",
    )
    assert track["integrations"] == {"All": False, "crm": True}
    # and then joiners and leavers as they change, nothing for the others
    done = len(receiver.requests)
    send(client, rt, order("bob", 1), order("bob", 2), order("cyd", 1))
    refund = {
        "type": "track",
        "event": "Order Refunded",
        "userId": "ann",
        "messageId": "ann-refund",
    }
    send(client, rt, refund)
    rt.dispatcher.run_until_idle()
    later = [m for r in receiver.requests[done:] for m in r.json()]
    changes = sorted(
        (
            m.get("userId"),
            m["type"],
            m.get("event"),
            (m.get("traits") or m["properties"])["repeat_buyers"],
        )
        for m in later
    )
    assert changes == [
        ("ann", "identify", None, False),
        ("ann", "track", "Audience Exited", False),
        ("bob", "identify", None, True),
        ("bob", "track", "Audience Entered", True),
    ]
    # Putting the same subscription again sends no second backfill
    put(
        client,
        "crm",
        {
            "type": "webhook",
            "settings": webhook(receiver, new_secret(), batch_size=10),
            "subscriptions": [sync],
        },
    )
    assert deliveries(client, status="pending") == []


def test_an_audience_subscription_names_an_existing_audience(client: TestClient) -> None:
    body = {
        "type": "webhook",
        "settings": {"url": "https://example.com/h"},
        "subscriptions": [{"name": "s", "audience": "nope"}],
    }
    answer = client.put("/api/destinations/crm", json=body, headers=AUTH)
    assert answer.status_code == 400 and "no audience 'nope'" in answer.json()["message"]


def test_a_sender_cannot_fake_audience_membership(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    body = {"definition": {"type": "USERS", "query": "event('Order Completed').count() >= 1"}}
    assert client.put("/api/audiences/buyers", json=body, headers=AUTH).status_code == 200
    sync = {"name": "sync", "audience": "buyers"}
    put(
        client,
        "ads",
        {"type": "webhook", "settings": webhook(receiver, new_secret()), "subscriptions": [sync]},
    )
    fake = {
        "type": "track",
        "event": "Audience Exited",
        "userId": "eve",
        "messageId": "x" * 100,
        "properties": {"audience_key": "buyers"},
    }
    send(client, rt, fake)
    rt.dispatcher.run_until_idle()
    assert receiver.requests == [] and deliveries(client) == []


def test_a_receiver_asking_for_a_huge_wait_is_retried_not_stuck(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    put(
        client,
        "erp",
        {"type": "webhook", "settings": webhook(receiver, new_secret()), "subscriptions": [ORDERS]},
    )
    receiver.answer = lambda _r: Answer(503, headers={"Retry-After": "99999999999999"})
    send(client, rt, order("ann", 1))
    rt.dispatcher.run_until_idle()
    [d] = deliveries(client, destination="erp")
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("retrying", 1, 503)


def test_header_values_are_secrets(client: TestClient, rt: Runtime, receiver: Receiver) -> None:
    settings = webhook(receiver, new_secret(), headers={"Authorization": "Bearer s3cret"})
    put(client, "erp", {"type": "webhook", "settings": settings, "subscriptions": [ORDERS]})
    shown = client.get("/api/destinations/erp", headers=AUTH).json()
    assert shown["settings"]["headers"] == {"Authorization": "********"}
    assert "s3cret" not in str(shown)
    put(
        client, "erp", {"type": "webhook", "settings": shown["settings"], "subscriptions": [ORDERS]}
    )
    receiver.answer = lambda _r: Answer(400)
    send(client, rt, order("ann", 1))
    rt.dispatcher.run_until_idle()
    assert receiver.requests[0].headers["authorization"] == "Bearer s3cret"  # kept across the PUT
    [dead] = deliveries(client, destination="erp", status="dead")
    record = client.get(f"/api/deliveries/{dead['id']}", headers=AUTH).json()["data"][0]
    assert "s3cret" not in str(record["last_request"])
