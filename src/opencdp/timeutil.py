"""Conversions between stored microsecond integers and datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a stored ``*_us`` value."""
    return EPOCH + timedelta(microseconds=us)


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch (the storage representation of time)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_timestamp(value: Any) -> datetime:
    """An ISO-8601 / RFC 3339 string as an aware UTC datetime (see :func:`_parse`); cached,
    because batches repeat the same ``sentAt`` and often the same timestamps."""
    if isinstance(value, str):
        return _parse_cached(value)
    return _parse(value)


@lru_cache(maxsize=4096)
def _parse_cached(value: str) -> datetime:
    return _parse(value)


def _parse(value: Any) -> datetime:
    """An ISO-8601 / RFC 3339 string as an aware UTC datetime; naive times are taken as UTC.

    Raises ``ValueError`` for anything else, including times before 1970 or after 2200.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO-8601 string, got {type(value).__name__}")
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # Compare before converting: astimezone() overflows at the ends of the datetime range.
    if not EPOCH <= ts < LATEST:
        raise ValueError(f"{value!r} is outside 1970..2200")
    return ts.astimezone(UTC)
