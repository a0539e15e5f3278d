"""Per-source token buckets (pure: the caller passes the monotonic time)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows ``rate`` events per second per key with bursts up to ``burst`` events.

    With ``max_keys``, past that many keys the buckets that have filled up again (idle keys)
    are forgotten, so that a flood of distinct keys (client addresses, random tokens) cannot
    grow the limiter without bound; if every bucket is in use, all start over.
    """

    def __init__(self, rate: float, burst: float = 0.0, max_keys: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst > 0 else max(rate, 1.0)
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def try_acquire(self, key: str, n: int, now: float) -> float:
        """Take ``n`` tokens for ``key``; returns 0 on success, else seconds until they exist.

        A request larger than the burst is let through when the bucket is full, so that a big
        batch can never be refused forever.
        """
        if not self.enabled:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if self.max_keys is not None and len(self._buckets) >= self.max_keys:
                    self._forget_idle(now)
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            need = min(float(n), self.burst)
            if bucket.tokens >= need:
                bucket.tokens -= n
                return 0.0
            return max((need - bucket.tokens) / self.rate, 1e-3)

    def _forget_idle(self, now: float) -> None:
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        if self.max_keys is not None and len(self._buckets) >= self.max_keys:
            self._buckets.clear()


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for a ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(wait))
