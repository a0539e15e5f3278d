"""The demo's generated omnichannel layer, and the message helpers the whole demo shares.

CDNOW (see :mod:`opencdp.demo.data`) is one channel: web orders by known customers. A real
retailer also sees its customers as anonymous web visitors, under a second e-mail address, at the
store till (known only by a loyalty card) and in a mobile app. This module plans those touchpoints
for one customer (a pure function of a seeded :class:`random.Random`) and renders the plan as
Segment messages, so that identity resolution has something real to do:

* **web sessions** (``page`` + ``track "Product Viewed"``) carry only an ``anonymousId``; most end
  with a log-in ``identify`` that links the anonymous id to the ``userId``; the rest never log in
  and stay separate anonymous profiles;
* **a second e-mail address**: an ``identify`` with the ``userId`` and a new ``email`` trait;
* **store purchases**: ``track "Order Completed"`` with no ``userId``, the till's receipt id as
  ``anonymousId`` and ``context.traits.loyalty_card`` (linked through the identity trait key
  ``loyalty_card``);
* **app installs**: ``track "Application Installed"`` with ``context.device`` followed by an
  ``identify`` with the ``userId`` and the same device.

A customer never collects more than :data:`MAX_ANONYMOUS_IDS` anonymous ids (Segment's default
limit for every identifier type but ``user_id``), so the expected number of profiles does not
depend on how the limit is enforced.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, TypeVar

from opencdp.timeutil import isoformat_seconds

T = TypeVar("T")

Message = dict[str, Any]
"""One Segment batch item, ready to be POSTed in a ``/v1/batch`` ``batch`` list."""

LIBRARY_NAME = "opencdp-demo"
LAST_DAY = date(1998, 6, 30)
"""CDNOW's last day; no demo event happens later."""

MAX_ANONYMOUS_IDS = 5
WEB_CUSTOMER_SHARE = 0.30
LOGIN_PROBABILITY = (
    0.8  # for sessions other than a customer's last: ~10% of sessions stay anonymous
)
SECOND_EMAIL_SHARE = 0.10
STORE_SHOPPER_SHARE = 0.5  # of loyalty-card holders
APP_INSTALL_SHARE = 0.20
STORES = 12

SHOP_URL = "https://shop.example.com"
# RFC 2606 domains: the demo must never produce an address that reaches a real person.
SECOND_EMAIL_DOMAINS = ("mail.example.com", "post.example.net", "inbox.example.org")
GENRES = ("Rock", "Pop", "Jazz", "Classical", "Country", "Hip-Hop", "R&B", "Electronic", "Folk")
SHELF_PRICES = tuple(Decimal(p) for p in ("9.99", "11.99", "12.99", "13.99", "14.99", "16.99"))
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
DEVICES = {
    "ios": (("Apple", "iPhone14,5"), ("Apple", "iPhone15,2"), ("Apple", "iPhone16,1")),
    "android": (("Samsung", "SM-S911B"), ("Google", "Pixel 8"), ("Xiaomi", "2201117TG")),
}
OS_VERSIONS = {"ios": ("16.7", "17.4", "17.5"), "android": ("12", "13", "14")}
APP = {"name": "CDNOW", "version": "4.2.0", "build": "420"}

_CENT = Decimal("0.01")


# ---------------------------------------------------------------------------------------------
# Helpers shared by the CDNOW and the generated messages


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    """One CDNOW customer with the identity the demo gives them (traits are generated)."""

    customer_id: int
    user_id: str
    signup_at: datetime
    first_name: str
    last_name: str
    email: str
    phone: str
    city: str
    country: str
    loyalty_card: str | None


def at_second(day: date, second_of_day: int) -> datetime:
    """The UTC instant ``second_of_day`` seconds after midnight of ``day``."""
    return _midnight(day) + timedelta(seconds=second_of_day)


@lru_cache(maxsize=1024)  # the demo spans 546 days
def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# Integer draws from one float: several times faster than randrange/choice, which shows over
# ~600k draws, and uniform enough for demo data. (Never for anything security-related.)


