"""``@liquid`` for :mod:`.mapping`: python-liquid held to Segment's LiquidJS limits.

Segment renders ``@liquid`` with LiquidJS (AD ``mapping-kit/liquid-directive.ts``); we render
with python-liquid 2, and keep Segment's limits:

* a template has at most 1,000 characters;
* the tags ``case``, ``for``, ``include``, ``layout``, ``render`` and ``tablerow`` are refused
  when the template is parsed, and so are Segment's disabled filters (``map``, ``sort``,
  ``reverse``, ``uniq``, ``concat``, ``find``, ``group_by``, ``where_exp`` and the rest of
  :data:`DISABLED_FILTERS`) and any filter python-liquid does not have, so a mapping that
  would fail on every event is refused when it is saved;
* no HTML escaping (``{{ x }}`` writes ``<b>`` as ``<b>``);
* the event is the root scope (``{{ properties.name }}``, as Segment's code does) and is also
  bound as ``event`` (``{{ event.properties.name }}``, as Segment's docs write). A track
  event's own ``event`` field still renders as its name: ``{{ event }}`` is
  ``Order Completed`` and ``{{ event.properties.name }}`` reads the event;
* ``json`` writes a value as compact JSON, as LiquidJS's filter does.

python-liquid has no wall-clock limit (LiquidJS stops a render after 500 ms and 100 MB).
Without loops a template does at most one step per tag or filter it contains, so we bound
each step instead: every filter call first checks a 500 ms deadline set when the render
starts, refuses inputs and results over 1,000,000 characters, 100,000 items or 4,096-bit
integers (and a ``join`` or ``replace`` whose result would be over the limit before building
it); assigned variables hold at most 10 MB and the output at most 1,000,000 characters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import orjson
from liquid import BoundTemplate, Environment, RenderContext, is_undefined
from liquid.exceptions import LiquidError, LiquidSyntaxError
from liquid.stream import TokenStream
from liquid.tag import Tag
from liquid.token import Token

from opencdp.activate.mapping_values import UNDEFINED, json_text

__all__ = [
    "DISABLED_FILTERS",
    "DISABLED_TAGS",
    "MAX_TEMPLATE_CHARS",
    "TIME_LIMIT_SECONDS",
    "LiquidRenderError",
    "compile_liquid",
]

MAX_TEMPLATE_CHARS = 1_000
TIME_LIMIT_SECONDS = 0.5
MAX_VALUE_CHARS = 1_000_000
MAX_VALUE_ITEMS = 100_000
MAX_INT_BITS = 4_096
MAX_ASSIGNED_BYTES = 10_000_000

DISABLED_TAGS = ("case", "for", "include", "layout", "render", "tablerow")
DISABLED_FILTERS = (
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
)

# Read through the module so a test can make time pass.
_monotonic: Callable[[], float] = time.monotonic


class LiquidRenderError(Exception):
    """A template failed on one event: a limit, a filter's error, a bad argument."""


class _LimitExceeded(LiquidError):
    pass


def _check_size(value: object, token: Token | None) -> None:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise _LimitExceeded(f"a text over {MAX_VALUE_CHARS:,} characters", token=token)
    elif isinstance(value, list | tuple | dict | range):
        if len(value) > MAX_VALUE_ITEMS:
            raise _LimitExceeded(f"a list over {MAX_VALUE_ITEMS:,} items", token=token)
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _LimitExceeded(f"a number over {MAX_INT_BITS:,} bits", token=token)


def _check_growth(name: str, left: object, args: tuple[object, ...], token: Token | None) -> None:
    """Refuse the two filters whose result can be far larger than their inputs, before they run."""
    if name == "join" and isinstance(left, list | tuple | range):
        separator = args[0] if args else " "
        growth = len(left) * len(str(separator))
    elif name == "replace" and isinstance(left, str) and args:
        sub = args[1] if len(args) > 1 else ""
        growth = left.count(str(args[0])) * len(str(sub))
    else:
        return
    if growth > MAX_VALUE_CHARS:
        raise _LimitExceeded(f"{name} would write over {MAX_VALUE_CHARS:,} characters", token=token)


