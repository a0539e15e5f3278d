"""Trait resolution: last write wins by (event time, message id), never by arrival order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.profiles.traits import (
    TraitValue,
    apply_traits,
    flatten_values,
    merge_traits,
    select,
    wins,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def tv(
    value: Any, event_us: int = T0, message_id: str | None = "m1", source: str = "s1"
) -> TraitValue:
    return TraitValue(value, source, message_id, event_us)


# -- wins / order_key ------------------------------------------------------------------------------


def test_order_key_is_event_time_then_message_id() -> None:
    assert tv("x", T0, "m9").order_key() == (T0, "m9")
    assert tv("x", T0, None).order_key() == (T0, "")


def test_anything_wins_over_nothing() -> None:
    assert wins(tv("x", 0, None), None)


def test_later_event_wins_whatever_the_message_ids() -> None:
    assert wins(tv("new", T0 + 1, "a"), tv("old", T0, "z"))
    assert not wins(tv("old", T0, "z"), tv("new", T0 + 1, "a"))


def test_same_event_time_is_broken_by_the_larger_message_id() -> None:
    assert wins(tv("b", T0, "m2"), tv("a", T0, "m1"))
    assert not wins(tv("a", T0, "m1"), tv("b", T0, "m2"))


def test_the_same_write_again_does_not_win() -> None:
    # A replayed message must not count as a change.
    assert not wins(tv("a", T0, "m1"), tv("a", T0, "m1"))


# -- apply_traits ----------------------------------------------------------------------------------


def test_apply_to_an_empty_profile_sets_every_trait_with_its_provenance() -> None:
    changed = apply_traits(
        {}, {"plan": "pro", "age": 41}, source_id="s1", message_id="m1", event_us=T0
    )
    assert changed == {
        "plan": TraitValue("pro", "s1", "m1", T0),
        "age": TraitValue(41, "s1", "m1", T0),
    }


def test_newer_event_overwrites_and_older_event_is_ignored() -> None:
    # Given a profile whose plan was set at T0 + 10
    current = {"plan": tv("pro", T0 + 10, "m5"), "city": tv("Paris", T0 + 10, "m5")}
    # When an older event (delivered late) and a newer event arrive
    late = apply_traits(current, {"plan": "free"}, source_id="s1", message_id="m9", event_us=T0)
    newer = apply_traits(
        current, {"plan": "team"}, source_id="s2", message_id="m0", event_us=T0 + 20
    )
    # Then only the newer one changes the trait, whatever the message ids and arrival order
    assert late == {}
    assert newer == {"plan": TraitValue("team", "s2", "m0", T0 + 20)}


def test_only_the_changed_traits_are_returned() -> None:
    current = {"plan": tv("pro", T0 + 10, "m5"), "city": tv("Paris", T0, "m1")}
    changed = apply_traits(
        current, {"plan": "free", "city": "Lyon"}, source_id="s1", message_id="m3", event_us=T0 + 5
    )
    assert changed == {"city": TraitValue("Lyon", "s1", "m3", T0 + 5)}


def test_apply_does_not_mutate_the_current_traits() -> None:
    current = {"plan": tv("pro")}
    apply_traits(current, {"plan": "team"}, source_id="s1", message_id="m2", event_us=T0 + 1)
    assert current == {"plan": tv("pro")}


def test_tie_on_event_time_is_broken_by_message_id() -> None:
    current = {"plan": tv("pro", T0, "m5")}
    lower = apply_traits(current, {"plan": "a"}, source_id="s1", message_id="m4", event_us=T0)
    higher = apply_traits(current, {"plan": "b"}, source_id="s1", message_id="m6", event_us=T0)
    assert lower == {}
    assert higher == {"plan": TraitValue("b", "s1", "m6", T0)}


def test_replaying_the_same_message_changes_nothing() -> None:
    first = apply_traits({}, {"plan": "pro"}, source_id="s1", message_id="m1", event_us=T0)
    again = apply_traits(first, {"plan": "pro"}, source_id="s1", message_id="m1", event_us=T0)
    assert again == {}


def test_none_is_a_real_value_that_clears_a_trait_by_event_time() -> None:
    # Segment clears a trait by sending null.
    current = {"plan": tv("pro", T0, "m1")}
    cleared = apply_traits(
        current, {"plan": None}, source_id="s1", message_id="m2", event_us=T0 + 1
    )
    assert cleared == {"plan": TraitValue(None, "s1", "m2", T0 + 1)}
    # And an older null does not clear a newer value
    stale = apply_traits(current, {"plan": None}, source_id="s1", message_id="m0", event_us=T0 - 1)
    assert stale == {}


def test_a_none_value_is_overwritten_by_a_newer_value() -> None:
    current = {"plan": tv(None, T0, "m1")}
    changed = apply_traits(
        current, {"plan": "pro"}, source_id="s1", message_id="m2", event_us=T0 + 1
    )
    assert flatten_values(changed) == {"plan": "pro"}


# -- merge_traits ----------------------------------------------------------------------------------


def test_merge_takes_the_latest_value_of_every_trait() -> None:
    a = {"plan": tv("pro", T0 + 5, "m1"), "city": tv("Paris", T0, "m1")}
    b = {"plan": tv("free", T0, "m2"), "city": tv("Lyon", T0 + 9, "m3"), "age": tv(30, T0, "m2")}
    merged = merge_traits(a, b)
    assert merged == {
        "plan": tv("pro", T0 + 5, "m1"),
        "city": tv("Lyon", T0 + 9, "m3"),
        "age": tv(30, T0, "m2"),
    }
    assert merge_traits(b, a) == merged


def test_merge_of_nothing_is_empty_and_of_one_is_a_copy() -> None:
    a = {"plan": tv("pro")}
    assert merge_traits() == {}
    merged = merge_traits(a)
    assert merged == a
    assert merged is not a


def test_merge_keeps_a_newer_none() -> None:
    merged = merge_traits({"plan": tv("pro", T0, "m1")}, {"plan": tv(None, T0 + 1, "m2")})
    assert flatten_values(merged) == {"plan": None}


def test_merge_ties_are_broken_by_message_id_in_any_order() -> None:
    a = {"plan": tv("a", T0, "m1")}
    b = {"plan": tv("b", T0, "m2")}
    c = {"plan": tv("c", T0, "m10")}  # string order: "m10" < "m2"
    for order in itertools.permutations([a, b, c]):
        assert flatten_values(merge_traits(*order)) == {"plan": "b"}


# A write is identified by (event time, message id); the same write always carries the same
# value, as it does in the pipeline, where one message sets one value per trait.
WRITES = st.tuples(st.integers(0, 3), st.sampled_from(["m1", "m2", "m10", "n", ""]))
TRAIT_SETS = st.lists(
    st.dictionaries(st.sampled_from(["plan", "city", "age", "email"]), WRITES, max_size=4),
    min_size=1,
    max_size=5,
)


def as_trait_values(writes: dict[str, tuple[int, str]]) -> dict[str, TraitValue]:
    return {
        key: TraitValue(
            value=None if at == 0 else f"{key}@{at}/{mid}",
            source_id=f"src-{mid}",
            message_id=mid or None,
            event_us=T0 + at,
        )
        for key, (at, mid) in writes.items()
    }


@settings(max_examples=100, deadline=None)
@given(sets=TRAIT_SETS, data=st.data())
def test_merge_is_order_independent(sets: list[dict[str, tuple[int, str]]], data: Any) -> None:
    trait_sets = [as_trait_values(s) for s in sets]
    expected = merge_traits(*trait_sets)
    shuffled = data.draw(st.permutations(trait_sets))
    assert merge_traits(*shuffled) == expected
    # Merging is also associative: merging merged halves gives the same result.
    cut = data.draw(st.integers(0, len(shuffled)))
    assert merge_traits(merge_traits(*shuffled[:cut]), merge_traits(*shuffled[cut:])) == expected
    # And the result is each key's maximum by (event time, message id).
    for key, value in expected.items():
        candidates = [ts[key] for ts in trait_sets if key in ts]
        assert value.order_key() == max(c.order_key() for c in candidates)


@settings(max_examples=100, deadline=None)
@given(sets=TRAIT_SETS, data=st.data())
def test_applying_events_in_any_order_converges(
    sets: list[dict[str, tuple[int, str]]], data: Any
) -> None:
    # Each trait set stands for one event (one write per trait); apply them in any order.
    events = [as_trait_values(s) for s in sets]

    def replay(order: list[dict[str, TraitValue]]) -> dict[str, TraitValue]:
        profile: dict[str, TraitValue] = {}
        for ev in order:
            for key, value in ev.items():
                profile.update(
                    apply_traits(
                        profile,
                        {key: value.value},
                        source_id=value.source_id,
                        message_id=value.message_id,
                        event_us=value.event_us,
                    )
                )
        return profile

    assert replay(data.draw(st.permutations(events))) == replay(events) == merge_traits(*events)


# -- select / flatten_values -----------------------------------------------------------------------

TRAITS = {"plan": tv("pro"), "city": tv("Paris"), "gone": tv(None)}


def test_select_none_returns_a_copy_of_everything() -> None:
    selected = select(TRAITS, None)
    assert selected == TRAITS
    assert selected is not TRAITS


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (["plan"], {"plan"}),
        (("plan", "city"), {"plan", "city"}),
        (iter(["city", "gone"]), {"city", "gone"}),  # any iterable, consumed once
        (["plan", "plan"], {"plan"}),
        (["unknown"], set()),
        ([], set()),
        (["PLAN"], set()),  # keys are case-sensitive
    ],
)
def test_select_returns_only_the_named_traits(include: Any, expected: set[str]) -> None:
    selected = select(TRAITS, include)
    assert set(selected) == expected
    assert all(selected[k] is TRAITS[k] for k in selected)


def test_flatten_values_drops_provenance_and_keeps_none() -> None:
    assert flatten_values(TRAITS) == {"plan": "pro", "city": "Paris", "gone": None}
    assert flatten_values({}) == {}


def test_flatten_values_keeps_nested_values_as_they_are() -> None:
    address = {"city": "Paris", "zip": "75001"}
    flat = flatten_values({"address": tv(address), "tags": tv(["a", "b"])})
    assert flat == {"address": {"city": "Paris", "zip": "75001"}, "tags": ["a", "b"]}
    assert flat["address"] is address