def below(rng: random.Random, n: int) -> int:
    """A uniform integer in ``[0, n)``."""
    return int(rng.random() * n)


def between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high)``."""
    return low + int(rng.random() * (high - low))


def pick(rng: random.Random, options: Sequence[T]) -> T:
    """A uniformly chosen element of the non-empty ``options``."""
    return options[int(rng.random() * len(options))]


def context(channel: str, **extra: Any) -> dict[str, Any]:
    """A fresh ``context`` object (never shared between messages, so consumers may mutate it)."""
    return {"library": {"name": LIBRARY_NAME}, "channel": channel, **extra}


def order_properties(order_id: str, quantity: int, amount: Decimal) -> dict[str, Any]:
    """Segment's "Order Completed" properties for ``quantity`` CDs worth ``amount`` dollars.

    ``total`` and ``revenue`` are the exact amount as a float; the unit price is rounded to cents.
    """
    price = (amount / quantity).quantize(_CENT, rounding=ROUND_HALF_UP)
    return {
        "order_id": order_id,
        "total": float(amount),
        "revenue": float(amount),
        "currency": "USD",
        "products": [
            {"product_id": "cd", "category": "Music", "quantity": quantity, "price": float(price)}
        ],
    }


def random_uuid(rng: random.Random) -> str:
    """A version-4-shaped UUID drawn from ``rng`` (deterministic, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True, slots=True)
class WebSession:
    """An anonymous browsing session; ``logs_in`` means it ends with an ``identify``."""

    anonymous_id: str
    start: datetime
    genres: tuple[str, ...]
    logs_in: bool


@dataclass(frozen=True, slots=True)
class StoreOrder:
    """A purchase at a store till, known to the CDP only by the loyalty card scanned."""

    receipt_id: str
    store: int
    at: datetime
    quantity: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AppInstall:
    """A mobile-app install, followed a few minutes later by a log-in."""

    anonymous_id: str
    at: datetime
    device: dict[str, Any]
    os_version: str


@dataclass(frozen=True, slots=True)
class OmnichannelPlan:
    """Everything the generated layer does for one customer."""

    sessions: tuple[WebSession, ...] = ()
    second_email: tuple[datetime, str] | None = None
    """When the customer starts using a second address, and its domain."""
    store_orders: tuple[StoreOrder, ...] = ()
    app_install: AppInstall | None = None

    def message_counts(self) -> Counter[str]:
        """How many messages :func:`render_omnichannel` yields, by ``type`` and by ``event``.

        Keys are message types (``"identify"``, ``"page"``, ``"track"``) and ``"event:<name>"``
        for track events. Computed from the plan alone, so tests can hold it against the stream.
        """
        counts: Counter[str] = Counter()
        for session in self.sessions:
            counts["page"] += 1
            counts["track"] += len(session.genres)
            counts["event:Product Viewed"] += len(session.genres)
            counts["identify"] += session.logs_in
        if self.second_email is not None:
            counts["identify"] += 1
        counts["track"] += len(self.store_orders)
        counts["event:Order Completed"] += len(self.store_orders)
        if self.app_install is not None:
            counts["track"] += 1
            counts["event:Application Installed"] += 1
            counts["identify"] += 1
        return counts

    @property
    def anonymous_sessions(self) -> int:
        """Sessions that never log in: each stays a profile of its own."""
        return sum(not s.logs_in for s in self.sessions)


@dataclass
class Tills:
    """Receipt counters of the demo's stores; receipt ids are ``pos-<store>-<n>``."""

    issued: Counter[int] = field(default_factory=Counter)

    def next_receipt(self, store: int) -> str:
        """The next receipt id of ``store`` (unique across the whole demo)."""
        self.issued[store] += 1
        return f"pos-{store:02d}-{self.issued[store]:06d}"


def _later_moment(rng: random.Random, after: date, earliest: int, latest: int) -> datetime:
    """A moment on a day strictly after ``after`` (at most LAST_DAY), between two times of day."""
    span = max((LAST_DAY - after).days, 1)
    day = min(after + timedelta(days=between(rng, 1, span + 1)), LAST_DAY)
    return at_second(day, between(rng, earliest, latest))


