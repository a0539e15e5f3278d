"""The worker's in-memory batch (``BatchState.apply``), driven directly: no database."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings

from opencdp.identity import Identifier, IdentityConfig, IdentityGraph
from opencdp.resolve.batch import BatchState, Event
from tests.unit.test_identity_properties import Event as Scenario
from tests.unit.test_identity_properties import scenarios


def fresh_state() -> BatchState:
    counter = itertools.count()
    return BatchState(
        workspace_id="w",
        users=IdentityGraph(IdentityConfig(), lambda: f"use_{next(counter):04d}", "users"),
        accounts=IdentityGraph(
            IdentityConfig.accounts_default(), lambda: f"acc_{next(counter):04d}", "accounts"
        ),
        traits={},
        existing=set(),
    )


def event(scenario: Scenario, received_us: int = 10**15) -> Event:
    return Event(
        None,
        "w",
        "src",
        scenario.message_id,
        received_us,
        scenario.at_us,
        dict(scenario.message),
    )


def outcome(state: BatchState) -> set[tuple[frozenset[Identifier], frozenset[tuple[str, Any]]]]:
    """Each live profile as its identifiers and its trait values (profile ids differ by order)."""
    return {
        (
            frozenset(node.identifiers),
            frozenset((k, v.value) for k, v in state.traits.get(node.id, {}).items()),
        )
        for node in state.live_profiles()
    }


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_apply_in_any_order_gives_the_same_profiles_and_traits(
    scenario: tuple[list[frozenset[Identifier]], list[Scenario]],
) -> None:
    _persons, events = scenario
    forward, backward = fresh_state(), fresh_state()
    for ev in events:
        forward.apply(event(ev))
    for ev in reversed(events):
        backward.apply(event(ev))
    assert not forward.failures and not backward.failures
    assert outcome(forward) == outcome(backward)
    # Every event is recorded once, on a profile that is live at the end
    live = {node.id for node in forward.live_profiles()}
    assert sorted(r["message_id"] for r in forward.event_rows) == sorted(
        e.message_id for e in events
    )
    assert {forward.final(r["profile_id"]) for r in forward.event_rows} <= live


def test_rows_to_write_name_only_what_changed() -> None:
    state = fresh_state()
    first = {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"plan": "pro"}}
    state.apply(Event(None, "w", "src", "m1", 100, 50, first))
    # A second event for the same person at an older time: its trait loses (last write wins)
    second = {"type": "identify", "messageId": "m2", "userId": "u1", "traits": {"plan": "free"}}
    state.apply(Event(None, "w", "src", "m2", 200, 40, second))
    [profile] = state.live_profiles()
    assert profile.id in state.new_profiles and state.created == 1
    assert [(r["key"], r["value"]) for r in state.trait_rows()] == [("plan", '"pro"')]
    [ident] = state.identifier_rows()
    assert (ident["id_type"], ident["id_value"], ident["created_us"]) == ("user_id", "u1", 40)
    assert [r["message_id"] for r in state.event_rows] == ["m1", "m2"]
    # Once written, the same identifiers seen at the same times are not written again
    state.stored_identifiers = {
        ("users", r["id_type"], r["id_value"]): (
            r["profile_id"],
            r["created_us"],
            r["last_seen_us"],
        )
        for r in state.identifier_rows()
    }
    assert state.identifier_rows() == []


def test_a_bridging_event_merges_and_the_absorbed_profile_is_recorded() -> None:
    state = fresh_state()
    state.apply(Event(None, "w", "s", "m1", 1, 1, {"type": "track", "anonymousId": "a1"}))
    state.apply(Event(None, "w", "s", "m2", 2, 2, {"type": "track", "userId": "u1"}))
    assert len(state.live_profiles()) == 2
    bridge = {"type": "identify", "messageId": "m3", "anonymousId": "a1", "userId": "u1"}
    state.apply(Event(None, "w", "s", "m3", 3, 3, bridge))
    [survivor] = state.live_profiles()
    assert len(state.merge_rows) == 1 and len(state.merged_into) == 1
    [(absorbed, into)] = state.merged_into.items()
    assert into == survivor.id and absorbed != into
    assert {state.final(r["profile_id"]) for r in state.event_rows} == {survivor.id}
    assert state.written_versions()[survivor.id] == (None, "m3")
