"""Tracking plans and enforcement settings, parsed and checked (segment-compat.md §3.1, §3.2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opencdp.govern import EnforcementSettings, PlanError, Rule, TrackingPlan, parse_plan
from opencdp.govern.settings import TrackSettings, TraitSettings

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def track_schema(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A Segment-shaped whole-event schema: the rules for properties under properties.properties."""
    inner: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        inner["required"] = required
    return {
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {"context": {}, "traits": {"type": "object"}, "properties": inner},
        "required": ["properties"],
    }


def where_of(doc: Any, **kwargs: Any) -> str:
    with pytest.raises(PlanError) as info:
        parse_plan(doc, **kwargs)
    assert str(info.value).startswith(info.value.where)
    return info.value.where


# --- RuleV1 plans -----------------------------------------------------------------------------


def test_parses_a_rulev1_plan_of_every_rule_type() -> None:
    schema = track_schema({"revenue": {"type": "number"}}, ["revenue"])
    doc = {
        "id": "tp_1",
        "name": "Shop",
        "description": "the web shop",
        "rules": [
            {"type": "COMMON", "version": 1, "jsonSchema": {"required": ["userId"]}},
            {"type": "TRACK", "key": "Order Completed", "version": 1, "jsonSchema": schema},
            {"type": "TRACK", "key": "Order Completed", "version": 2, "jsonSchema": schema},
            {"type": "IDENTIFY", "version": 1, "jsonSchema": None},
            {"type": "GROUP", "version": 1, "jsonSchema": {}},
            {"type": "PAGE", "key": "Home", "version": 1, "jsonSchema": {}},
            {"type": "PAGE", "version": 1, "jsonSchema": {}},
            {"type": "SCREEN", "version": 3, "jsonSchema": {}},
        ],
    }
    plan = parse_plan(doc)
    assert isinstance(plan, TrackingPlan)
    assert (plan.id, plan.name, plan.description, plan.revision) == (
        "tp_1",
        "Shop",
        "the web shop",
        0,
    )
    assert [(r.type, r.key, r.version) for r in plan.rules] == [
        ("COMMON", None, 1),
        ("TRACK", "Order Completed", 1),
        ("TRACK", "Order Completed", 2),
        ("IDENTIFY", None, 1),
        ("GROUP", None, 1),
        ("PAGE", "Home", 1),
        ("PAGE", None, 1),
        ("SCREEN", None, 3),
    ]
    assert plan.rules[1].json_schema == schema
    assert plan.rules[3].json_schema is None


def test_the_input_document_is_not_mutated() -> None:
    doc = {"id": "p", "rules": [{"type": "COMMON", "jsonSchema": {"type": "object"}}]}
    before = copy.deepcopy(doc)
    parse_plan(doc)
    assert doc == before


def test_schema_defaults_to_draft_07_and_keeps_an_explicit_one() -> None:
    draft4 = "http://json-schema.org/draft-04/schema#"
    plan = parse_plan(
        {
            "id": "p",
            "rules": [
                {"type": "COMMON", "jsonSchema": {"type": "object"}},
                {"type": "IDENTIFY", "jsonSchema": {"$schema": draft4, "type": "object"}},
            ],
        }
    )
    assert plan.rules[0].json_schema == {"$schema": DRAFT_07, "type": "object"}
    assert plan.rules[1].json_schema is not None
    assert plan.rules[1].json_schema["$schema"] == draft4


def test_defaults_version_1_lowercase_type_and_snake_case_json_schema() -> None:
    plan = parse_plan(
        {"id": "p", "rules": [{"type": "track", "key": "A", "json_schema": {"type": "object"}}]}
    )
    (rule,) = plan.rules
    assert (rule.type, rule.key, rule.version) == ("TRACK", "A", 1)
    assert rule.json_schema == {"$schema": DRAFT_07, "type": "object"}


