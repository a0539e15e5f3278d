"""Retail end to end through ``opencdp serve`` on each backend, with the real Segment and
RudderStack SDKs and a real SMTP server: a member enrols online and gets the welcome e-mail,
buys in the web shop and at the till after a token scan, sees the balance through the Profile
API and a confirmation e-mail, a refund reverses the points; two cards shown in one purchase
become one member with one ledger."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import basic
from tests.e2e.test_audience_membership import wait_for
from tests.e2e.test_sdks import rudder_client, segment_client
from tests.support.mail import MailServer
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]


class Shop:
    """The HTTP calls a shop, a till and a back office make."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.auth = basic(server.token)

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        r = httpx.request(method, f"{self.server.url}{path}", json=body, headers=self.auth)
        assert r.status_code in ok, r.text
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r

    def traits(self, ref: str) -> dict[str, Any]:
        r = httpx.get(
            f"{self.server.url}/v1/spaces/default/collections/users/profiles/{ref}/traits",
            headers=self.auth,
        )
        return dict(r.json().get("traits", {})) if r.status_code == 200 else {}


def subjects_to(mail: MailServer, address: str) -> list[str]:
    return [str(m.message["Subject"]) for m in mail.mails if m.rcpt_tos == [address]]


def smtp_destination(shop: Shop, mail: MailServer) -> None:
    """The destination ``mail``: the test's SMTP server."""
    shop.call(
        "PUT",
        "/api/destinations/mail",
        {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": mail.port,
                "from": "Glow <shop@example.com>",
                "starttls": False,
            },
        },
    )


def setup_mail(shop: Shop, mail: MailServer) -> None:
    smtp_destination(shop, mail)
    for preset in ("welcome", "loyalty-welcome"):
        shop.call(
            "PUT",
            f"/api/journeys/{preset}",
            {"preset": preset, "settings": {"destination": "mail"}},
        )
    confirmation = {
        "name": "Points confirmation",
        "entry": {"event": 'event = "Points Earned"'},
        "reentry": "every_time",
        "steps": [
            {
                "key": "confirm",
                "send": {
                    "destination": "mail",
                    "template": {
                        "subject": "You earned {{ properties.journey_context['Points Earned'].points }} points",
                        "text": "Balance: {{ properties.journey_context['Points Earned'].balance }}",
                    },
                },
            }
        ],
    }
    shop.call("PUT", "/api/journeys/points", confirmation)


