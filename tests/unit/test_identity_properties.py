"""Properties of identity resolution that must hold for every input, checked with hypothesis.

1. Order independence: when no rule is in play (no limit reached, no blocked value), any
   permutation of the same events gives the same profiles, equal to the connected components
   of "appeared on one event together", and the same traits per profile (invariant 3: event
   time, not arrival order).
2. Structural invariants under adversarial input (shared and blocked identifiers, tiny caps):
   every identifier is on at most one profile, limits and caps hold, and merges are accounted
   for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.errors import IdentityError
from opencdp.identity import (
    Identifier,
    IdentityConfig,
    IdentityGraph,
    Limit,
    extract_user_identifiers,
)
from opencdp.profiles.traits import TraitValue, apply_traits, merge_traits

CONFIG = IdentityConfig()
HOUR_US = 3_600 * 1_000_000


@dataclass(frozen=True)
class Event:
    message: dict[str, Any]
    identifiers: frozenset[Identifier]  # what the message should yield, for the ground truth
    traits: dict[str, Any]
    at_us: int

    @property
    def message_id(self) -> str:
        return str(self.message["messageId"])


def build_message(
    message_id: str, ids: Sequence[Identifier], traits: dict[str, Any]
) -> dict[str, Any]:
    """A normalized identify message carrying ``ids`` in the places real clients put them."""
    message: dict[str, Any] = {"type": "identify", "messageId": message_id, "traits": dict(traits)}
    context: dict[str, Any] = {"traits": {}}
    external: list[dict[str, str]] = []
    anonymous = sorted(x.value for x in ids if x.type == "anonymous_id")
    emails = sorted(x.value for x in ids if x.type == "email")
    for identifier in ids:
        if identifier.type == "user_id":
            message["userId"] = identifier.value
        elif identifier.type == "phone":
            digits = identifier.value[2:]  # +1XXXXXXXXXX -> a national format, as people type it
            context["traits"]["phone"] = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        elif identifier.type == "ios.id":
            context["device"] = {"id": identifier.value, "type": "ios"}
    if anonymous:
        message["anonymousId"] = anonymous[0]
        external += [
            {"id": a, "type": "anonymous_id", "collection": "users", "encoding": "none"}
            for a in anonymous[1:]
        ]
    if emails:
        context["traits"]["email"] = emails[0].upper()  # extraction lower-cases it
        external += [
            {"id": e, "type": "email", "collection": "users", "encoding": "none"}
            for e in emails[1:]
        ]
    if external:
        context["externalIds"] = external
    message["context"] = context
    return message


PERSON = st.tuples(
    st.booleans(),  # has a user id
    st.integers(0, 3),  # anonymous ids
    st.integers(0, 2),  # e-mail addresses
    st.booleans(),  # has a phone number
    st.booleans(),  # has an iOS device id
)
EVENT = st.tuples(
    st.integers(0, 3),  # whose event (modulo the number of persons)
    st.integers(1, 2**10 - 1),  # which of their identifiers (a bit mask)
    st.tuples(*[st.integers(-1, 3)] * 3),  # values of the traits plan, city, name (-1: absent)
    st.integers(0, 4),  # event hour: few distinct times, so ties (decided by message id) happen
)
TRAIT_NAMES = ("plan", "city", "name")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[frozenset[Identifier]], list[Event]]:
    """A ground truth of persons (identifier values unique across persons) and their events.

    Drawn as two flat lists of small tuples: far cheaper for hypothesis than nested draws.
    """
    persons: list[frozenset[Identifier]] = []
    for p, (user, n_anon, n_email, phone, device) in enumerate(
        draw(st.lists(PERSON, min_size=1, max_size=4))
    ):
        ids: list[Identifier] = []
        if user:
            ids.append(Identifier("user_id", f"user-{p}"))
        ids += [Identifier("anonymous_id", f"anon-{p}-{k}") for k in range(n_anon)]
        ids += [Identifier("email", f"p{p}.{k}@example.com") for k in range(n_email)]
        if phone:
            ids.append(Identifier("phone", f"+1201555{p:04d}"))
        if device:
            ids.append(Identifier("ios.id", f"device-{p}"))
        if not ids:
            ids.append(Identifier("anonymous_id", f"anon-{p}-0"))
        persons.append(frozenset(ids))

    events = []
    for n, (who, mask, values, hour) in enumerate(draw(st.lists(EVENT, min_size=1, max_size=12))):
        person = sorted(persons[who % len(persons)])
        subset = [x for bit, x in enumerate(person) if mask >> bit & 1] or person[:1]
        traits = {k: v for k, v in zip(TRAIT_NAMES, values, strict=True) if v >= 0}
        message_id = f"m{n:02d}"
        message = build_message(message_id, subset, traits)
        events.append(Event(message, frozenset(subset), traits, hour * HOUR_US))
    return persons, events


Outcome = dict[frozenset[Identifier], dict[str, TraitValue]]


def run(events: Sequence[Event]) -> Outcome:
    """Resolve the events in this order, folding traits the way the worker does."""
    counter = itertools.count()
    graph = IdentityGraph(CONFIG, lambda: f"p{next(counter)}")
    traits: dict[str, dict[str, TraitValue]] = {}
    for event in events:
        identifiers = extract_user_identifiers(event.message, CONFIG)
        assert set(identifiers) == event.identifiers
        r = graph.resolve(
            identifiers, message_id=event.message_id, source_id="src", at_us=event.at_us
        )
        assert r.demoted == () and r.blocked == ()
        for merge in r.merged:
            traits[merge.into_profile_id] = merge_traits(
                traits.get(merge.into_profile_id, {}), traits.pop(merge.from_profile_id, {})
            )
        current = traits.setdefault(r.profile_id, {})
        current.update(
            apply_traits(
                current,
                event.traits,
                source_id="src",
                message_id=event.message_id,
                event_us=event.at_us,
            )
        )
    assert set(traits) <= {p.id for p in graph.profiles()}
    return {frozenset(p.identifiers): traits.get(p.id, {}) for p in graph.profiles()}


def components(events: Sequence[Event]) -> list[frozenset[Identifier]]:
    """Connected components of 'carried by the same event' (a plain union-find)."""
    parent: dict[Identifier, Identifier] = {}

    def find(x: Identifier) -> Identifier:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for event in events:
        first, *rest = sorted(event.identifiers)
        for other in rest:
            parent[find(other)] = find(first)
        find(first)
    groups: dict[Identifier, set[Identifier]] = {}
    for x in parent:
        groups.setdefault(find(x), set()).add(x)
    return [frozenset(g) for g in groups.values()]


def expected_traits(events: Sequence[Event], group: frozenset[Identifier]) -> dict[str, TraitValue]:
    """Last write wins by (event time, message id) over every event of the group."""
    result: dict[str, TraitValue] = {}
    for event in events:
        if event.identifiers <= group:
            for key, value in event.traits.items():
                candidate = TraitValue(value, "src", event.message_id, event.at_us)
                if key not in result or candidate.order_key() > result[key].order_key():
                    result[key] = candidate
    return result


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_resolution_is_independent_of_event_order(
    scenario: tuple[list[frozenset[Identifier]], list[Event]], data: st.DataObject
) -> None:
    persons, events = scenario
    baseline = run(events)

    # (a) the grouping is the connected components of the events ...
    assert set(baseline) == set(components(events))
    # ... which is the ground truth for every person whose events connect all their identifiers
    for person in persons:
        own = [e for e in events if e.identifiers <= person]
        if set().union(*(e.identifiers for e in own)) == person and len(components(own)) == 1:
            assert person in baseline
    # (b) traits are last-write-wins by event time within each group
    for group, traits in baseline.items():
        assert traits == expected_traits(events, group)

    # ... and any other order gives exactly the same profiles and traits.
    for _ in range(2):
        shuffled = data.draw(st.permutations(events))
        assert run(shuffled) == baseline


# -- structural invariants under adversarial input -------------------------------------------------

POOL = [
    Identifier("user_id", "u1"),
    Identifier("user_id", "u2"),
    Identifier("user_id", "null"),
    Identifier("anonymous_id", "a1"),
    Identifier("anonymous_id", "a2"),
    Identifier("anonymous_id", "0"),
    Identifier("email", "x@example.com"),
    Identifier("email", "y@example.com"),
    Identifier("previous_id", "a1"),
    Identifier("previous_id", "u2"),
    Identifier("member", "m1"),
]


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.lists(st.sampled_from(POOL), max_size=5), st.integers(0, 30 * 24)),
        max_size=20,
    ),
    max_merges=st.integers(0, 3),
    max_identifiers=st.integers(1, 6),
    member_limit=st.integers(1, 2),
)
def test_graph_invariants_hold_for_any_input(
    events: list[tuple[list[Identifier], int]],
    max_merges: int,
    max_identifiers: int,
    member_limit: int,
) -> None:
    config = IdentityConfig(
        max_merges=max_merges,
        max_identifiers=max_identifiers,
        limits={"member": Limit(member_limit)},
    )
    counter = itertools.count()
    graph = IdentityGraph(config, lambda: f"p{next(counter)}")
    created = 0
    for n, (identifiers, hours) in enumerate(events):
        try:
            r = graph.resolve(identifiers, message_id=f"m{n}", at_us=hours * HOUR_US)
        except IdentityError:
            assert all(config.is_blocked(x) for x in identifiers)
            continue
        created += r.created
        profile = graph.profile(r.profile_id)
        # Everything the event linked or saw is on the profile it resolved to.
        for identifier in [a.identifier for a in r.added] + list(r.seen):
            assert graph.lookup(identifier) == r.profile_id
            assert identifier in profile.identifiers
        assert not {d.identifier for d in r.demoted} & {a.identifier for a in r.added}
        assert set(r.blocked) == {x for x in identifiers if config.is_blocked(x)}
        for merge in r.merged:
            assert merge.into_profile_id == r.profile_id
            assert graph.lookup(merge.identifiers[0]) == r.profile_id

        all_ids: list[Identifier] = []
        for node in graph.profiles():
            all_ids += node.identifiers
            for identifier in node.identifiers:
                assert graph.lookup(identifier) == node.id
                assert not config.is_blocked(identifier)
                assert identifier.type != "previous_id"
            assert len(node.identifiers) <= max_identifiers
            assert node.merge_count <= max_merges
            assert sum(x.type == "user_id" for x in node.identifiers) <= 1
            assert sum(x.type == "member" for x in node.identifiers) <= member_limit
        assert len(all_ids) == len(set(all_ids))  # one profile per identifier
        # Every created profile either still exists or was merged (counted once) into another.
        assert len(graph) + sum(p.merge_count for p in graph.profiles()) == created
