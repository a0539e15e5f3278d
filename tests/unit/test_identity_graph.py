"""The identity graph: flat matching, blocked values, limits, priority demotion, caps, alias."""

from __future__ import annotations

import itertools
import json

import pytest

from opencdp.errors import IdentityError
from opencdp.identity import (
    Added,
    Demotion,
    Identifier,
    IdentityConfig,
    IdentityGraph,
    IdInfo,
    Limit,
    Merge,
    ProfileNode,
    Resolution,
)

HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
WINDOW_DAYS = {"daily": 1, "weekly": 7, "monthly": 30, "annually": 365}


def make_graph(config: IdentityConfig | None = None, collection: str = "users") -> IdentityGraph:
    counter = itertools.count(1)
    return IdentityGraph(config or IdentityConfig(), lambda: f"p{next(counter)}", collection)


def i(text: str) -> Identifier:
    return Identifier.parse(text)


def resolve(graph: IdentityGraph, *ids: str, at: int = 0, mid: str = "m") -> Resolution:
    return graph.resolve([i(s) for s in ids], message_id=mid, at_us=at, source_id="src")


def members(graph: IdentityGraph, profile_id: str) -> set[str]:
    return {str(x) for x in graph.profile(profile_id).identifiers}


def node(pid: str, *ids: str, created: int = 0, merges: int = 0, seen: int = 0) -> ProfileNode:
    return ProfileNode(pid, "users", created, merges, {i(s): IdInfo(seen, seen) for s in ids})


# -- flat matching ---------------------------------------------------------------------------------


def test_no_match_creates_a_profile_with_every_identifier() -> None:
    graph = make_graph()
    r = resolve(graph, "user_id:u1", "email:j@x.io", at=10, mid="m1")

    assert r.profile_id == "p1" and r.created
    assert r.added == (
        Added(i("user_id:u1"), "co-occurrence"),
        Added(i("email:j@x.io"), "co-occurrence"),
    )
    assert (r.merged, r.demoted, r.blocked, r.seen) == ((), (), (), ())
    profile = graph.profile("p1")
    assert profile.created_us == 10 and profile.merge_count == 0
    # Every link records the event, source and rule that made it (invariant 5).
    assert profile.identifiers[i("email:j@x.io")] == IdInfo(10, 10, "m1", "src", "co-occurrence")


def test_one_match_adds_the_new_identifiers() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=1)
    r = resolve(graph, "anonymous_id:a1", "user_id:u1", at=2)

    assert r.profile_id == "p1" and not r.created
    assert r.added == (Added(i("user_id:u1"), "co-occurrence"),)
    assert r.seen == (i("anonymous_id:a1"),)
    assert members(graph, "p1") == {"anonymous_id:a1", "user_id:u1"}
    assert graph.lookup(i("user_id:u1")) == "p1"


def test_several_matches_merge_into_the_earliest_profile() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=1)
    resolve(graph, "email:j@x.io", at=2)
    # Given two profiles, when one event carries an identifier of each
    r = resolve(graph, "email:j@x.io", "anonymous_id:a1", at=3)

    # Then the later profile is absorbed into the earlier one
    assert r.profile_id == "p1" and not r.created
    assert r.merged == (
        Merge("p2", "p1", (i("email:j@x.io"), i("anonymous_id:a1")), "co-occurrence"),
    )
    assert r.added == ()
    assert set(r.seen) == {i("email:j@x.io"), i("anonymous_id:a1")}
    assert len(graph) == 1
    assert graph.lookup(i("email:j@x.io")) == "p1"
    assert graph.profile("p1").merge_count == 1
    with pytest.raises(KeyError, match="p2"):
        graph.profile("p2")


def test_merge_count_is_the_sum_plus_one_per_absorbed_profile() -> None:
    graph = make_graph()
    graph.load_profile(node("a", "anonymous_id:a1", created=1, merges=3))
    graph.load_profile(node("b", "anonymous_id:a2", created=2, merges=4))
    resolve(graph, "anonymous_id:a1", "anonymous_id:a2", at=5)
    assert graph.profile("a").merge_count == 8


