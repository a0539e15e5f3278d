"""What :mod:`.mapping`'s directives do to values, where JavaScript decides the answer.

Segment's mapping kit runs in JavaScript, so ``undefined``, loose equality, ``String()`` and
``JSON.stringify`` shape its results. This module gives those answers over Python's JSON
values: :data:`UNDEFINED` for ``undefined``; :func:`not_blank` for ``@if``'s ``blank``;
:func:`number_text` and :func:`json_text` for numbers and JSON as JavaScript writes them; and
the plain operations of ``@replace``, ``@flatten``, ``@json`` and ``@excludeWhenNull``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import orjson

__all__ = [
    "UNDEFINED",
    "decode_json",
    "drop_nulls",
    "exists",
    "flatten",
    "json_text",
    "literal_replacer",
    "not_blank",
    "number_text",
    "value_text",
]


class _Undefined:
    """The type of :data:`UNDEFINED`: a place a mapping looked for and did not find."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()
"""JavaScript's ``undefined``, distinct from ``None`` (an event's ``null``): keys holding it
are dropped from a mapping's result."""


def exists(value: Any) -> bool:
    """``@if``'s ``exists``: neither null nor undefined."""
    return value is not None and value is not UNDEFINED


def not_blank(value: Any) -> bool:
    """``@if``'s ``blank`` holds: not null, not undefined and not ``== ''`` in JavaScript (so
    ``0``, ``false`` and ``[]`` are blank, ``" "`` and ``"0"`` are not)."""
    return value is not None and value is not UNDEFINED and not _loosely_empty(value)


def _loosely_empty(value: Any) -> bool:
    """``value == ''`` in JavaScript: arrays compare as their ``join(",")``, numbers as numbers."""
    if isinstance(value, str):
        return value == ""
    if isinstance(value, bool | int | float):
        return value == 0
    if isinstance(value, list):
        if len(value) != 1:
            return not value
        only = value[0]
        return only is None or only is UNDEFINED or _joins_empty(only)
    return False


def _joins_empty(value: Any) -> bool:
    """Whether an array element is written as ``""`` when its array is joined."""
    if isinstance(value, str):
        return value == ""
    if isinstance(value, list):
        return len(value) == 0 or (len(value) == 1 and _loosely_empty(value))
    return False


def value_text(value: Any) -> str:
    """A value as ``@template`` text: strings as they are, null and undefined as ``""``,
    numbers as JavaScript writes them, anything else as JSON (Segment's ``String()`` gave
    ``a,b`` and ``[object Object]``)."""
    if isinstance(value, str):
        return value
    if value is None or value is UNDEFINED:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return json_text(value)


def number_text(number: float) -> str:
    """``String(number)`` in JavaScript: ``10.0`` is ``"10"``, ``1e-7`` is ``"1e-7"``."""
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    # repr() gives the shortest digits that read back as the same float, which is what
    # JavaScript prints too; only where the decimal point and exponent go differs.
    sign, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # the value is 0.<digits> x 10^point
    if len(digits) <= point <= 21:
        text = digits + "0" * (point - len(digits))
    elif 0 < point <= 21:
        text = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        text = f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"
    return "-" + text if sign else text


def json_text(value: Any) -> str:
    """``JSON.stringify(value)``: compact, non-ASCII kept. Raises ``ValueError`` for a value
    JSON cannot hold."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits, which JSON itself allows.
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"cannot be written as JSON: {exc}") from exc


def decode_json(value: Any) -> Any:
    """``@json`` decode: a string's JSON value, the string itself when it is not JSON, and any
    other value unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def literal_replacer(
    pattern: str, replacement: str, is_global: bool, ignorecase: bool
) -> Callable[[str], str]:
    """``@replace``: ``pattern`` matched as written (not as a regular expression), every match
    or the first, and ``replacement`` inserted as written."""
    if not ignorecase:
        count = -1 if is_global else 1
        return lambda text: text.replace(pattern, replacement, count)
    regex = re.compile(re.escape(pattern), re.IGNORECASE)
    count = 0 if is_global else 1
    return lambda text: regex.sub(lambda _match: replacement, text, count=count)


def flatten(value: Any, separator: str, omit_arrays: bool) -> dict[str, Any]:
    """``@flatten``: nested keys joined with ``separator``, arrays by index unless
    ``omit_arrays``; empty objects and arrays vanish. As Segment's ``flattenObject``, a value
    that is neither sits under the key ``""`` and undefined gives ``{}``."""
    flat: dict[str, Any] = {}
    if value is not UNDEFINED:
        _flatten_into(flat, value, "", separator, omit_arrays)
    return flat


def _flatten_into(
    flat: dict[str, Any], value: Any, prefix: str, separator: str, omit_arrays: bool
) -> None:
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list) and not omit_arrays:
        items = enumerate(value)
    else:
        flat[prefix] = value
        return
    for key, item in items:
        # Segment tests the prefix for truth, so a key "" at the top joins nothing.
        name = f"{prefix}{separator}{key}" if prefix else str(key)
        _flatten_into(flat, item, name, separator, omit_arrays)


def drop_nulls(value: Mapping[str, Any]) -> dict[str, Any]:
    """``@excludeWhenNull`` on an object: its null-valued keys dropped, in nested objects too
    (not inside arrays)."""
    return {
        key: drop_nulls(item) if isinstance(item, Mapping) else item
        for key, item in value.items()
        if item is not None
    }
