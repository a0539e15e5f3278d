"""The one home of time conversions and formats (pure; reading the time is :mod:`opencdp.clock`).

* Stored times are integers of microseconds since the Unix epoch: :func:`to_us`, :func:`from_us`.
* Times go out as RFC 3339 in UTC with millisecond precision and a ``Z``, as Segment emits
  them: :func:`isoformat` (a datetime), :func:`isoformat_us` (a stored ``*_us`` value); the
  demo's generated data is to the second: :func:`isoformat_seconds`.
* Times come in as ISO-8601 / RFC 3339 text: :func:`parse_timestamp` (an event time, bounded to
  1970..2200), :func:`from_iso` (``datetime.fromisoformat`` that also reads ``z``).
* Durations in settings are written in words: ``30 seconds``, ``5 minutes``, ``1 hour``,
  ``2 days``, ``1 week`` (:func:`parse_duration`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a stored ``*_us`` value."""
    return EPOCH + timedelta(microseconds=us)


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch (the storage representation of time)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=4096)
def isoformat(ts: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix, as Segment emits it."""
    if ts.utcoffset() != _ZERO:
        ts = ts.astimezone(UTC)
    # isoformat() is several times faster than strftime() on this hot path.
    return ts.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def isoformat_seconds(ts: datetime) -> str:
    """RFC 3339 in UTC to the whole second with a ``Z`` (the demo's generated source data);
    not cached: its times seldom repeat."""
    if ts.utcoffset() != _ZERO:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def isoformat_us(us: int) -> str:
    """A stored ``*_us`` value as :func:`isoformat` writes it."""
    return isoformat(from_us(us))


def from_iso(text: str) -> datetime:
    """``datetime.fromisoformat`` that also reads a final ``Z`` or ``z`` as UTC (Python 3.11
    takes only ``Z``); naive when the text has no offset. Raises ``ValueError``."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


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
    ts = from_iso(value.strip())
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # Compare before converting: astimezone() overflows at the ends of the datetime range.
    if not EPOCH <= ts < LATEST:
        raise ValueError(f"{value!r} is outside 1970..2200")
    return ts.astimezone(UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400, "week": 604_800}


def parse_duration(text: str) -> timedelta:
    """A duration written ``<number> <unit>`` (seconds, minutes, hours, days, weeks; singular
    or plural). Raises ``ValueError`` saying how to write one."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit, e.g. '30 seconds', "
            "'5 minutes', '1 hour', '2 days' or '1 week'"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
