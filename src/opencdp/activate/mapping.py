"""Segment's Actions mapping kit: the JSON a subscription uses to shape what it sends.

A mapping is JSON made of raw values, copied as they are, and directives: objects with one
``@name`` key (plus an optional ``_metadata``, ignored) that read or transform the event::

    {"user": {"@path": "$.userId"}, "kind": "order", "total": {"@path": "$.properties.total"}}

:func:`compile_mapping` checks a mapping once, reporting every problem with its place in the
mapping (``$.data.total: unknown directive @pth``), and turns it into closures;
:meth:`CompiledMapping.apply` then maps one event. A key whose value comes out *undefined* (a
path that is not there, an ``@if`` without the branch it needs) is left out; ``null`` stays.
Undefined inside an array becomes ``null``, as in the JSON Segment sends. Paths and
placeholders are :mod:`.mapping_paths`, JavaScript's answers about values
:mod:`.mapping_values`, ``@liquid`` :mod:`.mapping_liquid`.

The directives behave as in segmentio/action-destinations ``core/src/mapping-kit`` (970a17e):
``@path``, ``@template``, ``@literal``, ``@if``, ``@arrayPath``, ``@case``, ``@replace``,
``@merge``, ``@transform``, ``@flatten``, ``@json``, ``@excludeWhenNull`` and ``@liquid``
(docs/activation-compat §2.2), except for three deliberate deviations (§7.2):

1. ``@if`` returns its ``else`` whatever it holds (``false``, ``0``, ``""``, ``null``), as
   the kit's README says; Segment's code drops the key when ``else`` is falsy.
2. ``@template`` writes a non-string as JSON (``["a","b"]``, ``{"a":1}``) where Segment
   writes ``a,b`` and ``[object Object]``; numbers as JavaScript writes them (``10.0`` is
   ``10``).
3. ``@liquid`` renders with python-liquid, the event as the root scope *and* as ``event``,
   within Segment's limits (:mod:`.mapping_liquid`).

OpenCDP adds one directive of its own, ``@catalog``: a product's field from the workspace's
catalog (:mod:`.mapping_catalog`).

Where Segment's code and our digest are silent or accidental, we chose:

* Checked when the mapping is saved, not when an event reaches it: ``@if`` needs ``exists``
  or ``blank``; ``@case`` an operator ``lower`` or ``upper``; ``@merge`` a direction and
  ``@json`` a mode (matched without regard to case, as Segment's validator matches them);
  ``@flatten`` a non-empty separator; ``pattern2`` and ``replacement2`` the lengths of
  ``pattern`` and ``replacement``; a Liquid template parses and uses known filters. A ``null``
  for an optional ``@replace`` setting means its default.
* Keys a directive does not know (a misspelt ``"thn"``) are ignored, as Segment ignores them.
* ``@merge`` merges objects only (Segment spreads a string's characters into keys), and a key
  whose value is undefined does not override an earlier one (Segment copies the undefined,
  then drops the key, losing the default it was merged over).
* ``@replace`` inserts its replacement as written (JavaScript reads ``$&`` in it).
* ``@arrayPath`` with a directive first resolves that directive to the array itself (not to
  a path), as Segment does.
* ``__segment_internal_directive`` at the root holds an ``@transform`` whose ``mapping`` is
  the rest of the mapping, as Segment's ``getMappingToProcess`` builds it.
* When an event makes a directive fail (a computed ``@path`` that is not a string, a Liquid
  limit, JSON that cannot be written) :meth:`~CompiledMapping.apply` raises
  :class:`MappingEvaluationError`; the same event fails again, so it is not worth a retry.
* ``apply`` never copies what it takes from the event and never changes it: its result
  shares objects with the event (``{"@path": "$."}`` is the event itself), so copy before
  changing a result.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from opencdp.activate.mapping_catalog import KEYS as CATALOG_KEYS
from opencdp.activate.mapping_catalog import catalog_lookup, catalog_resolver, field_path
from opencdp.activate.mapping_paths import (
    Path,
    Template,
    lookup,
    parse_path,
    parse_template,
    render_template,
)
from opencdp.activate.mapping_values import (
    UNDEFINED,
    decode_json,
    drop_nulls,
    exists,
    flatten,
    json_text,
    literal_replacer,
    not_blank,
    number_text,
)
from opencdp.errors import RequestError
from opencdp.query.catalog import CatalogLookup

__all__ = [
    "DIRECTIVES",
    "CompiledMapping",
    "MappingError",
    "MappingEvaluationError",
    "compile_mapping",
    "resolve",
    "validate_mapping",
]

DIRECTIVE_NAME = re.compile(r"@[a-z][a-zA-Z0-9]+")
ROOT_DIRECTIVE_KEY = "__segment_internal_directive"
MAX_DEPTH = 64
MAX_PATTERN_CHARS = 10
MAX_REPLACEMENT_CHARS = 10

Resolver = Callable[[Any], Any]
"""A compiled piece of a mapping: the payload it reads from, to its value or UNDEFINED."""


class MappingError(RequestError):
    """A mapping cannot be used; ``problems`` lists every problem, each with its place."""

    code = "invalid_mapping"
    status = 400
    summary = "invalid mapping"

    def __init__(self, problems: list[str], *, code: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        detail = "; ".join(self.problems)
        message = (
            f"{self.summary}: {detail}" if count == 1 else f"{self.summary} ({count}): {detail}"
        )
        super().__init__(message, code=code)


class MappingEvaluationError(MappingError):
    """A valid mapping could not map one event (permanent: that event fails every time)."""

    code = "mapping_failed"
    summary = "mapping failed"


def _whole(payload: Any) -> Any:
    return payload


def _constant(value: Any) -> Resolver:
    return lambda _payload: value


_NOTHING: Final = _constant(UNDEFINED)


def _is_directive(value: Any) -> bool:
    return isinstance(value, dict) and any(
        isinstance(key, str) and key.startswith("@") for key in value
    )


def _kind(value: Any) -> str:
    """How a problem names a value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a directive" if _is_directive(value) else "an object"
    return f"a {type(value).__name__}"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_@$-]+")