def test_a_member_enrols_earns_online_and_at_the_till_and_a_refund_reverses(
    live_server_any: LiveServer, mail: MailServer
) -> None:
    server = live_server_any
    shop = Shop(server)
    setup_mail(shop, mail)
    shop.call(
        "PUT",
        "/api/loyalty/programme",
        {"name": "Glow Rewards", "points_per_unit": 1, "bonuses": {"first_order": 10}},
    )
    email = f"ann.{RUN}@example.org"
    user = f"ann-{RUN}"
    errors: list[Any] = []
    web = segment_client(server, lambda *a: errors.append(a))
    # Given Ann signed up in the web shop and was welcomed
    web.identify(user, {"email": email, "first_name": "Ann"})
    web.flush()
    assert wait_for(lambda: subjects_to(mail, email) == ["Welcome, Ann"]), mail.mails
    # When she enrols online
    member = shop.call("POST", "/api/loyalty/members", {"user_id": user, "email": email}, ok=(201,))
    token = member["token"]
    # Then the programme's welcome confirms the enrolment, with her member number
    joined = "Welcome to Glow Rewards"
    assert wait_for(lambda: joined in subjects_to(mail, email)), subjects_to(mail, email)
    [confirmation] = [m for m in mail.mails if m.message["Subject"] == joined]
    text = confirmation.message.get_body(("plain",)).get_content()
    assert "Hello Ann," in text and member["id"] in text, text
    # When she orders online (the Segment SDK)
    web.track(user, "Order Completed", {"order_id": f"web-{RUN}", "total": 40, "currency": "EUR"})
    web.flush()
    # and at the till, which scans her card's token and sends the order (the RudderStack SDK)
    scan = shop.call("GET", f"/api/loyalty/tokens/{token}")
    assert scan["member_id"] == member["id"] and scan["profile_id"]
    till = rudder_client(server, lambda *a: errors.append(a))
    till.track(
        user_id=user,
        event="Order Completed",
        properties={"order_id": f"till-{RUN}", "total": 25.5, "currency": "EUR"},
        context={"channel": "store"},
    )
    till.flush()
    # Then her balance (40 + 10 bonus + 25) shows on the Profile API, and each earn is confirmed
    assert wait_for(lambda: shop.traits(f"user_id:{user}").get("points_balance") == 75), (
        shop.traits(f"user_id:{user}")
    )
    assert wait_for(lambda: sum("points" in str(m.message["Subject"]) for m in mail.mails) == 2), [
        m.message["Subject"] for m in mail.mails
    ]
    # When the web order is refunded
    web.track(user, "Order Refunded", {"order_id": f"web-{RUN}"})
    web.flush()
    # Then its points, bonus included, are taken back
    assert wait_for(lambda: shop.traits(f"user_id:{user}").get("points_balance") == 25)
    ledger = shop.call("GET", f"/api/loyalty/members/{member['id']}/ledger")
    assert sorted(e["kind"] for e in ledger["data"]) == ["earn", "earn", "reverse"]
    # and the card works for the app and the e-mails
    svg = shop.call("GET", f"/api/loyalty/members/{member['id']}/card.svg")
    assert token in svg.text and svg.headers["content-type"].startswith("image/svg+xml")
    assert errors == []


def test_two_cards_in_one_purchase_become_one_member_with_one_ledger(
    live_server_any: LiveServer,
) -> None:
    server = live_server_any
    shop = Shop(server)
    shop.call("PUT", "/api/loyalty/programme", {"name": "Glow Rewards"})
    cards = [f"CARD-{RUN}-A", f"CARD-{RUN}-B"]
    members = [
        shop.call(
            "POST",
            "/api/loyalty/members",
            {"card_number": card, "channel": "store", "store_id": f"s{n}"},
            ok=(201,),
        )
        for n, card in enumerate(cards)
    ]
    errors: list[Any] = []
    till = segment_client(server, lambda *a: errors.append(a))

    def scanned(*numbers: str) -> dict[str, Any]:
        return {
            "externalIds": [
                {"id": n, "type": "loyalty_card", "collection": "users", "encoding": "none"}
                for n in numbers
            ]
        }

    till.track(
        anonymous_id=f"till-{RUN}-1",
        event="Order Completed",
        properties={"order_id": f"a-{RUN}", "total": 30},
        context=scanned(cards[0]),
    )
    till.track(
        anonymous_id=f"till-{RUN}-2",
        event="Order Completed",
        properties={"order_id": f"b-{RUN}", "total": 12},
        context=scanned(cards[1]),
    )
    till.flush()
    assert wait_for(
        lambda: [shop.call("GET", f"/api/loyalty/tokens/{c}")["balance"] for c in cards] == [30, 12]
    )
    # When one purchase shows both cards
    till.track(
        anonymous_id=f"till-{RUN}-3",
        event="Order Completed",
        properties={"order_id": f"ab-{RUN}", "total": 5},
        context=scanned(*cards),
    )
    till.flush()

    # Then both cards lead to one member whose ledger holds all three orders once
    def merged() -> bool:
        a, b = (shop.call("GET", f"/api/loyalty/tokens/{c}") for c in cards)
        return a["member_id"] == b["member_id"] and a["balance"] == 47

    assert wait_for(merged)
    survivor = shop.call("GET", f"/api/loyalty/tokens/{cards[1]}")["member_id"]
    assert survivor == members[0]["id"]  # the older member absorbed the other
    ledger = shop.call("GET", f"/api/loyalty/members/{members[1]['id']}/ledger")
    assert ledger["member_id"] == survivor
    assert sorted(e["order_id"] for e in ledger["data"]) == sorted(
        [f"a-{RUN}", f"b-{RUN}", f"ab-{RUN}"]
    )
    assert errors == []