def plan_omnichannel(
    first_day: date, has_loyalty_card: bool, rng: random.Random, tills: Tills
) -> OmnichannelPlan:
    """Decide, from ``rng`` alone, what the generated layer does for a customer.

    ``first_day`` is the customer's sign-up day: every planned event happens on a later day, and
    no later than :data:`LAST_DAY`. Only card holders shop in stores. Draws happen in a fixed
    order, so the same ``rng`` state always gives the same plan (and the same receipt ids, given
    the same ``tills``).
    """
    sessions: list[WebSession] = []
    if rng.random() < WEB_CUSTOMER_SHARE:
        for _ in range(between(rng, 1, 4)):
            start = _later_moment(rng, first_day, 8 * 3600, 23 * 3600)
            genres = tuple(pick(rng, GENRES) for _ in range(between(rng, 1, 4)))
            logs_in = rng.random() < LOGIN_PROBABILITY
            sessions.append(WebSession(random_uuid(rng), start, genres, logs_in))
        sessions.sort(key=lambda s: s.start)
        # The last session always ends with a log-in: that is how the visitor became known.
        sessions[-1] = replace(sessions[-1], logs_in=True)

    second_email = None
    if rng.random() < SECOND_EMAIL_SHARE:
        moment = _later_moment(rng, first_day + timedelta(days=29), 7 * 3600, 23 * 3600)
        second_email = (moment, pick(rng, SECOND_EMAIL_DOMAINS))

    store_orders: list[StoreOrder] = []
    if has_loyalty_card and rng.random() < STORE_SHOPPER_SHARE:
        for _ in range(between(rng, 1, 3)):
            store = between(rng, 1, STORES + 1)
            moment = _later_moment(rng, first_day, 9 * 3600, 20 * 3600)
            quantity = pick(rng, (1, 1, 1, 2, 2, 3, 4))
            amount = pick(rng, SHELF_PRICES) * quantity
            store_orders.append(
                StoreOrder(tills.next_receipt(store), store, moment, quantity, amount)
            )

    app_install = None
    if rng.random() < APP_INSTALL_SHARE:
        os_name = pick(rng, ("ios", "android"))
        manufacturer, model = pick(rng, DEVICES[os_name])
        if os_name == "ios":
            device_id = random_uuid(rng).upper()  # identifierForVendor
            advertising_id = random_uuid(rng).upper()  # IDFA
        else:
            device_id = f"{rng.getrandbits(64):016x}"  # ANDROID_ID
            advertising_id = random_uuid(rng)  # Google advertising id
        device = {
            "id": device_id,
            "type": os_name,
            "advertisingId": advertising_id,
            "adTrackingEnabled": True,
            "manufacturer": manufacturer,
            "model": model,
        }
        moment = _later_moment(rng, first_day, 7 * 3600, 23 * 3600)
        os_version = pick(rng, OS_VERSIONS[os_name])
        app_install = AppInstall(random_uuid(rng), moment, device, os_version)

    # Keep within the anonymous-id limit: earlier sessions give up their log-in first.
    budget = MAX_ANONYMOUS_IDS - len(store_orders) - (app_install is not None)
    logged_in = sum(s.logs_in for s in sessions)
    for i, session in enumerate(sessions):
        if logged_in <= budget:
            break
        if session.logs_in and i < len(sessions) - 1:
            sessions[i] = replace(session, logs_in=False)
            logged_in -= 1

    return OmnichannelPlan(tuple(sessions), second_email, tuple(store_orders), app_install)


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if "a" <= ch <= "z")


# ---------------------------------------------------------------------------------------------
# Rendering


