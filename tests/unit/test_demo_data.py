"""The demo's data: real CDNOW orders read exactly, generated messages deterministic and consistent.

The full stream (about 167k messages) takes a few seconds to generate, so the stream is checked on
the first :data:`SAMPLE` customers (every code path, collected once into :class:`StreamFacts`);
the full-size claims are checked through :func:`expected_summary` against the file itself.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from opencdp.demo import data
from opencdp.demo.data import (
    CDNOW_CUSTOMERS,
    CDNOW_ORDERS,
    DEMO_IDENTITY_TRAIT_KEYS,
    cdnow_path,
    expected_summary,
    iter_demo_messages,
    read_cdnow,
)
from opencdp.errors import ConfigurationError

SEED = 7
SAMPLE = 4000  # customers; a sixth of CDNOW
CENT = Decimal("0.01")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------------------------------------
# CDNOW, the real data


def test_cdnow_path_is_found_without_importing_lifetimes() -> None:
    # Given a fresh interpreter (nothing else in this test session can have imported lifetimes)
    code = (
        "import sys; from opencdp.demo.data import cdnow_path; p = cdnow_path(); "
        "print(p.name, p.is_file(), 'lifetimes' in sys.modules)"
    )
    # When the path is looked up
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # Then the file is there, and lifetimes' own code never ran
    assert result.stdout.split() == ["CDNOW_master.txt", "True", "False"]


def test_cdnow_path_says_how_to_install_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ConfigurationError) as raised:
        cdnow_path()
    assert "make install" in raised.value.message
    assert "pip install --no-deps lifetimes==0.11.3" in raised.value.message


@dataclass(frozen=True)
class FileFacts:
    """CDNOW_master.txt's own numbers, computed by splitting its lines (not with read_cdnow)."""

    lines: list[str]
    orders: int
    customers: int
    revenue: Decimal
    cds: int
    first_day: str
    last_day: str


@pytest.fixture(scope="module")
def cdnow_file() -> FileFacts:
    lines = cdnow_path().read_text(encoding="ascii").splitlines()
    rows = [line.split() for line in lines[1:] if line.strip()]
    return FileFacts(
        lines=lines,
        orders=len(rows),
        customers=len({row[0] for row in rows}),
        revenue=sum((Decimal(row[3]) for row in rows), Decimal(0)),
        cds=sum(int(row[2]) for row in rows),
        first_day=min(row[1] for row in rows),
        last_day=max(row[1] for row in rows),
    )


def test_read_cdnow_reads_the_whole_real_file_exactly(cdnow_file: FileFacts) -> None:
    orders = list(read_cdnow())

    assert len(orders) == cdnow_file.orders == CDNOW_ORDERS == 69_659
    assert len({o.customer_id for o in orders}) == cdnow_file.customers == CDNOW_CUSTOMERS == 23_570
    assert min(o.day for o in orders) == date(1997, 1, 1)
    assert max(o.day for o in orders) == date(1998, 6, 30)
    assert (cdnow_file.first_day, cdnow_file.last_day) == ("19970101", "19980630")
    revenue = sum((o.amount for o in orders), Decimal(0))
    assert revenue == cdnow_file.revenue
    assert Decimal("2_490_000") < revenue < Decimal("2_510_000")
    assert sum(o.quantity for o in orders) == cdnow_file.cds
    # line_no points at the row in the file (the header is line 1)
    first, last = orders[0], orders[-1]
    assert cdnow_file.lines[first.line_no - 1].split() == ["00001", "19970101", "1", "11.77"]
    assert cdnow_file.lines[last.line_no - 1].split()[0] == "23570"


def test_the_full_demo_summary_is_the_real_file(cdnow_file: FileFacts) -> None:
    summary = expected_summary(SEED)

    assert summary["customers"] == cdnow_file.customers
    assert summary["cdnow_orders"] == cdnow_file.orders
    assert summary["cdnow_revenue"] == cdnow_file.revenue
    assert (summary["first_day"], summary["last_day"]) == (date(1997, 1, 1), date(1998, 6, 30))
    assert summary["messages"] == sum(summary["messages_by_type"].values())
    assert summary["events_by_name"]["Order Completed"] == (
        cdnow_file.orders + summary["store_orders"]
    )
    assert summary["profiles"] == cdnow_file.customers + summary["anonymous_sessions"]
    assert 150_000 < summary["messages"] < 185_000


