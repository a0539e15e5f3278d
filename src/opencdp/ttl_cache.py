"""A small time-to-live cache: what a process may keep for a few seconds instead of asking the
database on every request (sources by write key, tokens, plans, identity rules).

Entries expire ``ttl`` seconds after they were loaded, by the injected clock's monotonic time;
``None`` results are cached too (an unknown key stays unknown for ``ttl``). Past
``max_entries`` the cache starts over, so a flood of random keys cannot grow it without bound.
Thread-safe: the HTTP process reads it from the event loop and from worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from opencdp.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """``get(key, load)``: the cached value of ``key``, or ``load()`` when absent or expired."""

    def __init__(self, clock: Clock, ttl: float, max_entries: int = 10_000) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value of ``key``, loaded again when older than ``ttl`` seconds."""
        now = self.clock.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[1] <= self.ttl:
            return hit[0]
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (value, now)
        return value

    def forget(self, key: K) -> None:
        """Drop one entry (after a change this process made itself)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
