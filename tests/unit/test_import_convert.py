"""Rows to Segment messages: types, dates, deterministic ids, line items, clear errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from opencdp.imports.convert import (
    Converter,
    ImportContext,
    RowError,
    convert_value,
    parse_datetime,
    unflatten,
)
from opencdp.imports.mapping import FieldSpec, parse_mapping

CTX = ImportContext("default", "src_1", "file.csv", "imp_run", "0.1.0")


def spec(typ: str, fmt: str | None = None) -> FieldSpec:
    return FieldSpec("x", column="x", type=typ, format=fmt)


@pytest.mark.parametrize(
    ("typ", "raw", "fmt", "expected"),
    [
        ("decimal", "$1,234.50", None, Decimal("1234.50")),
        ("decimal", "(12.00)", None, Decimal("-12.00")),
        ("decimal", 3, None, Decimal(3)),
        ("int", "4", None, 4),
        ("int", "4.0", None, 4),
        ("bool", "Yes", None, True),
        ("string", "  a ", None, "a"),
        ("string", "   ", None, None),
        ("email", " Jane@Example.COM ", None, "jane@example.com"),
        ("phone", "(415) 555-2671", None, "+14155552671"),
        ("datetime", "19970101", "yyyymmdd", "1997-01-01T00:00:00.000Z"),
        ("datetime", "2024-03-04T10:15:00+01:00", None, "2024-03-04T09:15:00.000Z"),
        (
            "datetime",
            "Mar 4, 2024 10:15:32 PM",
            "%b %d, %Y %I:%M:%S %p",
            "2024-03-04T22:15:32.000Z",
        ),
        ("datetime", "1700000000", "unix", "2023-11-14T22:13:20.000Z"),
        ("date", "1960-01-10", None, "1960-01-10"),
        ("json", '{"a": 1}', None, {"a": 1}),
    ],
)
def test_convert_value(typ: str, raw: Any, fmt: str | None, expected: Any) -> None:
    assert convert_value(spec(typ, fmt), raw) == expected


@pytest.mark.parametrize(
    ("typ", "raw", "fmt", "needle"),
    [
        ("decimal", "12,34.5x", None, "is not a number"),
        ("int", "4.5", None, "not a whole number"),
        ("datetime", "Feb 30, 2023 10:00:00 AM", "%b %d, %Y %I:%M:%S %p", "is not a date"),
        ("datetime", "1969-12-31", None, "outside 1970..2200"),
        ("email", "jane.example.com", None, "not an e-mail address"),
        ("phone", "12", None, "not a valid phone number"),
        ("bool", "maybe", None, "true/false"),
    ],
)
def test_bad_values_say_why(typ: str, raw: Any, fmt: str | None, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        convert_value(spec(typ, fmt), raw)


def test_naive_times_are_read_in_the_mapping_time_zone() -> None:
    m = parse_mapping(
        "kind: orders\ntimezone: Europe/Berlin\nfields: {order_id: id, user_id: u, timestamp: at}"
    )
    conv = Converter(m, CTX)
    out = conv.feed(conv.values({"id": "1", "u": "7", "at": "2024-07-01 12:00:00"}, 2))
    assert out[0][1]["timestamp"] == "2024-07-01T10:00:00.000Z"  # type: ignore[index]
    assert parse_datetime("2024-07-01", None).hour == 0


CUSTOMERS = """
kind: customers
constants: {source_name: crm}
fields:
  user_id: id
  email: mail
  first_name: first
  created_at: {column: since, type: datetime, format: "%Y-%m-%d"}
traits:
  vip: {column: vip, type: bool}
