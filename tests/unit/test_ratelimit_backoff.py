"""Per-source token buckets (injected time) and the capped, jittered retry backoff."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.collect.ratelimit import RateLimiter, retry_after_seconds
from opencdp.resolve.backoff import compute_backoff

# -- RateLimiter -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, 0.0, -1.0])
def test_rate_zero_or_less_disables_the_limiter(rate: float) -> None:
    limiter = RateLimiter(rate)
    assert not limiter.enabled
    assert all(limiter.try_acquire("src", 10_000, now=0.0) == 0.0 for _ in range(100))


def test_positive_rate_enables_the_limiter() -> None:
    assert RateLimiter(0.5).enabled


def test_burst_defaults_to_the_rate_and_at_least_one() -> None:
    assert RateLimiter(50).burst == 50
    assert RateLimiter(0.25).burst == 1.0
    assert RateLimiter(10, burst=25).burst == 25
    assert RateLimiter(10, burst=0).burst == 10


def test_a_full_bucket_allows_a_burst_then_reports_the_wait() -> None:
    # Given 10 events/s with bursts of 5
    limiter = RateLimiter(10, burst=5)
    # When 5 single events arrive at once, they all pass
    assert [limiter.try_acquire("src", 1, now=100.0) for _ in range(5)] == [0.0] * 5
    # Then the 6th must wait for one token: 1/10 s
    assert limiter.try_acquire("src", 1, now=100.0) == pytest.approx(0.1)
    # And a request for 3 must wait for three tokens
    assert limiter.try_acquire("src", 3, now=100.0) == pytest.approx(0.3)


def test_a_refused_request_takes_no_tokens() -> None:
    limiter = RateLimiter(10, burst=5)
    assert limiter.try_acquire("src", 5, now=0.0) == 0.0
    for _ in range(10):
        assert limiter.try_acquire("src", 1, now=0.0) > 0
    # Refusals did not dig a hole: after 0.1 s exactly one token is back.
    assert limiter.try_acquire("src", 1, now=0.1) == 0.0


def test_tokens_refill_with_injected_time_up_to_the_burst() -> None:
    limiter = RateLimiter(10, burst=5)
    assert limiter.try_acquire("src", 5, now=0.0) == 0.0
    # After 0.25 s, 2.5 tokens: 2 pass, the 3rd waits the missing half token.
    assert limiter.try_acquire("src", 2, now=0.25) == 0.0
    assert limiter.try_acquire("src", 1, now=0.25) == pytest.approx(0.05)
    # After a long pause the bucket holds the burst, not more.
    assert limiter.try_acquire("src", 5, now=3600.0) == 0.0
    assert limiter.try_acquire("src", 1, now=3600.0) == pytest.approx(0.1)


def test_the_returned_wait_is_enough() -> None:
    limiter = RateLimiter(4, burst=4)
    assert limiter.try_acquire("src", 4, now=0.0) == 0.0
    wait = limiter.try_acquire("src", 3, now=0.0)
    assert wait == pytest.approx(0.75)
    assert limiter.try_acquire("src", 3, now=wait) == 0.0


def test_wait_is_never_reported_as_zero() -> None:
    limiter = RateLimiter(1_000_000, burst=1)
    assert limiter.try_acquire("src", 1, now=0.0) == 0.0
    assert limiter.try_acquire("src", 1, now=0.0) == pytest.approx(1e-3)


def test_a_request_larger_than_the_burst_passes_when_the_bucket_is_full() -> None:
    # Given a full bucket of 5 at 10/s
    limiter = RateLimiter(10, burst=5)
    # When a batch of 50 arrives, it passes rather than waiting forever
    assert limiter.try_acquire("src", 50, now=0.0) == 0.0
    # Then the source is in debt for the extra 45 events: 4.6 s until one more event passes
    assert limiter.try_acquire("src", 1, now=0.0) == pytest.approx(4.6)
    assert limiter.try_acquire("src", 1, now=4.6) == 0.0


def test_a_request_larger_than_the_burst_waits_until_the_bucket_is_full() -> None:
    limiter = RateLimiter(10, burst=5)
    assert limiter.try_acquire("src", 1, now=0.0) == 0.0
    assert limiter.try_acquire("src", 50, now=0.0) == pytest.approx(0.1)
    assert limiter.try_acquire("src", 50, now=0.1) == 0.0


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter(1, burst=2)
    assert limiter.try_acquire("a", 2, now=0.0) == 0.0
    assert limiter.try_acquire("a", 1, now=0.0) > 0
    assert limiter.try_acquire("b", 2, now=0.0) == 0.0


def test_without_max_keys_every_key_is_kept() -> None:
    limiter = RateLimiter(1.0, burst=2)
    for n in range(50):
        limiter.try_acquire(f"k{n}", 1, now=0.0)
    assert len(limiter._buckets) == 50


def test_past_max_keys_idle_keys_are_forgotten_and_busy_ones_kept() -> None:
    # Given a limiter of at most 3 keys, one of them drained and two idle long enough to refill
    limiter = RateLimiter(1.0, burst=2, max_keys=3)
    limiter.try_acquire("idle-1", 1, now=0.0)
    limiter.try_acquire("idle-2", 1, now=0.0)
    limiter.try_acquire("busy", 2, now=9.0)
    # When a fourth key arrives
    limiter.try_acquire("new", 1, now=10.0)
    # Then the refilled keys are gone, the drained one still counts what it used
    assert set(limiter._buckets) == {"busy", "new"}
    assert limiter.try_acquire("busy", 2, now=10.0) > 0


@given(st.lists(st.integers(0, 10_000), max_size=300))
def test_the_number_of_keys_never_exceeds_max_keys(keys: list[int]) -> None:
    limiter = RateLimiter(1.0, burst=5, max_keys=20)
    for n, key in enumerate(keys):
        limiter.try_acquire(str(key), 1, now=n * 0.01)
        assert len(limiter._buckets) <= 20


@given(
    rate=st.floats(0.1, 1000),
    burst=st.floats(1, 1000),
    requests=st.lists(st.tuples(st.floats(0, 10), st.integers(1, 50)), max_size=30),
)
def test_admitted_events_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: float, requests: list[tuple[float, int]]
) -> None:
    limiter = RateLimiter(rate, burst)
    now, admitted, largest = 0.0, 0, 0
    for gap, n in requests:
        now += gap
        wait = limiter.try_acquire("src", n, now=now)
        assert wait >= 0
        if wait == 0:
            admitted += n
            largest = max(largest, n)
    # One oversized request may overdraw; beyond that, the bucket holds.
    assert admitted <= burst + rate * now + max(0, largest - burst) + 1e-6 * (1 + rate * now)


@pytest.mark.parametrize(
    ("wait", "expected"),
    [(0.0, 1), (1e-3, 1), (0.5, 1), (1.0, 1), (1.01, 2), (4.6, 5), (299.2, 300)],
)
def test_retry_after_is_whole_seconds_and_at_least_one(wait: float, expected: int) -> None:
    assert retry_after_seconds(wait) == expected
    assert isinstance(retry_after_seconds(wait), int)


@given(st.floats(0, 1e6))
def test_retry_after_never_asks_for_less_than_the_wait(wait: float) -> None:
    seconds = retry_after_seconds(wait)
    assert seconds >= 1
    assert seconds >= wait
    assert seconds - wait < 1 or wait < 1


# -- compute_backoff -------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempt_zero_or_less_waits_nothing(attempt: int) -> None:
    assert compute_backoff(attempt, rng=random.Random(1)) == 0.0


def test_without_jitter_the_delay_doubles_until_the_cap() -> None:
    delays = [compute_backoff(a, base=0.1, cap=30.0, jitter=0.0) for a in range(1, 14)]
    assert delays[:9] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6])
    assert delays[9:] == [30.0] * 4


def test_growth_is_monotone_and_then_flat_at_the_cap() -> None:
    delays = [compute_backoff(a, base=0.5, cap=60.0, jitter=0.0) for a in range(1, 40)]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    first_capped = delays.index(60.0)
    assert all(b > a for a, b in itertools.pairwise(delays[: first_capped + 1]))
    assert set(delays[first_capped:]) == {60.0}


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert compute_backoff(10_000, cap=30.0, jitter=0.0) == 30.0
    assert compute_backoff(10**9, base=2.0, cap=3600.0, jitter=0.0) == 3600.0


@pytest.mark.parametrize("seed", range(5))
def test_jitter_stays_within_bounds(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(1, 20):
        nominal = min(30.0, 0.1 * 2 ** (attempt - 1))
        for _ in range(20):
            delay = compute_backoff(attempt, base=0.1, cap=30.0, jitter=0.1, rng=rng)
            assert nominal * 0.9 <= delay <= nominal * 1.1


def test_jitter_actually_spreads_the_delays() -> None:
    rng = random.Random(42)
    delays = {compute_backoff(5, jitter=0.2, rng=rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) < 1.6 < max(delays)


def test_the_same_seed_gives_the_same_delays() -> None:
    first = [compute_backoff(a, rng=random.Random(7)) for a in range(1, 10)]
    second = [compute_backoff(a, rng=random.Random(7)) for a in range(1, 10)]
    assert first == second


def test_full_jitter_never_goes_negative() -> None:
    rng = random.Random(3)
    assert all(compute_backoff(3, jitter=1.5, rng=rng) >= 0.0 for _ in range(200))