def test_three_profiles_merge_in_one_event() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=1)
    resolve(graph, "anonymous_id:a2", at=2)
    resolve(graph, "email:j@x.io", at=3)
    r = resolve(graph, "anonymous_id:a2", "email:j@x.io", "anonymous_id:a1", "phone:+12015550123")

    assert r.profile_id == "p1"
    assert [(m.from_profile_id, m.into_profile_id) for m in r.merged] == [
        ("p2", "p1"),
        ("p3", "p1"),
    ]
    assert r.added == (Added(i("phone:+12015550123"), "co-occurrence"),)
    assert graph.profile("p1").merge_count == 2
    assert members(graph, "p1") == {
        "anonymous_id:a1",
        "anonymous_id:a2",
        "email:j@x.io",
        "phone:+12015550123",
    }


def test_canonical_profile_is_earliest_created_not_highest_priority_match() -> None:
    graph = make_graph()
    graph.load_profile(node("z-old", "anonymous_id:a1", created=5))
    graph.load_profile(node("a-new", "user_id:u1", created=9))
    r = resolve(graph, "user_id:u1", "anonymous_id:a1", at=10)
    assert r.profile_id == "z-old"
    assert r.merged[0].from_profile_id == "a-new"


def test_canonical_profile_tie_is_broken_by_smallest_id() -> None:
    graph = make_graph()
    graph.load_profile(node("b", "user_id:u1", created=5))
    graph.load_profile(node("a", "anonymous_id:a1", created=5))
    assert resolve(graph, "user_id:u1", "anonymous_id:a1").profile_id == "a"


def test_resolving_the_same_event_again_changes_nothing() -> None:
    graph = make_graph()
    first = resolve(graph, "user_id:u1", "anonymous_id:a1", "email:j@x.io", at=7)
    again = resolve(graph, "user_id:u1", "anonymous_id:a1", "email:j@x.io", at=7)
    assert again.profile_id == first.profile_id
    assert (again.created, again.added, again.merged, again.demoted) == (False, (), (), ())


def test_seen_identifiers_widen_their_seen_range_either_way() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=100, mid="m1")
    resolve(graph, "anonymous_id:a1", at=300)
    resolve(graph, "anonymous_id:a1", at=50)  # delivered late
    info = graph.profile("p1").identifiers[i("anonymous_id:a1")]
    assert (info.first_seen_us, info.last_seen_us) == (50, 300)
    assert info.message_id == "m1"  # provenance stays with the event that made the link


# -- blocked values --------------------------------------------------------------------------------


def test_blocked_values_are_dropped_and_recorded() -> None:
    graph = make_graph()
    r = resolve(
        graph, "user_id:null", "anonymous_id:a1", "ios.idfa:00000000-0000-0000-0000-000000000000"
    )
    assert r.blocked == (i("ios.idfa:00000000-0000-0000-0000-000000000000"), i("user_id:null"))
    assert members(graph, r.profile_id) == {"anonymous_id:a1"}
    assert graph.lookup(i("user_id:null")) is None


def test_event_with_only_blocked_identifiers_raises_and_changes_nothing() -> None:
    graph = make_graph()
    with pytest.raises(
        IdentityError, match="blocked placeholder values: anonymous_id:0, user_id:null"
    ):
        resolve(graph, "user_id:null", "anonymous_id:0")
    assert len(graph) == 0


def test_event_without_identifiers_raises() -> None:
    with pytest.raises(IdentityError, match="carries no identifier"):
        make_graph().resolve([], message_id="m9", at_us=0)


def test_custom_blocked_pattern() -> None:
    graph = make_graph(IdentityConfig(blocked_patterns=(r"@example\.com$",)))
    r = resolve(graph, "email:test@example.com", "anonymous_id:a1")
    assert r.blocked == (i("email:test@example.com"),)


# -- limits ------------------------------------------------------------------------------------------


def test_user_id_limit_one_keeps_a_shared_device_apart() -> None:
    graph = make_graph()
    resolve(graph, "user_id:u1", "anonymous_id:a1", at=1)
    # A second person logs in on the same browser.
    r = resolve(graph, "user_id:u2", "anonymous_id:a1", at=2)
    assert r.created and r.profile_id == "p2"
    assert r.demoted == (Demotion(i("anonymous_id:a1"), "limit:user_id"),)
    assert members(graph, "p2") == {"user_id:u2"}
    assert members(graph, "p1") == {"user_id:u1", "anonymous_id:a1"}


