"""Paths and ``{{ }}`` placeholders, for :mod:`.mapping`.

A path names a place in an event the way Segment's mapping kit reads it (``core/src/get.ts``):
keys separated by dots, ``[0]`` for an index, ``['a b']`` or ``["a b"]`` for a key holding
anything, a leading ``$.`` optional (``@path`` only; placeholders take it as a key ``$``). A
bracket holding anything else is part of the key (``a[b]`` is the key ``a[b]``), empty
segments are skipped, and an empty path is the whole event. A missing place is
:data:`UNDEFINED`, never ``None``, which is a value an event can hold.

Two differences from ``get.ts``, both where JavaScript leaks through: only objects and arrays
are entered (``get.ts`` returns ``0`` for ``a.b`` when ``a`` is ``0``, and ``"abc".length``
is 3), and a quoted key is taken as written (``get.ts`` splits ``['a.b']`` at its dot and
drops quotes anywhere in a path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opencdp.activate.mapping_values import UNDEFINED, value_text

__all__ = ["Path", "Template", "lookup", "parse_path", "parse_template", "render_template"]


# One segment: the key as written, and the array index it also names (a canonical
# non-negative integer), so ``a.0`` and ``a[0]`` both index an array and key an object.
Segment = tuple[str, int | None]
Path = tuple[Segment, ...]

_INDEX = re.compile(r"\[(\d+)\]")
_QUOTED = re.compile(r"""\[(['"])(.*?)\1\]""", re.DOTALL)
_CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]*")


def _segment(key: str) -> Segment:
    return (key, int(key) if _CANONICAL_INDEX.fullmatch(key) else None)


def parse_path(text: str, *, strip_root: bool = True) -> Path:
    """The segments of ``text``; ``()`` means the whole event.

    ``strip_root`` drops one leading ``$.`` (``@path`` and ``@arrayPath``); placeholders
    in ``@template`` keep it, as Segment's do.
    """
    if strip_root and text.startswith("$."):
        text = text[2:]
    segments: list[Segment] = []
    key: list[str] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == ".":
            if key:
                segments.append(_segment("".join(key)))
                key.clear()
            i += 1
            continue
        if char == "[":
            name: str | None = None
            if match := _INDEX.match(text, i):
                name = match.group(1)
            elif match := _QUOTED.match(text, i):
                name = match.group(2)
            if match is not None and name is not None:
                if key:
                    segments.append(_segment("".join(key)))
                    key.clear()
                segments.append(_segment(name))
                i = match.end()
                continue
        key.append(char)
        i += 1
    if key:
        segments.append(_segment("".join(key)))
    return tuple(segments)


def lookup(root: Any, path: Path) -> Any:
    """The value at ``path`` under ``root``, or :data:`UNDEFINED`."""
    value = root
    for key, index in path:
        if isinstance(value, dict):
            value = value.get(key, UNDEFINED)
        elif isinstance(value, list):
            if index is None or index >= len(value):
                return UNDEFINED
            value = value[index]
        elif isinstance(value, Mapping):
            value = value.get(key, UNDEFINED)
        else:
            return UNDEFINED
    return value


# A template alternates text and placeholders: str parts are copied, Path parts looked up.
Template = tuple[str | Path, ...]

# Triple braces first at any position, then double; ``[^}]+`` is why a placeholder's path
# cannot hold ``}``. One pass, so text substituted for one placeholder is never re-read as
# another (Segment runs two passes, so a value holding ``{{x}}`` from a ``{{{ }}}``
# placeholder was substituted again).
_PLACEHOLDER = re.compile(r"\{\{\{([^}]+)\}\}\}|\{\{([^}]+)\}\}")


def parse_template(text: str) -> Template:
    """``@template`` text split into literal text and the paths of its placeholders."""
    parts: list[str | Path] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        parts.append(parse_path(inner.strip(), strip_root=False))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def render_template(template: Template, payload: Any) -> str:
    """The template's text with each placeholder replaced by :func:`value_text` of its value."""
    out: list[str] = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(value_text(lookup(payload, part)))
    return "".join(out)
