"""Segment's Filter Query Language (FQL): which events a subscription, a destination filter or
a journey step takes (pure).

::

    condition = parse_condition('type = "track" and properties.total >= 40')
    condition.matches(event)  # True or False, never an exception

:mod:`.fql_syntax` parses the text (grammar, errors, lint); this module compiles the AST once
into Python closures (never ``eval``) with the semantics of the activation digest's §1.3:

======================  ========================================================================
``a = b``, ``a != b``   equal only when type and value match (``"5" = 5`` and ``true = 1`` are
                        false); lists item by item, objects key by key in order, as their
                        serialised JSON would; ``!=`` is the exact negation of ``=``
``<  <=  >  >=``        numbers only: any other operand (a bool too) gives false
``a in b``              ``b`` is a list (written or read from the event) holding an item ``= a``
``and  or  !``          an operand counts as true only when it is literally ``true``, so null
                        and every non-bool count as false and ``!properties.missing`` is true
a value as a condition  ``properties.vip`` holds only when the field is ``true``
a missing field         reads as null: ``x = null`` tests absence, ``x != null`` presence
======================  ========================================================================

Functions, with Segment's null rules: ``contains(s, sub)`` and ``match(s, glob)`` are false
unless both are strings; ``length(x)`` counts a list's items or a string's UTF-8 bytes (``ア`` is
3) and is 0 for null; ``lowercase``, ``uppercase``, ``snakecase``, ``kebabcase`` and
``titlecase`` give null for a non-string; ``typeof(x)`` is ``"string"``, ``"number"``,
``"bool"``, ``"list"``, ``"null"`` or ``"object"``.

Where Segment's documentation is silent, OpenCDP decided (§7.1):

* The whole condition ``all`` matches every event; an empty condition is refused (write ``all``).
* ``typeof`` of an object is ``"object"``.
* ``bool(x)`` is JSON (JavaScript) truthiness: false for null, false, 0, NaN and ``""``; true
  for everything else, ``"false"``, ``[]`` and ``{}`` included.
* ``number(x)``: a number stays; a string in decimal notation (``" 42 "``, ``"-1.5e3"``) becomes
  its number; anything else (a bool, ``""``, ``"0x10"``, ``"NaN"``) is null.
* ``string(x)``: a string stays; a number in its shortest form, an integral one without a
  fraction (``1.0`` → ``"1"``); ``"true"`` and ``"false"``; a list or object as compact JSON;
  null stays null.
* ``length`` of a number, bool or object is NaN, so every comparison with it is false.
* ``snakecase`` and ``kebabcase`` replace each space with ``_`` or ``-``; ``titlecase``
  upper-cases the first character of each whitespace-separated word and keeps the rest.
* ``match``: a malformed pattern (:mod:`.fql_glob`) is refused when the condition writes it;
  one read from the event matches nothing. Matching takes linear time whatever the pattern.
* ``in`` tests membership with ``=``'s equality, so a list can hold lists.
* A value JSON cannot hold (a ``datetime`` handed over by Python code) is of type ``"object"``,
  never a number, and equal only to an equal value of the same Python type.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeAlias

from opencdp.activate.fql_glob import Glob, GlobError, compile_glob, glob_or_none
from opencdp.activate.fql_syntax import (
    And,
    Call,
    Compare,
    ConditionError,
    ListOf,
    Literal,
    Node,
    Not,
    Path,
    parse,
)

__all__ = [
    "Condition",
    "ConditionError",
    "Glob",
    "GlobError",
    "compile_glob",
    "equal",
    "evaluate",
    "kind",
    "parse_condition",
]

Fn: TypeAlias = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed and compiled condition; build one with :func:`parse_condition`.

    ``warnings`` are lint findings (each starting with line and column) that did not stop it.
    """

    text: str
    warnings: tuple[str, ...]
    _test: Fn = field(repr=False, compare=False)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` satisfies the condition. Never raises for a JSON-like event."""
        return self._test(event) is True

    def __reduce__(self) -> tuple[Callable[[str], Condition], tuple[str]]:
        # Closures do not pickle; the text rebuilds the same condition.
        return parse_condition, (self.text,)


def parse_condition(text: str) -> Condition:
    """The condition ``text`` says, compiled for :meth:`Condition.matches`.

    Raises :class:`ConditionError` (400, ``invalid_condition``) naming where and what was
    expected when the text does not parse, calls an unknown function or gives one the wrong
    number of arguments, holds a malformed ``match`` pattern, or is empty.
    """
    if not isinstance(text, str):
        raise ConditionError(f"a condition is a string, not {type(text).__name__}")
    parsed = parse(text)
    return Condition(text, parsed.warnings, _as_fn(_Compiler(text).compile(parsed.root)))


_parse_cached: Final = lru_cache(maxsize=256)(parse_condition)


def evaluate(condition: str | Condition, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` satisfies ``condition`` (text is parsed once and cached)."""
    if isinstance(condition, str):
        condition = _parse_cached(condition)
    return condition.matches(event)


# -- values ----------------------------------------------------------------------------------------

_KINDS: Final[dict[type, str]] = {
    type(None): "null",
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "list",
    tuple: "list",
    dict: "object",
}


def kind(value: Any) -> str:
    """The FQL type of a value: null, bool, number, string, list or object; ``other`` for a
    value JSON cannot hold."""
    found = _KINDS.get(type(value))
    if found is not None:
        return found
    if isinstance(value, int | float):  # bool is caught above: it cannot be subclassed
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    return "object" if isinstance(value, Mapping) else "other"


def _is_number(value: Any) -> bool:
    kind_ = type(value)
    return kind_ is int or kind_ is float or (kind_ is not bool and isinstance(value, int | float))


def equal(a: Any, b: Any) -> bool:
    """FQL's ``=``: the same type and the same value all the way down; an object's keys in the
    same order (iterative, so no nesting is too deep)."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        kind_ = kind(x)
        if kind_ != kind(y):
            return False
        if kind_ == "list":
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif kind_ == "object":
            if list(x) != list(y):
                return False
            pending.extend(zip(x.values(), y.values(), strict=True))
        elif kind_ == "other":
            try:
                if type(x) is not type(y) or not bool(x == y):
                    return False
            except Exception:
                return False
        elif x != y:  # NaN differs from itself, as in JSON-land
            return False
    return True


