"""Column-by-column conversion of a chunk gives exactly what converting row by row gives."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.imports.convert import Converter, ImportContext
from opencdp.imports.mapping import parse_mapping
from opencdp.imports.readers import Chunk

CTX = ImportContext("default", "src_1", "orders.csv", "imp_run", "0.1.0")
MAPPING = parse_mapping(
    "kind: orders\n"
    "fields:\n"
    "  order_id: id\n"
    "  email: mail\n"
    "  timestamp: at\n"
    "  total: {column: amount, invalid: keep}\n"
    "  status: st\n"
    "  currency: cur\n"
    "properties:\n"
    "  units: {column: n, type: int, invalid: 'null'}\n"
    "  gift: {column: gift, type: bool}\n"
)
COLUMNS = ("id", "mail", "at", "amount", "st", "cur", "n", "gift")

# A few values per column, good and bad, so that rows repeat values as real files do.
VALUES: dict[str, list[str]] = {
    "id": ["1", "2", "3", " ", ""],
    "mail": ["a@x.co", "B@X.CO", "not-an-email", ""],
    "at": ["2024-01-01", "2024-02-30", "1997-05-06T10:00:00Z", ""],
    "amount": ["12.50", "$1,234.00", "12,50 €", "x1", ""],
    "st": ["complete", "cancelled", ""],
    "cur": ["EUR", "USD", ""],
    "n": ["1", "2.0", "many", ""],
    "gift": ["yes", "no", "maybe", ""],
}

rows_strategy = st.lists(
    st.fixed_dictionaries({c: st.sampled_from(VALUES[c]) for c in COLUMNS}),
    min_size=1,
    max_size=40,
)


def _row_by_row(rows: list[dict[str, Any]]) -> list[Any]:
    conv = Converter(MAPPING, CTX)
    return [conv.values(row, i + 2) for i, row in enumerate(rows)]


@settings(max_examples=150, deadline=None)
@given(rows_strategy, st.booleans(), st.sets(st.sampled_from(COLUMNS), max_size=2))
def test_columnwise_equals_row_by_row(
    rows: list[dict[str, Any]], arrow: bool, dropped: set[str]
) -> None:
    rows = [{k: v for k, v in row.items() if k not in dropped} for row in rows]
    numbers = [i + 2 for i in range(len(rows))]
    batch = None
    if arrow:
        names = [c for c in COLUMNS if c not in dropped]
        batch = pa.RecordBatch.from_pydict(
            {c: pa.array([r[c] for r in rows], pa.string()) for c in names}
        )
    chunk = Chunk(rows, numbers, batch=batch)
    assert Converter(MAPPING, CTX).values_of(chunk) == _row_by_row(rows)


def test_a_row_without_a_column_is_told_apart_from_an_empty_value() -> None:
    rows: list[dict[str, Any]] = [{"id": "1", "at": "2024-01-01", "mail": "a@x.co"}, {"id": "2"}]
    mapping = parse_mapping(
        "kind: orders\nfields: {order_id: id, email: mail, timestamp: {column: at, required: true}}"
    )
    [first, second] = Converter(mapping, CTX).values_of(Chunk(rows, [2, 3]))
    assert first.error is None
    assert second.error == ("at", "the column is missing from the file")


def test_nested_values_are_converted_one_by_one() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "1", "payload": {"a": [1]}},
        {"id": "2", "payload": {"a": [1]}},
    ]
    distinct, indices = Chunk(rows, [1, 2]).encoded("payload", None)
    assert distinct == [{"a": [1]}, {"a": [1]}] and indices == [0, 1]
    assert Chunk(rows, [1, 2]).encoded("id", None) == (["1", "2"], [0, 1])
