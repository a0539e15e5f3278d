"""The demo's data: CDNOW's real purchase history as Segment messages, plus an omnichannel layer.

CDNOW_master.txt (shipped inside the ``lifetimes`` package) holds 69,659 real orders of 23,570
customers of the CDNOW music shop, 1997-01-01 to 1998-06-30. :func:`iter_demo_messages` turns it
into Segment batch items: one sign-up ``identify`` per customer (traits generated with Faker) and
one ``track "Order Completed"`` per row; :mod:`opencdp.demo.omnichannel` adds anonymous web
sessions, second e-mail addresses, loyalty-card store purchases and app installs on top.

Everything is deterministic for a seed: each customer draws from random streams seeded by
``(seed, customer id)``, so the first N customers' messages do not depend on ``limit_customers``
and the CDNOW messages do not depend on ``omnichannel``. :func:`expected_summary` states what the
stream contains and how many profiles identity resolution must end with.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from opencdp.datasets import INSTALL_HINT as _INSTALL_HINT
from opencdp.datasets import cdnow_path
from opencdp.demo.omnichannel import (
    DemoCustomer,
    Message,
    Tills,
    at_second,
    below,
    between,
    context,
    order_properties,
    pick,
    plan_omnichannel,
    render_omnichannel,
)
from opencdp.errors import ConfigurationError
from opencdp.timeutil import isoformat_seconds

__all__ = [
    "CDNOW_CUSTOMERS",
    "CDNOW_ORDERS",
    "DEMO_IDENTITY_TRAIT_KEYS",
    "CdnowOrder",
    "Message",
    "cdnow_path",
    "expected_summary",
    "iter_demo_messages",
    "read_cdnow",
]

DEMO_IDENTITY_TRAIT_KEYS: dict[str, str] = {"loyalty_card": "loyalty_card"}
"""The identity trait keys a workspace needs so that store purchases join their customer."""

CDNOW_ORDERS = 69_659
CDNOW_CUSTOMERS = 23_570
LOYALTY_CARD_SHARE = 0.40

_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # RFC 2606: never a real inbox
_AREA_CODES = (201, 206, 212, 213, 214, 303, 305, 312, 404, 415, 503, 512, 602, 612, 617, 702,
               713, 718, 818, 919)  # fmt: skip
# Exchanges without N11 service codes and the fictional 555: index + customer id -> unique number.
_EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11 and x != 555)
_EMAIL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz.")
_POOL_SIZES = {"first_name": 1000, "last_name": 1000, "city": 400}


# ---------------------------------------------------------------------------------------------
# CDNOW


@dataclass(frozen=True, slots=True)
class CdnowOrder:
    """One row of CDNOW_master.txt; ``line_no`` is its 1-based line in the file (header = 1)."""

    customer_id: int
    day: date
    quantity: int
    amount: Decimal
    line_no: int


def read_cdnow(path: Path | None = None) -> Iterator[CdnowOrder]:
    """Stream the orders of CDNOW_master.txt (default: :func:`cdnow_path`) in file order.

    The file is whitespace-separated: customer id, yyyymmdd, number of CDs, dollar value, with an
    optional header line. A malformed line raises :class:`~opencdp.errors.ConfigurationError`
    naming the file and line.
    """
    path = cdnow_path() if path is None else path
    days: dict[str, date] = {}  # 546 distinct days over 69,659 rows
    with path.open(encoding="ascii") as lines:
        for line_no, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields or (line_no == 1 and not fields[0].isdigit()):
                continue
            try:
                customer, yyyymmdd, quantity, amount = fields
                day = days.get(yyyymmdd)
                if day is None:
                    day = days[yyyymmdd] = date(
                        int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
                    )
                yield CdnowOrder(
                    customer_id=int(customer),
                    day=day,
                    quantity=int(quantity),
                    amount=Decimal(amount),
                    line_no=line_no,
                )
            except (ValueError, InvalidOperation) as exc:
                raise ConfigurationError(
                    f"{path}:{line_no}: expected 'customer_id yyyymmdd cds dollars', got "
                    f"{line.strip()!r} ({exc}); reinstall the data: {_INSTALL_HINT}"
                ) from exc


def _by_customer(orders: Iterable[CdnowOrder]) -> Iterator[tuple[int, list[CdnowOrder]]]:
    """Group consecutive orders by customer; CDNOW is sorted by customer id."""
    previous = -1
    for customer_id, group in itertools.groupby(orders, key=lambda o: o.customer_id):
        if customer_id <= previous:
            raise ConfigurationError(
                f"CDNOW data is not sorted by customer id (customer {customer_id} after "
                f"{previous}); reinstall the data: {_INSTALL_HINT}"
            )
        previous = customer_id
        yield customer_id, list(group)


# ---------------------------------------------------------------------------------------------
# Generated identities


@lru_cache(maxsize=4)
def _name_pools(seed: int) -> dict[str, tuple[str, ...]]:
    """Small pools of Faker names and cities; customers combine them (Faker per call is slow)."""
    try:
        from faker import Faker
    except ImportError as exc:
        raise ConfigurationError(
            "The demo generates identities with Faker, which is not installed: run "
            "`make install`, or `pip install 'opencdp[demo]'`"
        ) from exc
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return {
        kind: tuple(getattr(fake, kind)() for _ in range(size))
        for kind, size in _POOL_SIZES.items()
    }


def _traits_rng(seed: int, customer_id: int) -> random.Random:
    """The customer's random stream for their traits and order times."""
    return random.Random((seed << 40) | (customer_id << 1))