def test_plan_id_from_argument_document_or_both_agreeing() -> None:
    assert parse_plan({"rules": []}, plan_id="p1").id == "p1"
    assert parse_plan({"id": "p1", "rules": []}, plan_id="p1").id == "p1"
    assert parse_plan({"id": "p1"}).rules == ()
    assert where_of({"id": "p1", "rules": []}, plan_id="p2") == "id"


def test_name_falls_back_to_display_name_then_id_and_extra_keys_go_to_meta() -> None:
    assert parse_plan({"id": "p"}).name == "p"
    plan = parse_plan({"id": "p", "display_name": "Shop", "owner": "data team"})
    assert plan.name == "Shop"
    assert plan.meta == {"display_name": "Shop", "owner": "data team"}
    assert parse_plan({"id": "p", "name": "N", "display_name": "D"}).name == "N"


def test_rule_label_and_to_dict() -> None:
    rule = Rule("TRACK", "Order Completed", 2, {"type": "object"})
    assert rule.label == 'TRACK "Order Completed" v2'
    assert Rule("COMMON", None, 1, None).label == "COMMON v1"
    assert rule.to_dict() == {
        "type": "TRACK",
        "key": "Order Completed",
        "version": 2,
        "jsonSchema": {"type": "object"},
    }


def test_plan_to_dict_round_trips_through_parse_plan() -> None:
    plan = parse_plan(
        {
            "id": "p",
            "name": "Shop",
            "description": "d",
            "rules": [
                {"type": "TRACK", "key": "A", "version": 2, "jsonSchema": track_schema({})},
                {"type": "COMMON", "version": 1, "jsonSchema": None},
            ],
        }
    )
    again = parse_plan(plan.to_dict())
    assert again.to_dict() == plan.to_dict()
    assert again.same_rules(plan)


# --- legacy Config API plans -------------------------------------------------------------------


def test_legacy_config_api_plan_converts_to_rules() -> None:
    order = track_schema({"total": {"type": "number"}})
    doc = {
        "name": "workspaces/w/tracking-plans/rs_1",
        "display_name": "Shop",
        "rules": {
            "events": [
                {"name": "Order Completed", "description": "x", "version": 2, "rules": order},
                {"name": "Signed Up", "rules": {}},
            ],
            "global": {"required": ["userId"]},
            "identify": {"type": "object"},
            "group": {"type": "object"},
        },
    }
    plan = parse_plan(doc, plan_id="rs_1")
    assert plan.id == "rs_1"
    assert [(r.type, r.key, r.version) for r in plan.rules] == [
        ("TRACK", "Order Completed", 2),
        ("TRACK", "Signed Up", 1),
        ("COMMON", None, 1),
        ("IDENTIFY", None, 1),
        ("GROUP", None, 1),
    ]
    assert plan.rules[0].json_schema == order
    assert plan.rules[2].json_schema == {"$schema": DRAFT_07, "required": ["userId"]}


def test_legacy_plan_without_optional_sections() -> None:
    plan = parse_plan({"id": "p", "rules": {"events": [{"name": "A", "rules": {}}]}})
    assert [(r.type, r.key) for r in plan.rules] == [("TRACK", "A")]
    assert parse_plan({"id": "p", "rules": {}}).rules == ()
    assert parse_plan({"id": "p", "rules": {"events": None, "global": None}}).rules == ()


def test_legacy_event_that_is_not_an_object_names_its_place() -> None:
    assert where_of({"id": "p", "rules": {"events": [{"name": "A"}, "B"]}}) == "rules.events[1]"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"events": [{"name": "A", "rules": {}}], "global": {"type": "nope"}}, "rules.global"),
        ({"events": [{"name": "A", "rules": {}}, {"rules": {}}]}, "rules.events[1]"),
    ],
)
def test_legacy_plan_errors_name_the_place_in_the_document(
    rules: dict[str, Any], expected: str
) -> None:
    assert where_of({"id": "p", "rules": rules}).startswith(expected)


# --- every PlanError names its place ----------------------------------------------------------