def member(item: Any, items: Any) -> bool:
    """FQL's ``in``: ``items`` is a list holding a value equal to ``item``."""
    return kind(items) == "list" and any(equal(item, candidate) for candidate in items)


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    # A hashable stand-in that keeps types apart (True and 1 hash alike in Python).
    kind_ = kind(value)
    if kind_ in ("string", "bool", "null") or (kind_ == "number" and value == value):
        return kind_, value
    return None


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": equal,
    "!=": lambda a, b: not equal(a, b),
    "in": member,
}


def _numeric(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: _is_number(a) and _is_number(b) and compare(a, b)


_COMPARISONS.update({op: _numeric(compare) for op, compare in _ORDERINGS.items()})


# -- functions -------------------------------------------------------------------------------------


def _contains(text: Any, part: Any) -> bool:
    return isinstance(text, str) and isinstance(part, str) and part in text


def _match(text: Any, pattern: Any) -> bool:
    if not (isinstance(text, str) and isinstance(pattern, str)):
        return False
    glob = glob_or_none(pattern)
    return glob is not None and glob.matches(text)


def _length(value: Any) -> int | float:
    if value is None:
        return 0
    if isinstance(value, str):
        # Lone surrogates (JSON allows "\ud800") count the 3 bytes Go's replacement would take.
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    return len(value) if isinstance(value, list | tuple) else math.nan


def _on_text(transform: Callable[[str], str]) -> Callable[[Any], str | None]:
    def apply(value: Any) -> str | None:
        return transform(value) if isinstance(value, str) else None

    return apply


_WORD_START: Final = re.compile(r"(?<!\S)\S")


def _titlecase(text: str) -> str:
    return _WORD_START.sub(lambda m: m.group().upper(), text)


def _typeof(value: Any) -> str:
    kind_ = kind(value)
    return "object" if kind_ == "other" else kind_


def _to_bool(value: Any) -> bool:
    kind_ = kind(value)
    if kind_ == "null":
        return False
    if kind_ == "bool":
        return bool(value)
    if kind_ == "number":
        return bool(value == value and value != 0)
    return value != "" if kind_ == "string" else True


_DECIMAL: Final = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def _to_number(value: Any) -> int | float | None:
    if _is_number(value):
        number: int | float = value
        return number
    if not (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        return None
    try:
        return int(value)
    except ValueError:  # a fraction or an exponent, or too many digits for an int
        parsed = float(value)
        return parsed if math.isfinite(parsed) else None


def _to_string(value: Any) -> str | None:
    kind_ = kind(value)
    if kind_ == "string":
        return str(value)
    if kind_ == "bool":
        return "true" if value else "false"
    if kind_ == "number":
        return _number_text(value)
    if kind_ in ("list", "object"):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return None
    return None


def _number_text(number: int | float) -> str | None:
    if isinstance(number, int):
        try:
            return str(number)
        except ValueError:  # more digits than Python will print
            return None
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


#: What each function of :data:`.fql_syntax.FUNCTIONS` does, on evaluated arguments.
IMPLEMENTATIONS: Final[dict[str, Callable[..., Any]]] = {
    "contains": _contains,
    "match": _match,
    "length": _length,
    "lowercase": _on_text(str.lower),
    "uppercase": _on_text(str.upper),
    "snakecase": _on_text(lambda text: text.replace(" ", "_")),
    "kebabcase": _on_text(lambda text: text.replace(" ", "-")),
    "titlecase": _on_text(_titlecase),
    "typeof": _typeof,
    "bool": _to_bool,
    "string": _to_string,
    "number": _to_number,
}


# -- the AST → closures ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Const:
    """A value known when the condition is compiled (no path under it)."""

    value: Any


_Compiled: TypeAlias = "Fn | _Const"


def _as_fn(compiled: _Compiled) -> Fn:
    if isinstance(compiled, _Const):
        value = compiled.value
        return lambda _event: value
    return compiled


class _Compiler:
    """Compiles each node once; constant parts are folded, common comparisons specialised."""

    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node: Node) -> _Compiled:
        if isinstance(node, Literal):
            return _Const(node.value)
        if isinstance(node, Path):
            return _path(node.keys)
        if isinstance(node, ListOf):
            items = [self.compile(item) for item in node.items]
            if all(isinstance(item, _Const) for item in items):
                return _Const([_as_fn(item)(None) for item in items])
            fns = [_as_fn(item) for item in items]
            return lambda event: [fn(event) for fn in fns]
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Not):
            operand = self.compile(node.operand)
            if isinstance(operand, _Const):
                return _Const(operand.value is not True)
            negated = operand
            return lambda event: negated(event) is not True
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, And):
            return _junction([self.compile(operand) for operand in node.operands], every=True)
        return _junction([self.compile(operand) for operand in node.operands], every=False)

    def call(self, node: Call) -> _Compiled:
        args = [self.compile(arg) for arg in node.args]
        pattern = args[1] if node.name == "match" else None
        if isinstance(pattern, _Const) and isinstance(pattern.value, str):
            try:
                glob = compile_glob(pattern.value)
            except GlobError as exc:
                raise ConditionError(
                    f"match() pattern {pattern.value!r} is malformed: {exc}",
                    text=self.text,
                    offset=node.args[1].offset,
                ) from None
            return _glob_test(args[0], glob)
        function = IMPLEMENTATIONS[node.name]
        if all(isinstance(arg, _Const) for arg in args):
            return _Const(function(*(_as_fn(arg)(None) for arg in args)))
        fns = [_as_fn(arg) for arg in args]
        if len(fns) == 1:
            (only,) = fns
            return lambda event: function(only(event))
        first, second = fns
        return lambda event: function(first(event), second(event))

    def compare(self, node: Compare) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        if isinstance(left, _Const) and isinstance(right, _Const):
            return _Const(_COMPARISONS[node.op](left.value, right.value))
        if node.op in ("=", "!="):
            test = _equality(left, right)
            return test if node.op == "=" else (lambda event: not test(event))
        if node.op == "in":
            return _membership(left, right)
        return _ordering(_ORDERINGS[node.op], left, right)


