"""The time-to-live caches the processes use: for sources, tokens, plans and identity rules, and
the refreshing one for catalog snapshots, model versions and recommendation rules."""

from __future__ import annotations

import threading

from opencdp.clock import FrozenClock
from opencdp.ttl_cache import RefreshingCache, TtlCache


def test_values_are_loaded_again_after_the_ttl_and_none_is_cached_too() -> None:
    clock = FrozenClock()
    cache: TtlCache[str, int | None] = TtlCache(clock, ttl=10.0)
    loads: list[str] = []

    def load(key: str, value: int | None) -> int | None:
        loads.append(key)
        return value

    assert cache.get("a", lambda: load("a", 1)) == 1
    assert cache.get("a", lambda: load("a", 2)) == 1  # cached
    assert cache.get("missing", lambda: load("missing", None)) is None
    assert cache.get("missing", lambda: load("missing", 5)) is None  # an unknown key stays so
    clock.advance(10.5)
    assert cache.get("a", lambda: load("a", 3)) == 3  # expired: loaded again
    cache.forget("a")
    assert cache.get("a", lambda: load("a", 4)) == 4
    assert loads == ["a", "missing", "a", "a"]


def test_a_flood_of_keys_cannot_grow_it_without_bound() -> None:
    cache: TtlCache[int, int] = TtlCache(FrozenClock(), ttl=60.0, max_entries=100)
    for key in range(1000):
        cache.get(key, lambda key=key: key)  # type: ignore[misc]
    assert len(cache._entries) <= 100
    cache.clear()
    assert cache._entries == {}


def test_a_refreshing_cache_answers_the_stale_value_while_one_thread_reloads() -> None:
    clock = FrozenClock()
    cache: RefreshingCache[str, int] = RefreshingCache(clock, ttl=5.0)
    release = threading.Event()
    loads: list[int] = []

    def slow(value: int) -> int:
        loads.append(value)
        release.wait(5)
        return value

    assert cache.get("a", lambda: 1) == 1  # the first load is the caller's
    clock.advance(6)
    assert cache.get("a", lambda: slow(2)) == 1  # expired: still answered, reload started
    assert cache.get("a", lambda: slow(3)) == 1  # one reload at a time
    release.set()
    _wait_until(lambda: cache.get("a", lambda: 9) == 2)
    assert loads == [2]


def test_a_reload_begun_before_forget_does_not_store_what_it_read() -> None:
    clock = FrozenClock()
    cache: RefreshingCache[str, str] = RefreshingCache(clock, ttl=5.0)
    cache.get("a", lambda: "v1")
    clock.advance(6)
    reading = threading.Event()
    release = threading.Event()

    def stale_read() -> str:
        reading.set()
        release.wait(5)
        return "v1 again"  # read before this process activated v2

    assert cache.get("a", stale_read) == "v1"
    assert reading.wait(5)
    cache.forget("a")  # this process changed it: the next read loads at once
    assert cache.get("a", lambda: "v2") == "v2"
    release.set()
    _wait_until(lambda: not cache._loading)
    assert cache.get("a", lambda: "never") == "v2"


def test_a_failed_reload_keeps_the_old_value_and_waits_another_ttl() -> None:
    clock = FrozenClock()
    cache: RefreshingCache[str, int] = RefreshingCache(clock, ttl=5.0)
    cache.get("a", lambda: 1)
    clock.advance(6)

    def broken() -> int:
        raise OSError("database away")

    assert cache.get("a", broken) == 1
    _wait_until(lambda: not cache._loading)
    assert cache.get("a", lambda: 2) == 1  # not retried on every request
    clock.advance(6)
    cache.get("a", lambda: 2)
    _wait_until(lambda: cache.get("a", lambda: 3) == 2)


def _wait_until(condition: object, seconds: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(seconds * 100)):
        if condition():  # type: ignore[operator]
            return
        done.wait(0.01)
    raise AssertionError("the condition did not become true")