def _guard(
    func: Callable[..., object], name: str, deadline: float, token: Token | None
) -> Callable[..., object]:
    def guarded(left: object, *args: object, **kwargs: object) -> object:
        if _monotonic() > deadline:
            raise _LimitExceeded(
                f"time limit of {int(TIME_LIMIT_SECONDS * 1000)} ms exceeded", token=token
            )
        _check_size(left, token)
        for arg in (*args, *kwargs.values()):
            _check_size(arg, token)
        _check_growth(name, left, args, token)
        result = func(left, *args, **kwargs)
        _check_size(result, token)
        return result

    return guarded


class _GuardedContext(RenderContext):
    """A render context whose filters share one deadline and check every value's size."""

    __slots__ = ("deadline",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = _monotonic() + TIME_LIMIT_SECONDS

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        return _guard(super().filter(name, token), name, self.deadline, token)


class _GuardedTemplate(BoundTemplate):
    context_class = _GuardedContext


class _DisabledTag(Tag):
    block = False

    def parse(self, stream: TokenStream) -> Any:
        raise LiquidSyntaxError(f"tag '{self.name}' is disabled in mappings", token=stream.current)


def _json_filter(value: object) -> str:
    if is_undefined(value):
        return ""
    try:
        return json_text(value)
    except ValueError:
        return orjson.dumps(value, default=str).decode()


class _MappingEnvironment(Environment):
    template_class = _GuardedTemplate
    local_namespace_limit: ClassVar[int | None] = MAX_ASSIGNED_BYTES
    output_stream_limit: ClassVar[int | None] = MAX_VALUE_CHARS
    loop_iteration_limit: ClassVar[int | None] = MAX_VALUE_ITEMS


def _environment() -> Environment:
    env = _MappingEnvironment(autoescape=False, strict_filters=True)
    for name in DISABLED_TAGS:
        tag = _DisabledTag(env)
        tag.name = name
        env.tags[name] = tag
    for name in DISABLED_FILTERS:
        env.filters.pop(name, None)
    env.add_filter("json", _json_filter)
    return env


_ENV = _environment()


class _EventName(str):
    """A track event's ``event`` field: renders and compares as the name, and opens the event
    it came from, so ``{{ event }}`` and ``{{ event.properties.name }}`` both work."""

    _payload: Mapping[str, Any]

    def __new__(cls, name: str, payload: Mapping[str, Any]) -> _EventName:
        self = super().__new__(cls, name)
        self._payload = payload
        return self

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._payload[key]
        return str.__getitem__(self, key)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, LiquidError):
        where = exc.context()
        text = str(exc.message)
        return f"{text} (line {where[0]}, column {where[1] + 1})" if where else text
    return f"{type(exc).__name__}: {exc}"


def compile_liquid(source: str) -> tuple[Callable[[Any], str] | None, list[str]]:
    """A renderer for ``source`` and no problems, or ``None`` and every problem found."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return None, [f"at most {MAX_TEMPLATE_CHARS:,} characters, found {len(source):,}"]
    try:
        template = _ENV.from_string(source)
        filters = template.analyze(include_partials=False).filters
    except LiquidError as exc:
        return None, [_error_text(exc)]
    problems = [
        f"filter '{name}' is disabled in mappings"
        if name in DISABLED_FILTERS
        else f"unknown filter '{name}'"
        for name in filters
        if name not in _ENV.filters
    ]
    if problems:
        return None, problems

    def render(payload: Any) -> str:
        try:
            if not isinstance(payload, Mapping):
                return template.render()
            name = payload.get("event", UNDEFINED)
            if isinstance(name, str):
                return template.render(payload, event=_EventName(name, payload))
            if name is UNDEFINED or name is None:
                return template.render(payload, event=payload)
            return template.render(payload)
        except Exception as exc:  # the template is user input: whatever fails is its fault
            raise LiquidRenderError(_error_text(exc)) from exc

    return render, []
