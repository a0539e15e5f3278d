"""Segment's Actions mapping kit (activation-compat §2.1, §2.2, §7.2).

Examples come from the digest and from the kit's README and tests in
segmentio/action-destinations; where we deviate on purpose the test says so.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.activate import mapping_liquid
from opencdp.activate.mapping import (
    DIRECTIVES,
    CompiledMapping,
    MappingError,
    MappingEvaluationError,
    compile_mapping,
    resolve,
    validate_mapping,
)
from opencdp.errors import RequestError


def problems_of(mapping: Any) -> list[str]:
    with pytest.raises(MappingError) as caught:
        validate_mapping(mapping)
    assert type(caught.value) is MappingError
    return caught.value.problems


# -- the model: raw values, undefined removal, directive arguments --------------------------


def test_undefined_keys_are_removed_and_null_is_kept() -> None:
    mapping = {"foo": {"@path": "$.a"}, "bar": {"@path": "$.b"}, "baz": None}
    assert resolve(mapping, {"a": 1}) == {"foo": 1, "baz": None}


def test_undefined_is_removed_at_every_depth_and_becomes_null_inside_arrays() -> None:
    mapping = {"x": {"y": {"z": {"@path": "$.nope"}}}, "list": [{"@path": "$.nope"}, 1], "e": {}}
    assert resolve(mapping, {}) == {"x": {"y": {}}, "list": [None, 1], "e": {}}


def test_raw_values_are_copied_unchanged() -> None:
    mapping = {"name": "Mr. Rogers", "n": 42, "ok": True, "list": ["a", None, 1.5], "o": {}}
    assert resolve(mapping, {"name": "ignored"}) == mapping


def test_metadata_beside_a_directive_is_ignored() -> None:
    mapping = {"@path": "$.a", "_metadata": {"label": "A", "type": "variable"}}
    assert resolve(mapping, {"a": 5}) == 5


def test_directive_arguments_may_be_directives() -> None:
    # The inner @path names the path the outer one reads.
    assert resolve({"@path": {"@path": "$.foo"}}, {"foo": "bar", "bar": "baz"}) == "baz"
    assert resolve({"@template": {"@path": "$.t"}}, {"t": "Hi {{who}}", "who": "Ada"}) == "Hi Ada"


def test_a_mapping_resolving_to_undefined_gives_the_default() -> None:
    compiled = compile_mapping({"@path": "$.missing"})
    assert compiled.apply({}) is None
    marker = object()
    assert compiled.apply({}, default=marker) is marker
    assert compiled.apply({"missing": None}, default=marker) is None


def test_the_whole_event_takes_the_zero_copy_fast_path() -> None:
    event = {"type": "track", "properties": {"a": 1}}
    for mapping in ({"@path": "$."}, {"@path": "$.", "_metadata": {"type": "variable"}}):
        compiled = compile_mapping(mapping)
        assert compiled.passthrough
        assert compiled.apply(event) is event
    assert not compile_mapping({"data": {"@path": "$."}}).passthrough
    assert resolve({"data": {"@path": "$."}}, event)["data"] is event


def test_values_taken_from_the_event_are_not_copied_and_the_event_is_not_changed() -> None:
    event = {"properties": {"tags": ["a"], "nested": {"k": None}}}
    before = copy.deepcopy(event)
    result = resolve(
        {
            "tags": {"@path": "$.properties.tags"},
            "clean": {"@excludeWhenNull": {"@path": "$.properties"}},
        },
        event,
    )
    assert result["tags"] is event["properties"]["tags"]
    assert result["clean"] == {"tags": ["a"], "nested": {}}
    assert event == before


def test_objects_built_by_the_mapping_are_fresh_on_every_apply() -> None:
    compiled = compile_mapping({"headers": {"X-Source": "opencdp"}, "list": [1]})
    first = compiled.apply({})
    first["headers"]["X-Source"] = "changed"
    first["list"].append(2)
    assert compiled.apply({}) == {"headers": {"X-Source": "opencdp"}, "list": [1]}


def test_segment_root_directive_runs_a_transform_under_the_other_fields() -> None:
    # Segment's getMappingToProcess: the other fields become the root @transform's mapping.
    mapping = {
        "__segment_internal_directive": {
            "@transform": {
                "apply": {
                    "properties": {
                        "@flatten": {"value": {"@path": "$.properties"}, "separator": "_"}
                    }
                }
            }
        },
        "properties": {"@path": "$.properties"},
        "topLevel": {"@path": "$.properties.nested_a"},
    }
    event = {"properties": {"test": "value", "nested": {"a": "special", "b": 2}}, "other": 1}
    assert resolve(mapping, event) == {
        "properties": {"test": "value", "nested_a": "special", "nested_b": 2},
        "topLevel": "special",
    }
    assert problems_of({"__segment_internal_directive": {"@path": "$.a"}, "x": 1}) == [
        '$.__segment_internal_directive: holds {"@transform": {"apply": ...}}, nothing else'
    ]


# -- validation ----------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_place() -> None:
    mapping = {
        "obj": {"@path": "foo.bar", "oops": True},
        "hash": {"@template": {}},
        "data": {
            "total": {"@pth": "$.total"},
            "both": {"@path": "$.a", "@template": "{{a}}"},
            "items": [1, {"@Path": "$.x"}],
            "odd key": {"@case": {"operator": "title", "value": {"@path": "$.a"}}},
        },
        "copy": {"@literal": {"deep": {"@flatten": {"value": {"@path": "$."}}}}},
    }
    assert problems_of(mapping) == [
        "$.obj: has raw keys ('oops') beside @path; a directive has only its @ key",
        "$.hash.@template: takes a template string or a directive, found an object",
        "$.data.total: unknown directive @pth (did you mean @path?)",
        "$.data.both: has 2 @ keys (@path, @template); a directive has exactly one",
        "$.data.items[1]: '@Path' is not a directive name: names match @[a-z][a-zA-Z0-9]+"
        " (did you mean @path?)",
        "$.data['odd key'].@case.operator: is one of lower, upper, found 'title'",
        "$.copy.@literal.deep.@flatten.separator: is a non-empty string, found null",
    ]


def test_mapping_error_is_a_permanent_400_listing_the_problems() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping({"a": {"@nope": 1}, "b": {"@liquid": 5}})
    error = caught.value
    assert isinstance(error, RequestError)
    assert (error.code, error.status, error.retryable) == ("invalid_mapping", 400, False)
    assert error.problems == [
        "$.a: unknown directive @nope",
        "$.b.@liquid: takes a template string, found a number",
    ]
    assert str(error) == (
        "invalid mapping (2): $.a: unknown directive @nope; "
        "$.b.@liquid: takes a template string, found a number"
    )


def test_valid_mappings_pass_validation() -> None:
    for mapping in (["cool"], 123, "neat", None, {"foo": "bar"}, {"@literal": False}, {}):
        assert validate_mapping(mapping) is None
    # The digest's table has 13 rows (its "14" miscounts): these are AD's value-keys.ts names,
    # and OpenCDP's own @catalog.
    assert set(DIRECTIVES) == {
        "@path", "@template", "@literal", "@if", "@arrayPath", "@case", "@replace", "@merge",
        "@transform", "@flatten", "@json", "@excludeWhenNull", "@liquid", "@catalog",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"@path": False}, "$.@path: takes a path string or a directive, found a boolean"),
        ({"@template": 123}, "$.@template: takes a template string or a directive, found a number"),
        (
            {"@arrayPath": "nope"},
            "$.@arrayPath: takes an array [path, item shape?], found a string",
        ),
        (
            {"@arrayPath": [{"a": 1}]},
            "$.@arrayPath[0]: takes a path string or a directive, found an object",
        ),
        ({"@if": {"then": 1}}, '$.@if: needs "exists" or "blank"'),
        ({"@if": {"exists": True, "then": {"@oops": {}}}}, "$.@if.then: unknown directive @oops"),
        (
            {"@if": {"@path": "$.a"}},
            '$.@if: takes an object {"exists" or "blank", "then", "else"}, found a directive',
        ),
        ({"@case": {"value": "x"}}, '$.@case: needs "operator"'),
        (
            {"@case": "not an object"},
            '$.@case: takes an object {"operator": "lower" or "upper", "value"}, found a string',
        ),
        (
            {"@case": {"operator": "lower", "value": 3}},
            "$.@case.value: takes a string or a directive, found a number",
        ),
        ({"@replace": {"value": {"@path": "$.a"}}}, '$.@replace: needs "pattern"'),
        ({"@replace": {"pattern": "bla"}}, '$.@replace: needs "value"'),
        (
            {"@replace": {"pattern": "waaaaayyytoooooloooong", "value": "a"}},
            "$.@replace.pattern: has 1 to 10 characters, found 22",
        ),
        (
            {"@replace": {"pattern": "w", "replacement": "waaaayyyytooolong", "value": "a"}},
            "$.@replace.replacement: has 0 to 10 characters, found 17",
        ),
        (
            {"@replace": {"pattern": "w", "pattern2": "elevenchars", "value": "a"}},
            "$.@replace.pattern2: has 1 to 10 characters, found 11",
        ),
        (
            {"@replace": {"pattern": "w", "replacement2": 1, "value": "a"}},
            "$.@replace.replacement2: is a string, found a number",
        ),
        (
            {"@replace": {"pattern": "+", "value": "a", "global": "bla"}},
            "$.@replace.global: is true or false, found a string",
        ),
        (
            {"@replace": {"pattern": "+", "value": "a", "ignorecase": "bla"}},
            "$.@replace.ignorecase: is true or false, found a string",
        ),
        (
            {"@merge": {"objects": [{}, 123], "direction": "right"}},
            "$.@merge.objects[1]: is an object or a directive, found a number",
        ),
        (
            {"@merge": {"objects": {"oops": True}, "direction": "left"}},
            "$.@merge.objects: is an array of objects, found an object",
        ),
        (
            {"@merge": {"objects": [], "direction": "up"}},
            "$.@merge.direction: is one of right, left, found 'up'",
        ),
        ({"@merge": {"objects": []}}, '$.@merge: needs "direction"'),
        ({"@transform": {"apply": {"a": 1}}}, '$.@transform: needs "mapping"'),
        (
            {"@transform": {"apply": 1, "mapping": {}}},
            "$.@transform.apply: is an object or a directive, found a number",
        ),
        (
            {"@flatten": {"value": {}, "separator": ""}},
            "$.@flatten.separator: is a non-empty string, found ''",
        ),
        ({"@flatten": {"separator": "."}}, '$.@flatten: needs "value"'),
        (
            {"@flatten": {"value": {}, "separator": ".", "omitArrays": "yes"}},
            "$.@flatten.omitArrays: is true or false, found a string",
        ),
        (
            {"@json": {"mode": "oops", "value": 1}},
            "$.@json.mode: is one of encode, decode, found 'oops'",
        ),
        ({"@json": {"mode": "encode"}}, '$.@json: needs "value"'),
        ({"@liquid": {"@path": "$.a"}}, "$.@liquid: takes a template string, found a directive"),
        ({"@excludeWhenNull": {"@nope": 1}}, "$.@excludeWhenNull: unknown directive @nope"),
        ({"a": {1, 2}}, "$.a: is a set, not a JSON value"),
    ],
)
def test_each_directive_checks_its_arguments(mapping: Any, problem: str) -> None:
    assert problems_of(mapping) == [problem]


def test_mappings_nested_too_deeply_are_refused() -> None:
    mapping: Any = "leaf"
    for _ in range(70):
        mapping = {"a": mapping}
    assert problems_of(mapping) == ["$" + ".a" * 64 + ": nested deeper than 64 levels"]


# -- @path ---------------------------------------------------------------------------------

PATH_EVENT = {
    "foo": {"bar": 42, "baz": [{"num": 1}, {"num": 2}]},
    "hello": "world",
    "a b": {"c": 3},
    "x[y]": 4,
    "zero": 0,
    "integrations": {"Actions Amplitude": {"session_id": "s1"}},
    "byIndex": {"0": "key zero"},
    "$": {"a": "dollar"},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.hello", "world"),
        ("hello", "world"),
        ("$.foo.bar", 42),
        ("$.foo.baz[0].num", 1),
        ("foo.baz[1].num", 2),
        ("foo.baz.1.num", 2),  # a dotted number indexes an array too
        ("$.['a b'].c", 3),
        ('["a b"].c', 3),
        ("['a b']['c']", 3),
        ("x[y]", 4),  # a bracket holding neither a number nor a quoted string is part of the key
        ("$.integrations.Actions Amplitude.session_id", "s1"),
        ("byIndex[0]", "key zero"),  # an index on an object is a key
        ("foo..bar", 42),  # empty segments are skipped
        ("$.$.a", "dollar"),  # only the leading $. is optional
        ("$['a']", "dollar"),  # so $ before a bracket is a key, as in Segment
    ],
)
def test_path_reads_the_value_at_a_path(path: str, expected: Any) -> None:
    assert resolve({"@path": path}, PATH_EVENT) == expected


@pytest.mark.parametrize("path", ["$.", "", "."])
def test_path_to_the_root_is_the_whole_event(path: str) -> None:
    assert resolve({"@path": path}, PATH_EVENT) is PATH_EVENT


@pytest.mark.parametrize(
    "path",
    ["$.oops", "foo.bar.baz", "foo.baz[2]", "foo.baz[-1]", "hello.length", "zero.a", "foo.baz.x"],
)
def test_path_to_a_missing_place_is_undefined(path: str) -> None:
    # Only objects and arrays are entered (get.ts gives 0 for zero.a and 5 for hello.length).
    assert resolve({"v": {"@path": path}}, PATH_EVENT) == {}


def test_a_computed_path_that_is_not_a_string_fails_the_event() -> None:
    compiled = compile_mapping({"v": {"@path": {"@path": "$.which"}}})
    assert compiled.apply({"which": "a", "a": 1}) == {"v": 1}
    with pytest.raises(MappingEvaluationError) as caught:
        compiled.apply({"which": 7})
    assert caught.value.problems == ["$.v.@path: the directive gave a number, not a path string"]
    assert caught.value.code == "mapping_failed"


# -- @template -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "event", "expected"),
    [
        ("Hello, {{who}}!", {"who": "World"}, "Hello, World!"),
        ("Hello, {{who.name}}!", {"who": {"name": "World"}}, "Hello, World!"),
        ("Hello, {{ traits.fullName }}!", {"traits": {}}, "Hello, !"),
        (
            "{{traits.name}} ({{userId}})",
            {"traits": {"name": "Mr. Rogers"}, "userId": "abc123"},
            "Mr. Rogers (abc123)",
        ),
        ("<blink>{{a}} {{{a}}}</blink>", {"a": "<b>Hi</b>"}, "<blink><b>Hi</b> <b>Hi</b></blink>"),
        ("{{oops.yo}}", {}, ""),
        ("[{{n}}]", {"n": None}, "[]"),
        (
            "{{ n }} {{f}} {{g}} {{t}}",
            {"n": 42, "f": 10.0, "g": 1e-7, "t": True},
            "42 10 1e-7 true",
        ),
        ("{{$.a}}", {"a": 1}, ""),  # placeholders take $ as a key, as Segment's do
        ("{{{a}} and {a}}", {"a": "x"}, " and {a}}"),  # the path is "{a"
        ("{{a}}", {"a": "{{b}}", "b": "nope"}, "{{b}}"),  # substituted text is not read again
    ],
)
def test_template_replaces_placeholders(
    template: str, event: dict[str, Any], expected: str
) -> None:
    assert resolve({"@template": template}, event) == expected


def test_template_writes_arrays_and_objects_as_json() -> None:
    # Deviation 2 (§7.2): Segment writes "a,b" and "[object Object]".
    event = {"tags": ["a", "b"], "o": {"k": 1, "s": "é"}}
    assert resolve({"@template": "{{tags}} {{o}}"}, event) == '["a","b"] {"k":1,"s":"é"}'


@pytest.mark.parametrize(
    ("number", "text"),
    [(1e21, "1e+21"), (1.5e22, "1.5e+22"), (1e20, "100000000000000000000"), (1e-6, "0.000001"),
     (1e-7, "1e-7"), (-2.5e-8, "-2.5e-8"), (-0.0, "0"), (123.456, "123.456"), (-7, "-7"),
     (0.1 + 0.2, "0.30000000000000004")],
)  # fmt: skip
def test_template_writes_numbers_as_javascript_does(number: float, text: str) -> None:
    assert resolve({"@template": "{{n}}"}, {"n": number}) == text


# -- @literal ------------------------------------------------------------------------------


def test_literal_returns_its_argument_resolved() -> None:
    assert resolve({"simple": {"@literal": False}, "empty": {"@literal": ""}}, {}) == {
        "simple": False,
        "empty": "",
    }
    mapping = {"nested": {"@literal": {"a": {"@path": "$.a"}, "b": {"@path": "$.b"}}}}
    assert resolve(mapping, {"a": "some value"}) == {"nested": {"a": "some value"}}


# -- @if -----------------------------------------------------------------------------------

IF_EVENT = {"a": 1, "b": True, "c": False, "d": None, "e": "", "z": 0, "l": [], "s": " "}


@pytest.mark.parametrize(
    ("path", "exists", "blank"),
    [
        ("$.a", 1, 1),
        ("$.b", 1, 1),
        ("$.c", 1, 2),  # false == "" in JavaScript
        ("$.d", 2, 2),
        ("$.x", 2, 2),
        ("$.e", 1, 2),
        ("$.z", 1, 2),  # 0 == ""
        ("$.l", 1, 2),  # [] == ""
        ("$.s", 1, 1),  # " " != ""
    ],
)
def test_if_exists_and_blank(path: str, exists: int, blank: int) -> None:
    for condition, expected in (("exists", exists), ("blank", blank)):
        mapping = {"@if": {condition: {"@path": path}, "then": 1, "else": 2}}
        assert resolve(mapping, IF_EVENT) == expected, (condition, path)


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        ([None], True),
        ([""], True),
        ([[]], True),
        ([[None]], True),
        ([0], False),
        ([False], False),
        (["", ""], False),
        ({}, False),
        (0.0, True),
        ("0", False),
    ],
)
def test_if_blank_follows_javascript_loose_equality_for_arrays(value: Any, blank: bool) -> None:
    mapping = {"@if": {"blank": {"@path": "$.v"}, "then": "filled", "else": "blank"}}
    assert resolve(mapping, {"v": value}) == ("blank" if blank else "filled")


def test_if_without_the_needed_branch_drops_the_key() -> None:
    mapping = {
        "foo-exists": {"@if": {"exists": {"@path": "$.foo"}, "then": True}},
        "a": {"@if": {"exists": {"@path": "$.oops"}, "then": {"@path": "$.a"}}},
        "only-else": {"@if": {"exists": {"@path": "$.a"}, "else": "nope"}},
    }
    assert resolve(mapping, {"a": "cool"}) == {}


@pytest.mark.parametrize("otherwise", [False, 0, "", None])
def test_if_returns_a_falsy_else(otherwise: Any) -> None:
    # Deviation 1 (§7.2): Segment's code drops the key for these; its README returns them.
    mapping = {"v": {"@if": {"exists": {"@path": "$.missing"}, "then": "yes", "else": otherwise}}}
    assert resolve(mapping, {}) == {"v": otherwise}


def test_if_exists_wins_over_blank_and_branches_may_be_directives() -> None:
    mapping = {
        "@if": {"exists": {"@path": "$.e"}, "blank": {"@path": "$.e"}, "then": {"@path": "$.a"}}
    }
    assert resolve(mapping, IF_EVENT) == 1


# -- @arrayPath ----------------------------------------------------------------------------

PRODUCTS = {"products": [{"productId": "123", "price": 0.5}, {"productId": "456", "price": 0.99}]}
SHAPE = {"product_id": {"@path": "$.productId"}, "monies": {"@path": "$.price"}}


def test_array_path_without_a_shape_returns_the_root() -> None:
    assert resolve({"neat": {"@arrayPath": ["$.products"]}}, PRODUCTS) == {
        "neat": PRODUCTS["products"]
    }
    assert resolve({"neat": {"@arrayPath": ["$.products", {}]}}, PRODUCTS) == {
        "neat": PRODUCTS["products"]
    }


def test_array_path_resolves_the_shape_against_each_item() -> None:
    expected = [{"product_id": "123", "monies": 0.5}, {"product_id": "456", "monies": 0.99}]
    assert resolve({"@arrayPath": ["$.products", SHAPE]}, PRODUCTS) == expected
    # A directive first gives the root itself, not a path.
    guarded = {
        "@if": {"exists": {"@path": "$.products"}, "then": {"@path": "$.products"}, "else": []}
    }
    assert resolve({"@arrayPath": [guarded, SHAPE]}, PRODUCTS) == expected
    assert resolve({"@arrayPath": [guarded, SHAPE]}, {}) == []


def test_array_path_wraps_a_lone_object_and_passes_other_roots_through() -> None:
    assert resolve({"@arrayPath": ["$.properties", SHAPE]}, {"properties": {"productId": "1"}}) == [
        {"product_id": "1"}
    ]
    assert resolve({"@arrayPath": ["$.p", SHAPE]}, {"p": {"notAnArray": True}}) == [{}]
    assert resolve({"@arrayPath": ["$.p", SHAPE]}, {"p": "text"}) == "text"
    assert resolve({"v": {"@arrayPath": ["$.p", SHAPE]}}, {}) == {}


def test_array_path_shape_may_be_a_directive_and_items_may_be_scalars() -> None:
    event = {"items": [{"id": 1}, {"id": 2}, 3]}
    assert resolve({"@arrayPath": ["$.items", {"@path": "$.id"}]}, event) == [1, 2, None]


# -- @case ---------------------------------------------------------------------------------

CASE_EVENT = {
    "a": 1,
    "b": "MAKE ME LOWER",
    "c": "make me upper",
    "d": None,
    "f": False,
    "h": {"k": ["hi"]},
}


def test_case_changes_strings_and_passes_other_values_through() -> None:
    def case(operator: str, path: str) -> Any:
        return resolve({"@case": {"operator": operator, "value": {"@path": path}}}, CASE_EVENT)

    assert case("lower", "$.b") == "make me lower"
    assert case("upper", "$.c") == "MAKE ME UPPER"
    assert [case("lower", p) for p in ("$.a", "$.d", "$.f", "$.h")] == [
        1,
        None,
        False,
        {"k": ["hi"]},
    ]
    assert (
        resolve({"v": {"@case": {"operator": "lower", "value": {"@path": "$.x"}}}}, CASE_EVENT)
        == {}
    )
    assert resolve({"v": {"@case": {"operator": "upper"}}}, {}) == {}
    assert resolve({"@case": {"operator": "upper", "value": "static"}}, {}) == "STATIC"


# -- @replace ------------------------------------------------------------------------------


def replace(value: Any, **options: Any) -> Any:
    return resolve({"@replace": {"value": {"@path": "$.a"}, **options}}, {"a": value})


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("", {"pattern": "_", "replacement": "rrrrr"}, ""),
        (None, {"pattern": "_", "replacement": "rrrrr"}, ""),
        ([1], {"pattern": "_"}, ""),
        ("cool-story", {"pattern": "-", "replacement": ""}, "coolstory"),
        ("cool-story", {"pattern": "-", "replacement": "nice"}, "coolnicestory"),
        (
            "cWWl-story-ww",
            {"pattern": "WW", "replacement": "oo", "ignorecase": False},
            "cool-story-ww",
        ),
        (
            "aab-----AaB---aab",
            {"pattern": "AaB", "replacement": "nice", "ignorecase": True},
            "nice-----nice---nice",
        ),
        ("many+different+things", {"pattern": "+", "replacement": "_"}, "many_different_things"),
        (
            "many+different+things",
            {"pattern": "+", "replacement": "_", "global": False},
            "many_different+things",
        ),
        ("just-the-first", {"pattern": "-", "replacement": "@", "global": False}, "just@the-first"),
        ("many+different+things", {"pattern": "many+"}, "different+things"),
        ("aaabbbcccd", {"pattern": "aaabbbcccd", "replacement": ""}, ""),
        (True, {"pattern": "true", "replacement": "granted"}, "granted"),
        (1, {"pattern": "1", "replacement": "granted"}, "granted"),
        (
            10.0,
            {"pattern": "0", "replacement": "x"},
            "1x",
        ),  # numbers read as JavaScript writes them
        (
            "something-great!",
            {"pattern": "-", "replacement": " ", "pattern2": "great", "replacement2": "awesome"},
            "something awesome!",
        ),
        (
            False,
            {
                "pattern": "true",
                "replacement": "granted",
                "pattern2": "false",
                "replacement2": "denied",
            },
            "denied",
        ),
        (
            "A-a-A",
            {
                "pattern": "-",
                "pattern2": "a",
                "replacement2": "b",
                "ignorecase": True,
                "global": False,
            },
            "ba-A",
        ),
        ("a.b.c", {"pattern": ".", "replacement": "$&"}, "a$&b$&c"),  # literal, not a regex
        ("x", {"pattern": "x", "replacement": None, "pattern2": "", "global": None}, ""),
    ],
)
def test_replace(value: Any, options: dict[str, Any], expected: Any) -> None:
    assert replace(value, **options) == expected


def test_replace_limits_are_ten_characters() -> None:
    assert replace("abcdefghij!", pattern="abcdefghij", replacement="0123456789") == "0123456789!"
    assert problems_of(
        {"@replace": {"value": "a", "pattern": "abcdefghijk", "replacement": "0123456789x"}}
    ) == [
        "$.@replace.pattern: has 1 to 10 characters, found 11",
        "$.@replace.replacement: has 0 to 10 characters, found 11",
    ]


# -- @merge --------------------------------------------------------------------------------

MERGE_EVENT = {
    "traits": {"name": "Mr. Rogers", "greeting": "Neighbor", "neighborhood": "Latrobe"},
    "properties": {"neighborhood": "Make Believe"},
}


def test_merge_later_objects_win_to_the_right_and_earlier_ones_to_the_left() -> None:
    objects = [{"@path": "traits"}, {"@path": "properties"}]
    assert resolve({"@merge": {"objects": objects, "direction": "right"}}, MERGE_EVENT) == {
        "name": "Mr. Rogers",
        "greeting": "Neighbor",
        "neighborhood": "Make Believe",
    }
    assert (
        resolve({"@merge": {"objects": objects, "direction": "left"}}, MERGE_EVENT)["neighborhood"]
        == "Latrobe"
    )
    assert (
        resolve({"@merge": {"objects": objects, "direction": "Left"}}, MERGE_EVENT)["neighborhood"]
        == "Latrobe"
    )


def test_merge_defaults_first_then_the_traits() -> None:
    defaults = {"name": "Missing name", "neighborhood": "Missing neighborhood"}
    mapping = {"@merge": {"objects": [defaults, {"@path": "$.traits"}], "direction": "right"}}
    assert resolve(mapping, {"traits": {"name": "Mr. Rogers"}}) == {
        "name": "Mr. Rogers",
        "neighborhood": "Missing neighborhood",
    }


def test_merge_skips_what_is_not_an_object_and_undefined_never_overrides() -> None:
    objects = [
        {"cool": True, "name": "default"},
        {"@path": "$.missing"},
        {"@path": "$.text"},
        {"name": {"@path": "$.nope"}},
    ]
    assert resolve({"@merge": {"objects": objects, "direction": "right"}}, {"text": "ab"}) == {
        "cool": True,
        "name": "default",
    }
    assert resolve({"@merge": {"objects": [], "direction": "left"}}, {}) == {}


# -- @transform ----------------------------------------------------------------------------


def test_transform_maps_the_result_of_a_mapping() -> None:
    mapping = {
        "@transform": {"apply": {"foo": {"@path": "$.a"}}, "mapping": {"cool": {"@path": "$.foo"}}}
    }
    assert resolve(mapping, {"a": 1, "b": 2}) == {"cool": 1}


def test_transform_composes_with_flatten() -> None:
    mapping = {
        "@transform": {
            "apply": {
                "properties": {"@flatten": {"value": {"@path": "$.properties"}, "separator": "_"}}
            },
            "mapping": {
                "properties": {"@path": "$.properties"},
                "topLevel": {"@path": "$.properties.nested_a"},
            },
        }
    }
    event = {"properties": {"test": "value", "nested": {"a": "special", "b": 2}}, "more": "bar"}
    assert resolve(mapping, event) == {
        "properties": {"test": "value", "nested_a": "special", "nested_b": 2},
        "topLevel": "special",
    }


# -- @flatten ------------------------------------------------------------------------------


def flatten(value: Any, **options: Any) -> Any:
    return resolve(
        {"v": {"@flatten": {"value": {"@path": "$.v"}, "separator": ".", **options}}}, {"v": value}
    )["v"]


def test_flatten_joins_nested_keys_with_the_separator() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": 2}}) == {"a.b.c": 1, "a.d": 2}
    assert flatten({"bar": "baz", "aces": {"a": 1, "b": 2}}) == {
        "bar": "baz",
        "aces.a": 1,
        "aces.b": 2,
    }
    assert resolve(
        {"@flatten": {"value": {"@path": "$.v"}, "separator": "__"}}, {"v": {"a": {"b": None}}}
    ) == {"a__b": None}


def test_flatten_arrays_by_index_unless_omitted_and_empty_containers_vanish() -> None:
    assert flatten([{"fazz": "bar", "fizz": "baz"}]) == {"0.fazz": "bar", "0.fizz": "baz"}
    assert flatten({"bar": "baz", "tags": [1, 2]}, omitArrays=True) == {
        "bar": "baz",
        "tags": [1, 2],
    }
    assert flatten({"bar": "baz", "tags": [1, 2]}) == {"bar": "baz", "tags.0": 1, "tags.1": 2}
    assert flatten({"a": {}, "b": [], "c": {"d": {}}, "e": 1}) == {"e": 1}


def test_flatten_of_a_scalar_or_nothing() -> None:
    # As Segment's flattenObject: a scalar sits under the empty key; undefined gives {}.
    assert flatten(5) == {"": 5}
    assert resolve({"v": {"@flatten": {"value": {"@path": "$.nope"}, "separator": "."}}}, {}) == {
        "v": {}
    }


# -- @json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("bar", '"bar"'),
        ({"bar": "baz"}, '{"bar":"baz"}'),
        (["bar", "baz"], '["bar","baz"]'),
        ({"é": [1, 2.5, None, True]}, '{"é":[1,2.5,null,true]}'),
        (2**70, "1180591620717411303424"),
    ],
)
def test_json_encode(value: Any, encoded: str) -> None:
    assert (
        resolve({"@json": {"mode": "encode", "value": {"@path": "$.foo"}}}, {"foo": value})
        == encoded
    )


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ('"bar"', "bar"),
        ('{"bar":"baz"}', {"bar": "baz"}),
        ('["bar","baz"]', ["bar", "baz"]),
        ("Hello World", "Hello World"),
        ("", ""),
        (42, 42),
        ({"a": 1}, {"a": 1}),
    ],
)
def test_json_decode(value: Any, decoded: Any) -> None:
    assert (
        resolve({"@json": {"mode": "decode", "value": {"@path": "$.foo"}}}, {"foo": value})
        == decoded
    )


def test_json_of_nothing_is_nothing() -> None:
    assert resolve({"neat": {"@json": {"mode": "encode", "value": {"@path": "$.bad"}}}}, {}) == {}
    assert resolve({"neat": {"@json": {"mode": "ENCODE", "value": None}}}, {}) == {"neat": "null"}


# -- @excludeWhenNull ----------------------------------------------------------------------


def test_exclude_when_null() -> None:
    event = {
        "foo": {
            "bar": None,
            "aces": {"a": 1, "b": 2, "c": None, "d": {"a": None}},
            "list": [None, {"x": None}],
        }
    }
    assert resolve({"gone": {"@excludeWhenNull": {"@path": "$.foo.bar"}}, "b": "hello"}, event) == {
        "b": "hello"
    }
    assert resolve({"neat": {"@excludeWhenNull": {"@path": "$.foo"}}}, event) == {
        "neat": {"aces": {"a": 1, "b": 2, "d": {}}, "list": [None, {"x": None}]}
    }
    assert resolve({"v": {"@excludeWhenNull": {"@path": "$.foo.aces.a"}}}, event) == {"v": 1}


def test_exclude_when_null_composed_with_other_directives() -> None:
    mapping = {
        "pathNull": {"@excludeWhenNull": {"@path": "$.foo.bar"}},
        "templateEmpty": {"@excludeWhenNull": {"@template": "{{foo.bar}}"}},
        "literalNull": {"@excludeWhenNull": {"@literal": None}},
        "ifNull": {
            "@excludeWhenNull": {"@if": {"exists": {"@path": "$.foo.x"}, "then": 1, "else": None}}
        },
        "replaceNull": {
            "@excludeWhenNull": {"@replace": {"pattern": "-", "value": {"@path": "$.foo.bar"}}}
        },
        "jsonNullEncode": {
            "@excludeWhenNull": {"@json": {"mode": "encode", "value": {"@path": "$.foo.bar"}}}
        },
        "transformNull": {
            "@excludeWhenNull": {
                "@transform": {
                    "apply": {"properties": {"@path": "$.foo.bar"}},
                    "mapping": {"properties": {"@excludeWhenNull": {"@path": "$.properties"}}},
                }
            }
        },
    }
    assert resolve(mapping, {"foo": {"bar": None}}) == {
        "templateEmpty": "",
        "replaceNull": "",
        "jsonNullEncode": "null",
        "transformNull": {},
    }


# -- @liquid -------------------------------------------------------------------------------

LIQUID_EVENT = {
    "type": "track",
    "event": "Order Completed",
    "properties": {
        "name": "SpongeBob",
        "world": "Bikini Bottom",
        "html": "<b>hi</b>",
        "tags": ["a", "b"],
    },
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello, {{ properties.name }}!", "Hello, SpongeBob!"),
        ('{% if properties.world == "Bikini Bottom" %}Under the sea{% endif %}', "Under the sea"),
        ("{{ properties.name | upcase }}", "SPONGEBOB"),
        ("{{ event.properties.name }}", "SpongeBob"),  # the docs' form: the event bound as event
        ("{{ event }}|{{ event | downcase }}", "Order Completed|order completed"),
        ('{% if event == "Order Completed" %}yes{% endif %}', "yes"),
        ("{{ properties.html }}", "<b>hi</b>"),  # no HTML escaping
        ("{{ properties.tags | json }}", '["a","b"]'),
        ("{{ properties.missing }}", ""),
        ("{% assign n = properties.tags | size %}{{ n | times: 2 }}", "4"),
        ("", ""),
    ],
)
def test_liquid_renders_against_the_event(template: str, expected: str) -> None:
    assert resolve({"@liquid": template}, LIQUID_EVENT) == expected


def test_liquid_binds_event_to_the_whole_event_when_it_has_no_event_name() -> None:
    identify = {"type": "identify", "traits": {"email": "ada@example.com"}}
    assert resolve({"@liquid": "{{ event.traits.email }}={{ traits.email }}"}, identify) == (
        "ada@example.com=ada@example.com"
    )


@pytest.mark.parametrize("tag", ["case", "for", "include", "layout", "render", "tablerow"])
def test_liquid_refuses_disabled_tags_when_compiled(tag: str) -> None:
    problems = problems_of({"x": {"@liquid": "a{% " + tag + " x %}"}})
    assert problems == [f"$.x.@liquid: tag '{tag}' is disabled in mappings (line 1, column 5)"]


@pytest.mark.parametrize(
    "name",
    ["map", "sort", "reverse", "uniq", "concat", "find", "group_by", "where_exp", "sort_natural"],
)
def test_liquid_refuses_disabled_filters_when_compiled(name: str) -> None:
    assert problems_of({"@liquid": "{{ properties.tags | " + name + " }}"}) == [
        f"$.@liquid: filter '{name}' is disabled in mappings"
    ]


def test_liquid_refuses_unknown_filters_syntax_errors_and_long_templates() -> None:
    assert problems_of({"@liquid": "{{ a | shout }}"}) == ["$.@liquid: unknown filter 'shout'"]
    assert problems_of({"@liquid": "{% endif %}"}) == [
        "$.@liquid: unexpected tag 'endif' (line 1, column 4)"
    ]
    for broken in ("{{ a | }}", "{% if a %}", "{{ a "):
        [problem] = problems_of({"@liquid": broken})
        assert problem.startswith("$.@liquid: expected "), problem
    assert validate_mapping({"@liquid": "x" * 1000}) is None
    assert problems_of({"@liquid": "x" * 1001}) == [
        "$.@liquid: at most 1,000 characters, found 1,001"
    ]


def test_liquid_limits_fail_the_event_not_the_mapping() -> None:
    # Given a template that doubles a text until it is over the limit
    doubling = (
        "{% assign a = properties.name %}"
        + "{% assign a = a | append: a %}" * 20
        + "{{ a | size }}"
    )
    compiled = compile_mapping({"greeting": {"@liquid": doubling}})
    # When an event reaches it, then that event fails and says why
    with pytest.raises(MappingEvaluationError) as caught:
        compiled.apply(LIQUID_EVENT)
    assert caught.value.problems[0].startswith(
        "$.greeting.@liquid: a text over 1,000,000 characters"
    )
    # A replace or join that would explode is refused before it runs
    big = {"properties": {"name": "n" * 50_000, "world": "w" * 100}}
    with pytest.raises(MappingEvaluationError, match="replace would write over 1,000,000"):
        resolve({"@liquid": "{{ properties.name | replace: '', properties.world }}"}, big)
    with pytest.raises(MappingEvaluationError, match="join would write over 1,000,000"):
        resolve({"@liquid": "{{ properties.name | split: '' | join: properties.world }}"}, big)
    with pytest.raises(MappingEvaluationError, match="a list over 100,000 items"):
        resolve({"@liquid": "{% assign r = (1..1000000000) %}{{ r | join: ',' }}"}, {})
    with pytest.raises(MappingEvaluationError, match="a number over 4,096 bits"):
        resolve({"@liquid": "{% assign x = 99 %}" + "{% assign x = x | times: x %}" * 12}, {})
    with pytest.raises(MappingEvaluationError, match="divided_by"):
        resolve({"@liquid": "{{ 1 | divided_by: 0 }}"}, {})


def test_liquid_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a clock where every reading is 300 ms after the last
    ticks = iter(range(1_000))
    monkeypatch.setattr(mapping_liquid, "_monotonic", lambda: next(ticks) * 0.3)
    # When the third filter call starts 600 ms after the render, then the render stops
    with pytest.raises(MappingEvaluationError, match="time limit of 500 ms exceeded"):
        resolve({"@liquid": "{{ 'a' | upcase }}{{ 'b' | upcase }}"}, {})


# -- a Segment webhook subscription, pasted as Segment exports it --------------------------

WEBHOOK_MAPPING = orjson.loads(
    """
{
  "url": "https://hooks.example.com/orders",
  "method": "POST",
  "enable_batching": false,
  "batch_size": 0,
  "headers": {
    "X-Source": "segment",
    "X-Event": {"@path": "$.event", "_metadata": {"label": "Event Name", "type": "variable"}}
  },
  "data": {
    "order_id": {"@path": "$.properties.order_id"},
    "email": {
      "@if": {
        "exists": {"@path": "$.traits.email"},
        "then": {"@path": "$.traits.email"},
        "else": {"@path": "$.context.traits.email"}
      }
    },
    "total": {"@path": "$.properties.total"},
    "currency": {"@case": {"operator": "upper", "value": {"@path": "$.properties.currency"}}},
    "products": {
      "@arrayPath": [
        "$.properties.products",
        {"sku": {"@path": "$.sku"}, "qty": {"@path": "$.quantity"}, "price": {"@path": "$.price"}}
      ]
    },
    "summary": {"@template": "Order {{properties.order_id}} for {{ properties.total }}"},
    "phone": {"@replace": {"value": {"@path": "$.context.traits.phone"}, "pattern": "-", "replacement": ""}},
    "coupon": {"@excludeWhenNull": {"@path": "$.properties.coupon"}},
    "received_at": {"@path": "$.receivedAt"},
    "greeting": {"@liquid": "Thanks, {{ context.traits.email | split: '@' | first | capitalize }}!"},
    "source": {"@literal": "segment"}
  }
}
"""
)

ORDER = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "userId": "u-42",
    "context": {"traits": {"email": "ada@example.com", "phone": "555-010-9999"}},
    "properties": {
        "order_id": "o-1001",
        "total": 59.9,
        "currency": "eur",
        "coupon": None,
        "products": [
            {"sku": "A-1", "quantity": 2, "price": 19.95},
            {"sku": "B-7", "quantity": 1, "price": 20.0},
        ],
    },
}


def test_a_segment_webhook_mapping_pastes_unchanged() -> None:
    compiled = compile_mapping(WEBHOOK_MAPPING)
    assert isinstance(compiled, CompiledMapping)
    assert compiled.apply(ORDER) == {
        "url": "https://hooks.example.com/orders",
        "method": "POST",
        "enable_batching": False,
        "batch_size": 0,
        "headers": {"X-Source": "segment", "X-Event": "Order Completed"},
        "data": {
            "order_id": "o-1001",
            "email": "ada@example.com",
            "total": 59.9,
            "currency": "EUR",
            "products": [
                {"sku": "A-1", "qty": 2, "price": 19.95},
                {"sku": "B-7", "qty": 1, "price": 20.0},
            ],
            "summary": "Order o-1001 for 59.9",
            "phone": "5550109999",
            "greeting": "Thanks, Ada!",
            "source": "segment",
        },
    }


# -- properties ----------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
KEYS = st.text(max_size=5)
EVENTS = st.dictionaries(
    KEYS,
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=20,
    ),
    max_size=6,
)
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]*")


def written(key: str | int) -> str | None:
    """How a path writes ``key``, or None when no form can (a key holding both ``']`` and ``"]``)."""
    if isinstance(key, int):
        return f"[{key}]"
    if PLAIN.fullmatch(key):
        return "." + key
    if "']" not in key:
        return f"['{key}']"
    if '"]' not in key:
        return f'["{key}"]'
    return None


def places(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every place in ``value`` below the root, as (path without the leading $., value)."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        part = written(key)
        if part is None:
            continue
        path = prefix + part
        yield path, item
        yield from places(item, path)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_path_finds_every_place_in_an_event(event: dict[str, Any]) -> None:
    for path, value in places(event):
        written_path = "$." + path.removeprefix(".")
        assert resolve({"@path": written_path}, event) is value, written_path


RAW_KEYS = st.text(max_size=5).filter(
    lambda key: not key.startswith("@") and key != "__segment_internal_directive"
)
RAW = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(RAW_KEYS, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(RAW, EVENTS)
def test_a_mapping_of_raw_values_resolves_to_itself(mapping: Any, event: dict[str, Any]) -> None:
    result = resolve(mapping, event)
    assert result == mapping
    assert orjson.dumps(result) == orjson.dumps(mapping)  # same key order, same types


def nulls_outside_arrays(value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    return sum(1 if item is None else nulls_outside_arrays(item) for item in value.values())


@settings(max_examples=100, deadline=None)
@given(EVENTS)
def test_json_flatten_and_exclude_when_null_over_any_event(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    encoded = {"@json": {"mode": "encode", "value": {"@path": "$."}}}
    mapping = {
        "round_trip": {"@json": {"mode": "decode", "value": encoded}},
        "flat": {"@flatten": {"value": {"@path": "$."}, "separator": "/"}},
        "clean": {"@excludeWhenNull": {"@path": "$."}},
    }
    result = resolve(mapping, event)
    # Encoding then decoding gives the event back, and nothing changed the event itself
    assert result["round_trip"] == event
    assert event == before
    # Flattening leaves no object or array as a value
    assert not any(isinstance(v, dict | list) for v in result["flat"].values())
    # @excludeWhenNull leaves no null in any object outside an array, and drops nothing else
    assert nulls_outside_arrays(result["clean"]) == 0
    assert {k for k, v in event.items() if v is not None} == set(result["clean"])
