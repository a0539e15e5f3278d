"""Journeys on both backends, through the HTTP API, the worker's batch listener, the durable
timers and the dispatcher, to a real SMTP server on loopback: the abandoned-cart and welcome
presets, waits that a moved clock (never a sleep) ends, exits, splits, re-entry, per-step
counts, crash safety of the timers, and the 400s bad definitions get."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings
from tests.support.mail import MailServer

START = datetime.now(UTC).replace(microsecond=0)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = 3600.0


def smtp(client: TestClient, server: MailServer, destination: str = "mail") -> None:
    body = {
        "type": "smtp",
        "settings": {
            "host": "127.0.0.1",
            "port": server.port,
            "from": "Shop <shop@example.com>",
            "starttls": False,
        },
    }
    answer = client.put(f"/api/destinations/{destination}", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text


def journey(client: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.put(f"/api/journeys/{key}", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def figures(client: TestClient, key: str) -> dict[str, Any]:
    answer = client.get(f"/api/journeys/{key}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def track(user: str, event: str, n: int, clock: FrozenClock, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"{user}-{event}-{n}",
        "timestamp": clock.now().isoformat(),
        "properties": properties,
    }


def identify(user: str, n: int, clock: FrozenClock, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-identify-{n}",
        "timestamp": clock.now().isoformat(),
        "traits": traits,
    }


def send(client: TestClient, rt: Runtime, *events: dict[str, Any]) -> None:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()


def later(rt: Runtime, clock: FrozenClock, seconds: float) -> int:
    """Move the clock, let the timers and the dispatcher do what is due."""
    clock.advance(seconds)
    moved = rt.journey_runner.run_until_idle()
    rt.dispatcher.run_until_idle()
    return moved


def cart_preset(wait: str = "1 hour") -> dict[str, Any]:
    return {"preset": "abandoned-cart", "settings": {"wait": wait, "destination": "mail"}}


def test_abandoned_cart_mails_the_cart_after_the_wait_and_an_order_cancels_it(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    # Given an SMTP destination and the abandoned-cart preset with a one-hour wait
    smtp(client, mail)
    view = journey(client, "abandoned-cart", cart_preset())
    assert view["state"] == "active" and [s["key"] for s in view["steps"]] == [
        "wait_for_order",
        "reminder",
    ]
    # When ann adds two products (one twice) and bob adds one and then orders
    send(
        client,
        rt,
        identify("ann", 1, clock, email="ann@example.com", first_name="Ann"),
        identify("bob", 1, clock, email="bob@example.com"),
        track(
            "ann",
            "Product Added",
            1,
            clock,
            cart_id="c1",
            product_id="p1",
            name="Trail shoe",
            price=89.9,
            currency="EUR",
            quantity=1,
        ),
        track("bob", "Product Added", 1, clock, cart_id="c2", product_id="p9", name="Yoga mat"),
    )
    clock.advance(600)
    send(
        client,
        rt,
        track(
            "ann",
            "Product Added",
            2,
            clock,
            cart_id="c1",
            product_id="p2",
            name="Rain jacket",
            price=120,
            currency="EUR",
        ),
        track("ann", "Product Added", 3, clock, cart_id="c1", product_id="p1", name="Trail shoe"),
        track("bob", "Order Completed", 1, clock, order_id="o1", revenue=25),
    )
    # Then nothing is sent before the hour (the second add restarted ann's wait)
    assert later(rt, clock, 3000) == 0 and mail.mails == []
    # And after the hour ann gets one e-mail listing both products once each; bob nothing
    later(rt, clock, 700)
    assert len(mail.mails) == 1
    sent = mail.mails[0]
    assert sent.rcpt_tos == ["ann@example.com"]
    text = sent.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hello Ann" in text
    assert text.count("Trail shoe") == 1 and "Rain jacket" in text and "Yoga mat" not in text
    html = sent.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<li>Rain jacket" in html
    # And the figures say so
    f = figures(client, "abandoned-cart")
    assert (f["entered"], f["completed"], f["exited"], f["active"]) == (2, 1, 1, 0)
    assert f["exit_reasons"] == {"exit: ordered": 1}
    assert {s["key"]: s["reached"] for s in f["steps"]} == {"wait_for_order": 2, "reminder": 1}
    # And a later moment sends nothing again
    later(rt, clock, 10 * HOUR)
    assert len(mail.mails) == 1


def test_a_checkout_lists_its_products_and_html_is_escaped(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "cart", cart_preset("30 minutes"))
    products = [
        {"product_id": "p1", "name": "<b>Bold</b> tee", "price": 10, "quantity": 2},
        {"product_id": "p2", "name": "Socks", "price": 5},
    ]
    send(
        client,
        rt,
        identify("cy", 1, clock, email="cy@example.com"),
        track("cy", "Checkout Started", 1, clock, order_id="o7", products=products),
    )
    later(rt, clock, 1801)
    (sent,) = mail.mails
    html = sent.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;b&gt;Bold&lt;/b&gt; tee &times; 2" in html and "Socks" in html
    text = sent.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "- <b>Bold</b> tee x 2: 10" in text


def test_welcome_goes_once_to_new_profiles_with_an_email_and_never_for_imported_history(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    # Given an old customer, known before the journey existed
    send(client, rt, identify("old", 1, clock, email="old@example.com"))
    smtp(client, mail)
    journey(client, "welcome", {"preset": "welcome", "settings": {"destination": "mail"}})
    # When a new customer identifies (twice), the old one identifies again, an anonymous
    # visitor signs up, and a week-old identify of a new profile arrives (history)
    old_stamp = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
    history = identify("past", 1, clock, email="past@example.com") | {"timestamp": old_stamp}
    send(
        client,
        rt,
        identify("new", 1, clock, email="new@example.com", first_name="Nia"),
        identify("new", 2, clock, email="new@example.com", plan="gold"),
        identify("old", 2, clock, email="old@example.com"),
        history,
    )
    signup = {
        "type": "track",
        "event": "Signed Up",
        "anonymousId": "anon-1",
        "messageId": "signup-1",
        "timestamp": clock.now().isoformat(),
        "context": {"traits": {"email": "sam@example.com"}},
    }
    send(client, rt, signup)
    rt.dispatcher.run_until_idle()
    # Then exactly the new customer and the sign-up are welcomed, once each
    assert sorted(m.rcpt_tos[0] for m in mail.mails) == ["new@example.com", "sam@example.com"]
    nia = next(m for m in mail.mails if m.rcpt_tos == ["new@example.com"])
    assert nia.message["Subject"] == "Welcome, Nia"
    send(client, rt, track("new", "Signed Up", 1, clock))
    rt.dispatcher.run_until_idle()
    assert len(mail.mails) == 2
    assert figures(client, "welcome")["completed"] == 2


def test_a_contact_api_customer_is_welcomed_once(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "welcome", {"preset": "welcome", "settings": {"destination": "mail"}})
    body = {"identifiers": {"email": "till@example.com"}, "traits": {"first_name": "Till"}}
    for _ in range(2):
        answer = client.post("/api/contacts", json=body, headers=AUTH)
        assert answer.status_code in (200, 201), answer.text
    rt.dispatcher.run_until_idle()
    assert [m.rcpt_tos for m in mail.mails] == [["till@example.com"]]


SPLIT = {
    "name": "VIP follow-up",
    "entry": {"event": 'event = "Order Completed"'},
    "reentry": {"after": "1 day"},
    "steps": [
        {"key": "pause", "wait": "2 hours"},
        {
            "key": "is_vip",
            "split": {"condition": "traits.tier = 'gold'", "then": "vip_mail", "else": "end"},
        },
        {
            "key": "vip_mail",
            "send": {
                "destination": "mail",
                "event_name": "VIP Thanks",
                "template": {
                    "subject": "Thanks for order {{ properties.journey_context['Order Completed']"
                    ".order_id }}",
                    "text": "Dear {{ context.traits.tier }} member",
                },
            },
        },
    ],
}


def test_wait_then_split_on_traits_then_send_and_reentry_after_a_day(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "vip", SPLIT)
    send(
        client,
        rt,
        identify("gil", 1, clock, email="gil@example.com", tier="silver"),
        identify("ida", 1, clock, email="ida@example.com", tier="silver"),
        track("gil", "Order Completed", 1, clock, order_id="g1"),
        track("ida", "Order Completed", 1, clock, order_id="i1"),
    )
    # While they wait, gil becomes gold: the split reads the profile when it is reached
    send(client, rt, identify("gil", 2, clock, tier="gold"))
    assert later(rt, clock, HOUR) == 0
    later(rt, clock, HOUR)
    (sent,) = mail.mails
    assert sent.rcpt_tos == ["gil@example.com"] and sent.message["Subject"] == "Thanks for order g1"
    f = figures(client, "vip")
    assert {s["key"]: s["reached"] for s in f["steps"]} == {"pause": 2, "is_vip": 2, "vip_mail": 1}
    # Re-entry: another order within the day starts nothing; after it, a new instance
    send(client, rt, track("gil", "Order Completed", 2, clock, order_id="g2"))
    assert figures(client, "vip")["entered"] == 2
    clock.advance(25 * HOUR)
    send(client, rt, track("gil", "Order Completed", 3, clock, order_id="g3"))
    assert figures(client, "vip")["entered"] == 3


def test_timers_survive_a_restart_and_a_clock_jump_fires_each_step_once(
    tmp_path: Path, database_url: str | None, clock: FrozenClock, mail: MailServer
) -> None:
    # Given a journey with two waits and a send after each, on a runtime that then goes away
    settings = make_settings(tmp_path, database_url)
    first = Runtime(settings, clock)
    with TestClient(create_app(first, start_worker=False)) as c:
        smtp(c, mail)
        journey(
            c,
            "drip",
            {
                "entry": {"event": 'event = "Signed Up"'},
                "steps": [
                    {"key": "day1", "wait": "1 day"},
                    {"key": "mail1", "send": {"destination": "mail", "template": {"text": "1"}}},
                    {"key": "day2", "wait": "1 day"},
                    {"key": "mail2", "send": {"destination": "mail", "template": {"text": "2"}}},
                ],
            },
        )
        send(c, first, identify("dee", 1, clock, email="dee@example.com"))
        send(c, first, track("dee", "Signed Up", 1, clock))
    first.close()
    # When a new runtime starts and the clock jumps three days
    second = Runtime(settings, clock)
    try:
        clock.advance(3 * 24 * HOUR)
        moved = second.journey_runner.run_until_idle()
        assert second.journey_runner.run_until_idle() == 0  # nothing due twice
        second.dispatcher.run_until_idle()
    finally:
        second.close()
    # Then both mails went, once each (the second wait starts when the first ends: both due)
    assert moved == 2
    assert sorted(m.message.get_body(("plain",)).get_content().strip() for m in mail.mails) == [  # type: ignore[union-attr]
        "1",
        "2",
    ]


def test_a_crash_inside_the_timer_transaction_repeats_the_move_without_doubling(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "cart", cart_preset())
    send(
        client,
        rt,
        identify("eve", 1, clock, email="eve@example.com"),
        track("eve", "Product Added", 1, clock, cart_id="x", name="Cap"),
    )
    clock.advance(HOUR + 1)
    # Given the outbox write fails once, inside the transaction that moves the timer
    enqueue = rt.outbox.enqueue
    calls = {"n": 0}

    def failing(conn: Any, rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash")
        enqueue(conn, rows)

    rt.outbox.enqueue = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        rt.journey_runner.run_due()
    # Then the instance is still due, and the next round sends exactly one mail
    assert figures(client, "cart")["active"] == 1
    assert rt.journey_runner.run_until_idle() == 1
    rt.journey_runner.run_until_idle()
    rt.dispatcher.run_until_idle()
    assert len(mail.mails) == 1


def test_pause_stops_entries_but_not_instances_under_way(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "cart", cart_preset())
    send(client, rt, identify("fay", 1, clock, email="fay@example.com"))
    send(client, rt, track("fay", "Product Added", 1, clock, cart_id="a", name="Hat"))
    assert client.post("/api/journeys/cart/pause", headers=AUTH).json()["state"] == "paused"
    send(client, rt, track("fay", "Product Added", 2, clock, cart_id="b", name="Scarf"))
    later(rt, clock, HOUR + 1)
    assert len(mail.mails) == 1 and figures(client, "cart")["entered"] == 1
    assert client.post("/api/journeys/cart/resume", headers=AUTH).json()["state"] == "active"


def test_instances_follow_a_merge_of_their_profile(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "cart", cart_preset())
    # An anonymous visitor fills a cart, then logs in as a known customer
    added = {
        "type": "track",
        "event": "Product Added",
        "anonymousId": "visitor-9",
        "messageId": "v9-add",
        "timestamp": clock.now().isoformat(),
        "properties": {"cart_id": "k", "name": "Gloves"},
    }
    send(client, rt, identify("gus", 1, clock, email="gus@example.com"), added)
    login = identify("gus", 2, clock) | {"anonymousId": "visitor-9"}
    send(client, rt, login)
    # Then the order of the known customer ends the cart started anonymously
    send(client, rt, track("gus", "Order Completed", 1, clock, order_id="o"))
    later(rt, clock, 2 * HOUR)
    assert mail.mails == []
    assert figures(client, "cart")["exited"] == 1


def test_instances_api_lists_where_each_instance_is(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    smtp(client, mail)
    journey(client, "cart", cart_preset())
    send(client, rt, track("hal", "Product Added", 1, clock, cart_id="z", name="Bag"))
    answer = client.get("/api/journeys/cart/instances", params={"status": "active"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    (inst,) = answer.json()["data"]
    assert inst["step"] == "wait_for_order" and inst["identifier"] == "z"
    assert inst["events"] == ["Product Added"]
    assert inst["wakes_at"].startswith((clock.now() + timedelta(hours=1)).isoformat()[:13])
    bad = client.get("/api/journeys/cart/instances", params={"status": "x"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_status"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preset": "nope", "settings": {}}, "preset"),
        ({"preset": "abandoned-cart", "settings": {}}, "settings.destination"),
        (
            {"preset": "abandoned-cart", "settings": {"destination": "ghost"}},
            "settings.destination",
        ),
        (
            {"preset": "abandoned-cart", "settings": {"destination": "mail", "wait": "soon"}},
            "settings.wait",
        ),
        ({"entry": {"event": "event = "}, "steps": [{"key": "a", "end": True}]}, "entry.event"),
        ({"entry": {"event": "type = 'track'"}, "steps": []}, "steps"),
        (
            {"entry": {"event": "type = 'track'"}, "steps": [{"key": "a", "wait": "forever"}]},
            "steps.0.wait",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "steps": [
                    {"key": "a", "wait": "1 hour"},
                    {"key": "b", "split": {"condition": "true", "then": "a"}},
                ],
            },
            "steps.1.split.then",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "steps": [{"key": "a", "wait": "1 hour", "send": {"destination": "mail"}}],
            },
            "steps.0",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "steps": [
                    {"key": "a", "send": {"destination": "mail", "template": {"text": "{% if"}}}
                ],
            },
            "steps.0.send.template",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "steps": [{"key": "a", "send": {"destination": "hook", "template": {"text": "x"}}}],
            },
            "steps.0.send.template",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "reentry": "sometimes",
                "steps": [{"key": "a", "end": True}],
            },
            "reentry",
        ),
        (
            {
                "entry": {"event": "type = 'track'", "audience": "vip"},
                "steps": [{"key": "a", "end": True}],
            },
            "entry",
        ),
        (
            {
                "entry": {"event": "type = 'track'"},
                "colour": "red",
                "steps": [{"key": "a", "end": True}],
            },
            "colour",
        ),
    ],
)
def test_bad_journeys_get_a_400_naming_the_field(
    client: TestClient, mail: MailServer, body: dict[str, Any], field: str
) -> None:
    smtp(client, mail)
    hook = {"type": "file", "settings": {"directory": "/tmp/opencdp-test-never-written"}}
    assert client.put("/api/destinations/hook", json=hook, headers=AUTH).status_code == 200
    answer = client.put("/api/journeys/j", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == "invalid_journey", error
    assert error["message"].startswith(field), error["message"]
    assert client.get("/api/journeys/j", headers=AUTH).status_code == 404


def test_journey_sends_without_a_template_carry_segments_journey_shape(
    client: TestClient, rt: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    out = tmp_path / "drops"
    out.mkdir()
    body = {"type": "file", "settings": {"directory": str(out), "format": "jsonl"}}
    assert client.put("/api/destinations/drop", json=body, headers=AUTH).status_code == 200
    journey(
        client,
        "notify",
        {
            "entry": {"event": 'event = "Signed Up"'},
            "steps": [{"key": "tell", "send": {"destination": "drop", "event_name": "Told"}}],
        },
    )
    send(client, rt, identify("ivy", 1, clock, email="ivy@example.com"))
    send(client, rt, track("ivy", "Signed Up", 1, clock, plan="pro"))
    rt.dispatcher.run_until_idle()
    (line,) = [
        orjson.loads(x) for f in sorted(out.glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    assert line["type"] == "track" and line["event"] == "Told" and line["userId"] == "ivy"
    assert line["context"]["traits"]["email"] == "ivy@example.com"
    assert line["context"]["personas"]["computation_class"] == "journey_step"
    assert line["properties"]["journey_context"]["Signed Up"] == {"plan": "pro"}
    assert line["properties"]["journey_metadata"]["journey_id"] == "notify"


def test_entering_an_audience_starts_a_journey_and_a_tracked_fake_does_not(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    # Given an audience of repeat buyers and a journey its entries start
    body = {"definition": {"type": "USERS", "query": "event('Order Completed').count() >= 2"}}
    assert client.put("/api/audiences/repeat", json=body, headers=AUTH).status_code == 200
    smtp(client, mail)
    journey(
        client,
        "thanks",
        {
            "entry": {"audience": "repeat"},
            "reentry": "once",
            "steps": [
                {
                    "key": "mail",
                    "send": {
                        "destination": "mail",
                        "template": {"subject": "Thank you for coming back", "text": "Thanks!"},
                    },
                }
            ],
        },
    )
    # When kim orders twice, and lee tracks a fake "Audience Entered" himself
    fake = track("lee", "Audience Entered", 1, clock, audience_key="repeat", repeat=True)
    send(
        client,
        rt,
        identify("kim", 1, clock, email="kim@example.com"),
        identify("lee", 1, clock, email="lee@example.com"),
        track("kim", "Order Completed", 1, clock, order_id="k1"),
        track("kim", "Order Completed", 2, clock, order_id="k2"),
        fake,
    )
    rt.dispatcher.run_until_idle()
    # Then kim (who entered the audience) is thanked, once; lee is not
    assert [m.rcpt_tos for m in mail.mails] == [["kim@example.com"]]
    assert mail.mails[0].message["Subject"] == "Thank you for coming back"
    f = figures(client, "thanks")
    assert (f["entered"], f["completed"]) == (1, 1)


def test_the_demos_journeys_mail_into_its_mailbox(
    client: TestClient, rt: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    from opencdp.demo.loader import start_journeys
    from opencdp.demo.mailbox import Mailbox

    with Mailbox(tmp_path / "demo-mail") as box:
        # Given the demo's destination and presets
        start_journeys(rt, box.port)
        assert {j["key"] for j in client.get("/api/journeys", headers=AUTH).json()["data"]} == {
            "abandoned-cart",
            "welcome",
            "back-in-stock",
            "loyalty-welcome",
        }
        # When a new customer identifies and fills a cart
        send(
            client,
            rt,
            identify("nia", 1, clock, email="nia@example.com", first_name="Nia"),
            track("nia", "Product Added", 1, clock, cart_id="n", name="Kettlebell"),
        )
        later(rt, clock, 121)
        # Then the welcome and the cart reminder are files in the mailbox
        files = sorted(p.name for p in box.directory.glob("*.eml"))
        assert files == ["00001-nia_at_example.com.eml", "00002-nia_at_example.com.eml"]
        body = (box.directory / files[1]).read_text()
        assert "Kettlebell" in body


def test_an_audience_entry_does_not_see_the_events_that_caused_it(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    # Given a journey that waits, after entering the repeat buyers, for one more order
    body = {"definition": {"type": "USERS", "query": "event('Order Completed').count() >= 2"}}
    assert client.put("/api/audiences/repeat", json=body, headers=AUTH).status_code == 200
    smtp(client, mail)
    third = {"name": "third", "event": 'event = "Order Completed"', "next": "end"}
    journey(
        client,
        "third-order",
        {
            "entry": {"audience": "repeat"},
            "steps": [
                {"key": "wait", "wait_until": {"timeout": "1 day", "branches": [third]}},
                {"key": "nudge", "send": {"destination": "mail", "template": {"text": "Hi"}}},
            ],
        },
    )
    # When the second order makes kim a member (in the same batch as the order)
    send(
        client,
        rt,
        identify("kim", 1, clock, email="kim@example.com"),
        track("kim", "Order Completed", 1, clock, order_id="k1"),
        track("kim", "Order Completed", 2, clock, order_id="k2"),
    )
    # Then the instance waits: the order that caused the entry is not the one it waits for
    f = figures(client, "third-order")
    assert (f["entered"], f["active"]) == (1, 1)
    send(client, rt, track("kim", "Order Completed", 3, clock, order_id="k3"))
    f = figures(client, "third-order")
    assert (f["active"], f["completed"]) == (0, 1)
    later(rt, clock, 2 * 24 * HOUR)
    assert mail.mails == []


def test_an_event_after_the_wait_ran_out_comes_after_what_was_due(
    client: TestClient, rt: Runtime, clock: FrozenClock, mail: MailServer
) -> None:
    # Given a cart whose hour has passed, before the scheduler came by
    smtp(client, mail)
    journey(client, "cart", cart_preset())
    send(
        client,
        rt,
        identify("ola", 1, clock, email="ola@example.com"),
        track("ola", "Product Added", 1, clock, cart_id="q", name="Cap"),
    )
    clock.advance(HOUR + 60)
    # When the order arrives after the wait ran out
    send(client, rt, track("ola", "Order Completed", 1, clock, order_id="late"))
    rt.dispatcher.run_until_idle()
    # Then the reminder that was due went out; the order ended nothing more
    assert [m.rcpt_tos for m in mail.mails] == [["ola@example.com"]]
    f = figures(client, "cart")
    assert (f["completed"], f["exited"]) == (1, 0)