def _path(keys: tuple[str, ...]) -> Fn:
    if len(keys) == 1:
        (key,) = keys

        def get(event: Any) -> Any:
            if type(event) is dict:
                return event.get(key)
            return event.get(key) if isinstance(event, Mapping) else None

        return get

    def nested(event: Any) -> Any:
        value = event
        for key in keys:
            if type(value) is dict or isinstance(value, Mapping):
                value = value.get(key)
            else:
                return None
        return value

    return nested


def _glob_test(subject: _Compiled, glob: Glob) -> _Compiled:
    if isinstance(subject, _Const):
        return _Const(isinstance(subject.value, str) and glob.matches(subject.value))
    matches = glob.matches

    def test(event: Any) -> bool:
        value = subject(event)
        return isinstance(value, str) and matches(value)

    return test


def _equality(left: _Compiled, right: _Compiled) -> Fn:
    if isinstance(left, _Const):
        left, right = right, left  # equality is symmetric: keep the constant on the right
    read = _as_fn(left)
    if not isinstance(right, _Const):
        other = right
        return lambda event: equal(read(event), other(event))
    constant, kind_ = right.value, kind(right.value)
    if kind_ == "null":
        return lambda event: read(event) is None
    if kind_ == "bool":
        return lambda event: read(event) is constant
    if kind_ == "string":

        def same_string(event: Any) -> bool:
            value = read(event)
            return bool(value == constant) if type(value) is str else equal(value, constant)

        return same_string
    if kind_ == "number" and constant == constant:

        def same_number(event: Any) -> bool:
            value = read(event)
            if type(value) is int or type(value) is float:
                return bool(value == constant)
            return equal(value, constant)

        return same_number
    return lambda event: equal(read(event), constant)


