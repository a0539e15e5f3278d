"""The leaves of parsing (pure): constants, names and arguments of a Lark parse tree, for
:mod:`opencdp.query.builder`, each with the parser's errors (line and column)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from lark import Token, Tree

from opencdp.query import ast
from opencdp.query.syntax import DefinitionError, pos


def comparable(value: ast.Value, node: Any) -> ast.Value:
    """``value`` unless it is a list (``unique()``), which only exists(), contains() and
    omits() take."""
    if isinstance(value, ast.Aggregate) and value.reducer == "unique":
        raise DefinitionError(
            "unique() is a list: count it (.count()) before comparing, or test it with "
            "contains() or exists()",
            *pos(node),
        )
    return value


def number(text: str, token: Token) -> int | float:
    """A number constant; whole numbers must fit in 64 bits, as JSON numbers do here."""
    if len(text) > 40:
        raise DefinitionError(f"the number {text[:20]}… is too long", *pos(token))
    value: int | float = float(text) if "." in text else int(text)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise DefinitionError(f"{text} does not fit in 64 bits", *pos(token))
    return value


def args(call: Tree[Any]) -> list[Any]:
    """The arguments of a call (or of braces / brackets)."""
    for child in call.children:
        if isinstance(child, Tree) and child.data == "args":
            return list(child.children)
    return []


def describe(node: Any) -> str:
    if isinstance(node, Token):
        return repr(str(node))
    names = {
        "duration": "a duration",
        "named": "a named argument",
        "braces": "a {…} block",
        "brackets": "a […] list",
        "cast": "an 'as' cast",
        "chain": "a chain of calls",
        "literal": "a constant",
    }
    return names.get(str(node.data), str(node.data))


def kind(node: ast.Expr) -> str:
    if isinstance(node, ast.Aggregate):
        return f"the reducer {node.reducer.replace('unique_count', 'unique().count')}()"
    if isinstance(node, ast.Trait):
        return "trait()"
    if isinstance(node, ast.Property):
        return "property()"
    if isinstance(node, ast.Product):
        return "product()"
    if isinstance(node, ast.Context):
        return "context()"
    return "a value"


ESCAPE = re.compile(r"\\(.)")


def unquote(text: str) -> str:
    return ESCAPE.sub(lambda m: m.group(1), text[1:-1])


def path(name: str, node: Any) -> tuple[str, ...]:
    """``a.b`` → ("a", "b"); a backslash-escaped dot is part of a name (``a\\.b``)."""
    parts: list[str] = []
    current = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name) and name[i + 1] == ".":
            current.append(".")
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    if any(not p for p in parts):
        raise DefinitionError(
            f"{name!r} is not a valid name (an empty part between dots)", *pos(node)
        )
    return tuple(parts)


def timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
