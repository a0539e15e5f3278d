"""What the quarantine keeps of a refused import row, and how a replay converts it again (pure)."""

from __future__ import annotations

from typing import Any

from opencdp.imports.convert import (
    Converter,
    ImportContext,
    RowError,
    convert_record,
    record_rows,
)
from opencdp.imports.mapping import parse_mapping
from opencdp.resolve.batch import closes_as

CTX = ImportContext("default", "src_1", "orders.csv", "imp_run", "0.1.0")
ORDERS = "kind: orders\nfields: {order_id: id, user_id: u, timestamp: at, total: amount}"
ITEMS = """
kind: orders
fields: {order_id: order, user_id: customer, timestamp: at}
items: {sku: sku, quantity: {column: qty, type: int}, price: {column: price, type: decimal}}
"""


def refused(conv: Converter, row: dict[str, Any], number: int) -> RowError:
    [(_, err)] = conv.feed(conv.values(row, number))
    assert isinstance(err, RowError)
    return err


def test_the_payload_keeps_the_original_row_and_where_it_was() -> None:
    conv = Converter(parse_mapping(ORDERS), CTX)
    row = {"id": "9", "u": "1", "at": "2024-01-01", "amount": "x1"}
    payload = refused(conv, row, 12).payload("orders.csv", "imp_run")
    assert payload["rows"] == [{"number": 12, "values": row}]
    assert payload["import"] == {
        "file": "orders.csv",
        "run": "imp_run",
        "row": 12,
        "column": "amount",
        "problem": payload["import"]["problem"],
    }
    assert "'x1' is not a number" in payload["import"]["problem"]
    assert record_rows(payload) == [(12, row)]


def test_a_line_item_order_keeps_every_row_with_its_number() -> None:
    conv = Converter(parse_mapping(ITEMS), CTX)
    good = {
        "order": "A",
        "customer": "1",
        "at": "2024-01-01",
        "sku": "s1",
        "qty": "1",
        "price": "1",
    }
    bad = {**good, "sku": "s2", "price": "abc"}
    conv.feed(conv.values(good, 2))
    conv.feed(conv.values(bad, 3))
    [(_, err)] = conv.flush()
    assert isinstance(err, RowError)
    payload = err.payload("orders.csv", "imp_run")
    assert record_rows(payload) == [(2, good), (3, bad)]
    assert payload["import"]["row"] == 3 and payload["import"]["column"] == "price"


def test_rows_that_were_never_rows_cannot_be_converted_again() -> None:
    assert record_rows({"import": {"row": 4}, "text": "a,b"}) is None
    assert record_rows({"order_id": "o7", "total": "ten"}) is None  # stored before the change
    assert record_rows("not an object") is None


def test_convert_record_gives_the_same_message_id_as_the_import() -> None:
    mapping = parse_mapping(ORDERS)
    row = {"id": "9", "u": "1", "at": "2024-01-01", "amount": "1.234,50"}
    err = refused(Converter(mapping, CTX), row, 12)
    rows = record_rows(err.payload("orders.csv", "imp_run"))
    assert rows is not None
    # Still bad with the same mapping: the same error, row and column
    [again] = convert_record(Converter(mapping, CTX), rows)
    assert isinstance(again, RowError)
    assert again.detail("orders.csv") == err.detail("orders.csv")
    # Fixed by the mapping: a message under the message id of the quarantined row
    fixed = parse_mapping("locale: de_DE\n" + ORDERS)
    [message] = convert_record(Converter(fixed, CTX), rows)
    assert isinstance(message, dict)
    assert message["messageId"] == err.message_id
    assert message["properties"]["total"] == 1234.5


def test_convert_record_of_a_line_item_order() -> None:
    conv = Converter(parse_mapping(ITEMS), CTX)
    good = {
        "order": "A",
        "customer": "1",
        "at": "2024-01-01",
        "sku": "s1",
        "qty": "1",
        "price": "1",
    }
    [message] = convert_record(conv, [(2, good), (3, {**good, "sku": "s2", "price": "2"})])
    assert isinstance(message, dict)
    assert [p["sku"] for p in message["properties"]["products"]] == ["s1", "s2"]


def test_a_stored_event_closes_its_quarantine_row_as_imported_or_replayed() -> None:
    imported = {"type": "track", "context": {"import": {"file": "a.csv", "row": 2, "run": "r"}}}
    assert closes_as(imported) == "imported"
    assert closes_as({"type": "track", "context": {"library": {"name": "x"}}}) == "replayed"
    assert closes_as({"type": "track", "context": {"import": "not an object"}}) == "replayed"
    assert closes_as({"type": "track"}) == "replayed"
