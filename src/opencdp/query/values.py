"""How definitions read values (pure): numbers, text, timestamps, equality and order.

The rules the reference evaluator applies and the SQL compiler reproduces (see
:mod:`opencdp.query.evaluate` for the decisions they carry out).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

# -- values ----------------------------------------------------------------------------------------


def lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = data
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


#: A number written as text: what a numeric string must look like to count as a number.
NUMERIC_TEXT: Final = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
_NUMERIC_TEXT: Final = re.compile(NUMERIC_TEXT)


def number_of(value: Any) -> Decimal | None:
    """A number, or a string that reads as one; None otherwise (booleans are no numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str):
        if not _NUMERIC_TEXT.match(value):
            return None
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
    return None


def plain_number(value: Decimal) -> int | float:
    """A Decimal result as JSON-friendly int (when whole) or float."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def text_of(value: Any) -> str:
    """A value as text, the way mode(), unique() and the string tests read it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def flatten(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list | tuple):
            out.extend(x for x in v if x is not None)
        elif v is not None:
            out.append(v)
    return out


#: What reads as a timestamp: ISO 8601's extended form, a date alone or with a time to the
#: minute, second or microsecond, then an optional ``Z`` or an offset of -14 to +14 hours
#: (none: UTC). The SQL compiler's ``opencdp_epoch_us`` applies the same pattern, so batch and
#: the reference agree on every string (PostgreSQL's own parser accepts far more).
TIMESTAMP_TEXT: Final = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"([Zz]|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?\s*$"
)
_TIMESTAMP_TEXT: Final = re.compile(TIMESTAMP_TEXT)


def parse_timestamp(value: Any) -> datetime | None:
    """A datetime, or a string of :data:`TIMESTAMP_TEXT` that names a real instant, in UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not _TIMESTAMP_TEXT.match(value):
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        p, q = boolean(a), boolean(b)
        return p is not None and p == q
    if isinstance(a, datetime) or isinstance(b, datetime):
        s, t = parse_timestamp(a), parse_timestamp(b)
        return s is not None and s == t
    if isinstance(a, int | float | Decimal) or isinstance(b, int | float | Decimal):
        n, m = number_of(a), number_of(b)
        return n is not None and n == m
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return bool(a == b)


def order(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 comparing ``a`` with ``b`` as numbers, timestamps or strings; None if they
    cannot be compared."""
    if isinstance(a, datetime) or isinstance(b, datetime):
        x, y = parse_timestamp(a), parse_timestamp(b)
        if x is None or y is None:
            return None
        return (x > y) - (x < y)
    n, m = number_of(a), number_of(b)
    if n is not None and m is not None:
        return (n > m) - (n < m)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)  # by code point
    return None