def _omni_rng(seed: int, customer_id: int) -> random.Random:
    """The customer's random stream for the omnichannel layer (their traits use another)."""
    return random.Random((seed << 40) | (customer_id << 1) | 1)


def _limit(limit_customers: int | None) -> int | None:
    return None if limit_customers is None else max(limit_customers, 0)


def _holds_loyalty_card(seed: int, customer_id: int) -> bool:
    """Whether the customer has a card: a hash, so no random stream depends on it."""
    digest = hashlib.blake2b(f"{seed}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) < LOYALTY_CARD_SHARE * 2**64


def _loyalty_card(seed: int, customer_id: int) -> str:
    """A 13-digit EAN with the in-store prefix 29, unique per customer for a given seed."""
    # Multiplying by a number prime to 10 is a bijection modulo 10**10: no two customers collide.
    body = "29" + f"{(customer_id * 3_141_592_653 + seed * 104_729) % 10**10:010d}"
    odd_even = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str(-odd_even % 10)


def _phone(customer_id: int, rng: random.Random) -> str:
    """A valid US number, unique per customer, written either in E.164 or in national format."""
    # (exchange, first two line digits) encode the customer id: unique for ids below 79,200
    # (CDNOW's go to 23,570), whatever the area code and the last two digits.
    block, exchange_index = divmod(customer_id, len(_EXCHANGES))
    area = pick(rng, _AREA_CODES)
    line = f"{block % 100:02d}{below(rng, 100):02d}"
    exchange = _EXCHANGES[exchange_index]
    if rng.random() < 0.5:
        return f"+1{area}{exchange}{line}"
    return f"({area}) {exchange}-{line}"


def _make_customer(
    seed: int, customer_id: int, first_day: date, rng: random.Random
) -> DemoCustomer:
    pools = _name_pools(seed)
    first = pick(rng, pools["first_name"])
    last = pick(rng, pools["last_name"])
    local = "".join(ch for ch in f"{first}.{last}".lower() if ch in _EMAIL_CHARS)
    return DemoCustomer(
        customer_id=customer_id,
        user_id=f"cdnow-{customer_id}",
        # Sign-up between 08:00 and 19:00, so that same-day orders fit after it (see below).
        signup_at=at_second(first_day, between(rng, 8 * 3600, 19 * 3600)),
        first_name=first,
        last_name=last,
        # The customer id keeps addresses unique across customers with the same name.
        email=f"{local}{customer_id}@{pick(rng, _EMAIL_DOMAINS)}",
        phone=_phone(customer_id, rng),
        city=pick(rng, pools["city"]),
        country="US",
        loyalty_card=(
            _loyalty_card(seed, customer_id) if _holds_loyalty_card(seed, customer_id) else None
        ),
    )


# ---------------------------------------------------------------------------------------------
# Messages


def _signup(customer: DemoCustomer) -> Message:
    traits: dict[str, Any] = {
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
        "city": customer.city,
        "country": customer.country,
        "created_at": isoformat_seconds(customer.signup_at),
    }
    if customer.loyalty_card is not None:
        traits["loyalty_card"] = customer.loyalty_card
    return {
        "type": "identify",
        "messageId": f"cdnow-identify-{customer.customer_id}",
        "userId": customer.user_id,
        "timestamp": isoformat_seconds(customer.signup_at),
        "traits": traits,
        "context": context("web"),
    }


def _order(customer: DemoCustomer, order: CdnowOrder, rng: random.Random) -> Message:
    if order.day == customer.signup_at.date():
        # Orders of the sign-up day come after the sign-up (within four hours).
        moment = customer.signup_at + timedelta(seconds=between(rng, 120, 4 * 3600))
    else:
        moment = at_second(order.day, between(rng, 7 * 3600, 23 * 3600 + 1800))
    return {
        "type": "track",
        "messageId": f"cdnow-order-{order.line_no}",
        "userId": customer.user_id,
        "event": "Order Completed",
        "timestamp": isoformat_seconds(moment),
        "properties": order_properties(f"cdnow-{order.line_no}", order.quantity, order.amount),
        "context": context("web"),
    }


def _customers(
    seed: int, limit_customers: int | None, path: Path | None
) -> Iterator[tuple[DemoCustomer, list[CdnowOrder], random.Random]]:
    """Each customer with their orders and the random stream their order times come from."""
    grouped = _by_customer(read_cdnow(path))
    for customer_id, orders in itertools.islice(grouped, _limit(limit_customers)):
        rng = _traits_rng(seed, customer_id)
        first_day = min(o.day for o in orders)
        yield _make_customer(seed, customer_id, first_day, rng), orders, rng


def iter_demo_messages(
    seed: int = 7,
    *,
    omnichannel: bool = True,
    limit_customers: int | None = None,
    path: Path | None = None,
) -> Iterator[Message]:
    """Stream the demo as Segment batch items, customer by customer.

    Per customer: the sign-up ``identify``, one ``track "Order Completed"`` per CDNOW row, then
    (``omnichannel=True``) the generated layer of :mod:`opencdp.demo.omnichannel`. Messages are
    not in event-time order across customers. Every message has a ``type``, a ``messageId``
    (unique, ≤100 characters, the same on every run with the same seed), a ``timestamp`` ending
    in ``Z`` and a ``userId`` or ``anonymousId``. ``limit_customers`` keeps the first N customers
    of the file (their messages are exactly those of the full run). ``path`` overrides where
    CDNOW_master.txt is read from.
    """
    tills = Tills()
    for customer, orders, rng in _customers(seed, limit_customers, path):
        yield _signup(customer)
        for order in orders:
            yield _order(customer, order, rng)
        if omnichannel:
            first_day = customer.signup_at.date()
            has_card = customer.loyalty_card is not None
            plan = plan_omnichannel(
                first_day, has_card, _omni_rng(seed, customer.customer_id), tills
            )
            yield from render_omnichannel(customer, plan)


@lru_cache(maxsize=8)
def _summary(
    seed: int, omnichannel: bool, limit_customers: int | None, path: Path | None
) -> dict[str, Any]:
    # Walks the file and the plans only: no identity traits, no message is rendered.
    counts: Counter[str] = Counter()
    revenue = Decimal(0)
    days: set[date] = set()
    store_revenue = Decimal(0)
    tills = Tills()
    grouped = _by_customer(read_cdnow(path))
    for customer_id, orders in itertools.islice(grouped, _limit(limit_customers)):
        has_card = _holds_loyalty_card(seed, customer_id)
        counts["customers"] += 1
        counts["identify"] += 1
        counts["track"] += len(orders)
        counts["event:Order Completed"] += len(orders)
        counts["cdnow_orders"] += len(orders)
        counts["loyalty_card_holders"] += has_card
        revenue += sum((o.amount for o in orders), Decimal(0))
        days.update(o.day for o in orders)
        if omnichannel:
            first_day = min(o.day for o in orders)
            plan = plan_omnichannel(first_day, has_card, _omni_rng(seed, customer_id), tills)
            counts.update(plan.message_counts())
            counts["web_sessions"] += len(plan.sessions)
            counts["anonymous_sessions"] += plan.anonymous_sessions
            counts["second_emails"] += plan.second_email is not None
            counts["store_orders"] += len(plan.store_orders)
            counts["store_shoppers"] += bool(plan.store_orders)
            counts["app_installs"] += plan.app_install is not None
            store_revenue += sum((o.amount for o in plan.store_orders), Decimal(0))
    by_type = {t: counts[t] for t in ("identify", "track", "page") if counts[t]}
    events = {
        k.removeprefix("event:"): v for k, v in sorted(counts.items()) if k.startswith("event:")
    }
    summary: dict[str, Any] = {
        "seed": seed,
        "omnichannel": omnichannel,
        "customers": counts["customers"],
        "cdnow_orders": counts["cdnow_orders"],
        "cdnow_revenue": revenue,
        "first_day": min(days) if days else None,
        "last_day": max(days) if days else None,
        "messages": sum(by_type.values()),
        "messages_by_type": by_type,
        "events_by_name": events,
        "loyalty_card_holders": counts["loyalty_card_holders"],
        "web_sessions": counts["web_sessions"],
        "anonymous_sessions": counts["anonymous_sessions"],
        "second_emails": counts["second_emails"],
        "store_shoppers": counts["store_shoppers"],
        "store_orders": counts["store_orders"],
        "store_revenue": store_revenue,
        "app_installs": counts["app_installs"],
        # Every customer is one profile; only sessions that never log in stay apart.
        "profiles": counts["customers"] + counts["anonymous_sessions"],
    }
    return summary


def expected_summary(
    seed: int = 7,
    omnichannel: bool = True,
    limit_customers: int | None = None,
    *,
    path: Path | None = None,
) -> dict[str, Any]:
    """The ground truth of ``iter_demo_messages(seed, omnichannel=..., limit_customers=...)``.

    Computed from the CDNOW file and the per-customer plans without rendering a message. Keys:
    ``customers``, ``cdnow_orders``, ``cdnow_revenue`` (exact :class:`~decimal.Decimal`),
    ``first_day``/``last_day`` of CDNOW orders, ``messages`` and ``messages_by_type``,
    ``events_by_name`` (track events), the generated layer's ``loyalty_card_holders``,
    ``web_sessions``, ``anonymous_sessions`` (never log in), ``second_emails``,
    ``store_shoppers``, ``store_orders``, ``store_revenue``, ``app_installs``, and ``profiles``:
    how many profiles identity resolution must end with (one per customer plus one per session
    that never logs in), given the identity trait keys :data:`DEMO_IDENTITY_TRAIT_KEYS`.
    """
    # A copy: callers may change what they get without touching the cache.
    return copy.deepcopy(_summary(seed, omnichannel, limit_customers, path))