"""


def test_customer_rows_become_identify_messages() -> None:
    conv = Converter(parse_mapping(CUSTOMERS), CTX)
    row = {"id": "42", "mail": "A@B.co", "first": "Ann", "since": "2020-05-01", "vip": "1"}
    [(number, msg)] = conv.feed(conv.values(row, 7))
    assert number == 7
    assert isinstance(msg, dict)
    assert msg["type"] == "identify"
    assert msg["userId"] == "42"
    assert msg["timestamp"] == "2020-05-01T00:00:00.000Z"
    assert msg["traits"] == {
        "email": "a@b.co",
        "first_name": "Ann",
        "created_at": "2020-05-01T00:00:00.000Z",
        "source_name": "crm",
        "vip": True,
    }
    assert msg["context"]["library"]["name"] == "opencdp-import"
    assert msg["context"]["import"] == {"file": "file.csv", "row": 7, "run": "imp_run"}


def test_message_ids_are_deterministic_short_and_scoped() -> None:
    m = parse_mapping(CUSTOMERS)
    a = Converter(m, CTX).message_id(("42",), 2)
    assert a == Converter(m, CTX).message_id(("42",), 99)  # the key decides, not the row
    assert a.startswith("imp-") and len(a) <= 100
    other = ImportContext("default", "src_2", "file.csv", "r", "0")
    assert Converter(m, other).message_id(("42",), 2) != a


def test_row_number_keys_include_the_file_name() -> None:
    m = parse_mapping(
        'kind: orders\nkey: ["$row"]\nfields: {user_id: u, timestamp: {column: d, format: yyyymmdd}}'
    )
    one = Converter(m, CTX).message_id(("#5",), 5)
    two = Converter(m, ImportContext("default", "src_1", "other.txt", "r")).message_id(("#5",), 5)
    assert one != two


def test_bad_value_rejects_the_row_naming_row_and_column() -> None:
    m = parse_mapping(
        "kind: orders\nfields: {order_id: id, user_id: u, timestamp: at, total: amount}"
    )
    conv = Converter(m, CTX)
    [(_, err)] = conv.feed(
        conv.values({"id": "9", "u": "1", "at": "2024-01-01", "amount": "x1"}, 12)
    )
    assert isinstance(err, RowError)
    assert err.detail("orders.csv").startswith(
        "orders.csv: row 12, column 'amount': 'x1' is not a number written as 1,234.56"
    )
    assert err.message_id == conv.message_id(("9",), 12)


def test_empty_key_is_an_error_with_a_row_based_id() -> None:
    conv = Converter(parse_mapping(CUSTOMERS), CTX)
    [(_, err)] = conv.feed(conv.values({"id": " ", "mail": "a@b.co"}, 3))
    assert isinstance(err, RowError)
    assert err.column == "id" and "natural key is empty" in err.problem


def test_orders_get_segment_ecommerce_properties() -> None:
    m = parse_mapping(
        "kind: orders\nconstants: {currency: EUR}\n"
        "fields: {order_id: id, email: mail, timestamp: at, total: amount, status: st}"
    )
    conv = Converter(m, CTX)
    row = {
        "id": "1001",
        "mail": "X@Y.de",
        "at": "2023-02-01T10:00:00Z",
        "amount": "19.90",
        "st": "complete",
    }
    [(_, msg)] = conv.feed(conv.values(row, 2))
    assert isinstance(msg, dict)
    assert msg["event"] == "Order Completed"
    assert msg["properties"] == {
        "order_id": "1001",
        "total": 19.9,
        "revenue": 19.9,
        "currency": "EUR",
        "status": "complete",
    }
    # Only an e-mail: a stable anonymous id, and the e-mail as a context trait.
    assert msg["anonymousId"].startswith("email-")
    assert msg["context"]["traits"] == {"email": "x@y.de"}


ITEMS = """
kind: orders
fields: {order_id: order, user_id: customer, timestamp: at}
items: {sku: sku, name: name, quantity: {column: qty, type: int}, price: {column: price, type: decimal}}
"""


def test_line_items_group_consecutive_rows_of_an_order() -> None:
    conv = Converter(parse_mapping(ITEMS), CTX)
    rows = [
        {
            "order": "A",
            "customer": "1",
            "at": "2024-01-01",
            "sku": "s1",
            "name": "One",
            "qty": "2",
            "price": "5.00",
        },
        {
            "order": "A",
            "customer": "1",
            "at": "2024-01-01",
            "sku": "s2",
            "name": "Two",
            "qty": "1",
            "price": "2.50",
        },
        {
            "order": "B",
            "customer": "2",
            "at": "2024-01-02",
            "sku": "s1",
            "name": "One",
            "qty": "1",
            "price": "5.00",
        },
    ]
    out: list[Any] = []
    for n, row in enumerate(rows, start=2):
        out += conv.feed(conv.values(row, n))
        if n == 3:
            assert conv.open_from == 2  # order A is still open
    assert len(out) == 1
    out += conv.flush()
    assert conv.open_from is None
    (n_a, a), (n_b, b) = out
    assert (n_a, n_b) == (2, 4)
    assert a["properties"]["products"] == [
        {"sku": "s1", "name": "One", "quantity": 2, "price": 5, "product_id": "s1"},
        {"sku": "s2", "name": "Two", "quantity": 1, "price": 2.5, "product_id": "s2"},
    ]
    assert a["properties"]["total"] == 12.5  # sum of price x quantity when no total column
    assert b["properties"]["order_id"] == "B"


def test_one_bad_item_keeps_the_whole_order_aside() -> None:
    conv = Converter(parse_mapping(ITEMS), CTX)
    good = {
        "order": "A",
        "customer": "1",
        "at": "2024-01-01",
        "sku": "s1",
        "qty": "1",
        "price": "1",
    }
    conv.feed(conv.values(good, 2))
    conv.feed(conv.values({**good, "sku": "s2", "price": "abc"}, 3))
    [(n, err)] = conv.flush()
    assert n == 2 and isinstance(err, RowError)
    assert err.row == 3 and err.column == "price"
    assert "whole order of 2 rows" in err.problem
    assert len(err.raw["rows"]) == 2


def test_products_keep_unmapped_columns_as_attributes() -> None:
    m = parse_mapping(
        "kind: products\nfields: {id: sku, name: title, price: {column: p, type: decimal}}"
    )
    conv = Converter(m, CTX)
    [(_, row)] = conv.feed(
        conv.values({"sku": "S1", "title": "Shirt", "p": "9.5", "color": "red", "x": ""}, 2)
    )
    assert isinstance(row, dict)
    assert row["id"] == "S1" and row["price"] == 9.5
    assert row["attributes"] == '{"color":"red"}'


def test_passthrough_events_keep_their_shape_and_get_ids() -> None:
    conv = Converter(parse_mapping("kind: events"), CTX)
    raw = {"type": "track", "event": "Viewed", "userId": "u", "properties": {"a": 1}}
    [(_, msg)] = conv.feed(conv.values(raw, 5))
    assert isinstance(msg, dict)
    assert msg["event"] == "Viewed" and msg["properties"] == {"a": 1}
    assert msg["messageId"].startswith("imp-")
    own = {**raw, "messageId": "m-1"}
    [(_, msg2)] = conv.feed(conv.values(own, 6))
    assert isinstance(msg2, dict) and msg2["messageId"] == "m-1"


def test_unflatten_dotted_columns() -> None:
    assert unflatten({"type": "track", "properties.total": "3", "context.traits.email": ""}) == {
        "type": "track",
        "properties": {"total": "3"},
    }
