"""Realistic Segment events, shaped like what analytics.js and the mobile SDKs send.

A mix of identify, track and page calls with the ``context`` real SDKs attach (library, page,
user agent, campaign; app, device, OS, network, screen), about 600-900 bytes each as JSON.
Generation is deterministic for a seed, so runs are comparable.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

PRODUCTS = [
    ("507f1f77bcf86cd799439011", "G-32", "Games", "Monopoly: 3rd Edition", "Hasbro", 18.99),
    ("505bd76785ebb509fc183733", "B-47", "Books", "The Hitchhiker's Guide", "Pan Books", 9.5),
    ("5a8e2b5c2f4e3c0011a3b1c2", "S-08", "Shoes", "Trail Runner GTX", "Salomon", 139.0),
    ("61f0c3d1a9b8e70012c4d5e6", "K-19", "Kitchen", "Cast Iron Skillet 28cm", "Lodge", 42.0),
    ("62a1b2c3d4e5f60013a7b8c9", "T-77", "Toys", "Wooden Train Set", "Brio", 64.9),
    (
        "63b2c3d4e5f6a70014b8c9d0",
        "E-05",
        "Electronics",
        "Noise-Cancelling Headphones",
        "Sony",
        279.0,
    ),
]
TRACK_EVENTS = [
    "Product Viewed",
    "Product Added",
    "Product List Viewed",
    "Checkout Started",
    "Order Completed",
    "Coupon Applied",
]
PAGES = ["Home", "Category", "Product", "Cart", "Checkout", "Account"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
]
CITIES = [
    ("Berlin", "DE", "Europe/Berlin"),
    ("Lyon", "FR", "Europe/Paris"),
    ("Austin", "US", "America/Chicago"),
]
FIRST = [
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Barbara",
    "Ken",
    "Radia",
    "Edsger",
    "Frances",
]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Perlman"]


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def web_context(rng: random.Random, page: str, path: str) -> dict[str, Any]:
    url = f"https://shop.example.com{path}"
    ctx: dict[str, Any] = {
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {
            "path": path,
            "referrer": rng.choice(["https://www.google.com/", "https://shop.example.com/", ""]),
            "search": "",
            "title": f"{page} | Example Shop",
            "url": url,
        },
        "userAgent": rng.choice(USER_AGENTS),
        "locale": rng.choice(["en-US", "de-DE", "fr-FR"]),
        "ip": f"203.0.113.{rng.randrange(1, 255)}",
    }
    if rng.random() < 0.3:
        ctx["campaign"] = {"name": "spring_sale", "source": "newsletter", "medium": "email"}
    return ctx


def mobile_context(rng: random.Random, device_id: str) -> dict[str, Any]:
    ios = rng.random() < 0.5
    return {
        "app": {
            "name": "Example Shop",
            "version": "5.12.1",
            "build": "5121",
            "namespace": "com.example.shop",
        },
        "device": {
            "id": device_id,
            "manufacturer": "Apple" if ios else "Google",
            "model": "iPhone15,2" if ios else "Pixel 8",
            "type": "ios" if ios else "android",
        },
        "library": {"name": "analytics-ios" if ios else "analytics-android", "version": "4.1.8"},
        "locale": "en-US",
        "network": {"wifi": True, "cellular": False, "carrier": "T-Mobile"},
        "os": {"name": "iOS" if ios else "Android", "version": "17.4" if ios else "14"},
        "screen": {"width": 390, "height": 844, "density": 3},
        "timezone": "Europe/Berlin",
    }


class EventFactory:
    """Builds events for a population of ``users`` visitors (an anonymousId each; a userId once
    they have identified).

    ``omnichannel``: each person also browses in up to three anonymous sessions (one
    anonymousId each), uses an app on a phone with its own device id, gives a phone number
    (60 %) and a second e-mail (a third of people), and shows a loyalty card at the till
    (``context.externalIds``) on in-store purchases.
    """

    def __init__(self, seed: int, users: int, prefix: str = "", omnichannel: bool = False) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.prefix = prefix
        self.omnichannel = omnichannel
        self.base = datetime(2024, 5, 1, tzinfo=UTC)

    def anonymous_id(self, user: int, session: int = 0) -> str:
        key = f"{self.prefix}anon{user}" + (f"s{session}" if session else "")
        digest = hashlib.md5(key.encode()).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    def _omnichannel(self, msg: dict[str, Any], user: int, mobile: bool) -> None:
        rng = self.rng
        if mobile:
            msg["context"]["device"]["id"] = f"{self.prefix}dev-{user:08d}"
        else:
            msg["anonymousId"] = self.anonymous_id(user, rng.randrange(3))
        traits = msg.get("traits")
        if isinstance(traits, dict):
            if user % 10 < 6:
                traits["phone"] = f"+49151{user % 100_000_000:08d}"
            if user % 3 == 0 and rng.random() < 0.5:
                traits["email"] = f"{self.prefix}{user}@work.example.org"
        if msg.get("event") == "Order Completed" and rng.random() < 0.5:
            msg["context"]["externalIds"] = [
                {
                    "id": f"{self.prefix}card-{user:08d}",
                    "type": "loyalty_card",
                    "collection": "users",
                    "encoding": "none",
                }
            ]

    def user_id(self, user: int) -> str:
        return f"{self.prefix}u{user:08d}"

    def event(
        self, message_id: str, kind: str | None = None, user: int | None = None
    ) -> dict[str, Any]:
        rng = self.rng
        if user is None:
            user = rng.randrange(self.users)
        if kind is None:
            r = rng.random()
            kind = "identify" if r < 0.15 else "page" if r < 0.40 else "track"
        when = self.base + timedelta(seconds=rng.randrange(86_400 * 30))
        mobile = rng.random() < 0.35
        msg: dict[str, Any] = {
            "type": kind,
            "messageId": message_id,
            "anonymousId": self.anonymous_id(user),
            "timestamp": iso(when),
            "integrations": {},
        }
        known = kind == "identify" or rng.random() < 0.5
        if known:
            msg["userId"] = self.user_id(user)
        page = rng.choice(PAGES)
        path = f"/{page.lower()}/{rng.randrange(1000)}"
        msg["context"] = (
            mobile_context(rng, self.anonymous_id(user)) if mobile else web_context(rng, page, path)
        )
        if kind == "identify":
            first, last = FIRST[user % len(FIRST)], LAST[user % len(LAST)]
            city, country, _tz = CITIES[user % len(CITIES)]
            msg["traits"] = {
                "email": f"{first.lower()}.{last.lower()}.{user}@example.com",
                "firstName": first,
                "lastName": last,
                "plan": rng.choice(["free", "plus", "pro"]),
                "address": {"city": city, "country": country},
                "createdAt": iso(self.base - timedelta(days=user % 900)),
            }
        elif kind == "page":
            msg["name"] = page
            msg["properties"] = {
                "path": path,
                "title": f"{page} | Example Shop",
                "url": f"https://shop.example.com{path}",
                "referrer": "https://www.google.com/",
            }
        else:
            pid, sku, cat, name, brand, price = rng.choice(PRODUCTS)
            msg["event"] = rng.choice(TRACK_EVENTS)
            msg["properties"] = {
                "product_id": pid,
                "sku": sku,
                "category": cat,
                "name": name,
                "brand": brand,
                "price": price,
                "quantity": rng.randrange(1, 4),
                "currency": "EUR",
            }
        if self.omnichannel:
            self._omnichannel(msg, user, mobile)
        return msg

    def templates(self, n: int) -> list[dict[str, Any]]:
        """``n`` varied events to copy with fresh messageIds (cheap for a load generator)."""
        return [self.event("x") for _ in range(n)]


def batch_body(templates: list[dict[str, Any]], ids: Iterator[str], size: int, start: int) -> bytes:
    """A ``/v1/batch`` body of ``size`` events copied from ``templates`` with new messageIds."""
    n = len(templates)
    batch = [{**templates[(start + i) % n], "messageId": next(ids)} for i in range(size)]
    return orjson.dumps({"batch": batch, "sentAt": iso(datetime(2024, 6, 1, tzinfo=UTC))})


def mean_event_bytes(templates: list[dict[str, Any]]) -> float:
    return sum(len(orjson.dumps(t)) for t in templates) / max(1, len(templates))
