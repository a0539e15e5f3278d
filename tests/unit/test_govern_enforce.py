"""Tracking-plan enforcement of single messages (segment-compat.md §3.1, §3.2).

One test (or parametrized case) per enforcement setting in each of its values, one per violation
type, versioning, the ``context.protocols`` record, and hypothesis properties over arbitrary
JSON-like messages.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.govern import (
    REASONS,
    SCHEMA_VIOLATION,
    UNPLANNED_EVENT,
    CompiledPlan,
    EnforcementSettings,
    Verdict,
    Violation,
    enforce,
    parse_plan,
)

PLAN_ID = "tp_shop"
ORDER = 'TRACK "Order Completed" v1'


def whole_event(section: str, props: dict[str, Any], required: list[str] | None = None) -> Any:
    """A Segment-shaped whole-event schema with rules for ``section`` (properties or traits)."""
    inner: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        inner["required"] = required
    return {"type": "object", "properties": {"context": {}, section: inner}}


def track_rule(
    key: str, props: dict[str, Any], required: list[str] | None = None, version: int = 1
) -> Any:
    return {
        "type": "TRACK",
        "key": key,
        "version": version,
        "jsonSchema": whole_event("properties", props, required),
    }


def traits_rule(typ: str, props: dict[str, Any], required: list[str] | None = None) -> Any:
    return {"type": typ, "version": 1, "jsonSchema": whole_event("traits", props, required)}


def compiled(*rules: Any, revision: int = 0) -> CompiledPlan:
    plan = parse_plan({"id": PLAN_ID, "name": "Shop", "rules": list(rules)})
    if revision:
        plan = replace(plan, revision=revision)
    return CompiledPlan(plan)


def conf(**values: Any) -> EnforcementSettings:
    """Settings with dotted Segment names changed, e.g. ``conf(track__allowUnplannedEvents=False)``."""
    out = EnforcementSettings()
    for name, value in values.items():
        out = out.with_value(name.replace("__", "."), value)
    return out


def run(plan: CompiledPlan, setting: EnforcementSettings, message: dict[str, Any]) -> Verdict:
    """``enforce``, checking on every call that the input message is left as it was."""
    before = copy.deepcopy(message)
    verdict = enforce(plan, setting, message)
    assert message == before, "enforce mutated its input"
    if verdict.blocked is not None:
        assert verdict.blocked in REASONS
        assert verdict.detail
    return verdict


def protocols(verdict: Verdict) -> dict[str, Any]:
    return verdict.message["context"]["protocols"]


def track(event: str = "Order Completed", **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "u1", "properties": props}


ORDER_RULE = track_rule(
    "Order Completed",
    {
        "revenue": {"type": "number"},
        "currency": {"type": "string", "pattern": "^(USD|EUR)$"},
        "coupon": {"type": "string"},
    },
    ["revenue"],
)
SHOP = compiled(ORDER_RULE)


# --- a plan that allows everything -------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        track("Anything", x=1),
        {"type": "identify", "userId": "u", "traits": {"email": 5}},
        {"type": "group", "groupId": "g", "traits": {}},
        {"type": "page", "name": "Home", "properties": {"a": [1]}},
        {"type": "screen", "properties": None},
        {"type": "alias", "previousId": "a", "userId": "u"},
        {"type": "track", "event": "E", "context": {"protocols": {"event_version": 9}}},
        {},
    ],
)
def test_no_rules_and_default_settings_pass_every_message_as_the_same_object(
    message: dict[str, Any],
) -> None:
    verdict = run(compiled(), EnforcementSettings(), message)
    assert verdict.message is message
    assert verdict.blocked is None
    assert verdict.detail == ""
    assert (verdict.violations, verdict.omitted, verdict.omitted_on_violation) == ([], [], [])


def test_a_valid_message_passes_unchanged_as_the_same_object() -> None:
    message = track(revenue=9.5, currency="EUR")
    strict = conf(
        track__allowUnplannedEvents=False,
        track__allowUnplannedEventProperties=False,
        track__allowEventOnViolations=False,
        track__allowPropertiesOnViolations=False,
        track__commonEventOnViolations="BLOCK",
    )
    verdict = run(SHOP, strict, message)
    assert verdict.message is message
    assert verdict.blocked is None


def test_compiled_plan_knows_its_track_events() -> None:
    plan = compiled(
        ORDER_RULE,
        track_rule("Signed Up", {}),
        {"type": "PAGE", "key": "Home", "jsonSchema": {}},
        {"type": "COMMON", "jsonSchema": {}},
    )
    assert plan.events == frozenset({"Order Completed", "Signed Up"})


# --- track.allowUnplannedEvents ----------------------------------------------------------------


def test_unplanned_track_event_passes_when_allowed() -> None:
    message = track("Order Cancelled", revenue="x")
    verdict = run(SHOP, conf(track__allowUnplannedEvents=True), message)
    assert verdict.blocked is None
    assert verdict.message is message


def test_unplanned_track_event_is_blocked_when_not_allowed() -> None:
    verdict = run(SHOP, conf(track__allowUnplannedEvents=False), track("Order Cancelled"))
    assert verdict.blocked == UNPLANNED_EVENT
    assert verdict.detail == "track event 'Order Cancelled' is not in tracking plan 'tp_shop'"
    assert verdict.violations == []


def test_event_names_match_exactly() -> None:
    strict = conf(track__allowUnplannedEvents=False)
    for name in ("order completed", "Order Completed ", "Order_Completed", "OrderCompleted"):
        assert run(SHOP, strict, track(name, revenue=1)).blocked == UNPLANNED_EVENT
    assert run(SHOP, strict, track("Order Completed", revenue=1)).blocked is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "page", "name": "Nowhere", "properties": {}},
        {"type": "screen", "name": "Nowhere", "properties": {}},
        {"type": "identify", "userId": "u", "traits": {"a": 1}},
        {"type": "group", "groupId": "g", "traits": {"a": 1}},
        {"type": "alias", "previousId": "a", "userId": "u"},
    ],
)
def test_only_track_events_are_blocked_as_unplanned(message: dict[str, Any]) -> None:
    verdict = run(SHOP, conf(track__allowUnplannedEvents=False), message)
    assert verdict.blocked is None
    assert verdict.message is message


# --- track.allowUnplannedEventProperties -------------------------------------------------------


def test_unplanned_properties_are_kept_when_allowed() -> None:
    message = track(revenue=1, color="red")
    verdict = run(SHOP, conf(track__allowUnplannedEventProperties=True), message)
    assert verdict.message is message
    assert verdict.omitted == []


def test_unplanned_properties_are_omitted_when_not_allowed() -> None:
    message = track(revenue=1, color="red", size={"w": 1}, coupon="X")
    verdict = run(SHOP, conf(track__allowUnplannedEventProperties=False), message)
    assert verdict.blocked is None
    assert verdict.message["properties"] == {"revenue": 1, "coupon": "X"}
    assert verdict.omitted == ["color", "size"]
    assert verdict.violations == []
    assert protocols(verdict) == {
        "omitted": ["color", "size"],
        "trackingPlanId": PLAN_ID,
        "trackingPlanRevision": 0,
    }


def test_unplanned_properties_of_an_unplanned_event_are_not_omitted() -> None:
    message = track("Order Cancelled", color="red")
    verdict = run(SHOP, conf(track__allowUnplannedEventProperties=False), message)
    assert verdict.message is message


# --- track.allowEventOnViolations --------------------------------------------------------------


def test_event_with_violations_passes_when_allowed() -> None:
    verdict = run(SHOP, conf(track__allowEventOnViolations=True), track(coupon="X"))
    assert verdict.blocked is None
    assert verdict.message["properties"] == {"coupon": "X"}
    assert [v.to_dict() for v in verdict.violations] == [
        {
            "type": "Required",
            "field": "properties.revenue",
            "description": "properties.revenue is required",
            "rule": ORDER,
        }
    ]
    assert protocols(verdict)["violations"] == [v.to_dict() for v in verdict.violations]


def test_event_with_violations_is_blocked_when_not_allowed() -> None:
    verdict = run(SHOP, conf(track__allowEventOnViolations=False), track(coupon="X"))
    assert verdict.blocked == SCHEMA_VIOLATION
    assert verdict.detail == f"properties.revenue is required ({ORDER})"
    assert len(verdict.violations) == 1


@pytest.mark.parametrize(
    ("props", "suffix"),
    [
        ({"revenue": "1", "coupon": 5}, " and 1 more violation"),
        ({"revenue": "1", "coupon": 5, "currency": "GBP"}, " and 2 more violations"),
    ],
)
def test_blocked_detail_counts_the_other_violations(props: dict[str, Any], suffix: str) -> None:
    verdict = run(SHOP, conf(track__allowEventOnViolations=False), track(**props))
    assert verdict.blocked == SCHEMA_VIOLATION
    first = verdict.violations[0]
    assert verdict.detail == f"{first.description} ({ORDER}){suffix}"


def test_blocking_wins_over_omitting_failing_properties() -> None:
    setting = conf(track__allowEventOnViolations=False, track__allowPropertiesOnViolations=False)
    verdict = run(SHOP, setting, track(revenue="1"))
    assert verdict.blocked == SCHEMA_VIOLATION
    assert verdict.omitted_on_violation == []


# --- track.allowPropertiesOnViolations ---------------------------------------------------------


def test_failing_properties_are_kept_when_allowed() -> None:
    message = track(revenue="1", currency="GBP", coupon="X")
    verdict = run(SHOP, conf(track__allowPropertiesOnViolations=True), message)
    assert verdict.message["properties"] == message["properties"]
    assert verdict.omitted_on_violation == []
    assert "omitted_on_violation" not in protocols(verdict)
    assert {v.field for v in verdict.violations} == {"properties.revenue", "properties.currency"}


def test_failing_properties_are_omitted_when_not_allowed() -> None:
    message = track(revenue="1", currency="GBP", coupon="X")
    verdict = run(SHOP, conf(track__allowPropertiesOnViolations=False), message)
    assert verdict.blocked is None
    assert verdict.message["properties"] == {"coupon": "X"}
    assert sorted(verdict.omitted_on_violation) == ["currency", "revenue"]
    assert sorted(protocols(verdict)["omitted_on_violation"]) == ["currency", "revenue"]
    assert "omitted" not in protocols(verdict)


def test_a_missing_required_property_omits_nothing() -> None:
    verdict = run(SHOP, conf(track__allowPropertiesOnViolations=False), track(coupon="X"))
    assert verdict.message["properties"] == {"coupon": "X"}
    assert verdict.omitted_on_violation == []
    assert [v.type for v in verdict.violations] == ["Required"]


def test_a_failing_array_item_omits_the_whole_top_level_property() -> None:
    plan = compiled(
        track_rule(
            "Cart Viewed",
            {
                "products": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"price": {"type": "number"}}},
                }
            },
        )
    )
    message = track("Cart Viewed", products=[{"price": 1}, {"price": "2"}], other=1)
    verdict = run(plan, conf(track__allowPropertiesOnViolations=False), message)
    assert verdict.message["properties"] == {"other": 1}
    assert verdict.omitted_on_violation == ["products"]


def test_a_failing_property_with_a_dot_in_its_name_is_omitted() -> None:
    plan = compiled(track_rule("Paid", {"order.total": {"type": "number"}}))
    message = track("Paid", **{"order.total": "12", "ok": 1})
    verdict = run(plan, conf(track__allowPropertiesOnViolations=False), message)
    assert verdict.violations[0].field == "properties.order.total"
    assert verdict.message["properties"] == {"ok": 1}
    assert verdict.omitted_on_violation == ["order.total"]


def test_unplanned_omission_happens_before_the_schema_check() -> None:
    # Given a rule that forbids additional properties
    plan = compiled(
        {
            "type": "TRACK",
            "key": "Closed",
            "jsonSchema": {
                "properties": {
                    "properties": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}},
                        "additionalProperties": False,
                    }
                }
            },
        }
    )
    # When unplanned properties are omitted
    verdict = run(plan, conf(track__allowUnplannedEventProperties=False), track("Closed", a=1, b=2))
    # Then the check sees what is left and finds nothing wrong
    assert verdict.violations == []
    assert verdict.omitted == ["b"]
    assert verdict.message["properties"] == {"a": 1}


# --- track.commonEventOnViolations -------------------------------------------------------------


COMMON_RULE = {
    "type": "COMMON",
    "version": 1,
    "jsonSchema": {
        "properties": {
            "userId": {"type": "string"},
            "properties": {"properties": {"plan": {"enum": ["free", "pro"]}}},
            "traits": {"properties": {"plan": {"enum": ["free", "pro"]}}},
        },
        "required": ["userId"],
    },
}
WITH_COMMON = compiled(ORDER_RULE, COMMON_RULE)


def test_common_violation_is_recorded_and_allowed() -> None:
    message = track(revenue=1, plan="gold")
    verdict = run(WITH_COMMON, conf(track__commonEventOnViolations="ALLOW"), message)
    assert verdict.blocked is None
    assert verdict.message["properties"] == {"revenue": 1, "plan": "gold"}
    assert [(v.type, v.field, v.rule) for v in verdict.violations] == [
        ("Invalid Enum", "properties.plan", "COMMON v1")
    ]


def test_common_violation_blocks_when_block() -> None:
    message = {"type": "track", "event": "Order Completed", "properties": {"revenue": 1}}
    verdict = run(WITH_COMMON, conf(track__commonEventOnViolations="BLOCK"), message)
    assert verdict.blocked == SCHEMA_VIOLATION
    assert verdict.detail == "userId is required (COMMON v1)"


def test_common_violation_omits_failing_properties_when_omit_properties() -> None:
    message = track(revenue=1, plan="gold", coupon="X")
    verdict = run(WITH_COMMON, conf(track__commonEventOnViolations="OMIT_PROPERTIES"), message)
    assert verdict.blocked is None
    assert verdict.message["properties"] == {"revenue": 1, "coupon": "X"}
    assert verdict.omitted_on_violation == ["plan"]
    assert protocols(verdict)["omitted_on_violation"] == ["plan"]


def test_common_applies_to_unplanned_events_too() -> None:
    message = track("Order Cancelled", plan="gold")
    verdict = run(WITH_COMMON, conf(track__commonEventOnViolations="BLOCK"), message)
    assert verdict.blocked == SCHEMA_VIOLATION


def test_common_is_not_checked_once_the_event_rule_blocked() -> None:
    message = {"type": "track", "event": "Order Completed", "properties": {"plan": "gold"}}
    verdict = run(WITH_COMMON, conf(track__allowEventOnViolations=False), message)
    assert verdict.blocked == SCHEMA_VIOLATION
    assert {v.rule for v in verdict.violations} == {ORDER}


def test_common_runs_on_what_the_standard_controls_left() -> None:
    # Given a COMMON rule that requires a property the event rule does not plan
    plan = compiled(
        ORDER_RULE,
        {"type": "COMMON", "jsonSchema": {"properties": {"properties": {"required": ["sku"]}}}},
    )
    # When unplanned properties are omitted first
    message = track(revenue=1, sku="S1")
    verdict = run(plan, conf(track__allowUnplannedEventProperties=False), message)
    # Then COMMON sees the event without it
    assert verdict.omitted == ["sku"]
    assert [v.field for v in verdict.violations] == ["properties.sku"]


def test_rule_and_common_violations_are_both_recorded_in_order() -> None:
    message = {"type": "track", "event": "Order Completed", "properties": {"revenue": "1"}}
    verdict = run(WITH_COMMON, EnforcementSettings(), message)
    assert [(v.field, v.rule) for v in verdict.violations] == [
        ("properties.revenue", ORDER),
        ("userId", "COMMON v1"),
    ]


# --- identify and group ------------------------------------------------------------------------


TRAITS = {"email": {"type": "string", "format": "email"}, "age": {"type": "integer"}}
PEOPLE = compiled(
    traits_rule("IDENTIFY", TRAITS, ["email"]),
    traits_rule("GROUP", {"name": {"type": "string"}, "employees": {"type": "integer"}}),
    COMMON_RULE,
)


def traits_message(typ: str, **traits: Any) -> dict[str, Any]:
    extra = {"groupId": "g1"} if typ == "group" else {}
    return {"type": typ, "userId": "u1", "traits": traits, **extra}


def planned_trait(typ: str) -> tuple[str, Any]:
    return ("email", "a@example.com") if typ == "identify" else ("name", "Acme")


def failing_trait(typ: str) -> tuple[str, Any]:
    return ("age", 1.5) if typ == "identify" else ("employees", "many")


@pytest.mark.parametrize("typ", ["identify", "group"])
@pytest.mark.parametrize("allowed", [True, False])
def test_allow_unplanned_traits(typ: str, allowed: bool) -> None:
    key, value = planned_trait(typ)
    message = traits_message(typ, **{key: value, "shoe_size": 42})
    verdict = run(PEOPLE, conf(**{f"{typ}__allowUnplannedTraits": allowed}), message)
    assert verdict.blocked is None
    if allowed:
        assert verdict.message is message
    else:
        assert verdict.message["traits"] == {key: value}
        assert verdict.omitted == ["shoe_size"]
        assert protocols(verdict)["omitted"] == ["shoe_size"]


@pytest.mark.parametrize("typ", ["identify", "group"])
@pytest.mark.parametrize("allowed", [True, False])
def test_allow_traits_on_violations(typ: str, allowed: bool) -> None:
    key, value = planned_trait(typ)
    bad_key, bad_value = failing_trait(typ)
    message = traits_message(typ, **{key: value, bad_key: bad_value})
    verdict = run(PEOPLE, conf(**{f"{typ}__allowTraitsOnViolations": allowed}), message)
    # Segment has no "block on violation" for identify and group: they are never blocked here
    assert verdict.blocked is None
    assert [v.field for v in verdict.violations] == [f"traits.{bad_key}"]
    if allowed:
        assert verdict.message["traits"] == message["traits"]
        assert verdict.omitted_on_violation == []
    else:
        assert verdict.message["traits"] == {key: value}
        assert verdict.omitted_on_violation == [bad_key]


@pytest.mark.parametrize("typ", ["identify", "group"])
def test_identify_and_group_ignore_track_settings(typ: str) -> None:
    key, value = planned_trait(typ)
    bad_key, bad_value = failing_trait(typ)
    message = traits_message(typ, **{key: value, bad_key: bad_value, "extra": 1})
    strict_track = conf(
        track__allowUnplannedEvents=False,
        track__allowUnplannedEventProperties=False,
        track__allowEventOnViolations=False,
        track__allowPropertiesOnViolations=False,
        track__commonEventOnViolations="BLOCK",
    )
    verdict = run(PEOPLE, strict_track, {**message, "traits": {**message["traits"], "plan": "x"}})
    assert verdict.blocked is None
    assert verdict.omitted == verdict.omitted_on_violation == []
    assert len(verdict.violations) == 2


@pytest.mark.parametrize(("typ", "other"), [("identify", "group"), ("group", "identify")])
def test_identify_and_group_settings_are_separate(typ: str, other: str) -> None:
    key, value = planned_trait(typ)
    message = traits_message(typ, **{key: value, "shoe_size": 42, "plan": "gold"})
    setting = conf(
        **{
            f"{other}__allowUnplannedTraits": False,
            f"{other}__allowTraitsOnViolations": False,
            f"{other}__commonEventOnViolations": "BLOCK",
        }
    )
    verdict = run(PEOPLE, setting, message)
    assert verdict.blocked is None
    assert verdict.message["traits"] == message["traits"]


@pytest.mark.parametrize("typ", ["identify", "group"])
@pytest.mark.parametrize("action", ["ALLOW", "BLOCK", "OMIT_TRAITS"])
def test_common_event_on_violations_for_traits(typ: str, action: str) -> None:
    key, value = planned_trait(typ)
    message = traits_message(typ, **{key: value, "plan": "gold"})
    verdict = run(PEOPLE, conf(**{f"{typ}__commonEventOnViolations": action}), message)
    assert [(v.type, v.field, v.rule) for v in verdict.violations] == [
        ("Invalid Enum", "traits.plan", "COMMON v1")
    ]
    if action == "BLOCK":
        assert verdict.blocked == SCHEMA_VIOLATION
        assert verdict.detail.startswith("traits.plan: ")
        assert verdict.detail.endswith(" (COMMON v1)")
    elif action == "ALLOW":
        assert verdict.blocked is None
        assert verdict.message["traits"] == message["traits"]
    else:
        assert verdict.blocked is None
        assert verdict.message["traits"] == {key: value}
        assert verdict.omitted_on_violation == ["plan"]


def test_omit_traits_leaves_properties_alone() -> None:
    message = {
        **traits_message("identify", email="a@b.co", plan="gold"),
        "properties": {"plan": "x"},
    }
    verdict = run(PEOPLE, conf(identify__commonEventOnViolations="OMIT_TRAITS"), message)
    assert verdict.message["properties"] == {"plan": "x"}
    assert verdict.message["traits"] == {"email": "a@b.co"}


# --- page and screen follow the track settings -------------------------------------------------


PAGES = compiled(
    {
        "type": "PAGE",
        "key": "Checkout",
        "jsonSchema": whole_event("properties", {"step": {"type": "integer"}}, ["step"]),
    },
    {"type": "PAGE", "jsonSchema": whole_event("properties", {"path": {"type": "string"}})},
    {"type": "SCREEN", "jsonSchema": whole_event("properties", {"path": {"type": "string"}})},
    COMMON_RULE,
)


def page(typ: str = "page", name: str | None = None, **props: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": typ, "userId": "u1", "properties": props}
    if name is not None:
        message["name"] = name
    return message


def test_keyed_page_rule_is_preferred_over_the_unkeyed_one() -> None:
    verdict = run(PAGES, EnforcementSettings(), page(name="Checkout", path="/c"))
    assert [(v.field, v.rule) for v in verdict.violations] == [
        ("properties.step", 'PAGE "Checkout" v1')
    ]


@pytest.mark.parametrize(("typ", "name"), [("page", None), ("page", "About"), ("screen", "Home")])
def test_unkeyed_rule_applies_to_other_pages_and_screens(typ: str, name: str | None) -> None:
    verdict = run(PAGES, EnforcementSettings(), page(typ, name, path=5))
    assert [(v.field, v.rule) for v in verdict.violations] == [
        ("properties.path", f"{typ.upper()} v1")
    ]


@pytest.mark.parametrize("typ", ["page", "screen"])
@pytest.mark.parametrize("allowed", [True, False])
def test_page_and_screen_follow_allow_event_on_violations(typ: str, allowed: bool) -> None:
    verdict = run(PAGES, conf(track__allowEventOnViolations=allowed), page(typ, "About", path=5))
    assert verdict.blocked == (None if allowed else SCHEMA_VIOLATION)
    if not allowed:
        assert (
            verdict.detail == f"Invalid type. Expected: string, given: integer ({typ.upper()} v1)"
        )


@pytest.mark.parametrize("typ", ["page", "screen"])
@pytest.mark.parametrize("allowed", [True, False])
def test_page_and_screen_follow_allow_unplanned_event_properties(typ: str, allowed: bool) -> None:
    message = page(typ, "About", path="/a", referrer="x")
    verdict = run(PAGES, conf(track__allowUnplannedEventProperties=allowed), message)
    if allowed:
        assert verdict.message is message
    else:
        assert verdict.message["properties"] == {"path": "/a"}
        assert verdict.omitted == ["referrer"]


@pytest.mark.parametrize("allowed", [True, False])
def test_keyed_page_follows_allow_properties_on_violations(allowed: bool) -> None:
    message = page("page", "Checkout", step="two", path="/c")
    verdict = run(PAGES, conf(track__allowPropertiesOnViolations=allowed), message)
    assert verdict.blocked is None
    expected = message["properties"] if allowed else {"path": "/c"}
    assert verdict.message["properties"] == expected


@pytest.mark.parametrize("typ", ["page", "screen"])
@pytest.mark.parametrize("action", ["ALLOW", "BLOCK", "OMIT_PROPERTIES"])
def test_page_and_screen_follow_track_common_event_on_violations(typ: str, action: str) -> None:
    message = page(typ, "About", path="/a", plan="gold")
    verdict = run(PAGES, conf(track__commonEventOnViolations=action), message)
    assert verdict.blocked == (SCHEMA_VIOLATION if action == "BLOCK" else None)
    if action == "OMIT_PROPERTIES":
        assert verdict.message["properties"] == {"path": "/a"}
    elif action == "ALLOW":
        assert verdict.message["properties"] == message["properties"]


def test_page_without_any_page_rule_is_not_checked() -> None:
    plan = compiled(ORDER_RULE)
    message = page(name="Order Completed", coupon=5)
    assert run(plan, conf(track__allowEventOnViolations=False), message).message is message


# --- alias only sees COMMON --------------------------------------------------------------------


EVERYTHING = compiled(
    ORDER_RULE,
    traits_rule("IDENTIFY", TRAITS, ["email"]),
    traits_rule("GROUP", {}, ["name"]),
    {"type": "PAGE", "jsonSchema": {"required": ["name"]}},
    {"type": "SCREEN", "jsonSchema": {"required": ["name"]}},
    COMMON_RULE,
)


def test_alias_passes_every_rule_but_common() -> None:
    message = {"type": "alias", "previousId": "a", "userId": "u1"}
    strict = conf(
        track__allowUnplannedEvents=False,
        track__allowUnplannedEventProperties=False,
        track__allowEventOnViolations=False,
        identify__allowUnplannedTraits=False,
        group__allowUnplannedTraits=False,
    )
    verdict = run(EVERYTHING, strict, message)
    assert verdict.message is message
    assert verdict.blocked is None


@pytest.mark.parametrize("action", ["ALLOW", "BLOCK"])
def test_alias_is_checked_against_common(action: str) -> None:
    message = {"type": "alias", "previousId": "a", "userId": 5}
    verdict = run(EVERYTHING, conf(track__commonEventOnViolations=action), message)
    assert [(v.type, v.field, v.rule) for v in verdict.violations] == [
        ("Invalid Type", "userId", "COMMON v1")
    ]
    assert verdict.blocked == (SCHEMA_VIOLATION if action == "BLOCK" else None)


# --- violation types ---------------------------------------------------------------------------


TYPES = compiled(
    track_rule(
        "Checked",
        {
            "count": {"type": "integer"},
            "name": {"type": "string"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array"},
            "meta": {"type": "object"},
            "nothing": {"type": "null"},
            "maybe": {"type": ["integer", "null"]},
            "morty": {"type": "string", "pattern": "Lawyer Morty|Evil Morty"},
            "size": {"enum": ["S", "M", "L"]},
            "at": {"type": "string", "format": "date-time"},
            "products": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}, "sku": {"type": "string"}},
                    "required": ["sku"],
                },
            },
        },
        ["x"],
    )
)


def violations_of(**props: Any) -> list[dict[str, str]]:
    props.setdefault("x", 1)
    verdict = run(TYPES, EnforcementSettings(), track("Checked", **props))
    return [v.to_dict() for v in verdict.violations]


def only(**props: Any) -> dict[str, str]:
    (found,) = violations_of(**props)
    assert found["rule"] == 'TRACK "Checked" v1'
    return found


def test_required_violation() -> None:
    verdict = run(TYPES, EnforcementSettings(), track("Checked"))
    assert [v.to_dict() for v in verdict.violations] == [
        {
            "type": "Required",
            "field": "properties.x",
            "description": "properties.x is required",
            "rule": 'TRACK "Checked" v1',
        }
    ]


def test_required_at_the_top_level() -> None:
    plan = compiled({"type": "COMMON", "jsonSchema": {"required": ["properties"]}})
    (found,) = run(plan, EnforcementSettings(), {"type": "alias"}).violations
    assert (found.type, found.field, found.description) == (
        "Required",
        "properties",
        "properties is required",
    )


@pytest.mark.parametrize(
    ("field", "value", "description"),
    [
        ("count", 1.5, "Invalid type. Expected: integer, given: number"),
        ("count", "1", "Invalid type. Expected: integer, given: string"),
        ("count", True, "Invalid type. Expected: integer, given: boolean"),
        ("name", None, "Invalid type. Expected: string, given: null"),
        ("name", [1], "Invalid type. Expected: string, given: array"),
        ("name", {"a": 1}, "Invalid type. Expected: string, given: object"),
        ("flag", 1, "Invalid type. Expected: boolean, given: integer"),
        ("tags", "a,b", "Invalid type. Expected: array, given: string"),
        ("meta", [], "Invalid type. Expected: object, given: array"),
        ("nothing", 0, "Invalid type. Expected: null, given: integer"),
    ],
)
def test_invalid_type_violation(field: str, value: Any, description: str) -> None:
    found = only(**{field: value})
    assert (found["type"], found["field"], found["description"]) == (
        "Invalid Type",
        f"properties.{field}",
        description,
    )


def test_invalid_type_with_several_allowed_types_names_them_all() -> None:
    found = only(maybe="1")
    assert found["type"] == "Invalid Type"
    assert found["description"].startswith("Invalid type. Expected: ")
    assert found["description"].endswith(", given: string")
    assert {"integer", "null"} <= set(found["description"].split(": ")[1][:-7].split(", "))


@pytest.mark.parametrize("value", [1, 2**70, -(2**70), 3.0, 0])
def test_whole_numbers_are_integers(value: Any) -> None:
    assert violations_of(count=value) == []


@pytest.mark.parametrize("value", ["Lawyer Morty", "Evil Morty", "Evil Morty Smith"])
def test_permitted_values_pattern_passes(value: str) -> None:
    assert violations_of(morty=value) == []


@pytest.mark.parametrize("value", ["Rick", "lawyer morty", "Morty", ""])
def test_invalid_pattern_violation(value: str) -> None:
    found = only(morty=value)
    assert (found["type"], found["field"]) == ("Invalid Pattern", "properties.morty")
    assert found["description"].startswith("properties.morty: ")
    assert "Lawyer Morty|Evil Morty" in found["description"]


def test_invalid_enum_violation() -> None:
    found = only(size="XL")
    assert (found["type"], found["field"]) == ("Invalid Enum", "properties.size")
    assert found["description"].startswith("properties.size: ")
    assert '"XL"' in found["description"]
    assert violations_of(size="M") == []


@pytest.mark.parametrize("value", ["2026-03-01T12:00:00Z", "2026-03-01T12:00:00.123+02:00"])
def test_date_time_format_passes(value: str) -> None:
    assert violations_of(at=value) == []


@pytest.mark.parametrize("value", ["yesterday", "2026-03-01", "2026-13-01T00:00:00Z"])
def test_invalid_format_violation(value: str) -> None:
    found = only(at=value)
    assert (found["type"], found["field"]) == ("Invalid Format", "properties.at")
    assert found["description"].startswith("properties.at: ")
    assert "date-time" in found["description"]


def test_nested_array_item_violations_name_the_index() -> None:
    found = violations_of(products=[{"sku": "a", "price": 1}, {"sku": "b", "price": "2"}, {}])
    assert [(v["type"], v["field"], v["description"]) for v in found] == [
        (
            "Invalid Type",
            "properties.products.1.price",
            "Invalid type. Expected: number, given: string",
        ),
        (
            "Required",
            "properties.products.2.sku",
            "properties.products.2.sku is required",
        ),
    ]


def test_other_keywords_get_a_readable_type() -> None:
    plan = compiled(track_rule("K", {"n": {"type": "integer", "minimum": 1}, "c": {"const": "x"}}))
    verdict = run(plan, EnforcementSettings(), track("K", n=0, c="y"))
    by_field = {v.field: v for v in verdict.violations}
    assert by_field["properties.n"].type == "Invalid Minimum"
    assert by_field["properties.c"].type == "Invalid Value"
    assert all(v.description.startswith(v.field + ": ") for v in verdict.violations)


def test_violation_to_dict() -> None:
    v = Violation("Required", "properties.x", "properties.x is required", "COMMON v1")
    assert v.to_dict() == {
        "type": "Required",
        "field": "properties.x",
        "description": "properties.x is required",
        "rule": "COMMON v1",
    }


# --- versions ----------------------------------------------------------------------------------


VERSIONED = compiled(
    # listed newest first, so that "the oldest" cannot mean "the first listed"
    track_rule("Order Completed", {"order_id": {"type": "string"}}, ["order_id"], version=3),
    track_rule("Order Completed", {"revenue": {"type": "number"}}, ["revenue"], version=1),
    track_rule("Order Completed", {"total": {"type": "number"}}, ["total"], version=2),
)


def versioned(version: Any = ..., **extra_context: Any) -> dict[str, Any]:
    message = track()
    context: dict[str, Any] = dict(extra_context)
    if version is not ...:
        context["protocols"] = {"event_version": version}
    if context:
        message["context"] = context
    return message


def checked_against(message: dict[str, Any]) -> str:
    (found,) = run(VERSIONED, EnforcementSettings(), message).violations
    return found.rule


@pytest.mark.parametrize("version", [1, 2, 3])
def test_event_version_picks_the_version(version: int) -> None:
    assert checked_against(versioned(version)) == f'TRACK "Order Completed" v{version}'


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(versioned(), id="missing"),
        pytest.param(versioned(app={"name": "x"}), id="no-protocols"),
        pytest.param(versioned(None), id="null"),
        pytest.param(versioned("2"), id="string"),
        pytest.param(versioned(2.0), id="float"),
        pytest.param(versioned(2.5), id="fraction"),
        pytest.param(versioned(True), id="true"),
        pytest.param(versioned(False), id="false"),
        pytest.param(versioned(4), id="unknown"),
        pytest.param(versioned(0), id="zero"),
        pytest.param(versioned(-2), id="negative"),
        pytest.param(versioned([2]), id="list"),
        pytest.param({**track(), "context": {"protocols": "v2"}}, id="protocols-not-an-object"),
        pytest.param({**track(), "context": "v2"}, id="context-not-an-object"),
    ],
)
def test_missing_or_invalid_version_picks_the_oldest(message: dict[str, Any]) -> None:
    assert checked_against(message) == ORDER


def test_common_versions_are_picked_the_same_way() -> None:
    plan = compiled(
        {"type": "COMMON", "version": 2, "jsonSchema": {"required": ["v2"]}},
        {"type": "COMMON", "version": 1, "jsonSchema": {"required": ["v1"]}},
    )
    message = {"type": "alias", "context": {"protocols": {"event_version": 2}}}
    assert [v.field for v in run(plan, EnforcementSettings(), message).violations] == ["v2"]
    assert [v.field for v in run(plan, EnforcementSettings(), {"type": "alias"}).violations] == [
        "v1"
    ]


def test_unplanned_properties_follow_the_picked_version() -> None:
    message = versioned(2)
    message["properties"] = {"total": 1, "revenue": 2}
    verdict = run(VERSIONED, conf(track__allowUnplannedEventProperties=False), message)
    assert verdict.message["properties"] == {"total": 1}
    assert verdict.omitted == ["revenue"]


# --- the context.protocols record --------------------------------------------------------------


def test_protocols_record_has_segments_shape() -> None:
    plan = compiled(ORDER_RULE, revision=7)
    message = track(revenue="1", newProperty=1, coupon="X")
    setting = conf(
        track__allowUnplannedEventProperties=False, track__allowPropertiesOnViolations=False
    )
    verdict = run(plan, setting, message)
    assert verdict.message["properties"] == {"coupon": "X"}
    assert protocols(verdict) == {
        "omitted": ["newProperty"],
        "omitted_on_violation": ["revenue"],
        "violations": [
            {
                "type": "Invalid Type",
                "field": "properties.revenue",
                "description": "Invalid type. Expected: number, given: string",
                "rule": ORDER,
            }
        ],
        "trackingPlanId": PLAN_ID,
        "trackingPlanRevision": 7,
    }
    assert verdict.omitted == ["newProperty"]
    assert verdict.omitted_on_violation == ["revenue"]


def test_existing_context_and_protocols_keys_are_preserved() -> None:
    message = track(revenue="1")
    message["context"] = {
        "library": {"name": "analytics.js"},
        "protocols": {"event_version": 1, "sourceId": "src_1"},
    }
    verdict = run(SHOP, EnforcementSettings(), message)
    assert verdict.message["context"]["library"] == {"name": "analytics.js"}
    record = protocols(verdict)
    assert record["event_version"] == 1
    assert record["sourceId"] == "src_1"
    assert [v["field"] for v in record["violations"]] == ["properties.revenue"]
    # the caller's context objects are new copies, not the caller's own
    assert verdict.message["context"] is not message["context"]
    assert "violations" not in message["context"]["protocols"]


def test_a_context_that_is_not_an_object_is_replaced() -> None:
    message = {**track(revenue="1"), "context": "oops"}
    verdict = run(SHOP, EnforcementSettings(), message)
    assert set(protocols(verdict)) == {"violations", "trackingPlanId", "trackingPlanRevision"}


def test_a_blocked_verdict_adds_no_record() -> None:
    verdict = run(SHOP, conf(track__allowEventOnViolations=False), track(revenue="1"))
    assert verdict.blocked == SCHEMA_VIOLATION
    assert "context" not in verdict.message


def test_nested_values_are_not_mutated_when_properties_are_omitted() -> None:
    # Given a message whose properties hold nested objects the caller still owns
    nested = {"deep": {"list": [1, 2, {"x": 1}]}}
    message = track(revenue="1", coupon="X", extra=nested)
    message["context"] = {"protocols": {"event_version": 1}, "traits": {"a": 1}}
    before = copy.deepcopy(message)
    setting = conf(
        track__allowUnplannedEventProperties=False, track__allowPropertiesOnViolations=False
    )
    # When enforcement omits and records
    verdict = enforce(SHOP, setting, message)
    # Then the caller's message, and everything inside it, is as it was
    assert message == before
    assert verdict.message is not message
    assert verdict.message["properties"] is not message["properties"]


# --- hypothesis properties ---------------------------------------------------------------------


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
PLANNED_NAMES = ["revenue", "currency", "coupon", "products", "email", "age", "plan", "a.b", "path"]
field_names = st.sampled_from(PLANNED_NAMES) | st.text(max_size=8)
field_dicts = st.dictionaries(field_names, json_values, max_size=6)
# a section is usually an object, but may be any JSON value
sections = field_dicts | json_values

PROPERTY_PLAN = compiled(
    track_rule(
        "Order Completed",
        {
            "revenue": {"type": "number"},
            "currency": {"type": "string", "pattern": "^(USD|EUR)$"},
            "products": {
                "type": "array",
                "items": {"type": "object", "properties": {"price": {"type": "number"}}},
            },
            "a.b": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
        },
        ["revenue"],
    ),
    track_rule("Order Completed", {"coupon": {"enum": ["A", "B"]}}, ["coupon"], version=2),
    traits_rule("IDENTIFY", TRAITS, ["email"]),
    traits_rule("GROUP", {"name": {"type": "string"}}, ["name"]),
    {
        "type": "PAGE",
        "key": "Checkout",
        "jsonSchema": whole_event("properties", {"step": {"type": "integer"}}, ["step"]),
    },
    {"type": "SCREEN", "jsonSchema": whole_event("properties", {"path": {"type": "string"}})},
    COMMON_RULE,
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    typ = draw(st.sampled_from(["track", "identify", "group", "page", "screen", "alias"]))
    message: dict[str, Any] = {"type": typ}
    if typ == "track":
        message["event"] = draw(st.sampled_from(["Order Completed", "Other"]) | st.text())
    if typ in ("page", "screen") and draw(st.booleans()):
        message["name"] = draw(st.sampled_from(["Checkout", "Home"]) | st.text(max_size=8))
    if draw(st.booleans()):
        message["userId"] = draw(json_values)
    if draw(st.booleans()):
        message["properties"] = draw(sections)
    if draw(st.booleans()):
        message["traits"] = draw(sections)
    if draw(st.booleans()):
        protocols_value = draw(
            st.fixed_dictionaries(
                {}, optional={"event_version": st.sampled_from([1, 2, 3]) | json_values}
            )
            | json_values
        )
        extra = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))
        message["context"] = {**extra, "protocols": protocols_value}
    elif draw(st.booleans()):
        message["context"] = draw(json_values)
    return message


@st.composite
def any_settings(draw: st.DrawFn) -> EnforcementSettings:
    flags = st.booleans()
    return EnforcementSettings.from_dict(
        {
            "track": {
                "allowUnplannedEvents": draw(flags),
                "allowUnplannedEventProperties": draw(flags),
                "allowEventOnViolations": draw(flags),
                "allowPropertiesOnViolations": draw(flags),
                "commonEventOnViolations": draw(
                    st.sampled_from(["ALLOW", "BLOCK", "OMIT_PROPERTIES"])
                ),
            },
            "identify": {
                "allowUnplannedTraits": draw(flags),
                "allowTraitsOnViolations": draw(flags),
                "commonEventOnViolations": draw(st.sampled_from(["ALLOW", "BLOCK", "OMIT_TRAITS"])),
            },
            "group": {
                "allowUnplannedTraits": draw(flags),
                "allowTraitsOnViolations": draw(flags),
                "commonEventOnViolations": draw(st.sampled_from(["ALLOW", "BLOCK", "OMIT_TRAITS"])),
            },
        }
    )


@settings(max_examples=400, deadline=None)
@given(message=messages(), setting=any_settings())
def test_enforce_never_raises_nor_mutates_and_blocks_with_a_reason(
    message: dict[str, Any], setting: EnforcementSettings
) -> None:
    before = copy.deepcopy(message)
    verdict = enforce(PROPERTY_PLAN, setting, message)
    assert message == before
    if verdict.blocked is not None:
        assert verdict.blocked in REASONS
        assert verdict.detail
        if verdict.blocked == SCHEMA_VIOLATION:
            assert verdict.violations
    else:
        assert verdict.detail == ""
        section = "traits" if message["type"] in ("identify", "group") else "properties"
        values = message.get(section)
        kept = verdict.message.get(section)
        if isinstance(values, dict):
            # omission only ever removes keys, and records each one it removed
            assert isinstance(kept, dict)
            removed = set(values) - set(kept)
            assert set(kept) <= set(values)
            assert removed == set(verdict.omitted) | set(verdict.omitted_on_violation)
            assert all(kept[k] == values[k] for k in kept)
        if verdict.violations or verdict.omitted:
            record = verdict.message["context"]["protocols"]
            assert record["trackingPlanId"] == PLAN_ID
            assert record.get("violations", []) == [v.to_dict() for v in verdict.violations]
        else:
            assert verdict.message is message


@settings(max_examples=300, deadline=None)
@given(message=messages())
def test_with_all_settings_allowing_nothing_is_blocked_or_removed(
    message: dict[str, Any],
) -> None:
    before = copy.deepcopy(message)
    verdict = enforce(PROPERTY_PLAN, EnforcementSettings(), message)
    assert message == before
    assert verdict.blocked is None
    assert verdict.omitted == verdict.omitted_on_violation == []
    for section in ("properties", "traits"):
        assert verdict.message.get(section) == message.get(section)
    without_context = {k: v for k, v in verdict.message.items() if k != "context"}
    assert without_context == {k: v for k, v in message.items() if k != "context"}


@settings(max_examples=200, deadline=None)
@given(message=messages(), setting=any_settings())
def test_a_plan_without_rules_only_blocks_unplanned_track_events(
    message: dict[str, Any], setting: EnforcementSettings
) -> None:
    verdict = enforce(compiled(), setting, message)
    if message["type"] == "track" and not setting.track.allow_unplanned_events:
        assert verdict.blocked == UNPLANNED_EVENT
    else:
        assert verdict.blocked is None
        assert verdict.message is message


STRICT_CONTEXT_RULE = {
    "type": "COMMON",
    "version": 1,
    "jsonSchema": {
        "type": "object",
        "properties": {
            "context": {
                "type": "object",
                "properties": {
                    "protocols": {
                        "type": "object",
                        "properties": {"event_version": {"type": "integer"}},
                        "additionalProperties": False,
                    }
                },
            }
        },
    },
}


def test_a_dry_run_input_holds_nothing_enforcement_or_forwarding_added() -> None:
    from opencdp.govern.enforce import strip_protocols
    from opencdp.govern.forward import forwarded_blocked

    # Given an event that a plan blocked and forwarded, then annotated again when it landed
    sent = {**track(coupon="X"), "context": {"protocols": {"event_version": 2}}}
    blocked = Verdict(sent, blocked=UNPLANNED_EVENT, detail="not in the plan")
    forwarded = forwarded_blocked(sent, blocked, "src_web")
    stored = run(compiled(ORDER_RULE), conf(), forwarded).message
    assert {"blocked", "sourceId", "trackingPlanId"} <= stored["context"]["protocols"].keys()
    # When it is judged afresh (a dry run, a replay), Then only what the sender sent is left
    fresh = strip_protocols(stored)
    assert fresh["context"]["protocols"] == {"event_version": 2}
    verdict = run(
        compiled(ORDER_RULE, STRICT_CONTEXT_RULE),
        conf(track__commonEventOnViolations="BLOCK"),
        fresh,
    )
    assert verdict.blocked is None  # the COMMON rule blocks on a violation: there is none
    assert not [v for v in verdict.violations if v.field.startswith("context")]
