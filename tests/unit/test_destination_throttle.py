"""A destination's throttling, pure: the token bucket of its rate limit, AIMD over its
concurrency, and the lanes that keep one profile's deliveries in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from opencdp.activate.destinations.base import DestinationSettings
from opencdp.activate.throttle import Aimd, Throttle, TokenBucket, lanes


def test_a_bucket_starts_with_one_seconds_worth_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(5)
    assert bucket.take(8, now=100.0) == 5  # full at first use: one second's worth
    assert bucket.take(1, now=100.0) == 0
    assert bucket.take(8, now=100.4) == 2  # 0.4 s at 5/s
    assert bucket.take(8, now=100.6) == 1  # what was left over (0.0) + 0.2 s at 5/s
    assert bucket.take(100, now=160.0) == 5  # a long pause refills to the capacity only


def test_a_slow_rate_still_lets_one_message_through() -> None:
    bucket = TokenBucket(0.1)
    assert bucket.capacity == 1
    assert bucket.take(3, now=0.0) == 1
    assert bucket.take(3, now=9.0) == 0
    assert bucket.take(3, now=10.0) == 1


def test_tokens_given_back_are_there_for_the_next_round_but_never_past_the_capacity() -> None:
    bucket = TokenBucket(4)
    assert bucket.take(4, now=0.0) == 4
    bucket.give_back(3)
    assert bucket.take(10, now=0.0) == 3
    bucket.give_back(100)
    assert bucket.take(10, now=0.0) == 4


def test_a_clock_going_back_gives_no_tokens() -> None:
    bucket = TokenBucket(10)
    assert bucket.take(10, now=50.0) == 10
    assert bucket.take(10, now=40.0) == 0
    assert bucket.take(10, now=40.5) == 5  # counted from where it went back to


@given(
    rate=st.floats(min_value=0.05, max_value=1000),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=5), st.integers(min_value=0, max_value=500)),
        max_size=40,
    ),
)
def test_a_bucket_never_grants_more_than_rate_times_elapsed_plus_its_capacity(
    rate: float, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate)
    now = granted = 0.0
    for pause, wanted in steps:
        now += pause
        got = bucket.take(wanted, now)
        assert 0 <= got <= wanted
        granted += got
        # the first use is at the first step's time
        assert granted <= rate * (now - steps[0][0]) + bucket.capacity + 1e-6


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_aimd_halves_down_to_one_and_adds_one_back_up_to_the_ceiling() -> None:
    aimd = Aimd(8)
    assert aimd.current == 8  # starts at the setting: nothing throttles until answered so
    assert [aimd.throttled() for _ in range(4)] == [4, 2, 1, 1]
    assert [aimd.clean() for _ in range(9)] == [2, 3, 4, 5, 6, 7, 8, 8, 8]
    assert aimd.throttled() == 4


def test_a_throttle_without_a_rate_limit_grants_everything() -> None:
    throttle = Throttle(None, 1)
    assert throttle.ready(0.0) and throttle.take(10_000, 0.0) == 10_000
    assert throttle.ready(0.0)


def test_a_throttle_cut_short_waits_for_a_full_bucket_before_the_next_round() -> None:
    throttle = Throttle(10, 1)
    assert throttle.ready(0.0)
    assert throttle.take(25, 0.0) == 10  # cut short: 15 stay waiting
    assert not throttle.ready(0.5)  # 5 tokens: not a round's worth yet
    assert throttle.ready(1.0)
    assert throttle.take(3, 1.0) == 3  # all it wanted: not cut short
    assert throttle.ready(1.0)  # 7 tokens left: another round may start at once
    assert throttle.take(10, 1.0) == 7
    assert not throttle.ready(1.05)


def test_a_throttle_round_adjusts_its_concurrency() -> None:
    throttle = Throttle(None, 4)
    assert throttle.finished(attempted=10, throttled=True) == 2
    assert throttle.finished(attempted=0, throttled=False) == 2  # sent nothing: no change
    assert throttle.finished(attempted=3, throttled=False) == 3
    assert throttle.concurrency == 3
    assert throttle.settings == (None, 4)


def test_lanes_keep_each_profile_in_one_lane_in_order() -> None:
    items = [(f"p{i % 7}", i) for i in range(60)] + [(None, 100 + i) for i in range(5)]
    split = lanes(items, 4, lambda it: it[0])
    assert 1 < len(split) <= 4 and all(split)
    assert sorted(n for lane in split for _p, n in lane) == [n for _p, n in items]
    for lane in split:
        assert lane == sorted(lane, key=items.index)  # the original order
    owners = {p: {i for i, lane in enumerate(split) for q, _n in lane if q == p} for p, _ in items}
    assert all(len(v) == 1 for k, v in owners.items() if k is not None)
    # no profile: dealt in turn
    assert len({i for i, lane in enumerate(split) for q, _n in lane if q is None}) > 1


def test_one_lane_is_the_items_as_they_are() -> None:
    items = [("a", 1), ("b", 2)]
    assert lanes(items, 1, lambda it: it[0]) == [items]
    assert lanes([], 4, lambda it: it) == []


def test_the_settings_every_type_shares_default_to_no_limit_and_one_send_at_a_time() -> None:
    settings = DestinationSettings()
    assert (settings.rate_limit, settings.concurrency) == (None, 1)
    assert DestinationSettings(rate_limit=0.5, concurrency=8).rate_limit == 0.5
    for bad in ({"rate_limit": 0}, {"rate_limit": -1}, {"concurrency": 0}, {"concurrency": 33}):
        with pytest.raises(ValidationError):
            DestinationSettings.model_validate(bad)
