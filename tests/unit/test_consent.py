"""Consent, the pure core: category ids, Segment's shape on events, the traits it becomes, the
decision for a destination — and the collector and the batch that use them (no database)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.activate.destinations.base import DestinationSettings
from opencdp.collect.normalize import REASONS
from opencdp.identity import IdentityConfig, IdentityGraph
from opencdp.privacy.consent import (
    CONSENT_EVENT,
    CONSENT_PREFERENCES_MISSING,
    INVALID_CONSENT_PREFERENCES,
    allowed,
    category_of,
    category_problem,
    check_categories,
    consent_traits,
    preferences_problem,
    recorded,
    without_consent,
)
from opencdp.query.parser import parse
from opencdp.resolve.batch import BatchState, Event
from tests.unit.test_normalize import accepted, rejected, track


def prefs(**categories: Any) -> dict[str, Any]:
    return {"context": {"consent": {"categoryPreferences": categories}}}


@pytest.mark.parametrize(
    ("category", "ok"),
    [
        ("marketing", True),
        ("C0004", True),
        ("Advertising", True),
        ("a" * 34, True),
        ("a" * 35, False),  # under 35 characters
        ("1st_party", False),  # not starting with a digit
        ("", False),
        (" ads", False),
        ("ads\n", False),
        (7, False),
        (None, False),
    ],
)
def test_category_ids(category: Any, ok: bool) -> None:
    assert (category_problem(category) is None) is ok


def test_category_ids_are_case_sensitive_and_deduplicated() -> None:
    assert check_categories(["ads", "Ads", "ads"]) == ["Ads", "ads"]
    with pytest.raises(ValueError, match="starts with a digit"):
        check_categories(["ads", "9"])


def test_the_consent_event_needs_its_preferences() -> None:
    bare = {"type": "track", "event": CONSENT_EVENT}
    assert preferences_problem(bare)[0] == CONSENT_PREFERENCES_MISSING  # type: ignore[index]
    assert preferences_problem({**bare, "context": {"consent": {}}}) == (
        CONSENT_PREFERENCES_MISSING,
        preferences_problem(bare)[1],  # type: ignore[index]
    )
    assert preferences_problem({**bare, **prefs(ads=True)}) is None
    assert preferences_problem({**bare, **prefs()}) is None  # {}: sets nothing, accepted
    # Another event without consent is fine; consent on it is checked the same way
    assert preferences_problem({"type": "track", "event": "Order Completed"}) is None
    assert preferences_problem({"type": "identify", **prefs(ads=True)}) is None


@pytest.mark.parametrize(
    ("consent", "says"),
    [
        ("yes", "context.consent must be a JSON object"),
        ({"categoryPreferences": ["ads"]}, "an object of category id"),
        ({"categoryPreferences": {"ads": "true"}}, "ads must be true or false, not a string"),
        ({"categoryPreferences": {"ads": None}}, "not null"),
        ({"categoryPreferences": {"ads": 1}}, "not a number"),
        ({"categoryPreferences": {"2fa": True}}, "starts with a digit"),
        ({"categoryPreferences": {"x" * 40: True}}, "not under 35 characters"),
    ],
)
def test_invalid_preferences_are_named(consent: Any, says: str) -> None:
    found = preferences_problem({"type": "page", "context": {"consent": consent}})
    assert found is not None
    reason, detail = found
    assert reason == INVALID_CONSENT_PREFERENCES and says in detail


def test_the_collector_quarantines_with_typed_reasons() -> None:
    assert {CONSENT_PREFERENCES_MISSING, INVALID_CONSENT_PREFERENCES} <= set(REASONS)
    missing = rejected(track(event=CONSENT_EVENT))
    assert missing.reason == CONSENT_PREFERENCES_MISSING
    assert "categoryPreferences" in missing.detail
    bad = rejected(track(**prefs(ads="yes")))
    assert bad.reason == INVALID_CONSENT_PREFERENCES
    good = accepted(track(event=CONSENT_EVENT, **prefs(ads=True)))
    assert good.payload["context"]["consent"] == {"categoryPreferences": {"ads": True}}


def test_traits_from_preferences_and_without_consent_keys() -> None:
    assert consent_traits(prefs(ads=True, marketing=False)) == {
        "consent.ads": True,
        "consent.marketing": False,
    }
    assert consent_traits({"context": {}}) == {}
    assert consent_traits({"context": {"consent": "x"}}) == {}
    assert without_consent({"name": "A", "consent.ads": True, "consentful": 1}) == {
        "name": "A",
        "consentful": 1,
    }
    assert recorded({"consent.ads": True, "name": "A"}) == {"ads": True}
    assert category_of("consent.ads") == "ads"
    assert category_of("consent.1x") is None and category_of("ads") is None


@pytest.mark.parametrize(
    ("categories", "preferences", "missing", "expected"),
    [
        ([], {}, False, True),  # a destination without categories gets everything
        (["ads"], {}, False, False),  # opt-in: no record, no consent
        (["ads"], {}, True, True),  # opt-out: no record counts as consent
        (["ads"], {"ads": False}, True, False),  # a withdrawal holds under opt-out
        (["ads", "email"], {"ads": True}, False, False),  # every category is needed
        (["ads", "email"], {"ads": True, "email": True}, False, True),
        (["ads"], {"ads": "conflict"}, True, False),  # only true is consent
    ],
)
def test_allowed(
    categories: list[str], preferences: dict[str, Any], missing: bool, expected: bool
) -> None:
    assert allowed(categories, preferences, missing_counts_as=missing) is expected


def test_destination_settings_declare_categories() -> None:
    settings_ = DestinationSettings.model_validate({"consent_categories": ["ads", "ads", "C1"]})
    assert settings_.consent_categories == ["C1", "ads"]
    for bad in (["1x"], [""], ["y" * 35]):
        with pytest.raises(ValueError, match="consent_categories"):
            DestinationSettings.model_validate({"consent_categories": bad})
    with pytest.raises(ValueError, match="purposes"):
        DestinationSettings.model_validate({"purposes": ["9"]})


def test_trait_consent_dot_category_reads_the_flat_trait() -> None:
    definition = parse("trait('consent.marketing') = true", "audience")
    assert definition.traits == frozenset({"consent.marketing"})
    nested = parse("trait('address.city') = 'Berlin'", "audience")
    assert nested.traits == frozenset({"address"})


# -- the batch ------------------------------------------------------------------------------------


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


def as_event(message: dict[str, Any], n: int, at_us: int) -> Event:
    return Event(None, "w", "src", f"m{n}", at_us, at_us, message)


def consent_of(state: BatchState) -> dict[str, Any]:
    [node] = state.live_profiles()
    return {
        k: v.value for k, v in state.traits.get(node.id, {}).items() if k.startswith("consent.")
    }


def test_only_preferences_set_consent_in_the_batch() -> None:
    state = fresh_state()
    state.apply(
        as_event(
            {
                "type": "identify",
                "userId": "u",
                "traits": {"consent.ads": True, "name": "U"},
                "context": {"traits": {"consent.email": True}},
            },
            1,
            10,
        )
    )
    state.apply(as_event({"type": "track", "event": "X", "userId": "u", **prefs(ads=False)}, 2, 20))
    assert consent_of(state) == {"consent.ads": False}
    [row] = [r for r in state.trait_rows() if r["key"] == "consent.ads"]
    assert (row["message_id"], row["source_id"], row["event_us"]) == ("m2", "src", 20)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # which of two devices sends
            st.dictionaries(st.sampled_from(["ads", "email", "sms"]), st.booleans(), max_size=3),
        ),
        min_size=1,
        max_size=8,
    ),
    st.randoms(use_true_random=False),
)
def test_consent_is_last_write_by_event_time_in_any_order(
    changes: list[tuple[str, dict[str, bool]]], rnd: Any
) -> None:
    # Given consent changes from two anonymous devices at increasing event times, then a login
    # linking both devices; applied in the order sent and in a shuffled order
    events = [
        as_event({"type": "track", "event": "E", "anonymousId": dev, **prefs(**p)}, i, 100 + i)
        for i, (dev, p) in enumerate(changes)
    ]
    link = as_event(
        {"type": "alias", "userId": "u", "previousId": "a"}, len(changes), 100 + len(changes)
    )
    link2 = as_event(
        {"type": "alias", "userId": "u", "previousId": "b"},
        len(changes) + 1,
        101 + len(changes),
    )
    shuffled = [*events, link, link2]
    rnd.shuffle(shuffled)
    in_order, any_order = fresh_state(), fresh_state()
    for ev in [*events, link, link2]:
        in_order.apply(ev)
    for ev in shuffled:
        any_order.apply(ev)
    # Then the merged profile has, per category, the value of the latest change naming it
    expected: dict[str, bool] = {}
    for _dev, p in changes:
        expected.update({f"consent.{k}": v for k, v in p.items()})
    assert consent_of(in_order) == expected
    assert consent_of(any_order) == expected