def _membership(left: _Compiled, right: _Compiled) -> _Compiled:
    read = _as_fn(left)
    if isinstance(right, _Const):
        if kind(right.value) != "list":
            return _Const(False)
        keys = [_scalar_key(item) for item in right.value]
        if all(
            key is not None or kind(item) == "number"
            for key, item in zip(keys, right.value, strict=True)
        ):
            # Only scalars (a NaN, equal to nothing, has no key): a set lookup does.
            found = frozenset(key for key in keys if key is not None)
            return lambda event: _scalar_key(read(event)) in found
        items = right.value
        return lambda event: member(read(event), items)
    other = right
    return lambda event: member(read(event), other(event))


def _ordering(compare: Callable[[Any, Any], bool], left: _Compiled, right: _Compiled) -> _Compiled:
    if isinstance(right, _Const):
        if not _is_number(right.value):
            return _Const(False)
        below, read = right.value, _as_fn(left)
        return lambda event: _is_number(value := read(event)) and compare(value, below)
    if isinstance(left, _Const):
        if not _is_number(left.value):
            return _Const(False)
        above, read = left.value, right
        return lambda event: _is_number(value := read(event)) and compare(above, value)
    first, second = left, right
    return lambda event: (
        _is_number(a := first(event)) and _is_number(b := second(event)) and compare(a, b)
    )


def _junction(operands: list[_Compiled], *, every: bool) -> _Compiled:
    # ``and`` (every) or ``or``: an operand counts only when it is literally true.
    fns: list[Fn] = []
    for operand in operands:
        if not isinstance(operand, _Const):
            fns.append(operand)
        elif (operand.value is True) is not every:  # false in an ``and``, true in an ``or``
            return _Const(not every)
    if not fns:
        return _Const(every)
    if len(fns) == 1:
        (only,) = fns
        return lambda event: only(event) is True
    if every:
        if len(fns) == 2:
            first, second = fns
            return lambda event: first(event) is True and second(event) is True
        return lambda event: all(fn(event) is True for fn in fns)
    if len(fns) == 2:
        first, second = fns
        return lambda event: first(event) is True or second(event) is True
    return lambda event: any(fn(event) is True for fn in fns)