def test_anonymous_id_limit_five_weekly() -> None:
    graph = make_graph()
    for n in range(5):
        r = resolve(graph, "user_id:u1", f"anonymous_id:a{n}", at=n * HOUR_US)
        assert r.demoted == ()
    # The 6th new value within a week is demoted; the event still lands on the profile.
    r = resolve(graph, "user_id:u1", "anonymous_id:a5", at=7 * DAY_US - 1)
    assert r.profile_id == "p1"
    assert r.demoted == (Demotion(i("anonymous_id:a5"), "limit:anonymous_id"),)
    assert graph.lookup(i("anonymous_id:a5")) is None
    # One week after a0 was last seen, a0 no longer counts and a5 is accepted.
    r = resolve(graph, "user_id:u1", "anonymous_id:a5", at=7 * DAY_US)
    assert r.demoted == () and r.added == (Added(i("anonymous_id:a5"), "co-occurrence"),)


def test_email_limit_five_annually() -> None:
    graph = make_graph()
    for n in range(5):
        resolve(graph, "user_id:u1", f"email:e{n}@x.io", at=n)
    assert resolve(graph, "user_id:u1", "email:e5@x.io", at=364 * DAY_US).demoted == (
        Demotion(i("email:e5@x.io"), "limit:email"),
    )
    assert resolve(graph, "user_id:u1", "email:e5@x.io", at=365 * DAY_US).demoted == ()


@pytest.mark.parametrize("window", ["daily", "weekly", "monthly", "annually"])
def test_limit_windows(window: str) -> None:
    graph = make_graph(IdentityConfig(limits={"member": Limit(2, window)}))
    length = WINDOW_DAYS[window] * DAY_US
    resolve(graph, "user_id:u1", "member:m1", "member:m2", at=0)
    inside = resolve(graph, "user_id:u1", "member:m3", at=length - 1)
    assert inside.demoted == (Demotion(i("member:m3"), "limit:member"),)
    after = resolve(graph, "user_id:u1", "member:m3", at=length)
    assert after.added == (Added(i("member:m3"), "co-occurrence"),)


def test_ever_window_and_the_default_limit_never_expire() -> None:
    graph = make_graph()  # ga_client_id has no explicit limit: default 5 ever
    for n in range(5):
        resolve(graph, "user_id:u1", f"ga_client_id:g{n}", at=0)
    r = resolve(graph, "user_id:u1", "ga_client_id:g5", at=50 * 365 * DAY_US)
    assert r.demoted == (Demotion(i("ga_client_id:g5"), "limit:ga_client_id"),)


def test_a_value_seen_again_keeps_counting() -> None:
    graph = make_graph(IdentityConfig(limits={"member": Limit(1, "daily")}))
    resolve(graph, "user_id:u1", "member:m1", at=0)
    resolve(graph, "member:m1", at=DAY_US)  # seen again: its window restarts
    r = resolve(graph, "user_id:u1", "member:m2", at=DAY_US + 1)
    assert r.demoted == (Demotion(i("member:m2"), "limit:member"),)


def test_a_value_already_on_the_profile_never_counts_as_new() -> None:
    graph = make_graph()
    # A profile already over its user_id limit (old data, or the limit was lowered).
    graph.load_profile(node("p", "user_id:u1", "user_id:u2"))
    assert resolve(graph, "user_id:u1", "user_id:u2").demoted == ()
    r = resolve(graph, "user_id:u1", "email:j@x.io")
    assert r.demoted == () and r.added == (Added(i("email:j@x.io"), "co-occurrence"),)
    r = resolve(graph, "user_id:u1", "user_id:u3")
    assert r.profile_id == "p" and r.demoted == (Demotion(i("user_id:u3"), "limit:user_id"),)


def test_new_profile_respects_limits_among_the_events_own_identifiers() -> None:
    graph = make_graph()
    r = resolve(graph, "user_id:u1", "user_id:u2", "email:j@x.io")
    # Segment's rule literally: the lowest-priority identifier goes first, even though the
    # conflict is between the two user ids; then the lower of those.
    assert r.created and members(graph, r.profile_id) == {"user_id:u1"}
    assert r.demoted == (
        Demotion(i("email:j@x.io"), "limit:user_id"),
        Demotion(i("user_id:u2"), "limit:user_id"),
    )