def render_omnichannel(customer: DemoCustomer, plan: OmnichannelPlan) -> list[Message]:
    """The Segment messages of ``plan``: sessions, second e-mail, store orders, app install.

    Message ids are derived from the customer id (and receipt ids), so they are stable for the
    same seed and unique across the demo.
    """
    cid = customer.customer_id
    messages: list[Message] = []
    for s_no, session in enumerate(plan.sessions):
        messages.extend(_render_session(customer, session, f"web-{cid}-{s_no}"))

    if plan.second_email is not None:
        moment, domain = plan.second_email
        # Letters, then the customer id: unique, and never equal to a first address.
        local = _letters(customer.first_name[:1] + customer.last_name)
        email = f"{local}{cid}@{domain}"
        messages.append(
            {
                "type": "identify",
                "messageId": f"email-change-{cid}",
                "userId": customer.user_id,
                "timestamp": isoformat_seconds(moment),
                "traits": {"email": email},
                "context": context("web"),
            }
        )

    for order in plan.store_orders:
        properties = order_properties(order.receipt_id, order.quantity, order.amount)
        properties["channel"] = "store"
        properties["store_id"] = f"store-{order.store:02d}"
        messages.append(
            {
                "type": "track",
                "messageId": f"store-order-{order.receipt_id}",
                "anonymousId": order.receipt_id,
                "event": "Order Completed",
                "timestamp": isoformat_seconds(order.at),
                "properties": properties,
                "context": context("store", traits={"loyalty_card": customer.loyalty_card}),
            }
        )

    if plan.app_install is not None:
        messages.extend(_render_app_install(customer, plan.app_install))
    return messages


def _render_session(customer: DemoCustomer, session: WebSession, prefix: str) -> list[Message]:
    user_agent = USER_AGENTS[customer.customer_id % len(USER_AGENTS)]
    moment = session.start
    home = {"path": "/", "url": f"{SHOP_URL}/", "title": "CDNOW - Home"}
    messages: list[Message] = [
        {
            "type": "page",
            "messageId": f"{prefix}-0",
            "anonymousId": session.anonymous_id,
            "timestamp": isoformat_seconds(moment),
            "name": "Home",
            "properties": dict(home),
            "context": context("web", page=home, userAgent=user_agent),
        }
    ]
    for v_no, genre in enumerate(session.genres, start=1):
        moment += timedelta(seconds=45 * v_no + 30)
        path = f"/music/{_letters(genre)}"
        page = {"path": path, "url": f"{SHOP_URL}{path}", "title": f"CDNOW - {genre}"}
        messages.append(
            {
                "type": "track",
                "messageId": f"{prefix}-{v_no}",
                "anonymousId": session.anonymous_id,
                "event": "Product Viewed",
                "timestamp": isoformat_seconds(moment),
                "properties": {"product_id": "cd", "category": "Music", "genre": genre},
                "context": context("web", page=page, userAgent=user_agent),
            }
        )
    if session.logs_in:
        messages.append(
            {
                "type": "identify",
                "messageId": f"{prefix}-login",
                "userId": customer.user_id,
                "anonymousId": session.anonymous_id,
                "timestamp": isoformat_seconds(moment + timedelta(seconds=60)),
                "context": context("web", userAgent=user_agent),
            }
        )
    return messages


def _render_app_install(customer: DemoCustomer, install: AppInstall) -> list[Message]:
    def app_context() -> dict[str, Any]:
        return context(
            "mobile",
            app=dict(APP),
            device=dict(install.device),
            os={
                "name": "iOS" if install.device["type"] == "ios" else "Android",
                "version": install.os_version,
            },
        )

    cid = customer.customer_id
    return [
        {
            "type": "track",
            "messageId": f"app-install-{cid}",
            "anonymousId": install.anonymous_id,
            "event": "Application Installed",
            "timestamp": isoformat_seconds(install.at),
            "properties": {"version": APP["version"], "build": APP["build"]},
            "context": app_context(),
        },
        {
            "type": "identify",
            "messageId": f"app-login-{cid}",
            "userId": customer.user_id,
            "anonymousId": install.anonymous_id,
            "timestamp": isoformat_seconds(install.at + timedelta(minutes=3)),
            "context": app_context(),
        },
    ]