GOOD = {"type": "COMMON", "version": 1, "jsonSchema": {}}


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        pytest.param([], "", id="not-an-object"),
        pytest.param({"rules": []}, "id", id="no-id"),
        pytest.param({"id": ""}, "id", id="empty-id"),
        pytest.param({"id": "-p"}, "id", id="id-starts-with-dash"),
        pytest.param({"id": "a b"}, "id", id="id-with-space"),
        pytest.param({"id": "a/b"}, "id", id="id-with-slash"),
        pytest.param({"id": "x" * 65}, "id", id="id-too-long"),
        pytest.param({"id": 7}, "id", id="id-not-a-string"),
        pytest.param({"id": "p", "name": 5}, "name", id="name-not-a-string"),
        pytest.param({"id": "p", "name": "n" * 201}, "name", id="name-too-long"),
        pytest.param({"id": "p", "description": 1}, "description", id="description"),
        pytest.param({"id": "p", "rules": "x"}, "rules", id="rules-not-a-list"),
        pytest.param({"id": "p", "rules": [GOOD, 5]}, "rules[1]", id="rule-not-an-object"),
        pytest.param(
            {"id": "p", "rules": [GOOD, GOOD, {"type": "EVENT"}]}, "rules[2].type", id="type"
        ),
        pytest.param({"id": "p", "rules": [{"version": 1}]}, "rules[0].type", id="no-type"),
        pytest.param(
            {"id": "p", "rules": [{"type": "TRACK", "jsonSchema": {}}]},
            "rules[0].key",
            id="track-without-key",
        ),
        pytest.param(
            {"id": "p", "rules": [GOOD, GOOD, {"type": "TRACK", "key": "  "}]},
            "rules[2].key",
            id="blank-key",
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "TRACK", "key": 5}]}, "rules[0].key", id="key-int"
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "TRACK", "key": "k" * 201}]},
            "rules[0].key",
            id="key-too-long",
        ),
        pytest.param(
            {"id": "p", "rules": [GOOD, {"type": "IDENTIFY", "key": "x"}]},
            "rules[1].key",
            id="identify-with-key",
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "GROUP", "key": "x"}]},
            "rules[0].key",
            id="group-with-key",
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "COMMON", "key": "x"}]},
            "rules[0].key",
            id="common-with-key",
        ),
        *(
            pytest.param(
                {"id": "p", "rules": [{"type": "COMMON", "version": bad}]},
                "rules[0].version",
                id=f"version-{bad!r}",
            )
            for bad in (0, -1, 1.5, 2.0, "2", True, None)
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "COMMON", "jsonSchema": []}]},
            "rules[0].jsonSchema",
            id="schema-not-an-object",
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "COMMON", "jsonSchema": {"type": "nope"}}]},
            "rules[0].jsonSchema",
            id="schema-bad-type",
        ),
        pytest.param(
            {
                "id": "p",
                "rules": [GOOD, {"type": "COMMON", "version": 2, "jsonSchema": {"required": "x"}}],
            },
            "rules[1].jsonSchema",
            id="schema-bad-required",
        ),
        pytest.param(
            {"id": "p", "rules": [{"type": "COMMON", "jsonSchema": {"pattern": "("}}]},
            "rules[0].jsonSchema",
            id="schema-bad-regex",
        ),
        pytest.param(
            {
                "id": "p",
                "rules": [
                    {"type": "TRACK", "key": "A", "version": 1, "jsonSchema": {}},
                    {"type": "TRACK", "key": "B", "version": 1, "jsonSchema": {}},
                    {"type": "track", "key": "A", "version": 1, "jsonSchema": None},
                ],
            },
            "rules[2]",
            id="duplicate-version",
        ),
        pytest.param(
            {"id": "p", "rules": [GOOD, {"type": "COMMON", "jsonSchema": None}]},
            "rules[1]",
            id="duplicate-default-version",
        ),
    ],
)
def test_plan_errors_name_their_place(doc: Any, where: str) -> None:
    assert where_of(doc) == where


