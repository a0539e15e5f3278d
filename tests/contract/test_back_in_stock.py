"""Back in stock on both backends, with a real SMTP server: a request for a sold-out product
waits, the restock answers it once with one e-mail carrying the catalog's name, image and link;
a request for a product in stock is answered at once; repeated requests get one answer; stock
in another store answers nothing; consent is respected; a product that sells out again before
the send is not announced and its request waits for the next restock."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.runtime import Runtime
from opencdp.services import catalog
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from opencdp.storage.products import ProductStore
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.contract.test_journeys import journey, smtp
from tests.support.mail import MailServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def shop(client: TestClient, rt: Runtime, mail: MailServer) -> TestClient:
    smtp(client, mail)
    journey(
        client, "back-in-stock", {"preset": "back-in-stock", "settings": {"destination": "mail"}}
    )
    ProductStore(rt.db).upsert(
        [
            {
                "workspace_id": WS,
                "id": "TRAIL-42",
                "name": "Trail Runner 42",
                "brand": "Peak",
                "price": 129.0,
                "currency": "EUR",
                "url": "https://shop.example/trail-42",
                "image_url": "https://shop.example/img/trail-42.jpg",
                "attributes": "{}",
            }
        ],
        rt.now_us(),
    )
    return client


def set_stock(rt: Runtime, product: str, location: str, quantity: int) -> None:
    """Write a stock level as the inventory API does (the restock hooks in its transaction)."""
    catalog.set_inventory(rt, WS, product, {"location": location, "quantity": quantity})


def ask(client: TestClient, rt: Runtime, user: str, n: int, **properties: Any) -> None:
    event = {
        "type": "track",
        "event": "Back In Stock Requested",
        "userId": user,
        "messageId": f"{user}-bis-{n}",
        "properties": {"product_id": "TRAIL-42", **properties},
        "context": {"traits": {"email": f"{user}@example.com"}},
    }
    identify = {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-id",
        "traits": {"email": f"{user}@example.com", "first_name": user.title()},
    }
    answer = client.post("/v1/batch", json={"batch": [identify, event]}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()


def settle(rt: Runtime) -> None:
    for _ in range(3):
        rt.processor.run_until_idle()
        rt.journey_runner.run_until_idle()
        rt.dispatcher.run_until_idle()


def events_named(rt: Runtime, user: str, name: str) -> list[Any]:
    profile = rt.profiles.find(WS, "users", "user_id", user)
    return [e for e in rt.profiles.events(WS, profile, limit=200) if e.event == name]


def test_a_sold_out_product_is_announced_once_when_stock_arrives(
    shop: TestClient, rt: Runtime, mail: MailServer
) -> None:
    # Given a sold-out product and a shopper who asks twice
    set_stock(rt, "TRAIL-42", "web", 0)
    ask(shop, rt, "ann", 1)
    ask(shop, rt, "ann", 2)
    settle(rt)
    assert mail.mails == []
    # When stock arrives in a store, nothing: she waits for the web's
    set_stock(rt, "TRAIL-42", "store-berlin", 3)
    settle(rt)
    assert mail.mails == []
    # When the web warehouse gets stock
    set_stock(rt, "TRAIL-42", "web", 5)
    settle(rt)
    # Then one Back In Stock event on her timeline and one e-mail with the catalog's data
    [event] = events_named(rt, "ann", "Back In Stock")
    assert [m.rcpt_tos for m in mail.mails] == [["ann@example.com"]]
    body = mail.mails[0].message
    assert body["Subject"] == "Trail Runner 42 is back in stock"
    html = body.get_body(("html",)).get_content()
    assert (
        "https://shop.example/img/trail-42.jpg" in html and "https://shop.example/trail-42" in html
    )
    # and a second restock answers nothing more
    set_stock(rt, "TRAIL-42", "web", 0)
    set_stock(rt, "TRAIL-42", "web", 2)
    settle(rt)
    assert len(mail.mails) == 1
    assert {r["status"] for r in rt.stock_requests.of_profile(WS, event.profile_id)} == {"answered"}


def test_a_request_for_a_product_in_stock_is_answered_at_once(
    shop: TestClient, rt: Runtime, mail: MailServer
) -> None:
    set_stock(rt, "TRAIL-42", "store-berlin", 4)
    ask(shop, rt, "bea", 1, location="store-berlin")
    settle(rt)
    assert [m.rcpt_tos for m in mail.mails] == [["bea@example.com"]]
    assert "at store-berlin" in mail.mails[0].message.get_body(("plain",)).get_content()


def test_a_product_that_sells_out_again_before_the_send_is_not_announced(
    shop: TestClient, rt: Runtime, mail: MailServer
) -> None:
    # Given a waiting request, and the restock answered (the e-mail queued, not yet sent)
    set_stock(rt, "TRAIL-42", "web", 0)
    ask(shop, rt, "cid", 1)
    set_stock(rt, "TRAIL-42", "web", 1)
    rt.processor.run_until_idle()
    rt.journey_runner.run_until_idle()
    # When it sells out before the dispatcher sends
    set_stock(rt, "TRAIL-42", "web", 0)
    rt.dispatcher.run_until_idle()
    # Then no e-mail, the delivery says why, and the request waits again
    assert mail.mails == []
    skipped = shop.get("/api/deliveries", params={"status": "skipped_out_of_stock"}, headers=AUTH)
    assert skipped.status_code == 200, skipped.text
    assert len(skipped.json()["data"]) == 1
    profile = rt.profiles.find(WS, "users", "user_id", "cid")
    assert {r["status"] for r in rt.stock_requests.of_profile(WS, profile)} == {"waiting"}
    # and the next restock announces it
    set_stock(rt, "TRAIL-42", "web", 6)
    settle(rt)
    assert [m.rcpt_tos for m in mail.mails] == [["cid@example.com"]]


def test_consent_is_respected(shop: TestClient, rt: Runtime, mail: MailServer) -> None:
    # The mail destination serves marketing; one shopper withdrew it
    body = shop.get("/api/destinations/mail", headers=AUTH).json()
    settings = {**body["settings"], "consent_categories": ["marketing"]}
    answer = shop.put(
        "/api/destinations/mail", json={"type": "smtp", "settings": settings}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    set_stock(rt, "TRAIL-42", "web", 0)
    for user, given in (("dan", True), ("eve", False)):
        ask(shop, rt, user, 1)
        consent = {
            "type": "track",
            "event": "Segment Consent Preference Updated",
            "userId": user,
            "messageId": f"{user}-consent",
            "context": {"consent": {"categoryPreferences": {"marketing": given}}},
        }
        shop.post("/v1/batch", json={"batch": [consent]}, headers=basic(WRITE_KEY))
    set_stock(rt, "TRAIL-42", "web", 9)
    settle(rt)
    assert [m.rcpt_tos for m in mail.mails] == [["dan@example.com"]]
    assert len(events_named(rt, "eve", "Back In Stock")) == 1  # on her timeline, not mailed


def test_the_timer_answers_a_request_that_missed_its_restock(
    shop: TestClient, rt: Runtime, mail: MailServer
) -> None:
    # Given a request stored while a restock was committed beside it: the stock is there, but
    # the restock's hooks did not see the request (written here without the hooks)
    set_stock(rt, "TRAIL-42", "web", 0)
    ask(shop, rt, "fay", 1)
    rt.restock_hooks.clear()
    set_stock(rt, "TRAIL-42", "web", 3)
    settle(rt)
    assert mail.mails == []
    # When the worker's timer sweeps
    rt.back_in_stock._swept = -1e18
    assert rt.back_in_stock.sweep() == 1
    settle(rt)
    # Then she gets her one e-mail, and a second sweep answers nothing more
    assert [m.rcpt_tos for m in mail.mails] == [["fay@example.com"]]
    rt.back_in_stock._swept = -1e18
    assert rt.back_in_stock.sweep() == 0