def test_merge_that_would_break_a_limit_does_not_happen() -> None:
    graph = make_graph()
    resolve(graph, "user_id:u1", "anonymous_id:a1", at=1)
    resolve(graph, "user_id:u2", "email:j@x.io", at=2)
    # Two identified people: linking them would give one profile two user ids.
    r = resolve(graph, "email:j@x.io", "anonymous_id:a1", at=3)
    assert r.profile_id == "p2"
    assert r.merged == ()
    assert r.demoted == (Demotion(i("anonymous_id:a1"), "limit:user_id"),)
    assert r.seen == (i("email:j@x.io"),)


def test_merge_counts_only_values_inside_the_window() -> None:
    def setup() -> IdentityGraph:
        graph = make_graph()
        graph.load_profile(node("p1", *[f"anonymous_id:x{n}" for n in range(4)], created=0))
        graph.load_profile(node("p2", *[f"anonymous_id:y{n}" for n in range(3)], created=1))
        return graph

    # Within the week: 7 recent anonymous ids on one profile would exceed 5.
    graph = setup()
    r = resolve(graph, "anonymous_id:x0", "anonymous_id:y0", at=DAY_US)
    assert r.merged == () and r.demoted == (Demotion(i("anonymous_id:y0"), "limit:anonymous_id"),)
    # Eight days later none of them counts any more, so the merge happens.
    graph = setup()
    r = resolve(graph, "anonymous_id:x0", "anonymous_id:y0", at=8 * DAY_US)
    assert [m.from_profile_id for m in r.merged] == ["p2"] and r.demoted == ()


# -- priority ----------------------------------------------------------------------------------------


def test_priority_demotion_worked_example() -> None:
    # segment-compat.md §2.2. ("abc123" is itself one of our default blocked placeholders,
    # so this test blocks nothing to keep Segment's exact example.)
    graph = make_graph(IdentityConfig(blocked_exact=frozenset()))
    resolve(graph, "user_id:abc123", "email:jane@example.com", at=1)
    r = resolve(graph, "user_id:abc456", "email:jane@example.com", at=2)

    assert r.created and r.profile_id == "p2"
    assert members(graph, "p2") == {"user_id:abc456"}
    assert r.demoted == (Demotion(i("email:jane@example.com"), "limit:user_id"),)
    assert members(graph, "p1") == {"user_id:abc123", "email:jane@example.com"}


def test_custom_priority_changes_what_is_demoted() -> None:
    config = IdentityConfig(blocked_exact=frozenset(), priority=("email", "user_id"))
    graph = make_graph(config)
    resolve(graph, "user_id:abc123", "email:jane@example.com", at=1)
    r = resolve(graph, "user_id:abc456", "email:jane@example.com", at=2)

    # email outranks user_id now, so the new user id is the one left out.
    assert r.profile_id == "p1" and not r.created
    assert r.demoted == (Demotion(i("user_id:abc456"), "limit:user_id"),)
    assert graph.lookup(i("user_id:abc456")) is None


def test_demoted_identifier_that_is_on_the_final_profile_counts_as_seen() -> None:
    graph = make_graph()
    emails = [f"email:e{n}@x.io" for n in range(5)]
    graph.load_profile(node("p1", "user_id:u1", "anonymous_id:a1", *emails))
    # email e5 breaks the email limit; a1 (lower priority) is tried first, then e5 goes.
    r = resolve(graph, "user_id:u1", "email:e5@x.io", "anonymous_id:a1", at=10)
    assert r.profile_id == "p1"
    assert r.demoted == (Demotion(i("email:e5@x.io"), "limit:email"),)
    assert set(r.seen) == {i("user_id:u1"), i("anonymous_id:a1")}
    assert graph.profile("p1").identifiers[i("anonymous_id:a1")].last_seen_us == 10


# -- caps --------------------------------------------------------------------------------------------


def test_max_merges_stops_merging_but_the_event_still_resolves() -> None:
    graph = make_graph(IdentityConfig(max_merges=1))
    resolve(graph, "user_id:u1", at=1)
    resolve(graph, "anonymous_id:a1", at=2)
    assert resolve(graph, "user_id:u1", "anonymous_id:a1", at=3).merged  # 1 merge: allowed
    resolve(graph, "anonymous_id:a2", at=4)  # p3

    r = resolve(graph, "anonymous_id:a2", "user_id:u1", "email:j@x.io", at=5)
    # A second merge would exceed the cap: the event goes to the profile of its highest-priority
    # identifier, the other profile is left alone, new identifiers are still added.
    assert r.profile_id == "p1" and r.merged == ()
    assert r.demoted == (Demotion(i("anonymous_id:a2"), "max_merges"),)
    assert r.added == (Added(i("email:j@x.io"), "co-occurrence"),)
    assert graph.lookup(i("anonymous_id:a2")) == "p3"