def test_error_messages_say_what_is_wrong() -> None:
    with pytest.raises(PlanError, match=r"rules\[0\]\.key: a TRACK rule needs the event name"):
        parse_plan({"id": "p", "rules": [{"type": "TRACK"}]})
    with pytest.raises(PlanError, match=r"rules\[0\]\.key: IDENTIFY rules have no key"):
        parse_plan({"id": "p", "rules": [{"type": "IDENTIFY", "key": "x"}]})
    with pytest.raises(PlanError, match=r"rules\[0\]\.jsonSchema: is not a valid JSON Schema"):
        parse_plan({"id": "p", "rules": [{"type": "COMMON", "jsonSchema": {"type": "nope"}}]})
    with pytest.raises(PlanError, match=r'rules\[1\]: TRACK "A" v3 is defined twice'):
        rule = {"type": "TRACK", "key": "A", "version": 3}
        parse_plan({"id": "p", "rules": [rule, rule]})
    assert issubclass(PlanError, ValueError)


def test_same_key_in_different_types_and_versions_is_not_a_duplicate() -> None:
    plan = parse_plan(
        {
            "id": "p",
            "rules": [
                {"type": "TRACK", "key": "Home", "version": 1},
                {"type": "TRACK", "key": "Home", "version": 2},
                {"type": "PAGE", "key": "Home", "version": 1},
                {"type": "SCREEN", "key": "Home", "version": 1},
                {"type": "PAGE", "version": 1},
            ],
        }
    )
    assert len(plan.rules) == 5


# --- same_rules --------------------------------------------------------------------------------


def _plan(**changes: Any) -> TrackingPlan:
    doc: dict[str, Any] = {
        "id": "p",
        "name": "Shop",
        "description": "d",
        "rules": [
            {"type": "TRACK", "key": "A", "version": 1, "jsonSchema": track_schema({})},
            {"type": "COMMON", "version": 1, "jsonSchema": {"required": ["userId"]}},
        ],
    }
    doc.update(changes)
    return parse_plan(doc)


def test_same_rules_ignores_id_and_meta_but_not_content() -> None:
    base = _plan()
    assert base.same_rules(_plan())
    assert base.same_rules(_plan(id="other", owner="someone"))
    assert not base.same_rules(_plan(name="Shop 2"))
    assert not base.same_rules(_plan(description=None))
    assert not base.same_rules(_plan(rules=[]))
    changed = copy.deepcopy(_plan().to_dict()["rules"])
    changed[1]["jsonSchema"]["required"] = ["anonymousId"]
    assert not base.same_rules(_plan(rules=changed))
    bumped = copy.deepcopy(_plan().to_dict()["rules"])
    bumped[0]["version"] = 2
    assert not base.same_rules(_plan(rules=bumped))


def test_same_rules_treats_a_defaulted_schema_version_as_the_same() -> None:
    # Given one plan with "$schema" spelled out and one relying on the draft-07 default
    explicit = _plan(rules=[{"type": "COMMON", "jsonSchema": {"$schema": DRAFT_07}}])
    implicit = _plan(rules=[{"type": "COMMON", "jsonSchema": {}}])
    # Then applying one over the other is not worth a new revision
    assert explicit.same_rules(implicit)


# --- enforcement settings ----------------------------------------------------------------------


ALL_DEFAULTS = {
    "track": {
        "allowUnplannedEvents": True,
        "allowUnplannedEventProperties": True,
        "allowEventOnViolations": True,
        "allowPropertiesOnViolations": True,
        "commonEventOnViolations": "ALLOW",
    },
    "identify": {
        "allowUnplannedTraits": True,
        "allowTraitsOnViolations": True,
        "commonEventOnViolations": "ALLOW",
    },
    "group": {
        "allowUnplannedTraits": True,
        "allowTraitsOnViolations": True,
        "commonEventOnViolations": "ALLOW",
    },
    "forwardingBlockedEventsTo": None,
    "forwardingViolationsTo": None,
}


