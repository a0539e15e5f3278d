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


class RefreshingCache(Generic[K, V]):
    """Like :class:`TtlCache`, but an expired entry is still answered while one background
    thread loads its successor (stale-while-revalidate): a request never waits for a reload
    it did not need, only the very first load of a key is made in the caller's thread. For
    large values read often (a workspace's catalog snapshot on the recommendations' hot path).
    """

    def __init__(self, clock: Clock, ttl: float, max_entries: int = 100) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}
        self._loading: set[K] = set()
        #: bumped by :meth:`forget`: a reload begun before it must not store what it read
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        now = self.clock.monotonic()
        hit = self._entries.get(key)
        if hit is None:
            return self._store(key, load())
        if now - hit[1] > self.ttl:
            with self._lock:
                start = key not in self._loading
                self._loading.add(key)
            if start:
                threading.Thread(
                    target=self._reload,
                    args=(key, load, self._generation),
                    name="cache-refresh",
                    daemon=True,
                ).start()
        return hit[0]

    def _reload(self, key: K, load: Callable[[], V], generation: int) -> None:
        try:
            value = load()
            with self._lock:  # unless forgotten meanwhile: the read may predate the change
                if generation == self._generation:
                    self._put(key, value)
        except Exception:  # the old value keeps serving; the next expired read tries again
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:  # try again after another ttl, not on every request
                    self._entries[key] = (hit[0], self.clock.monotonic())
        finally:
            with self._lock:
                self._loading.discard(key)

    def _store(self, key: K, value: V) -> V:
        with self._lock:
            self._put(key, value)
        return value

    def peek(self, key: K) -> V | None:
        """The value held for ``key``, expired or not, without loading one (None: none)."""
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def _put(self, key: K, value: V) -> None:
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (value, self.clock.monotonic())

    def forget(self, key: K) -> None:
        """Drop one entry: the next read loads it in its own thread (after a change this
        process made itself)."""
        with self._lock:
            self._entries.pop(key, None)
            self._generation += 1