def test_max_merges_zero_never_merges() -> None:
    graph = make_graph(IdentityConfig(max_merges=0))
    resolve(graph, "anonymous_id:a1", at=1)
    resolve(graph, "email:j@x.io", at=2)
    r = resolve(graph, "anonymous_id:a1", "email:j@x.io", at=3)
    assert r.profile_id == "p2"  # email outranks anonymous_id
    assert r.demoted == (Demotion(i("anonymous_id:a1"), "max_merges"),)
    assert len(graph) == 2


def test_profile_at_max_identifiers_gets_no_new_identifiers() -> None:
    graph = make_graph(IdentityConfig(max_identifiers=3))
    resolve(graph, "user_id:u1", "anonymous_id:a1", "anonymous_id:a2", at=1)
    r = resolve(graph, "user_id:u1", "anonymous_id:a3", at=2)
    assert r.profile_id == "p1" and r.added == ()
    assert r.demoted == (Demotion(i("anonymous_id:a3"), "max_identifiers"),)
    assert r.seen == (i("user_id:u1"),)


def test_new_profile_is_capped_at_max_identifiers_in_priority_order() -> None:
    graph = make_graph(IdentityConfig(max_identifiers=3))
    r = resolve(graph, "anonymous_id:a8", "anonymous_id:a7", "email:j@x.io", "user_id:u9")
    assert [str(a.identifier) for a in r.added] == ["user_id:u9", "email:j@x.io", "anonymous_id:a7"]
    assert r.demoted == (Demotion(i("anonymous_id:a8"), "max_identifiers"),)


def test_merge_that_would_exceed_max_identifiers_does_not_happen() -> None:
    graph = make_graph(IdentityConfig(max_identifiers=3))
    resolve(graph, "user_id:u1", "anonymous_id:a1", at=1)
    resolve(graph, "email:j@x.io", "anonymous_id:a2", at=2)
    r = resolve(graph, "anonymous_id:a1", "anonymous_id:a2", at=3)
    assert r.profile_id == "p1" and r.merged == ()
    assert r.demoted == (Demotion(i("anonymous_id:a2"), "max_identifiers"),)


# -- alias -------------------------------------------------------------------------------------------


def test_alias_previous_id_known_as_anonymous_id() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=1)
    r = resolve(graph, "user_id:u1", "previous_id:a1", at=2)
    assert r.profile_id == "p1"
    assert r.added == (Added(i("user_id:u1"), "alias"),)
    assert r.seen == (i("anonymous_id:a1"),)


def test_alias_merges_an_anonymous_profile_into_an_identified_one_with_rule_alias() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:a1", at=1)
    resolve(graph, "user_id:u1", at=2)
    r = resolve(graph, "user_id:u1", "previous_id:a1", at=3)
    assert r.merged == (Merge("p2", "p1", (i("user_id:u1"), i("anonymous_id:a1")), "alias"),)


def test_alias_previous_id_unknown_becomes_an_anonymous_id() -> None:
    graph = make_graph()
    r = resolve(graph, "user_id:u1", "previous_id:visitor-9")
    assert r.created
    assert r.added == (
        Added(i("user_id:u1"), "alias"),
        Added(i("anonymous_id:visitor-9"), "alias"),
    )


def test_alias_of_an_old_user_id_respects_the_user_id_limit() -> None:
    graph = make_graph()
    resolve(graph, "user_id:a-old", at=1)
    r = resolve(graph, "user_id:z-new", "previous_id:a-old", at=2)
    # user_id allows one value, so the two cannot be linked; the aliased old id is the one left
    # out even though it sorts first: the message's own userId is the current one.
    assert r.created and members(graph, r.profile_id) == {"user_id:z-new"}
    assert r.demoted == (Demotion(i("user_id:a-old"), "limit:user_id"),)


def test_alias_of_an_old_user_id_links_when_the_limit_allows() -> None:
    graph = make_graph(IdentityConfig(limits={"user_id": Limit(2)}))
    resolve(graph, "user_id:a-old", at=1)
    r = resolve(graph, "user_id:z-new", "previous_id:a-old", at=2)
    assert r.profile_id == "p1"
    assert r.added == (Added(i("user_id:z-new"), "alias"),)
    assert r.seen == (i("user_id:a-old"),)