def test_defaults_allow_everything() -> None:
    settings = EnforcementSettings()
    assert settings.to_dict() == ALL_DEFAULTS
    assert settings.track == TrackSettings()
    assert settings.identify == settings.group == TraitSettings()
    assert EnforcementSettings.from_dict(None) == settings
    assert EnforcementSettings.from_dict({}) == settings
    assert EnforcementSettings.from_dict({"track": None}) == settings
    for typ in ("track", "page", "screen", "identify", "group", "alias"):
        assert settings.common_action(typ) == "ALLOW"


def test_from_dict_to_dict_round_trip() -> None:
    doc = {
        "track": {
            "allowUnplannedEvents": False,
            "allowUnplannedEventProperties": False,
            "allowEventOnViolations": False,
            "allowPropertiesOnViolations": False,
            "commonEventOnViolations": "OMIT_PROPERTIES",
        },
        "identify": {
            "allowUnplannedTraits": False,
            "allowTraitsOnViolations": False,
            "commonEventOnViolations": "BLOCK",
        },
        "group": {
            "allowUnplannedTraits": True,
            "allowTraitsOnViolations": False,
            "commonEventOnViolations": "OMIT_TRAITS",
        },
        "forwardingBlockedEventsTo": "src_blocked",
        "forwardingViolationsTo": "src_violations",
    }
    settings = EnforcementSettings.from_dict(doc)
    assert settings.to_dict() == doc
    assert EnforcementSettings.from_dict(settings.to_dict()) == settings
    assert settings.track.allow_unplanned_events is False
    assert settings.identify.common_event_on_violations == "BLOCK"
    assert settings.group.allow_unplanned_traits is True
    assert settings.forwarding_blocked_events_to == "src_blocked"
    assert settings.common_action("track") == "OMIT_PROPERTIES"
    assert settings.common_action("page") == "OMIT_PROPERTIES"
    assert settings.common_action("identify") == "BLOCK"
    assert settings.common_action("group") == "OMIT_TRAITS"


def test_partial_sections_keep_the_other_defaults() -> None:
    settings = EnforcementSettings.from_dict({"group": {"allowUnplannedTraits": False}})
    expected = copy.deepcopy(ALL_DEFAULTS)
    expected["group"]["allowUnplannedTraits"] = False
    assert settings.to_dict() == expected


def test_common_actions_are_read_case_insensitively() -> None:
    settings = EnforcementSettings.from_dict({"track": {"commonEventOnViolations": "block"}})
    assert settings.track.common_event_on_violations == "BLOCK"


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        pytest.param([], "settings", id="not-an-object"),
        pytest.param({"page": {}}, "settings.page", id="unknown-section"),
        pytest.param({"track": {"xyz": True}}, "settings.track.xyz", id="unknown-track-key"),
        pytest.param(
            {"identify": {"allowUnplannedEvents": False}},
            "settings.identify.allowUnplannedEvents",
            id="track-key-in-identify",
        ),
        pytest.param(
            {"group": {"allowUnplannedEventProperties": False}},
            "settings.group.allowUnplannedEventProperties",
            id="track-key-in-group",
        ),
        pytest.param(
            {"track": {"allowUnplannedTraits": False}},
            "settings.track.allowUnplannedTraits",
            id="trait-key-in-track",
        ),
        pytest.param(
            {"track": {"allow_unplanned_events": False}},
            "settings.track.allow_unplanned_events",
            id="snake-case-name",
        ),
        pytest.param({"track": []}, "settings.track", id="section-not-an-object"),
        pytest.param(
            {"track": {"allowUnplannedEvents": "false"}},
            "settings.track.allowUnplannedEvents",
            id="string-for-bool",
        ),
        pytest.param(
            {"identify": {"allowTraitsOnViolations": 0}},
            "settings.identify.allowTraitsOnViolations",
            id="int-for-bool",
        ),
        pytest.param(
            {"track": {"commonEventOnViolations": "OMIT_TRAITS"}},
            "settings.track.commonEventOnViolations",
            id="omit-traits-for-track",
        ),
        pytest.param(
            {"identify": {"commonEventOnViolations": "OMIT_PROPERTIES"}},
            "settings.identify.commonEventOnViolations",
            id="omit-properties-for-identify",
        ),
        pytest.param(
            {"group": {"commonEventOnViolations": "OMIT_PROPERTIES"}},
            "settings.group.commonEventOnViolations",
            id="omit-properties-for-group",
        ),
        pytest.param(
            {"track": {"commonEventOnViolations": "DROP"}},
            "settings.track.commonEventOnViolations",
            id="unknown-action",
        ),
        pytest.param(
            {"group": {"commonEventOnViolations": True}},
            "settings.group.commonEventOnViolations",
            id="bool-action",
        ),
        pytest.param(
            {"forwardingBlockedEventsTo": ""},
            "settings.forwardingBlockedEventsTo",
            id="empty-forward",
        ),
        pytest.param(
            {"forwardingViolationsTo": 5}, "settings.forwardingViolationsTo", id="int-forward"
        ),
    ],
)
def test_bad_settings_name_their_place(doc: Any, where: str) -> None:
    with pytest.raises(PlanError) as info:
        EnforcementSettings.from_dict(doc)
    assert info.value.where == where
    assert str(info.value).startswith(where + ": ")


