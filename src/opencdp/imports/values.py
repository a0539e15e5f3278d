"""Typed values of import columns: text, numbers, money, booleans, dates, e-mails, phones (pure).

:func:`convert_value` turns one raw cell into the type its :class:`FieldSpec` names, or raises
``ValueError`` with a message that says what is wrong with the value (the converter adds the
row and the column).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from opencdp.errors import ConfigurationError
from opencdp.identity import normalize_email, normalize_phone
from opencdp.imports.mapping import FieldSpec
from opencdp.imports.notation import DEFAULT_NOTATION, Notation
from opencdp.timeutil import EPOCH, LATEST, from_iso, isoformat

_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})


def convert_value(spec: FieldSpec, raw: Any, *, region: str = "US", tz: tzinfo = UTC) -> Any:
    """``raw`` converted to ``spec.type``; None for an empty value.

    Raises ``ValueError`` with a readable reason when the value does not convert. Strings are
    stripped; ``""`` counts as empty. Dates and times come back as ISO strings (times in UTC with
    a ``Z``), decimals as :class:`~decimal.Decimal`, e-mails lower-cased, phones in E.164.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return None
    typ = spec.type
    if typ == "string":
        return raw if isinstance(raw, str) else _text(raw)
    if typ == "int":
        return _int(raw, spec.notation)
    if typ == "decimal":
        return _decimal(raw, spec.notation)
    if typ == "float":
        return float(_decimal(raw, spec.notation))
    if typ == "bool":
        return _bool(raw)
    if typ == "datetime":
        return isoformat(parse_datetime(raw, spec.format, tz))
    if typ == "date":
        # Dates are calendar facts (birthdays before 1970 are fine); only event times are bounded.
        return parse_datetime(raw, spec.format, tz, bounded=False).date().isoformat()
    if typ == "email":
        email = normalize_email(raw)
        if email is None:
            raise ValueError(f"{_show(raw)} is not an e-mail address")
        return email
    if typ == "phone":
        phone = normalize_phone(raw if isinstance(raw, str) else _text(raw), region)
        if phone is None:
            raise ValueError(f"{_show(raw)} is not a valid phone number (region {region})")
        return phone
    if typ == "json":
        if isinstance(raw, str):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        return raw
    raise ValueError(f"unknown type {typ}")  # pragma: no cover - the mapping validates types


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "…'"


def _text(raw: Any) -> str:
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return isoformat(raw if raw.tzinfo else raw.replace(tzinfo=UTC))
    if isinstance(raw, date):
        return raw.isoformat()
    return str(raw)


def _int(raw: Any, notation: Notation = DEFAULT_NOTATION) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a whole number")
    if isinstance(raw, int):
        return raw
    d = _decimal(raw, notation)
    if d != d.to_integral_value():
        raise ValueError(f"{_show(raw)} is not a whole number")
    return int(d)


def _decimal(raw: Any, notation: Notation = DEFAULT_NOTATION) -> Decimal:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number")
    if isinstance(raw, Decimal):
        return raw
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError(f"{raw!r} is not a finite number")
        return Decimal(repr(raw))
    if isinstance(raw, str):
        return notation.parse(raw)[0]
    raise ValueError(f"{_show(raw)} is not a number")


def currency_marks(spec: FieldSpec, raw: Any) -> frozenset[str]:
    """The currencies a numeric value's sign or code allows (``12,99 €`` → EUR); empty when
    the value carries none. Call only after :func:`convert_value` accepted ``raw``."""
    if spec.type not in ("int", "decimal", "float") or not isinstance(raw, str):
        return frozenset()
    return spec.notation.parse(raw)[1]


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{_show(raw)} is not true/false/yes/no/1/0")


def parse_datetime(
    raw: Any, fmt: str | None, tz: tzinfo = UTC, *, bounded: bool = True
) -> datetime:
    """A date or time as an aware UTC datetime; naive values are read in ``tz``.

    ``fmt`` is ``None``/``"iso"`` (ISO 8601, date only allowed), ``"yyyymmdd"``, ``"unix"``
    (seconds), ``"unix_ms"`` or a ``strptime`` format. Raises ``ValueError`` for values that do
    not parse or, when ``bounded``, fall outside 1970..2200 (the range OpenCDP stores times in).
    """
    if isinstance(raw, datetime):
        ts = raw
    elif isinstance(raw, date):
        ts = datetime(raw.year, raw.month, raw.day)  # noqa: DTZ001 - made aware below
    else:
        text = raw if isinstance(raw, str) else _text(raw)
        ts = _parse_text(text.strip(), fmt or "iso")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    if bounded and not EPOCH <= ts < LATEST:
        raise ValueError(f"{_show(raw)} is outside 1970..2200")
    return ts if not bounded else ts.astimezone(UTC)


@lru_cache(maxsize=8192)
def _parse_text(text: str, fmt: str) -> datetime:
    # Cached: order files repeat the same days (CDNOW: 546 distinct days in 69,659 rows).
    try:
        if fmt == "iso":
            return from_iso(text)
        if fmt == "yyyymmdd":
            if len(text) != 8 or not text.isdigit():
                raise ValueError
            return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]))  # noqa: DTZ001
        if fmt in ("unix", "unix_ms"):
            seconds = float(text) / (1000 if fmt == "unix_ms" else 1)
            return EPOCH + timedelta(seconds=seconds)
        return datetime.strptime(text, fmt)  # noqa: DTZ007 - the zone is applied by the caller
    except (ValueError, OverflowError):
        expected = {"iso": "ISO 8601 (2024-03-04 or 2024-03-04T10:15:00Z)"}.get(fmt, repr(fmt))
        raise ValueError(f"{_show(text)} is not a date in the format {expected}") from None


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA), raising ConfigurationError for unknown names."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {name!r}: use an IANA name") from None