def _at(where: str, key: str | int) -> str:
    """The place of ``key`` under ``where``, written as a path."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}"
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{where}['{quoted}']"


@lru_cache(maxsize=1024)
def _computed_path(text: str) -> Path:
    return parse_path(text)


@lru_cache(maxsize=256)
def _computed_template(text: str) -> Template:
    return parse_template(text)


def _failure(where: str, message: str) -> MappingEvaluationError:
    return MappingEvaluationError([f"{where}: {message}"])


class _Compiler:
    """Turns a mapping into resolvers, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.depth = 0
        self.directives: dict[str, Callable[[Any, str], Resolver]] = {
            "@path": self.path,
            "@template": self.template,
            "@literal": self.node,
            "@if": self.if_,
            "@arrayPath": self.array_path,
            "@case": self.case,
            "@replace": self.replace,
            "@merge": self.merge,
            "@transform": self.transform,
            "@flatten": self.flatten,
            "@json": self.json,
            "@excludeWhenNull": self.exclude_when_null,
            "@liquid": self.liquid,
            "@catalog": self.catalog,  # an OpenCDP extension (mapping_catalog)
        }

    def problem(self, where: str, message: str) -> Resolver:
        self.problems.append(f"{where}: {message}")
        return _NOTHING

    # -- raw values ------------------------------------------------------------------------

    def root(self, mapping: Any, where: str) -> Resolver:
        """A whole mapping, which may carry Segment's root directive beside its fields."""
        if not isinstance(mapping, dict) or ROOT_DIRECTIVE_KEY not in mapping:
            return self.node(mapping, where)
        holder = mapping[ROOT_DIRECTIVE_KEY]
        inside = _at(where, ROOT_DIRECTIVE_KEY)
        argument = (
            holder.get("@transform") if isinstance(holder, dict) and len(holder) == 1 else None
        )
        if not isinstance(argument, dict) or "apply" not in argument:
            return self.problem(inside, 'holds {"@transform": {"apply": ...}}, nothing else')
        apply = self.root(argument["apply"], _at(_at(inside, "@transform"), "apply"))
        fields = self.node({k: v for k, v in mapping.items() if k != ROOT_DIRECTIVE_KEY}, where)
        return lambda payload: fields(apply(payload))

    def node(self, value: Any, where: str) -> Resolver:
        """Any part of a mapping: a directive, or a raw value whose insides are resolved."""
        if self.depth >= MAX_DEPTH:
            return self.problem(where, f"nested deeper than {MAX_DEPTH} levels")
        self.depth += 1
        try:
            if isinstance(value, dict):
                if _is_directive(value):
                    return self.directive(value, where)
                return self.object(value, where)
            if isinstance(value, list):
                return self.array(value, where)
            if value is None or isinstance(value, str | int | float):
                return _constant(value)
            return self.problem(where, f"is {_kind(value)}, not a JSON value")
        finally:
            self.depth -= 1

    def object(self, value: dict[Any, Any], where: str) -> Resolver:
        entries: list[tuple[str, Resolver]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                self.problem(where, f"has a key that is not a string: {key!r}")
                continue
            entries.append((key, self.node(item, _at(where, key))))

        def resolve_object(payload: Any) -> Any:
            out = {}
            for key, resolve in entries:
                resolved = resolve(payload)
                if resolved is not UNDEFINED:
                    out[key] = resolved
            return out

        return resolve_object

    def array(self, value: list[Any], where: str) -> Resolver:
        items = [self.node(item, _at(where, i)) for i, item in enumerate(value)]

        def resolve_array(payload: Any) -> Any:
            return [None if (v := resolve(payload)) is UNDEFINED else v for resolve in items]

        return resolve_array

    # -- directives ------------------------------------------------------------------------

    def directive(self, value: dict[Any, Any], where: str) -> Resolver:
        names = [key for key in value if isinstance(key, str) and key.startswith("@")]
        others = [key for key in value if key not in names and key != "_metadata"]
        valid = True
        if len(names) > 1:
            listed = ", ".join(names)
            self.problem(where, f"has {len(names)} @ keys ({listed}); a directive has exactly one")
            valid = False
        if others:
            raw = ", ".join(repr(key) for key in others)
            self.problem(
                where, f"has raw keys ({raw}) beside {names[0]}; a directive has only its @ key"
            )
            valid = False
        for name in names:
            if name not in self.directives:
                self.problem(where, _unknown_directive(name))
                valid = False
        if not valid:
            return _NOTHING
        name = names[0]
        return self.directives[name](value[name], _at(where, name))

    def options(self, value: Any, where: str, shape: str) -> dict[str, Any] | None:
        """A directive's settings object, or None after reporting that it is not one."""
        if isinstance(value, dict) and not _is_directive(value):
            return value
        self.problem(where, f"takes an object {shape}, found {_kind(value)}")
        return None

    def text_or_directive(self, value: Any, where: str, what: str) -> str | Resolver | None:
        """A static string, a resolver for a directive that computes one, or None (reported)."""
        if isinstance(value, str):
            return value
        if _is_directive(value):
            return self.node(value, where)
        self.problem(where, f"takes {what} or a directive, found {_kind(value)}")
        return None

    def required(self, options: dict[str, Any], key: str, where: str) -> bool:
        if key in options:
            return True
        self.problem(where, f'needs "{key}"')
        return False

    def choice(
        self, options: dict[str, Any], key: str, allowed: tuple[str, ...], where: str
    ) -> str:
        if not self.required(options, key, where):
            return allowed[0]
        value = options[key]
        if isinstance(value, str) and value.lower() in allowed:
            return value.lower()
        self.problem(_at(where, key), f"is one of {', '.join(allowed)}, found {value!r}")
        return allowed[0]

    def text_setting(
        self,
        options: dict[str, Any],
        key: str,
        where: str,
        lengths: tuple[int, int],
        *,
        required: bool = False,
    ) -> str | None:
        """A string setting of bounded length; None when absent, null or invalid (reported
        when it is invalid, or absent or null but required)."""
        if required and not self.required(options, key, where):
            return None
        value = options.get(key)
        shortest, longest = lengths
        if value is None:
            if required:
                self.problem(_at(where, key), "is a string, found null")
        elif not isinstance(value, str):
            self.problem(_at(where, key), f"is a string, found {_kind(value)}")
        elif not shortest <= len(value) <= longest:
            self.problem(
                _at(where, key), f"has {shortest} to {longest} characters, found {len(value)}"
            )
        else:
            return value
        return None

    def flag(self, options: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = options.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        self.problem(_at(where, key), f"is true or false, found {_kind(value)}")
        return default

    def path(self, argument: Any, where: str) -> Resolver:
        text = self.text_or_directive(argument, where, "a path string")
        if text is None:
            return _NOTHING
        if isinstance(text, str):
            path = parse_path(text)
            if not path:
                return _whole
            return lambda payload: lookup(payload, path)
        computed = text

        def resolve_computed_path(payload: Any) -> Any:
            value = computed(payload)
            if not isinstance(value, str):
                raise _failure(where, f"the directive gave {_kind(value)}, not a path string")
            return lookup(payload, _computed_path(value))

        return resolve_computed_path

    def template(self, argument: Any, where: str) -> Resolver:
        text = self.text_or_directive(argument, where, "a template string")
        if text is None:
            return _NOTHING
        if isinstance(text, str):
            template = parse_template(text)
            return lambda payload: render_template(template, payload)
        computed = text

        def resolve_computed_template(payload: Any) -> Any:
            value = computed(payload)
            if not isinstance(value, str):
                raise _failure(where, f"the directive gave {_kind(value)}, not a template string")
            return render_template(_computed_template(value), payload)

        return resolve_computed_template

    def if_(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"exists" or "blank", "then", "else"}')
        if options is None:
            return _NOTHING
        branches = {
            key: self.node(options[key], _at(where, key))
            for key in ("exists", "blank", "then", "else")
            if key in options
        }
        if "exists" in branches:
            condition, holds = branches["exists"], exists
        elif "blank" in branches:
            condition, holds = branches["blank"], not_blank
        else:
            return self.problem(where, 'needs "exists" or "blank"')
        then, otherwise = branches.get("then", _NOTHING), branches.get("else", _NOTHING)
        return lambda payload: (then if holds(condition(payload)) else otherwise)(payload)

    def array_path(self, argument: Any, where: str) -> Resolver:
        if not isinstance(argument, list) or not argument:
            return self.problem(
                where, f"takes an array [path, item shape?], found {_kind(argument)}"
            )
        first = self.text_or_directive(argument[0], _at(where, 0), "a path string")
        shape = argument[1] if len(argument) > 1 else None
        item = self.node(shape, _at(where, 1)) if len(argument) > 1 else _NOTHING
        if first is None:
            return _NOTHING
        root = self.path(first, where) if isinstance(first, str) else first
        if not (isinstance(shape, dict) and shape):
            return root

        def resolve_array_path(payload: Any) -> Any:
            value = root(payload)
            if isinstance(value, Mapping):
                value = [value]
            elif not isinstance(value, list):
                return value
            return [None if (v := item(element)) is UNDEFINED else v for element in value]

        return resolve_array_path

    def case(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"operator": "lower" or "upper", "value"}')
        if options is None:
            return _NOTHING
        operator = self.choice(options, "operator", ("lower", "upper"), where)
        if "value" not in options:
            return _NOTHING
        value = self.text_or_directive(options["value"], _at(where, "value"), "a string")
        if value is None:
            return _NOTHING
        change = str.lower if operator == "lower" else str.upper
        if isinstance(value, str):
            return _constant(change(value))
        computed = value

        def resolve_case(payload: Any) -> Any:
            resolved = computed(payload)
            return change(resolved) if isinstance(resolved, str) else resolved

        return resolve_case

    def replace(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"value", "pattern", "replacement", ...}')
        if options is None:
            return _NOTHING
        pattern_lengths = (1, MAX_PATTERN_CHARS)
        replacement_lengths = (0, MAX_REPLACEMENT_CHARS)
        pattern = self.text_setting(options, "pattern", where, pattern_lengths, required=True)
        replacement = self.text_setting(options, "replacement", where, replacement_lengths)
        # Segment runs the second pair only when pattern2 is a non-empty string.
        pattern2 = None if options.get("pattern2") == "" else options.get("pattern2")
        if pattern2 is not None:
            pattern2 = self.text_setting(options, "pattern2", where, pattern_lengths)
        replacement2 = self.text_setting(options, "replacement2", where, replacement_lengths)
        is_global = self.flag(options, "global", where, True)
        ignorecase = self.flag(options, "ignorecase", where, False)
        value: str | Resolver | None = None
        if self.required(options, "value", where):
            value = self.text_or_directive(options["value"], _at(where, "value"), "a string")
        if pattern is None or value is None:
            return _NOTHING
        steps = [literal_replacer(pattern, replacement or "", is_global, ignorecase)]
        if pattern2 is not None:
            steps.append(literal_replacer(pattern2, replacement2 or "", is_global, ignorecase))
        source = _constant(value) if isinstance(value, str) else value

        def resolve_replace(payload: Any) -> Any:
            resolved = source(payload)
            if isinstance(resolved, bool):
                resolved = "true" if resolved else "false"
            elif isinstance(resolved, int | float):
                resolved = number_text(resolved)
            elif not isinstance(resolved, str):
                return ""
            for step in steps:
                resolved = step(resolved)
            return resolved

        return resolve_replace

    def merge(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"objects": [...], "direction"}')
        if options is None:
            return _NOTHING
        direction = self.choice(options, "direction", ("right", "left"), where)
        if not self.required(options, "objects", where):
            return _NOTHING
        objects = options["objects"]
        inside = _at(where, "objects")
        if not isinstance(objects, list):
            return self.problem(inside, f"is an array of objects, found {_kind(objects)}")
        parts: list[Resolver] = []
        for i, part in enumerate(objects):
            if isinstance(part, dict):
                parts.append(self.node(part, _at(inside, i)))
            else:
                self.problem(_at(inside, i), f"is an object or a directive, found {_kind(part)}")
        if direction == "left":
            parts.reverse()

        def resolve_merge(payload: Any) -> Any:
            merged: dict[str, Any] = {}
            for part in parts:
                value = part(payload)
                if isinstance(value, Mapping):
                    merged.update(value)
            return merged

        return resolve_merge

    def transform(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"apply": {...}, "mapping": {...}}')
        if options is None:
            return _NOTHING
        compiled = []
        for key in ("apply", "mapping"):
            if not self.required(options, key, where):
                continue
            inside = _at(where, key)
            if not isinstance(options[key], dict):
                self.problem(inside, f"is an object or a directive, found {_kind(options[key])}")
            elif key == "apply":
                compiled.append(self.root(options[key], inside))
            else:
                compiled.append(self.node(options[key], inside))
        if len(compiled) != 2:
            return _NOTHING
        apply, mapping = compiled
        return lambda payload: mapping(apply(payload))

    def flatten(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"value", "separator", "omitArrays"}')
        if options is None:
            return _NOTHING
        value = None
        if self.required(options, "value", where):
            value = self.node(options["value"], _at(where, "value"))
        separator = options.get("separator")
        if not isinstance(separator, str) or not separator:
            found = repr(separator) if separator == "" else _kind(separator)
            self.problem(_at(where, "separator"), f"is a non-empty string, found {found}")
            separator = None
        omit_arrays = self.flag(options, "omitArrays", where, False)
        if value is None or separator is None:
            return _NOTHING
        computed, joiner = value, separator

        def resolve_flatten(payload: Any) -> Any:
            return flatten(computed(payload), joiner, omit_arrays)

        return resolve_flatten

    def json(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"mode": "encode" or "decode", "value"}')
        if options is None:
            return _NOTHING
        mode = self.choice(options, "mode", ("encode", "decode"), where)
        if not self.required(options, "value", where):
            return _NOTHING
        value = self.node(options["value"], _at(where, "value"))
        if mode == "decode":
            return lambda payload: decode_json(value(payload))

        def resolve_encode(payload: Any) -> Any:
            resolved = value(payload)
            if resolved is UNDEFINED:
                return UNDEFINED
            try:
                return json_text(resolved)
            except ValueError as exc:
                raise _failure(where, str(exc)) from None

        return resolve_encode

    def exclude_when_null(self, argument: Any, where: str) -> Resolver:
        value = self.node(argument, where)

        def resolve_exclude_when_null(payload: Any) -> Any:
            resolved = value(payload)
            if resolved is None:
                return UNDEFINED
            return drop_nulls(resolved) if isinstance(resolved, Mapping) else resolved

        return resolve_exclude_when_null

    def catalog(self, argument: Any, where: str) -> Resolver:
        options = self.options(argument, where, '{"id", "field"}')
        if options is None:
            return _NOTHING
        unknown = sorted(set(options) - CATALOG_KEYS, key=str)
        if unknown:
            self.problem(where, f"takes id and field, not {', '.join(map(repr, unknown))}")
        product_id = self.node(options["id"], _at(where, "id")) if "id" in options else None
        if product_id is None:
            self.problem(where, 'needs "id": the product\'s id, or a directive that reads it')
        path: tuple[str, ...] | None = None
        if "field" in options:
            path, wrong = field_path(options["field"])
            if wrong is not None:
                self.problem(_at(where, "field"), wrong)
        if product_id is None or unknown or ("field" in options and path is None):
            return _NOTHING
        return catalog_resolver(product_id, path)

    def liquid(self, argument: Any, where: str) -> Resolver:
        if not isinstance(argument, str):
            return self.problem(where, f"takes a template string, found {_kind(argument)}")
        if not argument:
            return _constant("")
        # python-liquid takes a tenth of a second to import: only mappings using @liquid pay it.
        from opencdp.activate.mapping_liquid import LiquidRenderError, compile_liquid

        render, problems = compile_liquid(argument)
        for problem in problems:
            self.problem(where, problem)
        if render is None:
            return _NOTHING
        template = render

        def resolve_liquid(payload: Any) -> Any:
            try:
                return template(payload)
            except LiquidRenderError as exc:
                raise _failure(where, str(exc)) from None

        return resolve_liquid


def _unknown_directive(name: str) -> str:
    close = difflib.get_close_matches(name, DIRECTIVES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if not DIRECTIVE_NAME.fullmatch(name):
        return f"{name!r} is not a directive name: names match @[a-z][a-zA-Z0-9]+{hint}"
    return f"unknown directive {name}{hint}"


DIRECTIVES: Final = tuple(_Compiler().directives)
"""The directive names a mapping may use."""


@dataclass(frozen=True, slots=True, eq=False)
class CompiledMapping:
    """A validated mapping, compiled once and applied to every event a subscription sends."""

    source: Any
    """The mapping as it was given."""
    passthrough: bool
    """True when the mapping is the whole event (``{"@path": "$."}``): apply returns it."""
    _resolve: Resolver = field(repr=False)

    def apply(
        self,
        event: Mapping[str, Any],
        *,
        default: Any = None,
        catalog: CatalogLookup | None = None,
    ) -> Any:
        """The mapping's value for ``event``; ``default`` when the whole of it is undefined.
        ``@catalog`` reads products through ``catalog`` (the event's workspace's).

        The result may share objects with ``event`` (copy before changing it). Raises
        :class:`MappingEvaluationError` when this event makes a directive fail.
        """
        if self.passthrough:
            return event
        try:
            with catalog_lookup(catalog):
                result = self._resolve(event)
        except RecursionError:
            raise MappingEvaluationError(["$: the event is nested too deeply to map"]) from None
        return default if result is UNDEFINED else result


def compile_mapping(mapping: Any) -> CompiledMapping:
    """Check ``mapping`` and compile it; raises :class:`MappingError` listing every problem."""
    compiler = _Compiler()
    resolver = compiler.root(mapping, "$")
    if compiler.problems:
        raise MappingError(compiler.problems)
    return CompiledMapping(mapping, resolver is _whole, resolver)


def validate_mapping(mapping: Any) -> None:
    """Raise :class:`MappingError` listing every problem in ``mapping``; return if it has none."""
    compile_mapping(mapping)


def resolve(mapping: Any, event: Mapping[str, Any], *, default: Any = None) -> Any:
    """``mapping`` applied to ``event`` (compiled on every call: keep a
    :func:`compile_mapping` result to map many events)."""
    return compile_mapping(mapping).apply(event, default=default)