def test_a_shopper_asks_for_a_sold_out_product_and_one_email_arrives_with_the_stock(
    live_server_any: LiveServer, mail: MailServer
) -> None:
    server = live_server_any
    shop = Shop(server)
    setup_mail(shop, mail)
    shop.call(
        "PUT",
        "/api/journeys/back-in-stock",
        {"preset": "back-in-stock", "settings": {"destination": "mail"}},
    )
    sku = f"TRAIL-{RUN}"
    shop.call(
        "PUT",
        f"/api/products/{sku}",
        {
            "name": "Trail Runner",
            "brand": "Peak",
            "category": "Shoes > Running",
            "price": 129.0,
            "currency": "EUR",
            "url": f"https://shop.example/p/{sku}",
            "image_url": f"https://shop.example/img/{sku}.jpg",
        },
    )
    shop.call("PUT", f"/api/inventory/{sku}", {"location": "web", "quantity": 0})
    product = httpx.get(f"{server.url}/api/products/{sku}", headers=shop.auth)
    assert product.json()["in_stock"] is False
    # Given a shopper asks twice (the RudderStack SDK) to be told when it is back
    email = f"bea.{RUN}@example.org"
    errors: list[Any] = []
    web = rudder_client(server, lambda *a: errors.append(a))
    web.identify(user_id=f"bea-{RUN}", traits={"email": email, "first_name": "Bea"})
    for _ in range(2):
        web.track(
            user_id=f"bea-{RUN}", event="Back In Stock Requested", properties={"product_id": sku}
        )
    web.flush()

    # (the worker has stored her requests)
    def waiting() -> bool:
        r = shop.traits(f"user_id:bea-{RUN}")
        return bool(r.get("email"))

    assert wait_for(waiting)
    assert wait_for(lambda: _requests(shop, f"bea-{RUN}") == 2)

    def announced() -> list[Any]:
        return [
            m.message
            for m in mail.mails
            if m.rcpt_tos == [email] and "back in stock" in str(m.message["Subject"])
        ]

    assert announced() == []
    # When stock arrives through the inventory API
    shop.call("PUT", f"/api/inventory/{sku}", {"location": "web", "quantity": 7})
    # Then exactly one e-mail, with the catalog's name, image and link
    assert wait_for(announced)
    [message] = announced()
    assert message["Subject"] == "Trail Runner is back in stock"
    html = message.get_body(("html",)).get_content()
    assert f"https://shop.example/img/{sku}.jpg" in html and f"https://shop.example/p/{sku}" in html
    # and nothing more when the ETag'd product is read again, or stock changes again
    etag = httpx.get(f"{server.url}/api/products/{sku}", headers=shop.auth).headers["etag"]
    again = httpx.get(
        f"{server.url}/api/products/{sku}", headers={**shop.auth, "If-None-Match": etag}
    )
    assert again.status_code == 304
    shop.call("PUT", f"/api/inventory/{sku}", {"location": "web", "quantity": 9})
    import time

    time.sleep(1.0)
    assert len(announced()) == 1
    assert errors == []


def _requests(shop: Shop, user: str) -> int:
    """How many back-in-stock requests the user's timeline holds."""
    r = httpx.get(
        f"{shop.server.url}/v1/spaces/default/collections/users/profiles/user_id:{user}/events",
        params={"limit": 50},
        headers=shop.auth,
    )
    if r.status_code != 200:
        return 0
    return sum(e.get("event") == "Back In Stock Requested" for e in r.json().get("data", []))