def test_common_actions_are_validated_per_section() -> None:
    for section in ("identify", "group"):
        doc = {section: {"commonEventOnViolations": "OMIT_TRAITS"}}
        assert EnforcementSettings.from_dict(doc).common_action(section) == "OMIT_TRAITS"
    doc = {"track": {"commonEventOnViolations": "OMIT_PROPERTIES"}}
    assert EnforcementSettings.from_dict(doc).common_action("track") == "OMIT_PROPERTIES"


def test_with_value_changes_one_setting_and_leaves_the_original() -> None:
    base = EnforcementSettings()
    changed = base.with_value("track.allowUnplannedEvents", False)
    assert changed.track.allow_unplanned_events is False
    assert base.track.allow_unplanned_events is True
    expected = copy.deepcopy(ALL_DEFAULTS)
    expected["track"]["allowUnplannedEvents"] = False
    assert changed.to_dict() == expected
    chained = changed.with_value("identify.commonEventOnViolations", "omit_traits")
    assert chained.identify.common_event_on_violations == "OMIT_TRAITS"
    assert chained.track.allow_unplanned_events is False
    forwarded = base.with_value("forwardingViolationsTo", "src_v")
    assert forwarded.forwarding_violations_to == "src_v"
    assert forwarded.with_value("forwardingViolationsTo", None) == base


@pytest.mark.parametrize(
    ("dotted", "value", "where"),
    [
        ("track.xyz", True, "settings.track.xyz"),
        ("track.allowUnplannedEvents", "no", "settings.track.allowUnplannedEvents"),
        (
            "group.commonEventOnViolations",
            "OMIT_PROPERTIES",
            "settings.group.commonEventOnViolations",
        ),
        ("page.allowUnplannedEvents", False, "settings.page"),
        ("nonsense", 1, "settings.nonsense"),
        ("track", 5, "settings.track"),
    ],
)
def test_with_value_rejects_what_from_dict_rejects(dotted: str, value: Any, where: str) -> None:
    with pytest.raises(PlanError) as info:
        EnforcementSettings().with_value(dotted, value)
    assert info.value.where == where


def test_a_yaml_date_in_a_schema_is_a_plan_error_not_a_crash() -> None:
    import datetime

    schema = {
        "properties": {"properties": {"properties": {"d": {"const": datetime.date(2021, 1, 1)}}}}
    }
    with pytest.raises(PlanError) as info:
        parse_plan({"id": "p", "rules": [{"type": "TRACK", "key": "X", "jsonSchema": schema}]})
    assert info.value.where == "rules[0].jsonSchema"