def test_read_cdnow_handles_header_crlf_and_reports_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(b" customer_id date cds dollars\r\n 00007 19970203  2   25.98\r\n\r\n")
    assert [(o.customer_id, o.day, o.quantity, o.amount, o.line_no) for o in read_cdnow(good)] == [
        (7, date(1997, 2, 3), 2, Decimal("25.98"), 2)
    ]

    bad = tmp_path / "bad.txt"
    bad.write_text("00001 19970101 1 11.77\n00002 1997x112 1 12.00\n", encoding="ascii")
    with pytest.raises(ConfigurationError, match=r"bad\.txt:2:"):
        list(read_cdnow(bad))


def test_unsorted_cdnow_data_is_refused(tmp_path: Path) -> None:
    unsorted = tmp_path / "unsorted.txt"
    unsorted.write_text("00002 19970101 1 1.00\n00001 19970101 1 1.00\n", encoding="ascii")
    with pytest.raises(ConfigurationError, match="not sorted"):
        list(iter_demo_messages(SEED, path=unsorted))


# ---------------------------------------------------------------------------------------------
# One pass over the stream of the first SAMPLE customers


class Identities:
    """A tiny union-find over identifiers: what identity resolution must find, limits aside."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def link(self, keys: list[str]) -> None:
        roots = [self.find(k) for k in keys]
        for root in roots[1:]:
            self.parent[root] = roots[0]

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key in self.parent:
            out.setdefault(self.find(key), []).append(key)
        return out


def identifiers(message: dict[str, Any]) -> list[str]:
    """The identifiers Segment's rules (segment-compat.md §2.3) read, plus the demo's trait key."""
    ctx = message.get("context", {})
    traits = message.get("traits", {})
    found = []
    if "userId" in message:
        found.append(f"user_id:{message['userId']}")
    if "anonymousId" in message:
        found.append(f"anonymous_id:{message['anonymousId']}")
    for source in (traits, ctx.get("traits", {})):
        if "email" in source:
            found.append(f"email:{source['email']}")
        for key, id_type in DEMO_IDENTITY_TRAIT_KEYS.items():
            if key in source:
                found.append(f"{id_type}:{source[key]}")
    device = ctx.get("device")
    if device:
        found.append(f"{device['type']}.id:{device['id']}")
        if device.get("adTrackingEnabled"):
            found.append(f"{device['type']}.idfa:{device['advertisingId']}")
    return found


@dataclass
class StreamFacts:
    count: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)
    longest_id: int = 0
    problems: list[str] = field(default_factory=list)
    signups: list[dict[str, Any]] = field(default_factory=list)
    cdnow_orders: int = 0
    cdnow_revenue: Decimal = Decimal(0)
    store_orders: int = 0
    store_revenue: Decimal = Decimal(0)
    anonymous_sessions: int = 0
    second_emails: int = 0
    identities: Identities = field(default_factory=Identities)


def collect(messages: Iterable[dict[str, Any]]) -> StreamFacts:
    facts = StreamFacts()
    signup_at = ""
    session_has_login: dict[str, bool] = {}
    for m in messages:
        facts.count += 1
        facts.by_type[m["type"]] += 1
        if m["type"] == "track":
            facts.by_event[m["event"]] += 1
        mid = m["messageId"]
        if mid in facts.ids:
            facts.problems.append(f"duplicate messageId {mid}")
        facts.ids.add(mid)
        facts.longest_id = max(facts.longest_id, len(mid))
        if not (m.get("userId") or m.get("anonymousId")):
            facts.problems.append(f"{mid}: neither userId nor anonymousId")
        ts = m["timestamp"]
        if not TIMESTAMP.match(ts) or not "1997-01-01" <= ts[:10] <= "1998-06-30":
            facts.problems.append(f"{mid}: bad timestamp {ts}")
        if m["context"]["library"]["name"] != "opencdp-demo":
            facts.problems.append(f"{mid}: no library")

        if mid.startswith("cdnow-identify-"):
            facts.signups.append(m)
            signup_at = ts
        elif ts < signup_at:  # a customer's messages follow their sign-up, in event time too
            facts.problems.append(f"{mid} at {ts} precedes the sign-up at {signup_at}")
        if mid.startswith("cdnow-order-"):
            facts.cdnow_orders += 1
            facts.cdnow_revenue += Decimal(str(m["properties"]["revenue"]))
        if mid.startswith("store-order-"):
            facts.store_orders += 1
            facts.store_revenue += Decimal(str(m["properties"]["revenue"]))
            if "userId" in m or m["properties"]["channel"] != "store":
                facts.problems.append(f"{mid}: store purchase with a userId or wrong channel")
            if not m["context"]["traits"].get("loyalty_card"):
                facts.problems.append(f"{mid}: store purchase without a loyalty card")
        if mid.startswith("email-change-"):
            facts.second_emails += 1
        if mid.startswith("web-"):
            anon = m["anonymousId"]
            session_has_login[anon] = session_has_login.get(anon, False) or "userId" in m
        facts.identities.link(identifiers(m))
    facts.anonymous_sessions = sum(not logged_in for logged_in in session_has_login.values())
    return facts


@pytest.fixture(scope="module")
def sample() -> StreamFacts:
    return collect(iter_demo_messages(SEED, limit_customers=SAMPLE))


def test_the_stream_is_well_formed(sample: StreamFacts) -> None:
    assert sample.problems == []
    assert len(sample.ids) == sample.count
    assert sample.longest_id <= 100
    assert sample.by_type.keys() == {"identify", "track", "page"}


def test_expected_summary_agrees_with_the_stream(sample: StreamFacts) -> None:
    summary = expected_summary(SEED, True, SAMPLE)

    assert summary["customers"] == len(sample.signups) == SAMPLE
    assert summary["cdnow_orders"] == sample.cdnow_orders
    assert summary["cdnow_revenue"] == sample.cdnow_revenue
    assert summary["messages"] == sample.count
    assert summary["messages_by_type"] == dict(sample.by_type)
    assert summary["events_by_name"] == dict(sample.by_event)
    assert summary["store_orders"] == sample.store_orders
    assert summary["store_revenue"] == sample.store_revenue
    assert summary["second_emails"] == sample.second_emails
    assert summary["anonymous_sessions"] == sample.anonymous_sessions
    assert summary["loyalty_card_holders"] == sum(
        "loyalty_card" in s["traits"] for s in sample.signups
    )


def test_profiles_are_what_linking_the_identifiers_gives(sample: StreamFacts) -> None:
    # Given every message's identifiers linked together (what identity resolution does)
    groups = list(sample.identities.groups().values())
    # Then the groups are exactly the expected profiles...
    assert len(groups) == expected_summary(SEED, True, SAMPLE)["profiles"]
    # ...and none needs Segment's default limits (user_id 1, everything else 5) to stay apart.
    for group in groups:
        per_type = Counter(key.split(":", 1)[0] for key in group)
        assert per_type["user_id"] <= 1, group
        assert max(per_type.values()) <= 5, group
    assert sum(1 for g in groups if not any(k.startswith("user_id:") for k in g)) == (
        sample.anonymous_sessions
    )


def test_generated_identities_are_unique_and_plausible(sample: StreamFacts) -> None:
    traits = [s["traits"] for s in sample.signups]
    assert all(s["traits"]["created_at"] == s["timestamp"] for s in sample.signups)
    assert len({t["email"] for t in traits}) == len(traits)

    # Both spellings are valid US numbers (phonenumbers is slow: a sample is enough)...
    for t in traits[::5]:
        assert phonenumbers.is_valid_number(phonenumbers.parse(t["phone"], "US")), t["phone"]
    # ...and no two customers share one once normalised to E.164
    e164 = {"+1" + re.sub(r"\D", "", t["phone"]).removeprefix("1")[-10:] for t in traits}
    assert len(e164) == len(traits)

    cards = [t["loyalty_card"] for t in traits if "loyalty_card" in t]
    assert len(set(cards)) == len(cards)
    assert 0.36 < len(cards) / len(traits) < 0.44
    for card in cards:
        assert re.fullmatch(r"\d{13}", card)
        weighted = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(card))
        assert weighted % 10 == 0, f"{card}: bad EAN-13 check digit"


def test_the_omnichannel_layer_has_the_promised_shares() -> None:
    summary = expected_summary(SEED)
    customers = summary["customers"]
    assert 0.09 < summary["anonymous_sessions"] / summary["web_sessions"] < 0.12
    # ~30% of customers browse, in one to three sessions (two on average)
    assert 0.55 < summary["web_sessions"] / customers < 0.65
    assert 0.08 < summary["second_emails"] / customers < 0.12
    assert 0.18 < summary["app_installs"] / customers < 0.22
    assert 0.45 < summary["store_shoppers"] / summary["loyalty_card_holders"] < 0.55
    assert summary["store_shoppers"] < summary["store_orders"] <= 2 * summary["store_shoppers"]


# ---------------------------------------------------------------------------------------------
# Determinism and limits


def test_messages_are_deterministic_across_runs() -> None:
    first = list(iter_demo_messages(SEED, limit_customers=200))
    again = list(iter_demo_messages(SEED, limit_customers=200))
    assert first == again

    other_seed = list(iter_demo_messages(SEED + 1, limit_customers=200))
    assert other_seed != first
    # The real orders keep their ids whatever the seed, so reloading never duplicates them.
    cdnow_ids = {m["messageId"] for m in first if m["messageId"].startswith("cdnow-")}
    assert cdnow_ids <= {m["messageId"] for m in other_seed}


def test_limit_customers_keeps_a_prefix_of_the_full_stream() -> None:
    limited = list(iter_demo_messages(SEED, limit_customers=300))
    assert limited == list(itertools.islice(iter_demo_messages(SEED), len(limited)))
    assert len({m["userId"] for m in limited if "userId" in m}) == 300

    summary = expected_summary(SEED, True, 300)
    facts = collect(limited)
    assert summary["customers"] == 300
    assert summary["messages"] == facts.count
    assert summary["messages_by_type"] == dict(facts.by_type)
    assert summary["profiles"] == len(facts.identities.groups())
    assert list(iter_demo_messages(SEED, limit_customers=0)) == []


def test_without_omnichannel_only_cdnow_remains_unchanged() -> None:
    with_layer = list(iter_demo_messages(SEED, limit_customers=300))
    cdnow_only = list(iter_demo_messages(SEED, omnichannel=False, limit_customers=300))
    assert cdnow_only == [m for m in with_layer if m["messageId"].startswith("cdnow-")]

    summary = expected_summary(SEED, False, 300)
    assert summary["profiles"] == summary["customers"] == 300
    assert summary["messages_by_type"] == {"identify": 300, "track": summary["cdnow_orders"]}


def test_order_messages_carry_the_exact_cdnow_values() -> None:
    orders = {
        o.line_no: o for o in itertools.takewhile(lambda o: o.customer_id <= 600, read_cdnow())
    }
    for m in iter_demo_messages(SEED, omnichannel=False, limit_customers=600):
        if m["type"] != "track":
            continue
        order = orders[int(m["messageId"].removeprefix("cdnow-order-"))]
        props = m["properties"]
        assert m["userId"] == f"cdnow-{order.customer_id}"
        assert m["event"] == "Order Completed"
        assert m["timestamp"].startswith(order.day.isoformat())
        assert props["order_id"] == f"cdnow-{order.line_no}"
        assert props["total"] == props["revenue"] == float(order.amount)
        assert props["currency"] == "USD"
        (product,) = props["products"]
        assert product["quantity"] == order.quantity
        assert product["price"] == float(
            (order.amount / order.quantity).quantize(CENT, ROUND_HALF_UP)
        )
        assert m["context"] == {"library": {"name": "opencdp-demo"}, "channel": "web"}


def test_store_purchases_and_app_installs_look_like_their_channel() -> None:
    messages = list(iter_demo_messages(SEED, limit_customers=1000))
    store = [m for m in messages if m["messageId"].startswith("store-order-")]
    assert store and all(re.fullmatch(r"pos-\d\d-\d{6}", m["anonymousId"]) for m in store)
    assert all("userId" not in m and m["context"]["traits"]["loyalty_card"] for m in store)

    installs = [m for m in messages if m.get("event") == "Application Installed"]
    logins = {m["anonymousId"]: m for m in messages if m["messageId"].startswith("app-login-")}
    assert installs and len(installs) == len(logins)
    for install in installs:
        device = install["context"]["device"]
        assert "userId" not in install
        assert device["type"] in {"ios", "android"} and device["adTrackingEnabled"] is True
        assert {"id", "advertisingId", "manufacturer", "model"} <= device.keys()
        login = logins[install["anonymousId"]]
        assert login["context"]["device"] == device and login["userId"].startswith("cdnow-")


def test_missing_faker_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faker", None)
    data._name_pools.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="Faker"):
            next(iter_demo_messages(SEED, limit_customers=1))
    finally:
        data._name_pools.cache_clear()
