"""The one time-to-live cache the processes use for sources, tokens, plans and identity rules."""

from __future__ import annotations

from opencdp.clock import FrozenClock
from opencdp.ttl_cache import TtlCache


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
