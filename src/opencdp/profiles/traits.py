"""Trait resolution: last write wins by *event* time, never by arrival order.

A trait value carries its provenance (source, message id, event time). Two writes of the same
trait are ordered by ``(event_us, message_id)``, so replays, retries and out-of-order delivery
converge on the same profile, and merging two profiles applies the very same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Segment caps traits per profile write; more is almost always a client bug.
MAX_TRAITS_PER_EVENT = 300


@dataclass(frozen=True, slots=True)
class TraitValue:
    """One resolved trait value and where it came from."""

    value: Any
    source_id: str | None
    message_id: str | None
    event_us: int

    def order_key(self) -> tuple[int, str]:
        """Total order used for last-write-wins (event time, then message id as tie-break)."""
        return (self.event_us, self.message_id or "")


def wins(candidate: TraitValue, current: TraitValue | None) -> bool:
    """True when ``candidate`` should replace ``current``."""
    return current is None or candidate.order_key() > current.order_key()


def apply_traits(
    current: Mapping[str, TraitValue],
    incoming: Mapping[str, Any],
    *,
    source_id: str | None,
    message_id: str | None,
    event_us: int,
) -> dict[str, TraitValue]:
    """The trait values that change when ``incoming`` (an event's traits) meets ``current``.

    ``None`` in ``incoming`` is a real value (Segment clears a trait by sending null); it
    competes by event time like any other value.
    """
    changed: dict[str, TraitValue] = {}
    for key, value in incoming.items():
        candidate = TraitValue(value, source_id, message_id, event_us)
        if wins(candidate, current.get(key)):
            changed[key] = candidate
    return changed


def merge_traits(*trait_sets: Mapping[str, TraitValue]) -> dict[str, TraitValue]:
    """Combine the traits of several profiles by the same last-write-wins rule."""
    result: dict[str, TraitValue] = {}
    for traits in trait_sets:
        for key, value in traits.items():
            if wins(value, result.get(key)):
                result[key] = value
    return result


def flatten_values(traits: Mapping[str, TraitValue]) -> dict[str, Any]:
    """Just the values, as the Profile API returns them without ``verbose``."""
    return {key: tv.value for key, tv in traits.items()}


def select(
    traits: Mapping[str, TraitValue], include: Iterable[str] | None
) -> dict[str, TraitValue]:
    """The subset named in ``include`` (all when ``include`` is None)."""
    if include is None:
        return dict(traits)
    wanted = set(include)
    return {k: v for k, v in traits.items() if k in wanted}
