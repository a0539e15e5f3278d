"""The injected clock (opencdp.clock) and time conversions and formats (opencdp.timeutil):
Segment's timestamp format, stored microsecond times, ISO-8601 parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.clock import FrozenClock, SystemClock
from opencdp.timeutil import (
    EPOCH,
    LATEST,
    from_iso,
    from_us,
    isoformat,
    isoformat_seconds,
    isoformat_us,
    parse_timestamp,
    to_us,
)

PARIS_WINTER = timezone(timedelta(hours=1))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))

# -- FrozenClock -----------------------------------------------------------------------------------


def test_frozen_clock_starts_at_a_fixed_aware_time() -> None:
    clock = FrozenClock()
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.monotonic() == 0.0


def test_frozen_clock_does_not_move_by_itself() -> None:
    clock = FrozenClock(datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert clock.monotonic() == clock.monotonic()


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(1.5)
    clock.advance(3600)
    assert clock.now() == datetime(2026, 1, 1, 1, 0, 1, 500_000, tzinfo=UTC)
    assert clock.monotonic() == 3601.5


def test_set_jumps_wall_time_but_monotonic_time_never_goes_back() -> None:
    clock = FrozenClock()
    clock.advance(10)
    clock.set(datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC))
    assert clock.now() == datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC)
    assert clock.monotonic() == 10.0
    clock.advance(1)
    assert clock.now() == datetime(2020, 3, 1, tzinfo=UTC)
    assert clock.monotonic() == 11.0


def test_system_clock_is_aware_utc_and_monotonic() -> None:
    clock = SystemClock()
    assert clock.now().utcoffset() == timedelta(0)
    first = clock.monotonic()
    assert clock.monotonic() >= first


# -- isoformat -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC), "2026-03-01T12:00:10.000Z"),
        (datetime(2026, 3, 1, 12, 0, 10, 5_000, tzinfo=UTC), "2026-03-01T12:00:10.005Z"),
        # Truncated to the millisecond, not rounded (Segment and RudderStack do the same).
        (datetime(2026, 3, 1, 12, 0, 10, 999_999, tzinfo=UTC), "2026-03-01T12:00:10.999Z"),
        (datetime(2026, 3, 1, 12, 0, 10, 123_456, tzinfo=UTC), "2026-03-01T12:00:10.123Z"),
        (datetime(2026, 3, 1, 12, 0, 10, 999, tzinfo=UTC), "2026-03-01T12:00:10.000Z"),
        # Offsets are converted to UTC, crossing the date line if need be.
        (datetime(2026, 3, 1, 0, 30, tzinfo=PARIS_WINTER), "2026-02-28T23:30:00.000Z"),
        (
            datetime(2026, 12, 31, 20, 0, 0, 250_000, tzinfo=NEW_YORK_WINTER),
            "2027-01-01T01:00:00.250Z",
        ),
        (
            datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(0), "GMT")),
            "2026-03-01T12:00:00.000Z",
        ),
        (EPOCH, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_isoformat_is_utc_with_milliseconds_and_z(ts: datetime, expected: str) -> None:
    assert isoformat(ts) == expected


def test_isoformat_gives_the_same_text_for_the_same_instant_in_any_zone() -> None:
    instant = datetime(2026, 6, 1, 8, 0, 0, 42_000, tzinfo=UTC)
    zones = [UTC, PARIS_WINTER, NEW_YORK_WINTER, timezone(timedelta(hours=5, minutes=45))]
    assert {isoformat(instant.astimezone(zone)) for zone in zones} == {"2026-06-01T08:00:00.042Z"}


OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30), timezones=OFFSETS
    )
)
def test_isoformat_round_trips_through_parse_timestamp_to_the_millisecond(ts: datetime) -> None:
    text = isoformat(ts)
    assert text.endswith("Z")
    parsed = parse_timestamp(text)
    utc = ts.astimezone(UTC)
    assert parsed == utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (datetime(1997, 3, 4, 12, 5, 6, tzinfo=UTC), "1997-03-04T12:05:06Z"),
        (datetime(1997, 3, 4, 12, 5, 6, 999_999, tzinfo=UTC), "1997-03-04T12:05:06Z"),
        (datetime(1997, 3, 4, 0, 30, tzinfo=PARIS_WINTER), "1997-03-03T23:30:00Z"),
    ],
)
def test_isoformat_seconds_is_utc_to_the_second_with_z(ts: datetime, expected: str) -> None:
    assert isoformat_seconds(ts) == expected


def test_isoformat_us_formats_a_stored_time_as_isoformat_does() -> None:
    assert isoformat_us(0) == "1970-01-01T00:00:00.000Z"
    assert isoformat_us(1_767_225_600_123_456) == "2026-01-01T00:00:00.123Z"


@given(st.integers(min_value=0, max_value=to_us(LATEST)))
def test_isoformat_us_is_isoformat_of_from_us(us: int) -> None:
    assert isoformat_us(us) == isoformat(from_us(us))


# -- to_us / from_us -------------------------------------------------------------------------------


def test_epoch_is_zero() -> None:
    assert to_us(EPOCH) == 0
    assert from_us(0) == EPOCH


def test_known_instant_in_microseconds() -> None:
    assert to_us(datetime(2026, 1, 1, tzinfo=UTC)) == 1_767_225_600_000_000
    assert to_us(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == 1_767_225_600_000_001
    assert from_us(1_767_225_600_123_456) == datetime(2026, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)


def test_to_us_is_the_same_for_an_instant_in_any_zone() -> None:
    utc = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert to_us(utc.astimezone(PARIS_WINTER)) == to_us(utc)


def test_from_us_is_aware_utc() -> None:
    assert from_us(1).utcoffset() == timedelta(0)
    assert from_us(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@given(st.integers(min_value=to_us(datetime(1, 1, 2, tzinfo=UTC)), max_value=to_us(LATEST)))
def test_from_us_and_to_us_round_trip(us: int) -> None:
    assert to_us(from_us(us)) == us


@given(st.datetimes(timezones=st.just(UTC)))
def test_to_us_and_from_us_round_trip(ts: datetime) -> None:
    assert from_us(to_us(ts)) == ts


# -- parse_timestamp -------------------------------------------------------------------------------

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", NOON),
        ("2026-03-01T12:00:00z", NOON),
        ("2026-03-01T12:00:00.000Z", NOON),
        ("2026-03-01T12:00:00+00:00", NOON),  # segment-python
        ("2026-03-01T13:00:00+01:00", NOON),
        ("2026-03-01T07:00:00-05:00", NOON),
        ("2026-03-01T17:45:00+05:45", NOON),
        ("2026-03-01T12:00:00.667+00:00", NOON.replace(microsecond=667_000)),
        ("2026-03-01T12:00:00.740208+00:00", NOON.replace(microsecond=740_208)),  # rudder-python
        ("2026-03-01T12:00:00.5Z", NOON.replace(microsecond=500_000)),
        ("2026-03-01 12:00:00Z", NOON),
        ("  2026-03-01T12:00:00Z \n", NOON),
        ("2026-03-01T12:00:00", NOON),  # naive: taken as UTC
        ("2026-03-01T12:00", NOON),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),  # date only: midnight UTC
        ("2026-03-02T00:30:00+12:30", NOON),
        ("1970-01-01T00:00:00Z", EPOCH),
        ("2199-12-31T23:59:59.999999Z", LATEST - timedelta(microseconds=1)),
    ],
)
def test_parse_timestamp_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        1_700_000_000,
        1.5,
        True,
        b"2026-03-01T12:00:00Z",
        datetime(2026, 3, 1, tzinfo=UTC),
        "",
        "   ",
        "Z",
        "now",
        "2026-03-01T25:00:00Z",
        "2026-02-29",  # not a leap year
        "01/03/2026",
        "1969-12-31T23:59:59.999999Z",  # before 1970
        "1500-06-01T00:00:00Z",
        "2200-01-01T00:00:00Z",  # from 2200 on
        "2300-06-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",  # 1969-12-31T23:30Z
    ],
)
def test_parse_timestamp_refuses_anything_else_with_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize("text", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_parse_timestamp_out_of_range_with_offset_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


# -- from_iso --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", NOON),
        ("2026-03-01T12:00:00z", NOON),
        ("2026-03-01T13:00:00+01:00", datetime(2026, 3, 1, 13, tzinfo=PARIS_WINTER)),
        ("2026-03-01T12:00:00", datetime(2026, 3, 1, 12)),  # naive stays naive
        ("2026-03-01", datetime(2026, 3, 1)),
        ("1500-06-01T00:00:00Z", datetime(1500, 6, 1, tzinfo=UTC)),  # unbounded
    ],
)
def test_from_iso_reads_iso_8601_and_a_final_z(text: str, expected: datetime) -> None:
    parsed = from_iso(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["", "Z", "z", "now", "2026-02-29"])
def test_from_iso_refuses_anything_else_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        from_iso(text)


def test_parse_timestamp_caches_without_sharing_mistakes() -> None:
    # The cache is keyed by the text: equal instants in different notations parse equal.
    assert parse_timestamp("2026-03-01T13:00:00+01:00") == parse_timestamp("2026-03-01T12:00:00Z")
    assert parse_timestamp("2026-03-01T12:00:00Z") is parse_timestamp("2026-03-01T12:00:00Z")
