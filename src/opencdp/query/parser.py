"""Segment's query language → the typed AST of :mod:`opencdp.query.ast` (pure).

Two steps: :mod:`opencdp.query.syntax` parses the text with a small LALR grammar that knows
the shape of the language but not its vocabulary; :mod:`opencdp.query.builder` then turns each
chain of calls into typed nodes, checking Segment's type lattice. Every error is a
:class:`DefinitionError` naming line, column and what was expected. This module checks the
whole definition (its kind, its limits) and says what it reads.

Accepted spellings: keywords in any case; ``=`` and ``==``; ``where(cond)`` and
``where({cond})``; ``sources({exclude: ['a', 'b']})`` and ``sources({exclude: 'a', 'b'})``;
strings in single or double quotes; timestamps quoted or bare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lark.exceptions import UnexpectedInput

from opencdp.query import ast
from opencdp.query.builder import MAX_DURATION_SECONDS, Builder, is_condition
from opencdp.query.functions import FUNCTIONS
from opencdp.query.syntax import (
    PARSER,
    DefinitionError,
    DefinitionKind,
    DefinitionType,
    pos,
    syntax_error,
)

#: At most this many primary expressions (extractor-rooted chains) per definition (Segment's limit).
MAX_PRIMARY_EXPRESSIONS: Final = 50
#: The longest definition accepted, in characters.
MAX_QUERY_LENGTH: Final = 20_000

__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_PRIMARY_EXPRESSIONS",
    "MAX_QUERY_LENGTH",
    "Definition",
    "DefinitionError",
    "DefinitionKind",
    "DefinitionType",
    "parse",
]


@dataclass(frozen=True, slots=True)
class Definition:
    """A parsed definition: its AST, and what it reads."""

    query: str
    kind: DefinitionKind
    type: DefinitionType
    root: ast.Expr
    #: the event names it reads (empty: it reads traits only)
    events: frozenset[str]
    #: the trait keys it reads (their first path element)
    traits: frozenset[str]
    #: whether it reads the catalog (``product()``)
    catalog: bool = False

    @property
    def reads_events(self) -> bool:
        return bool(self.events)

    @property
    def time_dependent(self) -> bool:
        """Whether time alone can change its value: a window or a session relative to now,
        a comparison with now (``within_last`` …), or ``days_since()``."""
        return _uses_now(self.root)

    @property
    def population(self) -> bool:
        """Whether a profile's value depends on the other profiles (``quintile``, ``clv``):
        computed in batch only, on the schedule and on demand."""
        return isinstance(self.root, ast.Function) and FUNCTIONS[self.root.name].population


_NOW_COMPARATORS: Final = frozenset({"within_last", "within_next", "before_last", "after_next"})


def _uses_now(node: object) -> bool:
    if isinstance(node, ast.Function):
        return FUNCTIONS[node.name].time_dependent or any(_uses_now(a) for a in node.arguments)
    if isinstance(node, ast.Aggregate):
        return any(
            isinstance(f, ast.ExpiresAfter)
            or (isinstance(f, ast.Within | ast.Between) and not f.parent)
            or (isinstance(f, ast.Where) and _uses_now(f.condition))
            for f in node.stream.filters
        )
    if isinstance(node, ast.And | ast.Or):
        return any(_uses_now(i) for i in node.items)
    if isinstance(node, ast.Not | ast.AnyUser | ast.AllUsers):
        return _uses_now(node.item)
    if isinstance(node, ast.Comparison):
        return (
            node.comparator in _NOW_COMPARATORS
            or _uses_now(node.value)
            or any(_uses_now(a) for a in node.arguments)
        )
    return False


def parse(
    query: str, kind: DefinitionKind = "audience", definition_type: DefinitionType = "USERS"
) -> Definition:
    """Parse ``query`` as an audience (a condition) or a computed trait (a value)."""
    if not isinstance(query, str) or not query.strip():
        raise DefinitionError(
            "the query is empty: write a condition such as event('Order Completed').count() >= 1"
        )
    if definition_type not in ("USERS", "ACCOUNTS"):
        raise DefinitionError(f'the type is "USERS" or "ACCOUNTS", not {definition_type!r}')
    if len(query) > MAX_QUERY_LENGTH:
        raise DefinitionError(
            f"the definition is {len(query):,} characters long; at most {MAX_QUERY_LENGTH:,}"
        )
    try:
        tree = PARSER.parse(query)
    except UnexpectedInput as exc:
        raise syntax_error(exc, query) from None
    except RecursionError:
        raise DefinitionError("the definition is nested too deeply") from None
    builder = Builder(definition_type, tree.children[0])
    try:
        root = builder.expr(tree.children[0])
    except RecursionError:
        raise DefinitionError("the definition is nested too deeply") from None
    if kind == "audience" and isinstance(root, ast.Function):
        raise DefinitionError(
            f"{root.name}() computes a trait: define it as a computed trait and compare "
            f"that in the audience, e.g. trait('my_trait') > 1",
            *pos(tree.children[0]),
        )
    if kind == "audience" and not is_condition(root):
        raise DefinitionError(
            "an audience needs a condition (true or false for each profile), such as "
            "event('Order Completed').count() >= 1 or trait('plan') = 'pro'",
            *pos(tree.children[0]),
        )
    if kind == "trait" and is_condition(root):
        raise DefinitionError(
            "a computed trait needs a value, such as event('Order Completed').count() or "
            "event('Order Completed').sum(property('revenue')); this is a condition",
            *pos(tree.children[0]),
        )
    if kind == "trait" and isinstance(root, ast.Property | ast.Product | ast.Context):
        raise DefinitionError(
            "property(), product() and context() read an event: use them inside where() or "
            "a reducer",
            *pos(tree.children[0]),
        )
    if builder.primaries > MAX_PRIMARY_EXPRESSIONS:
        raise DefinitionError(
            f"the definition has {builder.primaries} expressions; at most "
            f"{MAX_PRIMARY_EXPRESSIONS} are allowed: split it into computed traits"
        )
    return Definition(
        query,
        kind,
        definition_type,
        root,
        frozenset(builder.events),
        frozenset(builder.traits),
        builder.catalog,
    )
