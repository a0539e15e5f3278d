"""A journey's JSON/YAML form -> a compiled :class:`Journey` (pure, no database): every step
kind, the defaults, forward-only targets, and the 400 ``invalid_journey`` that names the field
(the contract tests send a few bad journeys through the API; these go through every rule)."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from typing import Any

import pytest
import yaml

from opencdp.activate import journey as journey_module
from opencdp.activate.journey import (
    END,
    MAX_STEPS,
    Journey,
    JourneyError,
    parse_journey,
)

ENTRY = {"event": 'type = "track"'}
END_STEP = {"key": "done", "end": True}


def parse(steps: list[dict[str, Any]], **fields: Any) -> Journey:
    return parse_journey("j", {"entry": ENTRY, "steps": steps, **fields})


def problem(body: Any) -> str:
    """The message of the JourneyError ``body`` gets (a 400 ``invalid_journey``)."""
    with pytest.raises(JourneyError) as caught:
        parse_journey("j", body)
    assert (caught.value.code, caught.value.status) == ("invalid_journey", 400)
    return str(caught.value)


def step_problem(steps: list[dict[str, Any]], **fields: Any) -> str:
    return problem({"entry": ENTRY, "steps": steps, **fields})


# -- what compiles ---------------------------------------------------------------------------------


def test_the_defaults_every_time_a_year_and_a_day() -> None:
    j = parse([{"key": "a", "wait": "1 hour"}])
    assert j.key == "j" and j.name == "j"  # no name: the key
    assert j.reentry == "every_time"
    assert j.lifetime == timedelta(days=365)
    assert j.exit_rules == ()
    (trigger,) = j.triggers
    assert trigger.max_event_age == timedelta(days=1)
    assert trigger.new_profile is False and trigger.unique_identifier is None
    assert trigger.audience is None and trigger.condition is not None
    assert trigger.condition.matches({"type": "track"})
    assert not trigger.condition.matches({"type": "identify"})


def test_every_step_kind_compiles_with_its_fields() -> None:
    j = parse(
        [
            {"key": "pause", "wait": "2 days"},
            {
                "key": "hold",
                "wait_until": {
                    "timeout": "90 minutes",
                    "on_timeout": "tell",
                    "branches": [
                        {"name": "bought", "event": 'event = "Order Completed"', "next": END},
                        {
                            "name": "again",
                            "event": 'event = "Product Added"',
                            "match_identifier": True,
                            "restart": True,
                        },
                    ],
                },
            },
            {
                "key": "vip",
                "split": {"condition": "traits.tier = 'gold'", "then": "tell", "else": "done"},
            },
            {
                "key": "tell",
                "send": {
                    "destination": "mail",
                    "event_name": "Told",
                    "mapping": {"email": {"@path": "$.context.traits.email"}},
                    "template": {"subject": "Hi"},
                },
                "next": "done",
            },
            {"key": "quiet", "send": {"destination": "hook"}},
            END_STEP,
        ],
        name="Everything",
    )
    assert j.name == "Everything"
    assert [(s.key, s.kind) for s in j.steps] == [
        ("pause", "wait"),
        ("hold", "wait_until"),
        ("vip", "split"),
        ("tell", "send"),
        ("quiet", "send"),
        ("done", "end"),
    ]
    pause, hold, vip, tell, quiet, done = j.steps
    assert pause.duration == timedelta(days=2) and pause.next is None
    assert hold.duration == timedelta(minutes=90) and hold.on_timeout == "tell"
    bought, again = hold.branches
    assert (bought.name, bought.next, bought.restart, bought.match_identifier) == (
        "bought",
        END,
        False,
        False,
    )
    assert (again.name, again.next, again.restart, again.match_identifier) == (
        "again",
        None,
        True,
        True,
    )
    assert bought.condition.matches({"event": "Order Completed"})
    assert vip.condition is not None and vip.condition.matches({"traits": {"tier": "gold"}})
    assert (vip.then, vip.otherwise) == ("tell", "done")
    assert (tell.destination, tell.event_name, tell.next) == ("mail", "Told", "done")
    assert tell.mapping == {"email": {"@path": "$.context.traits.email"}}
    assert tell.template == {"subject": "Hi"}
    # a send without an event_name is named after its step
    assert (quiet.event_name, quiet.mapping, quiet.template) == ("quiet", None, None)
    assert done.kind == "end"
    assert j.destinations() == {"mail", "hook"}
    assert j.uses_profile()
    assert j.first == "pause"
    assert j.following("pause") == "hold" and j.following("done") is None
    assert j.step("tell") is tell


def test_a_journey_of_waits_does_not_read_profiles() -> None:
    j = parse([{"key": "a", "wait": "1 second"}, END_STEP])
    assert not j.uses_profile() and j.destinations() == set()


def test_the_documented_example_compiles_from_yaml() -> None:
    # The module's docstring shows a journey file: it must be one
    doc = journey_module.__doc__
    assert doc is not None
    example = doc.split("::", 1)[1].split("Step kinds", 1)[0]
    body = yaml.safe_load(textwrap.dedent(example))
    j = parse_journey("abandoned-cart", body)
    assert j.name == "Abandoned cart" and j.lifetime == timedelta(days=30)
    assert j.triggers[0].unique_identifier == ("properties", "cart_id")
    assert [s.kind for s in j.steps] == ["wait_until", "send"]
    assert [r.name for r in j.exit_rules] == ["rule 1"]  # unnamed rules are numbered
    assert j.source is body


def test_reentry_once_and_after_a_duration() -> None:
    assert parse([END_STEP], reentry="once").reentry == "once"
    assert parse([END_STEP], reentry={"after": "2 weeks"}).reentry == timedelta(weeks=2)


def test_exit_after_and_named_rules() -> None:
    j = parse(
        [END_STEP],
        exit={
            "after": "30 days",
            "rules": [
                {"name": "ordered", "event": 'event = "Order Completed"', "match_identifier": True},
                {"event": 'event = "Unsubscribed"'},
            ],
        },
    )
    assert j.lifetime == timedelta(days=30)
    ordered, second = j.exit_rules
    assert (ordered.name, ordered.match_identifier) == ("ordered", True)
    assert (second.name, second.match_identifier) == ("rule 2", False)
    assert second.condition.matches({"event": "Unsubscribed"})


def test_entry_as_a_list_of_triggers() -> None:
    j = parse_journey(
        "j",
        {
            "entry": [
                {"event": 'event = "Signed Up"', "max_event_age": "2 hours"},
                {"audience": "vip", "new_profile": True},
                {"event": "all", "unique_identifier": "properties.cart_id"},
            ],
            "steps": [END_STEP],
        },
    )
    signed, vip, anything = j.triggers
    assert signed.max_event_age == timedelta(hours=2) and signed.audience is None
    assert (vip.audience, vip.condition, vip.new_profile) == ("vip", None, True)
    assert anything.unique_identifier == ("properties", "cart_id")


def test_the_longest_and_shortest_durations_are_allowed() -> None:
    j = parse([{"key": "a", "wait": "1 second"}, {"key": "b", "wait": "365 days"}])
    assert [s.duration for s in j.steps] == [timedelta(seconds=1), timedelta(days=365)]


def test_forward_targets_and_end_are_allowed() -> None:
    j = parse(
        [
            {"key": "a", "split": {"condition": "all", "then": "c", "else": END}, "next": "b"},
            {"key": "b", "wait": "1 hour", "next": END},
            {"key": "c", "wait": "1 hour"},
        ]
    )
    assert (j.step("a").then, j.step("a").otherwise, j.step("a").next) == ("c", END, "b")
    assert j.step("b").next == END


def test_the_longest_journey_has_max_steps() -> None:
    steps = [{"key": f"s{i}", "wait": "1 hour"} for i in range(MAX_STEPS)]
    assert len(parse(steps).steps) == MAX_STEPS
    assert step_problem([*steps, END_STEP]).startswith("steps: ")


# -- what is refused, naming the field -------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "steps: []", 3])
def test_a_journey_is_an_object(body: Any) -> None:
    assert problem(body) == "a journey is a JSON object (or a YAML mapping)"


@pytest.mark.parametrize(
    ("target", "where"),
    [
        ({"key": "b", "wait": "1 hour", "next": "a"}, "steps.1.next"),
        ({"key": "b", "wait": "1 hour", "next": "b"}, "steps.1.next"),  # itself
        (
            {"key": "b", "split": {"condition": "all", "then": "a"}},
            "steps.1.split.then",
        ),
        (
            {"key": "b", "split": {"condition": "all", "else": "b"}},
            "steps.1.split.else",
        ),
        (
            {
                "key": "b",
                "wait_until": {
                    "timeout": "1 hour",
                    "on_timeout": "a",
                    "branches": [{"name": "x", "event": "all"}],
                },
            },
            "steps.1.wait_until.on_timeout",
        ),
        (
            {
                "key": "b",
                "wait_until": {
                    "timeout": "1 hour",
                    "branches": [
                        {"name": "x", "event": "all", "next": "c"},
                        {"name": "y", "event": "all", "next": "a"},
                    ],
                },
            },
            "steps.1.wait_until.branches.1.next",
        ),
    ],
)
def test_targets_only_point_forward(target: dict[str, Any], where: str) -> None:
    steps = [{"key": "a", "wait": "1 hour"}, target, {"key": "c", "wait": "1 hour"}]
    message = step_problem(steps)
    assert message.startswith(f"{where}: "), message
    assert "is not after this step" in message and "no loops" in message


def test_a_target_names_an_existing_step() -> None:
    message = step_problem([{"key": "a", "wait": "1 hour", "next": "nowhere"}])
    assert message == "steps.0.next: no step is called 'nowhere'"


def test_step_keys_are_unique() -> None:
    message = step_problem(
        [
            {"key": "b", "wait": "1 hour"},
            {"key": "a", "wait": "1 hour"},
            {"key": "b", "wait": "1 hour"},
            {"key": "a", "end": True},
        ]
    )
    assert message == "steps: the keys ['a', 'b'] are used twice; each step's key is unique"


def test_end_is_a_reserved_key() -> None:
    message = step_problem([{"key": "a", "wait": "1 hour"}, {"key": END, "end": True}])
    assert message == "steps: 'end' is reserved (it ends the journey)"


@pytest.mark.parametrize(
    ("step", "found"),
    [
        ({"key": "a"}, "none"),
        ({"key": "a", "end": False}, "none"),
        ({"key": "a", "wait": "1 hour", "end": True}, "['wait', 'end']"),
        (
            {"key": "a", "split": {"condition": "all"}, "send": {"destination": "d"}},
            "['split', 'send']",
        ),
    ],
)
def test_a_step_is_exactly_one_kind(step: dict[str, Any], found: str) -> None:
    assert step_problem([step]) == (
        f"steps.0: give exactly one of wait, wait_until, split, send, end (found {found})"
    )


@pytest.mark.parametrize(
    ("steps", "fields", "where"),
    [
        ([{"key": "a", "wait": "0.5 seconds"}], {}, "steps.0.wait"),
        ([{"key": "a", "wait": "366 days"}], {}, "steps.0.wait"),
        (
            [
                {"key": "a", "wait": "1 hour"},
                {
                    "key": "b",
                    "wait_until": {
                        "timeout": "53 weeks",
                        "branches": [{"name": "x", "event": "all"}],
                    },
                },
            ],
            {},
            "steps.1.wait_until.timeout",
        ),
        ([END_STEP], {"exit": {"after": "400 days"}}, "exit.after"),
        ([END_STEP], {"exit": {"after": "0 seconds"}}, "exit.after"),
    ],
)
def test_durations_are_between_a_second_and_a_year(
    steps: list[dict[str, Any]], fields: dict[str, Any], where: str
) -> None:
    message = step_problem(steps, **fields)
    assert message.startswith(f"{where}: "), message
    assert message.endswith("between 1 second and 365 days"), message


@pytest.mark.parametrize("text", ["soon", "1 fortnight", "hour", ""])
def test_a_duration_that_does_not_parse_says_how_to_write_one(text: str) -> None:
    message = step_problem([{"key": "a", "wait": text}])
    assert message.startswith(f"steps.0.wait: {text!r} is not a duration"), message
    assert "'30 seconds'" in message


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("properties.cart_id", ("properties", "cart_id")),
        ("userId", ("userId",)),
        ("properties..cart_id", None),
        ("properties.", None),
        (".cart_id", None),
        ("", None),
    ],
)
def test_unique_identifier_is_a_property_path(path: str, ok: tuple[str, ...] | None) -> None:
    body = {"entry": {**ENTRY, "unique_identifier": path}, "steps": [END_STEP]}
    if ok is not None:
        assert parse_journey("j", body).triggers[0].unique_identifier == ok
    else:
        assert problem(body) == (
            "entry.unique_identifier: a property path such as properties.cart_id"
        )


def test_a_trigger_is_an_event_or_an_audience() -> None:
    both = {"event": "all", "audience": "vip"}
    neither = {"new_profile": True}
    expected = "give either event (FQL) or audience (a key)"
    assert problem({"entry": both, "steps": [END_STEP]}) == f"entry: {expected}"
    assert problem({"entry": [ENTRY, neither], "steps": [END_STEP]}) == f"entry.1: {expected}"


def test_entry_needs_a_trigger() -> None:
    assert problem({"entry": [], "steps": [END_STEP]}) == "entry: at least one trigger"
    assert problem({"steps": [END_STEP]}).startswith("entry: ")


def test_a_journey_needs_a_step() -> None:
    assert problem({"entry": ENTRY, "steps": []}).startswith("steps: ")
    assert problem({"entry": ENTRY}).startswith("steps: ")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"entry": {"event": "event = "}, "steps": [END_STEP]}, "entry.event"),
        ({"entry": [ENTRY, {"event": "a = = b"}], "steps": [END_STEP]}, "entry.1.event"),
        (
            {"entry": ENTRY, "exit": {"rules": [ENTRY, {"event": "nope("}]}, "steps": [END_STEP]},
            "exit.rules.1.event",
        ),
        (
            {"entry": ENTRY, "steps": [{"key": "a", "split": {"condition": ""}}]},
            "steps.0.split.condition",
        ),
        (
            {
                "entry": ENTRY,
                "steps": [
                    {
                        "key": "a",
                        "wait_until": {
                            "timeout": "1 hour",
                            "branches": [
                                {"name": "x", "event": "all"},
                                {"name": "y", "event": "unknown_function(x)"},
                            ],
                        },
                    }
                ],
            },
            "steps.0.wait_until.branches.1.event",
        ),
    ],
)
def test_fql_errors_name_the_field(body: dict[str, Any], where: str) -> None:
    message = problem(body)
    assert message.startswith(f"{where}: "), message
    assert len(message) > len(where) + 2  # and say what is wrong


def test_mapping_errors_name_the_field() -> None:
    message = step_problem(
        [
            {"key": "a", "wait": "1 hour"},
            {"key": "b", "send": {"destination": "d", "mapping": {"x": {"@nope": 1}}}},
        ]
    )
    assert message.startswith("steps.1.send.mapping: "), message
    assert "@nope" in message


def test_wait_until_branches_have_distinct_names_and_at_least_one() -> None:
    same = [{"name": "x", "event": "all"}, {"name": "x", "event": "all"}]
    message = step_problem([{"key": "a", "wait_until": {"timeout": "1 hour", "branches": same}}])
    assert message == "steps.0.wait_until.branches: each branch needs its own name"
    none: list[dict[str, Any]] = []
    message = step_problem([{"key": "a", "wait_until": {"timeout": "1 hour", "branches": none}}])
    assert message.startswith("steps.0.wait_until.branches: "), message


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"entry": ENTRY, "steps": [END_STEP], "colour": "red"}, "colour"),
        ({"entry": ENTRY, "steps": [{**END_STEP, "colour": "red"}]}, "steps.0.colour"),
        (
            {"entry": ENTRY, "steps": [{"key": "a", "send": {"destination": "d", "colour": 1}}]},
            "steps.0.send.colour",
        ),
        (
            {
                "entry": ENTRY,
                "steps": [
                    {
                        "key": "a",
                        "wait_until": {
                            "timeout": "1 hour",
                            "branches": [{"name": "x", "event": "all", "colour": 1}],
                        },
                    }
                ],
            },
            "steps.0.wait_until.branches.0.colour",
        ),
        (
            {"entry": ENTRY, "steps": [{"key": "a", "split": {"condition": "all", "colour": 1}}]},
            "steps.0.split.colour",
        ),
        ({"entry": ENTRY, "exit": {"colour": 1}, "steps": [END_STEP]}, "exit.colour"),
        (
            {
                "entry": ENTRY,
                "exit": {"rules": [{"event": "all", "colour": 1}]},
                "steps": [END_STEP],
            },
            "exit.rules.0.colour",
        ),
    ],
)
def test_unknown_keys_are_refused(body: dict[str, Any], where: str) -> None:
    assert problem(body) == f"{where}: Extra inputs are not permitted"


@pytest.mark.parametrize("key", ["", "-a", "a b", "a/b", "x" * 65])
def test_step_keys_are_names(key: str) -> None:
    assert step_problem([{"key": key, "end": True}]).startswith("steps.0.key: ")


# entry (a trigger or a list of them) and reentry (a word or {after}) take two shapes: an
# error names the field as written, never the shape pydantic tried, and comes from the shape
# that was given (a bad item of a list is not reported as "not a trigger").
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"entry": {**ENTRY, "colour": 1}}, "entry.colour: Extra inputs are not permitted"),
        (
            {"entry": [ENTRY, {**ENTRY, "colour": 1}]},
            "entry.1.colour: Extra inputs are not permitted",
        ),
        (
            {"entry": [ENTRY, {**ENTRY, "max_event_age": "400 days"}]},
            "entry.1.max_event_age: '400 days': between 1 second and 365 days",
        ),
        (
            {"entry": {**ENTRY, "max_event_age": "0.5 seconds"}},
            "entry.max_event_age: '0.5 seconds': between 1 second and 365 days",
        ),
        (
            {"entry": ENTRY, "reentry": {"after": "400 days"}},
            "reentry.after: '400 days': between 1 second and 365 days",
        ),
        (
            {"entry": ENTRY, "reentry": {"after": "1 day", "colour": 1}},
            "reentry.colour: Extra inputs are not permitted",
        ),
        (
            {"entry": ENTRY, "reentry": "sometimes"},
            "reentry: Input should be 'every_time' or 'once'",
        ),
    ],
)
def test_errors_inside_entry_and_reentry_name_the_field_as_written(
    fields: dict[str, Any], expected: str
) -> None:
    assert problem({"steps": [END_STEP], **fields}) == expected


def test_a_reentry_duration_that_does_not_parse_says_so() -> None:
    message = problem({"entry": ENTRY, "steps": [END_STEP], "reentry": {"after": "forever"}})
    assert message.startswith("reentry.after: 'forever' is not a duration"), message
