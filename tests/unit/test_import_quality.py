"""The data-quality profile: rates, invalid values, duplicates, orphans, identity outcomes."""

from __future__ import annotations

from typing import Any

from opencdp.identity import IdentityConfig
from opencdp.imports.convert import Converter, ImportContext
from opencdp.imports.mapping import parse_mapping
from opencdp.imports.quality import QualityProfile

CTX = ImportContext("default", "check", "f.csv", "check")


def profile(
    mapping_text: str, rows: list[dict[str, Any]], known: set[str] | None = None
) -> dict[str, Any]:
    mapping = parse_mapping(mapping_text)
    conv = Converter(mapping, CTX)
    q = QualityProfile(mapping, IdentityConfig())
    for n, row in enumerate(rows, start=2):
        rv = conv.values(row, n)
        q.observe(rv)
        for number, outcome in conv.feed(rv):
            q.outcome(number, outcome)
    for number, outcome in conv.flush():
        q.outcome(number, outcome)
    return q.result(known)


CUSTOMERS = "kind: customers\nfields: {user_id: id, anonymous_id: anon, email: mail, phone: tel}"


def test_null_empty_and_invalid_rates_per_column() -> None:
    rows = [
        {"id": "1", "anon": None, "mail": "a@x.com", "tel": "+14155552671"},
        {"id": "2", "anon": None, "mail": "", "tel": "12"},
        {"id": "3", "anon": None, "mail": "bad-address", "tel": None},
        {"id": "4", "anon": None, "mail": "d@x.com", "tel": ""},
    ]
    r = profile(CUSTOMERS, rows)
    cols = {c["column"]: c for c in r["columns"]}
    assert cols["mail"]["empty"] == 1 and cols["mail"]["empty_rate"] == 0.25
    assert cols["mail"]["invalid"] == 1
    assert cols["mail"]["examples"][0]["row"] == 4
    assert cols["tel"]["nulls"] == 1 and cols["tel"]["empty"] == 1 and cols["tel"]["invalid"] == 1
    assert r["emails"] == {"columns": ["mail"], "checked": 3, "invalid": 1}
    assert r["phones"]["invalid"] == 1
    assert r["rows_rejected"] == 0  # e-mails and phones are kept as written
    assert "1 invalid e-mail addresses" in r["issues"]


def test_duplicate_keys_and_identity_merges() -> None:
    rows = [
        {"id": "u1", "mail": "one@x.com"},
        {"id": "", "anon": "a2", "mail": "two@x.com"},
        {"id": "u1", "mail": "one@x.com"},  # the same customer again: a duplicate key
        {"id": "", "anon": "a2", "mail": "one@x.com"},  # bridges u1's and a2's profiles
    ]
    mapping = "kind: customers\nkey: [mail]\nfields: {user_id: id, anonymous_id: anon, email: mail}"
    r = profile(mapping, rows)
    assert r["keys"]["duplicates"] == 2  # rows 4 and 5 repeat one@x.com
    assert r["identity"]["messages"] == 4
    assert r["identity"]["merges"] == 1
    assert r["identity"]["profiles"] == 1
    assert r["identity"]["examples"][0]["what"] == "merge"


def test_two_customer_ids_sharing_an_email_are_a_conflict_not_a_merge() -> None:
    rows = [{"id": "u1", "mail": "same@x.com"}, {"id": "u2", "mail": "same@x.com"}]
    r = profile(CUSTOMERS, rows)
    # Segment's limit of one user_id per profile keeps them apart; the e-mail is left out.
    assert r["identity"]["profiles"] == 2
    assert r["identity"]["merges"] == 0
    assert r["identity"]["conflicts"] == 1


ORDERS = """
kind: orders
fields: {order_id: id, user_id: customer, timestamp: at, total: amount}
"""


def test_orders_dates_amounts_and_orphans() -> None:
    rows = [
        {"id": "1", "customer": "c1", "at": "2024-01-05", "amount": "10.00"},
        {"id": "2", "customer": "c2", "at": "2024-02-05", "amount": "30.50"},
        {"id": "3", "customer": "ghost", "at": "2024-02-06", "amount": "5"},
        {"id": "4", "customer": "c1", "at": "not a date", "amount": "5"},
        {"id": "5", "customer": "c1", "at": "2024-03-01", "amount": "abc"},
        {"id": "1", "customer": "c1", "at": "2024-03-02", "amount": "1"},
    ]
    r = profile(ORDERS, rows, known={"c1", "c2"})
    cols = {c["column"]: c for c in r["columns"]}
    assert cols["at"]["invalid"] == 1
    assert cols["at"]["min"] == "2024-01-05T00:00:00.000Z"
    assert cols["at"]["by_month"] == {"2024-01": 1, "2024-02": 2, "2024-03": 2}
    assert cols["amount"]["invalid"] == 1
    # Every valid amount counts, also on rows refused for another column (row 5's date).
    assert cols["amount"]["sum"] == 51.5 and cols["amount"]["max"] == 30.5
    assert r["rows_rejected"] == 2
    assert r["rejected_by_column"] == {"at": 1, "amount": 1}
    assert r["keys"]["duplicates"] == 1
    assert r["customer_refs"] == {
        "checked": True,
        "referenced": 3,
        "unknown_customers": 1,
        "orphan_rows": 1,
        "examples": ["ghost"],
    }
    assert r["identity"]["profiles"] == 3  # c1, c2, ghost (rejected rows never resolve)


def test_without_known_customers_orphans_are_not_checked() -> None:
    r = profile(ORDERS, [{"id": "1", "customer": "c1", "at": "2024-01-05", "amount": "1"}])
    assert r["customer_refs"] == {"checked": False, "referenced": 1}


def test_unreadable_rows_are_counted() -> None:
    mapping = parse_mapping(ORDERS)
    q = QualityProfile(mapping, IdentityConfig())
    q.bad_row(7, "expected 4 fields, found 2", "a,b")
    r = q.result()
    assert r["rows_unreadable"] == 1 and r["unreadable_examples"][0]["row"] == 7
    assert r["issues"][0].startswith("1 rows could not be read")
