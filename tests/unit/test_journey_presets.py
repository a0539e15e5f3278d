"""The journeys OpenCDP ships (pure, no database): what ``{"preset", "settings"}`` expands to,
the errors it gets, and the e-mails the presets' templates make. The mails are rendered the
way a delivery renders them: the real engine moves an instance, the runner's
:func:`journey_message` builds the track message of its send, and the ``smtp`` destination's
``compose`` renders it with the step's own templates (no server: nothing is sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from opencdp.activate.destinations.base import Message
from opencdp.activate.destinations.smtp import Smtp, SmtpSettings
from opencdp.activate.journey import Journey, JourneyError, parse_journey
from opencdp.activate.journey_engine import (
    COMPLETED,
    EXITED,
    Instance,
    Send,
    on_event,
    on_timer,
    start,
)
from opencdp.activate.journey_presets import (
    CART_HTML,
    CART_TEXT,
    PRESETS,
    WELCOME_HTML,
    WELCOME_TEXT,
    expand_preset,
)
from opencdp.activate.journey_runner import Live, journey_message
from opencdp.query.catalog import CatalogLookup

S = 1_000_000
MINUTE = 60 * S
HOUR = 60 * MINUTE
T0 = 1_780_000_000 * S
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def cart_preset(**settings: Any) -> dict[str, Any]:
    return {"preset": "abandoned-cart", "settings": {"destination": "mail", **settings}}


def preset_problem(body: dict[str, Any]) -> str:
    with pytest.raises(JourneyError) as caught:
        expand_preset(body)
    assert (caught.value.code, caught.value.status) == ("invalid_journey", 400)
    return str(caught.value)


# -- expanding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"preset": "nope"},
            "preset: 'nope' is not a preset; known: abandoned-cart, welcome, back-in-stock, loyalty-welcome",
        ),
        (
            {"settings": {}},
            "preset: None is not a preset; known: abandoned-cart, welcome, back-in-stock, loyalty-welcome",
        ),
        (
            {**cart_preset(), "colour": "red"},
            "unknown keys ['colour']: a preset takes preset, settings, enabled",
        ),
        ({"preset": "welcome", "settings": ["mail"]}, "settings: a JSON object"),
        (
            {"preset": "welcome"},
            "settings.destination: the id of the destination the e-mail goes to",
        ),
        (
            {"preset": "abandoned-cart", "settings": {"destination": ""}},
            "settings.destination: the id of the destination the e-mail goes to",
        ),
        (
            {"preset": "abandoned-cart", "settings": {"destination": 7}},
            "settings.destination: the id of the destination the e-mail goes to",
        ),
        (
            cart_preset(colour="red"),
            "settings: unknown ['colour']; abandoned-cart takes destination, event_name, "
            "subject, wait",
        ),
        (
            {"preset": "welcome", "settings": {"destination": "mail", "wait": "1 hour"}},
            "settings: unknown ['wait']; welcome takes destination, event_name, subject",
        ),
        (cart_preset(subject=["Hi"]), "settings.subject: text"),
        (cart_preset(event_name=5), "settings.event_name: text"),
    ],
)
def test_bad_presets_name_what_is_wrong(body: dict[str, Any], expected: str) -> None:
    assert preset_problem(body) == expected


@pytest.mark.parametrize("wait", ["soon", "1 fortnight", 5, ""])
def test_a_preset_wait_is_a_duration(wait: Any) -> None:
    message = preset_problem(cart_preset(wait=wait))
    assert message.startswith(f"settings.wait: {wait!r} is not a duration"), message


def test_a_preset_wait_outside_the_bounds_is_refused_where_it_lands() -> None:
    definition = expand_preset(cart_preset(wait="400 days"))
    with pytest.raises(JourneyError) as caught:
        parse_journey("cart", definition)
    assert str(caught.value) == (
        "steps.0.wait_until.timeout: '400 days': between 1 second and 365 days"
    )


def test_the_abandoned_cart_journey_with_its_defaults() -> None:
    j = parse_journey("cart", expand_preset(cart_preset()))
    assert j.name == "Abandoned cart" and j.reentry == "every_time"
    assert j.lifetime == timedelta(days=30)
    (entry,) = j.triggers
    assert entry.unique_identifier == ("properties", "cart_id")
    assert entry.condition is not None
    assert entry.condition.matches({"event": "Product Added"})
    assert entry.condition.matches({"event": "Checkout Started"})
    assert not entry.condition.matches({"event": "Order Completed"})
    (ordered,) = j.exit_rules
    assert (ordered.name, ordered.match_identifier) == ("ordered", True)
    wait, reminder = j.steps
    assert (wait.key, wait.kind, wait.duration) == (
        "wait_for_order",
        "wait_until",
        timedelta(hours=1),
    )
    assert [(b.name, b.restart, b.match_identifier, b.next) for b in wait.branches] == [
        ("ordered", False, True, "end"),
        ("cart_changed", True, True, None),
    ]
    assert (reminder.kind, reminder.destination, reminder.event_name) == (
        "send",
        "mail",
        "Cart Abandoned",
    )
    assert reminder.template == {
        "subject": "You left something in your cart",
        "text": CART_TEXT,
        "html": CART_HTML,
    }
    assert j.destinations() == {"mail"}


def test_the_abandoned_cart_settings_are_used() -> None:
    definition = expand_preset(
        cart_preset(wait="45 minutes", subject="Still there?", event_name="Cart Reminder")
        | {"enabled": False}
    )
    assert definition["enabled"] is False
    assert "45 minutes" in definition["description"]
    j = parse_journey("cart", definition)
    wait, reminder = j.steps
    assert wait.duration == timedelta(minutes=45)
    assert reminder.event_name == "Cart Reminder"
    assert reminder.template is not None and reminder.template["subject"] == "Still there?"


def test_the_welcome_journey_with_its_defaults() -> None:
    definition = expand_preset({"preset": "welcome", "settings": {"destination": "mail"}})
    assert "enabled" not in definition
    j = parse_journey("welcome", definition)
    assert j.name == "Welcome" and j.reentry == "once"
    signed_up, new_customer = j.triggers
    assert signed_up.condition is not None and new_customer.condition is not None
    assert signed_up.condition.matches({"event": "Signed Up"})
    assert signed_up.condition.matches({"event": "Loyalty Enrolled"})
    assert not signed_up.new_profile and new_customer.new_profile
    assert new_customer.condition.matches({"type": "identify", "traits": {"email": "a@b.co"}})
    assert not new_customer.condition.matches({"type": "identify", "traits": {}})
    assert not new_customer.condition.matches({"type": "track", "traits": {"email": "a@b.co"}})
    (confirmation,) = j.steps
    assert (confirmation.destination, confirmation.event_name) == ("mail", "Welcome Sent")
    assert confirmation.template is not None
    assert (confirmation.template["text"], confirmation.template["html"]) == (
        WELCOME_TEXT,
        WELCOME_HTML,
    )


def test_every_preset_compiles() -> None:
    for name in PRESETS:
        j = parse_journey(name, expand_preset({"preset": name, "settings": {"destination": "d"}}))
        assert j.destinations() == {"d"}


def test_expanding_does_not_change_the_body() -> None:
    body = cart_preset(wait="2 hours")
    expand_preset(body)
    assert body == cart_preset(wait="2 hours")


# -- the mails -------------------------------------------------------------------------------------

SENDER = Smtp(
    "mail",
    SmtpSettings.model_validate({"host": "smtp.example.com", "from": "Shop <shop@example.com>"}),
)


def added(n: int, cart: str = "c1", **product: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Added",
        "messageId": f"add-{n}",
        "timestamp": "2026-06-01T11:00:00Z",
        "properties": {"cart_id": cart, **product},
    }


def checkout(products: list[dict[str, Any]], cart: str = "c1") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Checkout Started",
        "messageId": "checkout-1",
        "timestamp": "2026-06-01T11:00:00Z",
        "properties": {"cart_id": cart, "products": products},
    }


def mail_of(
    j: Journey, send: Send, traits: dict[str, Any], catalog: CatalogLookup | None = None
) -> EmailMessage:
    """The mail the smtp destination makes of ``send`` for a profile with ``traits`` (and
    the workspace's products, ``catalog``)."""
    message = journey_message(
        "default",
        Live(j, True, 1),
        send,
        {"traits": traits, "audiences": {}},
        [("user_id", "u1")],
        T0,
    )
    mail, to = SENDER.compose(
        Message("msg_1", message, message, "journey", 1, AT, send.step.template, catalog)
    )
    assert to == [traits["email"]]
    return mail


def cart_mail(
    events: list[dict[str, Any]], catalog: CatalogLookup | None = None, **traits: Any
) -> tuple[str, str]:
    """The text and HTML of the abandoned-cart mail after ``events`` (the first starts the
    instance, the others arrive during the wait) and the wait's end."""
    j = parse_journey("cart", expand_preset(cart_preset()))
    first, *rest = events
    inst = Instance("default", "cart", "ji_1", "p1", "c1", "m", T0, T0 + 30 * 24 * HOUR)
    assert start(j, inst, first, T0, lambda _p: {}).sends == []
    now = T0
    for event in rest:
        now += MINUTE
        assert on_event(j, inst, event, now, lambda _p: {}) is not None
    progress = on_timer(j, inst, now + HOUR, lambda _p: {})
    (send,) = progress.sends
    assert inst.status == COMPLETED
    mail = mail_of(j, send, {"email": "ann@example.com", **traits}, catalog)
    assert mail["Subject"] == "You left something in your cart"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return (
        str(text.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


def test_the_cart_mail_lists_each_product_added_once() -> None:
    text, html = cart_mail(
        [
            added(1, product_id="p1", name="Trail shoe", price=89.9, currency="EUR", quantity=1),
            added(2, product_id="p2", name="Rain jacket", price=120, url="https://shop.test/p2"),
            added(3, product_id="p1", name="Trail shoe (again)", price=89.9),
        ],
        first_name="Ann",
    )
    assert text == (
        "Hello Ann,\n\nyou left this in your cart:\n\n"
        "- Trail shoe x 1: 89.9 EUR\n"
        "- Rain jacket: 120 (https://shop.test/p2)\n"
        "\nIt is still waiting for you.\n"
    )
    assert html == (
        "<p>Hello Ann,</p>\n<p>you left this in your cart:</p>\n<ul>\n"
        "<li>Trail shoe &times; 1: 89.9 EUR</li>\n"
        '<li><a href="https://shop.test/p2">Rain jacket</a>: 120</li>\n'
        "</ul>\n<p>It is still waiting for you.</p>\n"
    )


def test_the_catalog_names_and_links_items_sent_with_ids_only() -> None:
    catalog = {
        "p1": {"id": "p1", "name": "Trail shoe", "url": "https://shop.test/p1"},
        "s2": {"id": "s2", "name": "Cap", "url": None},
    }
    asked: list[Any] = []

    def lookup(product_id: Any) -> dict[str, Any] | None:
        asked.append(product_id)
        return catalog.get(product_id)

    text, html = cart_mail(
        [
            added(1, product_id="p1", price=89.9),  # the catalog names and links it
            added(2, sku="s2", name="Blue cap"),  # its own name stays; no URL anywhere
            added(3, product_id="p3", name="Scarf", url="https://shop.test/p3"),  # not there
        ],
        lookup,
        first_name="Ann",
    )
    assert text == (
        "Hello Ann,\n\nyou left this in your cart:\n\n"
        "- Trail shoe: 89.9 (https://shop.test/p1)\n"
        "- Blue cap\n"
        "- Scarf (https://shop.test/p3)\n"
        "\nIt is still waiting for you.\n"
    )
    assert '<li><a href="https://shop.test/p1">Trail shoe</a>: 89.9</li>' in html
    assert sorted(set(asked)) == ["p1", "p3", "s2"]


def test_products_without_a_product_id_are_told_apart_by_sku_then_name() -> None:
    text, _html = cart_mail(
        [
            added(1, sku="s1", name="Cap", price=1),
            added(2, sku="s1", name="Cap, blue", price=2),
            added(3, name="Scarf", price=3),
            added(4, name="Scarf", price=4),
            added(5, name="Gloves", price=5),
        ]
    )
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert items == ["- Cap: 1", "- Scarf: 3", "- Gloves: 5"]


def test_a_checkouts_products_win_over_the_products_added() -> None:
    products = [
        {"product_id": "p7", "name": "<b>Bold</b> tee", "price": 10, "quantity": 2},
        {"product_id": "p8", "name": "Socks & more", "price": 5},
    ]
    text, html = cart_mail([added(1, product_id="p1", name="Hat"), checkout(products)])
    assert "Hat" not in text and "Hat" not in html
    assert "- <b>Bold</b> tee x 2: 10\n- Socks & more: 5\n" in text
    # the names are escaped in the HTML part, not in the text
    assert "<li>&lt;b&gt;Bold&lt;/b&gt; tee &times; 2: 10</li>" in html
    assert "<li>Socks &amp; more: 5</li>" in html


def test_a_checkout_without_products_lists_the_products_added() -> None:
    text, _html = cart_mail([added(1, product_id="p1", name="Hat", price=3), checkout([])])
    assert "- Hat: 3\n" in text


def test_a_product_without_a_price_shows_none() -> None:
    text, html = cart_mail(
        [
            added(1, product_id="p1", name="Hat"),
            added(2, product_id="p2", name="Free sample", price=0),
            added(3, product_id="p3", name="Unpriced", price=None),
        ]
    )
    assert "- Hat\n- Free sample: 0\n- Unpriced\n" in text
    assert "<li>Hat</li>\n<li>Free sample: 0</li>\n<li>Unpriced</li>\n" in html


@pytest.mark.parametrize(
    ("traits", "hello"),
    [
        ({"first_name": "Ann", "name": "Ann Smith"}, "Ann"),
        ({"name": "Ann Smith"}, "Ann Smith"),
        ({}, "there"),
        ({"first_name": None, "name": ""}, "there"),
    ],
)
def test_the_cart_mail_greets_by_first_name_else_there(traits: dict[str, Any], hello: str) -> None:
    text, html = cart_mail([added(1, product_id="p1", name="Hat")], **traits)
    assert text.startswith(f"Hello {hello},\n")
    assert html.startswith(f"<p>Hello {hello},</p>")


def test_a_name_is_escaped_in_the_html_greeting() -> None:
    text, html = cart_mail([added(1, product_id="p1", name="Hat")], first_name="<Ann>")
    assert text.startswith("Hello <Ann>,") and html.startswith("<p>Hello &lt;Ann&gt;,</p>")


def test_an_order_ends_the_cart_without_a_mail() -> None:
    j = parse_journey("cart", expand_preset(cart_preset()))
    inst = Instance("default", "cart", "ji_1", "p1", "c1", "m", T0, T0 + 30 * 24 * HOUR)
    start(j, inst, added(1, product_id="p1"), T0, lambda _p: {})
    order = {"type": "track", "event": "Order Completed", "properties": {"cart_id": "c1"}}
    assert on_event(j, inst, order, T0 + MINUTE, lambda _p: {}) is not None
    assert (inst.status, inst.exit_reason) == (EXITED, "exit: ordered")


@pytest.mark.parametrize(
    ("traits", "subject", "hello"),
    [({"first_name": "Nia"}, "Welcome, Nia", "Nia"), ({}, "Welcome, there", "there")],
)
def test_the_welcome_mail(traits: dict[str, Any], subject: str, hello: str) -> None:
    j = parse_journey(
        "welcome", expand_preset({"preset": "welcome", "settings": {"destination": "mail"}})
    )
    inst = Instance("default", "welcome", "ji_1", "p1", "", "m", T0, T0 + 365 * 24 * HOUR)
    signed_up = {"type": "track", "event": "Signed Up", "messageId": "s1", "properties": {}}
    (send,) = start(j, inst, signed_up, T0, lambda _p: {}).sends
    mail = mail_of(j, send, {"email": "nia@example.com", **traits})
    assert mail["Subject"] == subject
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    assert str(text.get_content()).replace("\r\n", "\n") == (
        f"Hello {hello},\n\nwelcome, and thank you for signing up. "
        "We are glad to have you with us.\n"
    )
    assert str(html.get_content()).startswith(f"<p>Hello {hello},</p>\n<p>welcome, ")


@pytest.mark.parametrize(
    ("properties", "subject", "card_line"),
    [
        (
            {"member_id": "mem_1", "programme": "Glow Rewards", "card_number": "CARD-7"},
            "Welcome to Glow Rewards",
            "Your card: CARD-7\n",
        ),
        ({"member_id": "mem_1"}, "Welcome to our loyalty programme", ""),
    ],
)
def test_the_loyalty_welcome_mail(properties: dict[str, Any], subject: str, card_line: str) -> None:
    j = parse_journey(
        "loyalty-welcome",
        expand_preset({"preset": "loyalty-welcome", "settings": {"destination": "mail"}}),
    )
    assert j.reentry == "once" and j.name == "Loyalty welcome"
    (trigger,) = j.triggers
    assert trigger.condition is not None
    assert trigger.condition.matches({"event": "Loyalty Enrolled"})
    assert not trigger.condition.matches({"event": "Signed Up"})
    inst = Instance("default", "loyalty-welcome", "ji_1", "p1", "", "m", T0, T0 + 365 * 24 * HOUR)
    enrolled = {
        "type": "track",
        "event": "Loyalty Enrolled",
        "messageId": "e1",
        "properties": properties,
    }
    (send,) = start(j, inst, enrolled, T0, lambda _p: {}).sends
    assert send.step.event_name == "Loyalty Welcome Sent"
    mail = mail_of(j, send, {"email": "ann@example.com", "first_name": "Ann"})
    assert mail["Subject"] == subject
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    programme = properties.get("programme", "our loyalty programme")
    assert (
        str(text.get_content())
        .replace("\r\n", "\n")
        .startswith(
            f"Hello Ann,\n\nwelcome to {programme}: you are a member now.\n\n"
            f"Your member number: mem_1\n{card_line}\n"
        )
    )
    assert f"<strong>{programme}</strong>" in str(html.get_content())
