"""How fast and how wide the dispatcher sends to one destination (pure: callers pass the
monotonic time of the injected clock).

* A **token bucket** caps a destination's messages per second (its ``rate_limit``). It holds
  one second's worth of messages (at least one) and starts full, so over any stretch of
  ``t`` seconds at most ``rate·t + capacity`` messages go out.
* **AIMD** sets how many sends run in parallel: a throttling answer (429, 502, 504) halves it
  (never below 1), each clean round adds one back, up to the destination's ``concurrency``.
* :func:`lanes` splits a round's deliveries for parallel sends so that one profile's
  deliveries stay in one lane, in order.

The dispatcher never sleeps on a bucket: what the bucket does not grant is left waiting for a
later round, and the destination is not claimed until its bucket can pay.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: tokens that rounding leaves short of a whole one still count as one
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity`` (default one second's worth,
    at least 1); full at first use. Not thread-safe: :class:`Throttle` locks it."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate: more than 0 messages per second")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self.tokens = self.capacity
        self._updated: float | None = None

    def _refill(self, now: float) -> None:
        if self._updated is None or now < self._updated:  # first use, or a clock going back
            self._updated = now
            return
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def available(self, now: float) -> int:
        """Whole tokens there are at ``now``."""
        self._refill(now)
        return math.floor(self.tokens + _EPSILON)

    def take(self, wanted: int, now: float) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were taken (maybe 0)."""
        granted = max(0, min(wanted, self.available(now)))
        self.tokens -= granted
        return granted

    def give_back(self, n: int) -> None:
        """Return tokens taken for messages that were not sent after all."""
        self.tokens = min(self.capacity, self.tokens + max(0, n))

    def full(self, now: float) -> bool:
        """Whether the bucket holds all it can (a whole round's worth)."""
        self._refill(now)
        return self.tokens + _EPSILON >= math.floor(self.capacity + _EPSILON)


class Aimd:
    """Additive increase, multiplicative decrease of a parallelism between 1 and
    ``ceiling`` (starts at the ceiling)."""

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("ceiling: at least 1")
        self.ceiling = ceiling
        self.current = ceiling

    def throttled(self) -> int:
        """The receiver asked to slow down: halve (at least 1)."""
        self.current = max(1, self.current // 2)
        return self.current

    def clean(self) -> int:
        """A round without a throttling answer: one more (at most the ceiling)."""
        self.current = min(self.ceiling, self.current + 1)
        return self.current


class Throttle:
    """One destination's rate limit and parallelism as the dispatcher applies them
    (thread-safe: the dispatcher's loop asks :meth:`ready` while a share is sending)."""

    def __init__(self, rate_limit: float | None, concurrency: int = 1) -> None:
        self.rate_limit = rate_limit
        self.bucket = TokenBucket(rate_limit) if rate_limit is not None else None
        self.aimd = Aimd(concurrency)
        #: the last round was cut short by the rate limit: wait until the bucket is full
        self._limited = False
        self._lock = threading.Lock()

    @property
    def settings(self) -> tuple[float | None, int]:
        """(rate_limit, concurrency) it was built with."""
        return self.rate_limit, self.aimd.ceiling

    @property
    def concurrency(self) -> int:
        """How many sends may run in parallel now."""
        with self._lock:
            return self.aimd.current

    def ready(self, now: float) -> bool:
        """Whether a round may start at ``now``: there is no limit, or the bucket has a token
        — a whole bucket after a round the limit cut short, so that a backlog is claimed
        once per refill instead of once per token."""
        if self.bucket is None:
            return True
        with self._lock:
            if self._limited:
                return self.bucket.full(now)
            return self.bucket.available(now) >= 1

    def take(self, wanted: int, now: float) -> int:
        """How many of ``wanted`` messages may be sent at ``now`` (tokens taken)."""
        if self.bucket is None:
            return wanted
        with self._lock:
            granted = self.bucket.take(wanted, now)
            self._limited = granted < wanted
            return granted

    def give_back(self, n: int) -> None:
        """Tokens for messages taken but not sent (held back behind a retry, a 410…)."""
        if self.bucket is not None and n > 0:
            with self._lock:
                self.bucket.give_back(n)

    def finished(self, attempted: int, throttled: bool) -> int:
        """Adjust the parallelism after a round; returns it. A round that sent nothing
        changes nothing."""
        with self._lock:
            if throttled:
                return self.aimd.throttled()
            if attempted:
                return self.aimd.clean()
            return self.aimd.current


def lanes(items: Sequence[T], n: int, profile: Callable[[T], str | None]) -> list[list[T]]:
    """``items`` in at most ``n`` non-empty lanes, each in the original order; every item of
    one profile in the same lane (by a stable hash), items without a profile dealt in turn."""
    if n <= 1 or len(items) <= 1:
        return [list(items)] if items else []
    out: list[list[T]] = [[] for _ in range(n)]
    turn = 0
    for item in items:
        key = profile(item)
        if key is None:
            out[turn % n].append(item)
            turn += 1
        else:
            out[zlib.crc32(key.encode()) % n].append(item)
    return [lane for lane in out if lane]
