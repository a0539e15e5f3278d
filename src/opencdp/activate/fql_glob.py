"""The glob patterns of FQL's ``match(s, pattern)`` (pure; see :mod:`.fql`).

Go's ``path.Match``, which Segment's evaluator uses, with ``/`` an ordinary character:
whole-string and case-sensitive; ``*`` matches any run of characters (none included), ``?``
exactly one, ``[abc]`` and ``[a-z]`` one of a set, ``[^…]`` one outside it, and ``\\x`` the
character x (``\\*``, ``\\?``, ``\\]``). A malformed pattern (an unclosed ``[``, a lone
trailing ``\\``, an unescaped ``-`` or ``]`` where a set expects a character) raises
:class:`GlobError`; a range written backwards (``[z-a]``) matches nothing, as in Go.

The pattern is compiled once into the pieces between its runs of ``*``. Each piece has a fixed
width, so the leftmost fit of each middle piece is always a right one: matching takes linear
time, and no pattern can make it backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeAlias

__all__ = ["Glob", "GlobError", "compile_glob", "glob_or_none"]


class GlobError(ValueError):
    """A malformed ``match`` pattern; ``index`` is where in the pattern."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


#: A piece of a pattern between runs of ``*``: literal text, or a regex of fixed width.
Chunk: TypeAlias = "str | re.Pattern[str]"


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled pattern: the pieces between its runs of ``*`` (literal text, or a regex of
    fixed width) and their widths."""

    pattern: str
    chunks: tuple[Chunk, ...]
    widths: tuple[int, ...]

    def matches(self, text: str) -> bool:
        chunks, widths = self.chunks, self.widths
        if len(chunks) == 1:
            return widths[0] == len(text) and _at(chunks[0], text, 0)
        end = len(text) - widths[-1]  # where the last chunk must start
        if widths[0] > end or not _at(chunks[0], text, 0):
            return False
        position = widths[0]
        for chunk, width in zip(chunks[1:-1], widths[1:-1], strict=True):
            found = _find(chunk, text, position, end)
            if found < 0:
                return False
            position = found + width
        return position <= end and _at(chunks[-1], text, end)


def _at(chunk: Chunk, text: str, position: int) -> bool:
    if isinstance(chunk, str):
        return text.startswith(chunk, position)
    return chunk.match(text, position) is not None


def _find(chunk: Chunk, text: str, start: int, end: int) -> int:
    if isinstance(chunk, str):
        return text.find(chunk, start, end)
    found = chunk.search(text, start, end)
    return -1 if found is None else found.start()


def compile_glob(pattern: str) -> Glob:
    """``pattern`` compiled; raises :class:`GlobError` when it is malformed."""
    groups: list[list[str | _Set]] = [[]]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            groups.append([])
            while index < len(pattern) and pattern[index] == "*":
                index += 1
            continue
        if char == "?":
            groups[-1].append(_Set("."))
        elif char == "[":
            atom, index = _char_set(pattern, index)
            groups[-1].append(atom)
            continue
        elif char == "\\":
            if index + 1 == len(pattern):
                raise GlobError("a lone '\\' ends the pattern; write '\\\\' for a backslash", index)
            index += 1
            groups[-1].append(pattern[index])
        else:
            groups[-1].append(char)
        index += 1
    chunks: list[Chunk] = []
    for group in groups:
        if all(isinstance(atom, str) for atom in group):
            chunks.append("".join(atom for atom in group if isinstance(atom, str)))
        else:
            regex = "".join(
                atom.regex if isinstance(atom, _Set) else re.escape(atom) for atom in group
            )
            chunks.append(re.compile(regex, re.DOTALL))
    return Glob(pattern, tuple(chunks), tuple(len(group) for group in groups))


@dataclass(frozen=True, slots=True)
class _Set:
    """One character from a set, as a regex."""

    regex: str


def _char_set(pattern: str, start: int) -> tuple[_Set, int]:
    index = start + 1
    negated = pattern.startswith("^", index)
    if negated:
        index += 1
    ranges: list[tuple[str, str]] = []
    while not (ranges and pattern.startswith("]", index)):
        low, index = _set_char(pattern, index, start)
        high = low
        if pattern.startswith("-", index):
            high, index = _set_char(pattern, index + 1, start)
        ranges.append((low, high))
    parts = [
        re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}"
        for low, high in ranges
        if low <= high  # Go lets [z-a] match nothing; Python's re would refuse it
    ]
    if not parts:
        return _Set("." if negated else "(?!)"), index + 1
    return _Set(f"[{'^' if negated else ''}{''.join(parts)}]"), index + 1


def _set_char(pattern: str, index: int, start: int) -> tuple[str, int]:
    if index >= len(pattern):
        raise GlobError(f"the '[' at character {start + 1} has no closing ']'", start)
    char = pattern[index]
    if char in "-]":
        raise GlobError(f"write '\\{char}' for a literal {char!r} in a [set]", index)
    if char == "\\":
        index += 1
        if index >= len(pattern):
            raise GlobError(f"the '[' at character {start + 1} has no closing ']'", start)
        char = pattern[index]
    return char, index + 1


def glob_or_none(pattern: str) -> Glob | None:
    """``pattern`` compiled, or None when it is malformed; short patterns are cached."""
    return _cached(pattern) if len(pattern) <= 256 else _compile_or_none(pattern)


def _compile_or_none(pattern: str) -> Glob | None:
    try:
        return compile_glob(pattern)
    except GlobError:
        return None


_cached: Final = lru_cache(maxsize=1024)(_compile_or_none)