def test_alias_prefers_user_id_over_anonymous_id_when_both_hold_the_value() -> None:
    graph = make_graph()
    resolve(graph, "anonymous_id:x", at=1)
    resolve(graph, "user_id:x", at=2)
    r = resolve(graph, "email:j@x.io", "previous_id:x", at=3)
    assert r.profile_id == "p2" and r.seen == (i("user_id:x"),)


def test_blocked_previous_id_is_recorded() -> None:
    r = resolve(make_graph(), "user_id:u1", "previous_id:null")
    assert r.blocked == (i("previous_id:null"),)
    assert r.added == (Added(i("user_id:u1"), "co-occurrence"),)


# -- messages, explanation, state ------------------------------------------------------------------


def test_resolve_message_extracts_for_the_graphs_collection() -> None:
    users = make_graph()
    message = {
        "type": "group",
        "messageId": "m1",
        "userId": "u1",
        "groupId": "g1",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    r = users.resolve_message(message, at_us=5, source_id="s1")
    assert members(users, r.profile_id) == {"user_id:u1"}
    assert users.profile(r.profile_id).identifiers[i("user_id:u1")].message_id == "m1"

    accounts = make_graph(IdentityConfig.accounts_default(), collection="accounts")
    r = accounts.resolve_message(message, at_us=5)
    assert members(accounts, r.profile_id) == {"group_id:g1"}
    assert accounts.profile(r.profile_id).collection == "accounts"

    with pytest.raises(IdentityError):
        accounts.resolve_message({"type": "track", "messageId": "m2", "userId": "u1"}, at_us=6)


def test_to_json_explains_the_resolution() -> None:
    graph = make_graph()
    resolve(graph, "user_id:u1", "anonymous_id:a1", at=1)
    resolve(graph, "email:j@x.io", at=2)
    r = resolve(graph, "user_id:u2", "anonymous_id:a1", "user_id:null", at=3)
    r = resolve(graph, "email:j@x.io", "anonymous_id:a1", "phone:+12015550123", at=4)
    explained = r.to_json()
    assert json.loads(json.dumps(explained)) == explained
    assert explained == {
        "profile_id": "p1",
        "created": False,
        "added": [{"id": "phone:+12015550123", "rule": "co-occurrence"}],
        "merged": [
            {
                "from": "p2",
                "into": "p1",
                "identifiers": ["email:j@x.io", "anonymous_id:a1"],
                "rule": "co-occurrence",
            }
        ],
        "demoted": [],
        "blocked": [],
        "seen": ["email:j@x.io", "anonymous_id:a1"],
    }


def test_load_profile_makes_existing_state_resolvable() -> None:
    graph = make_graph()
    graph.load_profile(node("use_1", "user_id:u1", "email:j@x.io", created=1, merges=2))
    assert graph.lookup(i("email:j@x.io")) == "use_1"
    assert graph.lookup(i("email:other@x.io")) is None
    r = resolve(graph, "email:j@x.io", "anonymous_id:a1", at=5)
    assert r.profile_id == "use_1" and not r.created
    assert [p.id for p in graph.profiles()] == ["use_1"]


def test_load_profile_rejects_inconsistent_state() -> None:
    graph = make_graph()
    graph.load_profile(node("p1", "user_id:u1"))
    with pytest.raises(ValueError, match="already loaded"):
        graph.load_profile(node("p1", "user_id:u9"))
    with pytest.raises(ValueError, match="user_id:u1 is on both p1 and p2"):
        graph.load_profile(node("p2", "email:j@x.io", "user_id:u1"))
    assert graph.lookup(i("email:j@x.io")) is None  # nothing half-loaded
    accounts_node = ProfileNode("acc_1", "accounts", 0)
    with pytest.raises(ValueError, match="collection"):
        graph.load_profile(accounts_node)


def test_new_profile_id_must_be_unique() -> None:
    graph = IdentityGraph(IdentityConfig(), lambda: "same")
    resolve(graph, "user_id:u1")
    with pytest.raises(ValueError, match="already in use"):
        resolve(graph, "user_id:u2")


def test_unknown_collection_is_rejected() -> None:
    with pytest.raises(ValueError, match="collection"):
        make_graph(collection="devices")
