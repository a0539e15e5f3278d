"""Recommendations end to end through ``opencdp serve`` on each backend: orders, cart adds and
views from the real Segment SDK, a training over HTTP, a shopper's recommendations and a
product's similar ones over HTTP, and an e-mail (a real SMTP server) whose template lists the
``recommended_items`` trait by the catalog's names."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_audience_membership import wait_for
from tests.e2e.test_retail_e2e import Shop, smtp_destination
from tests.e2e.test_sdks import segment_client
from tests.support.mail import MailServer
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]
OUTFITS = {"DRESS": "SANDAL", "JACKET": "SHIRT", "TOTE": "SCARF"}
NAMES = {
    "DRESS": "Linen Wrap Dress",
    "SANDAL": "Strappy Sandal",
    "JACKET": "Waxed Field Jacket",
    "SHIRT": "Oxford Shirt",
    "TOTE": "Canvas Tote",
    "SCARF": "Wool Scarf",
}


def sku(name: str) -> str:
    return f"{name}-{RUN}"


def test_events_from_the_sdk_train_serve_and_fill_an_email(
    live_server_any: LiveServer, mail: MailServer
) -> None:
    server = live_server_any
    shop = Shop(server)
    shop.call(
        "POST",
        "/api/products:batch",
        {
            "products": [
                {"id": sku(k), "name": name, "category": "Fashion > " + k.title(), "price": 49.0}
                for k, name in NAMES.items()
            ]
        },
    )
    errors: list[Any] = []
    web = segment_client(server, lambda *a: errors.append(a))
    # Given customers who buy outfits, and one who has bought a dress so far
    for n in range(30):
        first = list(OUTFITS)[n % 3]
        user = f"buyer-{n}-{RUN}"
        web.track(user, "Product Viewed", {"product_id": sku(first)})
        web.track(user, "Product Added", {"product_id": sku(OUTFITS[first])})
        items = [{"product_id": sku(first)}, {"product_id": sku(OUTFITS[first]), "quantity": 1}]
        web.track(user, "Order Completed", {"order_id": f"o-{n}-{RUN}", "products": items})
    ann = f"ann-{RUN}"
    web.identify(ann, {"email": f"ann.{RUN}@example.org"})
    web.track(
        ann,
        "Order Completed",
        {"order_id": f"ann-{RUN}", "products": [{"product_id": sku("DRESS")}]},
    )
    web.flush()
    assert wait_for(lambda: _events(shop, ann) >= 2), "the worker did not store Ann's events"
    # When the shop trains over HTTP
    trained = shop.call("POST", "/api/recs/train", ok=(201,))
    assert trained["status"] == "ready" and trained["active"]
    # Then Ann's recommendations lead with the sandal that goes with her dress, by name
    answer = shop.call("GET", f"/api/profiles/user_id:{ann}/recommendations?limit=3")
    first = answer["data"][0]
    assert first["product_id"] == sku("SANDAL") and first["name"] == "Strappy Sandal"
    assert first["reason"] == "bought together with Linen Wrap Dress"
    assert sku("DRESS") not in [i["product_id"] for i in answer["data"]]  # bought
    similar = shop.call("GET", f"/api/products/{sku('JACKET')}/similar?limit=1")
    assert similar["data"][0]["product_id"] == sku("SHIRT")
    # and the trait keeps her top items for e-mails
    assert wait_for(lambda: shop.traits(f"user_id:{ann}").get("recommended_items"))
    assert shop.traits(f"user_id:{ann}")["recommended_items"][0] == sku("SANDAL")
    # When a journey e-mails her the picks, its template shows them by the catalog's names
    smtp_destination(shop, mail)
    shop.call(
        "PUT",
        "/api/journeys/picks",
        {
            "name": "Picks for you",
            "entry": {"event": 'event = "Newsletter Requested"'},
            "steps": [
                {
                    "key": "send",
                    "send": {
                        "destination": "mail",
                        "template": {
                            "subject": "Picked for you",
                            "text": "{% for id in context.traits.recommended_items %}"
                            "* {{ product(id).name }}\n{% endfor %}",
                        },
                    },
                }
            ],
        },
    )
    web.track(ann, "Newsletter Requested", {})
    web.flush()
    assert wait_for(lambda: any("Picked" in str(m.message["Subject"]) for m in mail.mails))
    body = next(m for m in mail.mails if "Picked" in str(m.message["Subject"])).message
    text = body.get_body(("plain",)).get_content()
    assert "* Strappy Sandal" in text, text
    assert errors == []


def _events(shop: Shop, user: str) -> int:
    r = httpx.get(
        f"{shop.server.url}/v1/spaces/default/collections/users/profiles/user_id:{user}/events",
        headers=shop.auth,
    )
    return len(r.json().get("data", [])) if r.status_code == 200 else 0
