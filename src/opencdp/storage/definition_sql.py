"""Definitions compiled to SQL: the batch evaluation of a query-language AST over every live
profile of a workspace in one statement (SQLAlchemy Core, SQLite and PostgreSQL).

The meaning is :mod:`opencdp.query.evaluate`'s; this module says it in SQL, set-based, and a
property test holds the two equal. Every value is read from JSON (an event's ``payload``, a
trait's ``value``) as a :class:`_Json` that knows its JSON type, its raw value, its text and its
number, so comparisons follow the reference rules: numeric strings compare as numbers, booleans
are no numbers, ``'true'`` equals ``true``, a missing value fails every positive test, strings
order by code point. Sums and averages are exact (PostgreSQL ``numeric``; on SQLite an
aggregate over Python decimals), as the reference's are.

Each aggregate is a correlated subquery over the profile's events (the ``(workspace_id,
profile_id, timestamp_us)`` index serves it); a stream nested in ``where()`` (a funnel) is a
subquery correlated to the enclosing stream's event as well. Each trait read is one left join
of its row to the profile. A numeric aggregate compared with constants (``count() >= 1``)
appears once in the SQL; the general comparison tests an operand's JSON type in every branch,
which would multiply a nested stream's subquery.

``ANY``/``ALL`` of an ACCOUNTS definition are EXISTS over the account's links to its users.

Timestamps compare through ``opencdp_epoch_us`` (a Python function on SQLite, a PL/pgSQL one
from migration 0010 on PostgreSQL), which reads exactly what the reference reads as a time.

``expires_after(N)`` keeps the events at or after the last one not preceded by another within
N, while the last is no older than N (three more correlated subqueries).

Not compiled yet (:class:`NotCompiled`): comparing ``unique()`` (``contains``) and comparing
``first/last(timestamp())`` with anything but a time; the engine evaluates those with the reference
evaluator, reading only the events a definition names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    Numeric,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql import ColumnElement, Select

from opencdp.query import ast
from opencdp.query.evaluate import PAGE_EVENT, SCREEN_EVENT
from opencdp.query.values import number_of, parse_timestamp, text_of
from opencdp.storage.definition_catalog import catalog_join, product_value
from opencdp.storage.definition_json import Json as _Json
from opencdp.storage.definition_json import extract
from opencdp.storage.schema import computed_values, events, links, profiles, traits
from opencdp.timeutil import isoformat_us, to_us

_NUMBERS: frozenset[str] = frozenset({"count", "sum", "avg", "unique_count"})


class NotCompiled(Exception):
    """A construct the SQL compiler does not handle (yet); the message names it."""


# -- SQLite's share of the reference rules ------------------------------------------------------


class _DecimalSum:
    """``opencdp_sum(value)``: the exact sum of the values that read as numbers, as text."""

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.count = 0

    def step(self, value: Any) -> None:
        n = number_of(value)
        if n is not None:
            self.total += n
            self.count += 1

    def finalize(self) -> str:
        return str(self.total)


class _DecimalAvg(_DecimalSum):
    """``opencdp_avg(value)``: the exact mean of the values that read as numbers (NULL: none)."""

    def finalize(self) -> str | None:  # type: ignore[override]
        return str(self.total / self.count) if self.count else None


def _sqlite_number(value: Any) -> float | None:
    n = number_of(value)
    return None if n is None else float(n)


def _sqlite_text(value: Any) -> str | None:
    return None if value is None else text_of(value)


def _sqlite_epoch_us(value: Any) -> int | None:
    stamp = parse_timestamp(value)
    return None if stamp is None else to_us(stamp)


#: SQL functions a SQLite connection gets: name → (arity, function).
SQLITE_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "opencdp_number": (1, _sqlite_number),
    "opencdp_text": (1, _sqlite_text),
    "opencdp_epoch_us": (1, _sqlite_epoch_us),
}
#: SQL aggregates a SQLite connection gets: name → (arity, class).
SQLITE_AGGREGATES: dict[str, tuple[int, type]] = {
    "opencdp_sum": (1, _DecimalSum),
    "opencdp_avg": (1, _DecimalAvg),
}


# -- JSON values --------------------------------------------------------------------------------


class DefinitionCompiler:
    """Compiles definitions for one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect_name: str) -> None:
        self.is_pg = dialect_name == "postgresql"

    def profile_values(
        self,
        root: ast.Expr,
        *,
        workspace_id: str,
        now: datetime,
        collection: str = "users",
        computed: frozenset[str] = frozenset(),
        only: Sequence[str] | None = None,
    ) -> Select[Any]:
        """``SELECT profile_id, value`` for every live profile of ``collection``; turn each
        value into the reference's with :func:`convert`. ``trait()`` of a key in
        ``computed`` reads what that definition computed (an audience: true for members)."""
        p = profiles.alias("p")
        ctx = _Context(self.is_pg, workspace_id, to_us(now), p.c.id, computed)
        # Over the whole workspace, a stream reduced per profile is one grouped pass over
        # the events, joined to the profiles; for a few profiles, index look-ups per profile.
        ctx.grouping = only is None
        value: ColumnElement[Any]
        if isinstance(
            root, ast.Comparison | ast.And | ast.Or | ast.Not | ast.AnyUser | ast.AllUsers
        ):
            value = case((ctx.condition(root, None), 1), else_=0)
        elif isinstance(root, ast.Aggregate):
            value = ctx.aggregate(root)
        elif isinstance(root, ast.Literal):
            value = literal(orjson.dumps(root.value, default=str).decode())
        elif isinstance(root, ast.Function):
            raise NotCompiled(f"{root.name}() (the compute engine applies functions)")
        else:
            value = ctx.json(root, None).encoded
        # For some profiles, their ids lead: SQLite would otherwise walk the (workspace,
        # collection) index over every profile of the workspace and test each against the
        # list, a cost that grows with the store (``|| ''`` keeps that index out of the plan).
        ws: ColumnElement[Any] = p.c.workspace_id
        kind: ColumnElement[Any] = p.c.collection
        if only is not None:
            ws, kind = ws.concat(""), kind.concat("")
        joined: Any = p
        for (_table, key), t in ctx.trait_rows.items():  # each trait read once, by a join
            joined = joined.outerjoin(
                t,
                and_(t.c.workspace_id == workspace_id, t.c.profile_id == p.c.id, t.c.key == key),
            )
        for group in ctx.groups:
            joined = joined.outerjoin(group, group.c.profile_id == p.c.id)
        query = (
            select(p.c.id.label("profile_id"), value.label("value"))
            .select_from(joined)
            .where(
                ws == workspace_id,
                kind == collection,
                p.c.merged_into.is_(None),
            )
        )
        if only is not None:  # a parameter: the statement runs again with other ids
            query = query.where(p.c.id.in_(bindparam("only", list(only), expanding=True)))
        return query


def convert(root: ast.Expr, raw: Any) -> Any:
    """A value as the statement returned it → the value the reference evaluator gives."""
    return converter(root)(raw)


def converter(root: ast.Expr) -> Callable[[Any], Any]:
    """:func:`convert` for ``root``, decided once: a statement's rows are converted by one
    call each, without deciding again per row what ``root`` is."""
    if isinstance(root, ast.Comparison | ast.And | ast.Or | ast.Not | ast.AnyUser | ast.AllUsers):
        return bool
    if not isinstance(root, ast.Aggregate):
        return _json_or_none
    reducer = root.reducer
    if reducer in ("count", "unique_count"):
        return _int_or_zero
    if reducer in ("sum", "avg"):
        return _exact_number
    if reducer == "unique":
        return _sorted_items
    if reducer == "mode" or (reducer in ("min", "max") and root.compare_as == "string"):
        return _as_is
    if isinstance(root.argument, ast.Timestamp):  # first / last event's time, in microseconds
        return _time_or_none
    return _json_or_none  # min, max, first, last: the JSON value


def _json_or_none(raw: Any) -> Any:
    return None if raw is None else orjson.loads(raw)


def _int_or_zero(raw: Any) -> int:
    return int(raw or 0)


def _exact_number(raw: Any) -> int | float | None:
    if raw is None:
        return None
    n = Decimal(str(raw))
    return int(n) if n == n.to_integral_value() else float(n)


def _sorted_items(raw: Any) -> list[Any]:
    return sorted(orjson.loads(raw) if isinstance(raw, str | bytes) else (raw or []))


def _as_is(raw: Any) -> Any:
    return raw


def _time_or_none(raw: Any) -> str | None:
    return None if raw is None else isoformat_us(int(raw))


class _Context:
    """Compiling one definition: the workspace, now, and the profile id column."""

    def __init__(
        self,
        is_pg: bool,
        workspace_id: str,
        now_us: int,
        profile_id: Any,
        computed: frozenset[str],
        aliases: Iterator[int] | None = None,
    ) -> None:
        self.is_pg = is_pg
        self.ws = workspace_id
        self.now_us = now_us
        self.profile_id = profile_id
        self.computed = computed
        self.aliases = aliases if aliases is not None else itertools.count(1)
        #: (table name, key) → the alias of the trait row joined to the profile
        self.trait_rows: dict[tuple[str, str], Any] = {}
        #: whether profile-level streams become grouped subqueries joined to the profiles
        self.grouping = False
        self.groups: list[Any] = []

    # -- conditions -------------------------------------------------------------------------------
    def condition(self, node: ast.Expr, event: _Row | None) -> ColumnElement[bool]:
        if isinstance(node, ast.And):
            return and_(*(self.condition(i, event) for i in node.items))
        if isinstance(node, ast.Or):
            return or_(*(self.condition(i, event) for i in node.items))
        if isinstance(node, ast.Not):
            return not_(self.condition(node.item, event))
        if isinstance(node, ast.Comparison):
            return self.comparison(node, event)
        if isinstance(node, ast.AnyUser | ast.AllUsers):
            return self.users(node)
        raise NotCompiled(f"{type(node).__name__}")  # pragma: no cover

    def users(self, node: ast.AnyUser | ast.AllUsers) -> ColumnElement[bool]:
        """``ANY x`` / ``ALL x`` of an account: ``x`` for each user linked to it by group
        calls (``ALL`` needs at least one user), as EXISTS over the links."""
        link = links.alias(f"l{self._next()}")
        user = _Context(
            self.is_pg, self.ws, self.now_us, link.c.user_profile_id, self.computed, self.aliases
        )
        test = user.condition(node.item, None)
        joined: Any = link
        for (_table, key), t in user.trait_rows.items():
            joined = joined.outerjoin(
                t,
                and_(
                    t.c.workspace_id == self.ws,
                    t.c.profile_id == link.c.user_profile_id,
                    t.c.key == key,
                ),
            )
        local = [link, *user.trait_rows.values()]

        def users_where(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            return exists(
                select(literal(1))
                .select_from(joined)
                .where(
                    link.c.workspace_id == self.ws,
                    link.c.account_profile_id == self.profile_id,
                    *conditions,
                )
                .correlate_except(*local)
            )

        if isinstance(node, ast.AnyUser):
            return users_where(test)
        return and_(users_where(), not_(users_where(not_(test))))

    def comparison(self, node: ast.Comparison, event: _Row | None) -> ColumnElement[bool]:
        name = node.comparator
        if name in ("omits", "none_of"):
            positive: ast.ComparatorName = "contains" if name == "omits" else "one_of"
            return not_(
                self.comparison(ast.Comparison(node.value, positive, node.arguments), event)
            )
        if name in _TIME_TESTS or any(
            isinstance(a, ast.Literal) and isinstance(a.value, datetime) for a in node.arguments
        ):
            return self.time_comparison(node, event)
        if _numeric_against_constants(node):
            return self.numeric_comparison(node, event)
        left = self.operand(node.value, event)
        if name == "exists":
            return left.exists()
        if name == "absent":
            return not_(left.exists())
        if name in ("equals", *_ORDERINGS) and _a_number(node.arguments[0]):
            # against a number: the reference compares numbers only (a word, a boolean or
            # nothing is never equal nor ordered), so the value's number is read once
            number = node.arguments[0]
            assert isinstance(number, ast.Literal)
            n = Decimal(str(number.value))
            bound = literal(n, Numeric) if self.is_pg else literal(float(n))
            return func.coalesce(_COMPARE[name](left.number(), bound), false())
        args = [self.operand(a, event) for a in node.arguments]
        if name == "one_of":
            return or_(*(_equal(left, a) for a in args))
        if name in ("contains", "starts_with", "ends_with"):
            return or_(*(self.text_test(name, left, a) for a in args))
        right = args[0]
        if name == "equals":
            return _equal(left, right)
        if name == "differs":
            return and_(left.exists(), right.exists(), not_(_equal(left, right)))
        return _order(name, left, right)

    def time_comparison(self, node: ast.Comparison, event: _Row | None) -> ColumnElement[bool]:
        """The timestamp comparators (``within_last(7 days)``, ``before_date(…)`` …) and
        comparisons with a timestamp constant: the value read as a time
        (``opencdp_epoch_us``: :data:`~opencdp.query.values.TIMESTAMP_TEXT`, else NULL)."""
        if isinstance(node.value, ast.Aggregate) and isinstance(
            node.value.argument, ast.Timestamp
        ):  # first/last(timestamp()): the time itself
            if any(
                isinstance(a, ast.Literal) and not isinstance(a.value, datetime)
                for a in node.arguments
            ):
                raise NotCompiled("comparing an event's time with a constant that is no time")
            stamp: ColumnElement[Any] = self.aggregate(node.value, parent=event)
            left = _Json(case((stamp.is_(None), "null"), else_="string"), stamp, stamp, self.is_pg)
        else:
            left = self.operand(node.value, event)
            stamp = case((left.kind == "string", func.opencdp_epoch_us(left.raw)), else_=null())
        name = node.comparator
        if name in _TIME_TESTS and name not in ("before_date", "after_date"):
            span = node.arguments[0]
            assert isinstance(span, ast.Duration)
            delta = span.seconds * 1_000_000
            low, high = {
                "within_last": (self.now_us - delta, self.now_us),
                "within_next": (self.now_us, self.now_us + delta),
                "before_last": (None, self.now_us - delta),
                "after_next": (self.now_us + delta, None),
            }[name]
            tests = [stamp >= low] if low is not None else []
            tests += [stamp <= high] if high is not None else []
            return func.coalesce(and_(*tests), false())
        if name in ("exists", "absent"):  # pragma: no cover - no time argument
            raise NotCompiled(name)

        def bound(argument: ast.Value | ast.Duration) -> int | None:
            if not isinstance(argument, ast.Literal):
                raise NotCompiled(f"{name}() of a time and a value that is not a constant")
            when = parse_timestamp(argument.value)
            return None if when is None else to_us(when)

        def test(op: str, argument: ast.Value | ast.Duration) -> ColumnElement[bool]:
            at = bound(argument)
            if at is None:  # a constant that is no time: never equal, never ordered
                return false()
            return func.coalesce(_COMPARE[op](stamp, at), false())

        if name == "before_date":
            return test("less_than", node.arguments[0])
        if name == "after_date":
            return test("greater_than", node.arguments[0])
        if name == "one_of":  # times as times, other constants as the reference compares them
            return or_(
                *(
                    test("equals", a)
                    if isinstance(a, ast.Literal) and isinstance(a.value, datetime)
                    else _equal(left, self.operand(a, event))
                    for a in node.arguments
                )
            )
        if name == "differs":
            if bound(node.arguments[0]) is None:
                return false()
            return and_(left.exists(), not_(test("equals", node.arguments[0])))
        if name in ("equals", *_ORDERINGS):
            return test(name, node.arguments[0])
        raise NotCompiled(f"{name}() with a timestamp")

    def numeric_comparison(self, node: ast.Comparison, event: _Row | None) -> ColumnElement[bool]:
        """``count() >= 1`` and the like: a number (or null: ``avg`` of nothing) against
        constants. The reference's rules are decided here, in Python, for the constants, so
        the aggregate appears once in the SQL (the general path repeats an operand in every
        branch of its type tests, and a nested stream would multiply that)."""
        assert isinstance(node.value, ast.Aggregate)
        picks = node.value.reducer in ("min", "max")
        aggregate = self.aggregate(node.value, parent=event, as_number=picks)
        number: ColumnElement[Any]
        if node.value.reducer in ("count", "unique_count") or picks:
            number = aggregate
        elif self.is_pg:
            number = cast(aggregate, Numeric)
        else:
            number = func.opencdp_number(aggregate)
        name = node.comparator
        if name == "exists":
            return number.is_not(None)
        if name == "absent":
            return number.is_(None)

        def test(op: str, argument: ast.Value | ast.Duration) -> ColumnElement[bool]:
            assert isinstance(argument, ast.Literal)
            constant = argument.value
            n = None if isinstance(constant, bool | datetime) else number_of(constant)
            if n is None:  # null, booleans, times and words are never equal to or ordered
                return false()  # against a number
            bound = literal(n, Numeric) if self.is_pg else literal(float(n))
            return func.coalesce(_COMPARE[op](number, bound), false())

        if name == "one_of":
            return or_(*(test("equals", a) for a in node.arguments))
        if name == "differs":
            constant = node.arguments[0]
            if isinstance(constant, ast.Literal) and constant.value is None:
                return false()
            return and_(number.is_not(None), not_(test("equals", constant)))
        return test(name, node.arguments[0])

    def text_test(self, name: str, left: _Json, right: _Json) -> ColumnElement[bool]:
        text, needle = left.text(), right.text()
        if name == "contains":
            found = func.strpos(text, needle) > 0 if self.is_pg else func.instr(text, needle) > 0
        elif name == "starts_with":
            found = func.substr(text, 1, func.length(needle)) == needle
        else:
            start = func.length(text) - func.length(needle) + 1
            found = and_(start >= 1, func.substr(text, start) == needle)
        return and_(left.exists(), right.exists(), found)

    # -- operands ---------------------------------------------------------------------------------
    def operand(self, node: ast.Value | ast.Duration, event: _Row | None) -> _Json:
        if isinstance(node, ast.Duration):
            raise NotCompiled("a duration as a value")
        if isinstance(node, ast.Literal):
            return self.constant(node.value)
        if isinstance(node, ast.Aggregate):
            value = self.aggregate(node, parent=event)
            if node.reducer in _NUMBERS:
                kind = case((value.is_(None), "null"), else_="number")
                return _Json(kind, cast(value, Text), cast(value, Text), self.is_pg)
            if node.reducer == "unique" or isinstance(node.argument, ast.Timestamp):
                raise NotCompiled(f"comparing {node.reducer}() of that")
            if node.reducer == "mode" or node.compare_as == "string":  # text
                kind = case((value.is_(None), "null"), else_="string")
                return _Json(kind, value, value, self.is_pg)
            # first, last, min, max: the JSON of the value they picked (read once per use)
            return self._extract(value, ())
        return self.json(node, event)

    def constant(self, value: Any) -> _Json:
        if isinstance(value, datetime):
            raise NotCompiled("a timestamp constant")
        if value is None:
            kind, raw = "null", None
        elif isinstance(value, bool):
            kind, raw = "bool", "true" if value else "false"
        elif isinstance(value, int | float):
            kind, raw = "number", text_of(value)
        else:
            kind, raw = "string", str(value)
        encoded = orjson.dumps(value).decode()
        return _Json(literal(kind, String), literal(raw, Text), literal(encoded, Text), self.is_pg)

    def json(self, node: ast.Value, event: _Row | None) -> _Json:
        if isinstance(node, ast.Trait):
            table = computed_values if node.path[0] in self.computed else traits
            slot = (table.name, node.path[0])
            if slot not in self.trait_rows:
                self.trait_rows[slot] = table.alias(f"t{self._next()}")
            return self._extract(self.trait_rows[slot].c.value, node.path[1:])
        if isinstance(node, ast.Property | ast.Product | ast.Context):
            row = event.parent if event is not None and node_is_parent(node) else event
            if row is None:  # pragma: no cover - the parser refuses it
                raise NotCompiled("property() outside a stream")
            if isinstance(node, ast.Product):
                return self.product(node, row)
            if isinstance(node, ast.Context):
                return self._extract(row.event.c.payload, ("context", *node.path))
            if row.item is not None:  # after items(): property() reads the line item
                return self._extract(row.item, node.path)
            return self._extract(row.event.c.payload, ("properties", *node.path))
        raise NotCompiled(f"{type(node).__name__} as a value")  # pragma: no cover

    def product(self, node: ast.Product, row: _Row) -> _Json:
        """``product(path)`` of the event (item) ``row``: its catalog row is joined once,
        by the subquery that selects the row (:meth:`with_catalog`)."""
        prefix: tuple[str, ...] = ()
        if row.item is not None:
            document = row.item
        else:
            document, prefix = row.event.c.payload, ("properties",)
        if not row.catalog:
            name = f"c{self._next()}"
            row.catalog.append(catalog_join(self.is_pg, self.ws, document, prefix, name))
        own = self._extract(document, (*prefix, *node.path))
        return product_value(self.is_pg, row.catalog[0], own, node.path)

    def with_catalog(self, source: Any, rows: Sequence[_Row], local: list[Any]) -> Any:
        """``source`` left-joined to the catalog rows that product() asked of ``rows``
        (their aliases added to the subquery's own FROMs, ``local``)."""
        for row in rows:
            for join in row.catalog:
                source = source.outerjoin(join.alias, join.on)
                local.append(join.alias)
        return source

    def _extract(self, document: Any, path: tuple[str, ...]) -> _Json:
        """The JSON value at ``path`` of the JSON text ``document``."""
        return extract(self.is_pg, document, path)

    def _next(self) -> int:
        return next(self.aliases)

    # -- streams ----------------------------------------------------------------------------------
    def aggregate(
        self, node: ast.Aggregate, parent: _Row | None = None, as_number: bool = False
    ) -> ColumnElement[Any]:
        """The stream reduced, as a subquery correlated to the profile (and, nested in a
        ``where()``, to the enclosing stream's event: a funnel)."""
        e = events.alias(f"e{self._next()}")
        grouped = self.grouping and parent is None and _groupable(node, as_number)
        # grouped: every profile's events at once, no correlation to one profile
        where = self.named(e, node.stream.event, correlated=not grouped)
        source: Any = e  # what the subquery selects from: the events, or their line items
        row = _Row(e, parent=parent)  # what property() and context() read
        order: list[Any] = [e.c.timestamp_us, e.c.received_us, e.c.message_id]
        # The subquery's own FROMs; everything else (the profile, a parent event) comes
        # from the enclosing queries, however deep.
        local: list[Any] = [e]
        rows = [row]  # each row that product() may join the catalog to
        for i, f in enumerate(node.stream.filters):
            if isinstance(f, ast.Items):
                row, source, index, kept = self.items(row, f.path)
                rows.append(row)
                local.append(source.right)
                where.append(kept)
                order.append(index)
            elif isinstance(f, ast.ExpiresAfter):
                where.append(self.session(node.stream, i, row))
            else:
                where.append(self.filter(f, row))
        reducer = node.reducer
        value: _Json | None = None
        if node.argument is not None and not isinstance(node.argument, ast.Timestamp):
            value = self.json(node.argument, row)
        # the catalog rows product() asked for (in filters and the argument), one join each
        source = self.with_catalog(source, rows, local)

        def reduce(agg: ColumnElement[Any], *kept: ColumnElement[bool]) -> ColumnElement[Any]:
            """``agg`` over the stream: per profile by a correlated subquery, or for every
            profile by a grouped one joined to them (none of its events: NULL)."""
            query = select(agg).select_from(source).where(*where, *kept)
            if not grouped:
                return query.correlate_except(*local).scalar_subquery()
            group = (
                query.add_columns(e.c.profile_id)
                .group_by(e.c.profile_id)
                .subquery(f"g{self._next()}")
            )
            self.groups.append(group)
            column: ColumnElement[Any] = group.c[agg.name]
            return column

        if reducer == "count":
            return func.coalesce(reduce(func.count().label("n")), 0)
        assert node.argument is not None
        if isinstance(node.argument, ast.Timestamp):  # first / last event's time: the
            # earliest / latest (time leads the timeline's order; the rest only breaks ties)
            stamp = e.c.timestamp_us
            return reduce((func.min(stamp) if reducer == "first" else func.max(stamp)).label("t"))
        assert value is not None
        if reducer in ("sum", "avg"):
            if self.is_pg:
                agg = func.sum(value.number()) if reducer == "sum" else func.avg(value.number())
            else:
                agg = (
                    func.opencdp_sum(value.raw) if reducer == "sum" else func.opencdp_avg(value.raw)
                )
            sub = reduce(agg.label("v"))
            return func.coalesce(cast(sub, Text), "0") if reducer == "sum" else cast(sub, Text)
        if reducer in ("min", "max"):
            if as_number:  # the number of the value it picks: the least or greatest number
                agg = func.min(value.number()) if reducer == "min" else func.max(value.number())
                return reduce(agg.label("v"))
            if node.compare_as == "string":
                text = value.text().collate("C") if self.is_pg else value.text()
                agg = func.min(text) if reducer == "min" else func.max(text)
                return reduce(agg.label("v"), value.exists())
            number = value.number()
            return (
                select(value.encoded)
                .select_from(source)
                .where(*where, number.is_not(None))
                .order_by(number.asc() if reducer == "min" else number.desc(), *order)
                .limit(1)
                .correlate_except(*local)
                .scalar_subquery()
            )
        if reducer in ("first", "last"):
            ordering = [c.asc() if reducer == "first" else c.desc() for c in order]
            return (
                select(value.encoded)
                .select_from(source)
                .where(*where, value.exists())
                .order_by(*ordering)
                .limit(1)
                .correlate_except(*local)
                .scalar_subquery()
            )
        text = value.text()
        sortable = text.collate("C") if self.is_pg else text
        if reducer == "mode":
            counted = func.count()
            return (
                select(text)
                .select_from(source)
                .where(*where, value.exists())
                .group_by(text)
                .having(counted >= (node.min_count or 1))
                .order_by(counted.desc(), sortable.asc())
                .limit(1)
                .correlate_except(*local)
                .scalar_subquery()
            )
        if reducer == "unique_count":
            return func.coalesce(reduce(func.count(text.distinct()).label("v"), value.exists()), 0)
        agg = (
            func.json_agg(text.distinct()) if self.is_pg else func.json_group_array(text.distinct())
        )
        return cast(reduce(agg.label("v"), value.exists()), Text)

    def named(self, e: Any, name: str, correlated: bool = True) -> list[ColumnElement[bool]]:
        """The profile's events that ``event(name)`` selects (page and screen calls by their
        Segment names); not ``correlated``: every profile's."""
        named = and_(e.c.type == "track", e.c.event == name)
        if name == PAGE_EVENT:
            named = or_(named, e.c.type == "page")
        elif name == SCREEN_EVENT:
            named = or_(named, e.c.type == "screen")
        if not correlated:
            return [e.c.workspace_id == self.ws, named]
        return [e.c.workspace_id == self.ws, e.c.profile_id == self.profile_id, named]

    def session(self, stream: ast.Stream, at: int, row: _Row) -> ColumnElement[bool]:
        """``expires_after(N)``, the ``at``-th filter of ``stream``: the event belongs to the
        current session of the stream so far — at or after the last event not preceded by
        another within N, and only while the last event is no older than N."""
        session = stream.filters[at]
        assert isinstance(session, ast.ExpiresAfter)
        gap = session.duration.seconds * 1_000_000

        def so_far(alias: Any) -> tuple[list[ColumnElement[bool]], Any, list[Any]]:
            """The stream's events up to now, filtered as far as the session → (the
            conditions, the FROM clause with the catalog rows they read, its own FROMs)."""
            mirror = _Row(alias, parent=row.parent)
            kept = [
                *self.named(alias, stream.event),
                alias.c.timestamp_us <= self.now_us,
                *(
                    self.session(stream, i, mirror)
                    if isinstance(f, ast.ExpiresAfter)
                    else self.filter(f, mirror)
                    for i, f in enumerate(stream.filters[:at])
                ),
            ]
            local: list[Any] = [alias]
            return kept, self.with_catalog(alias, [mirror], local), local

        a, b, c = (events.alias(f"s{self._next()}") for _ in range(3))
        b_kept, b_from, b_local = so_far(b)
        opens = not_(
            exists(
                select(literal(1))
                .select_from(b_from)
                .where(
                    *b_kept,
                    b.c.timestamp_us >= a.c.timestamp_us - gap,
                    b.c.timestamp_us < a.c.timestamp_us,
                )
                .correlate_except(*b_local)
            )
        )
        a_kept, a_from, a_local = so_far(a)
        start = (
            select(func.max(a.c.timestamp_us))
            .select_from(a_from)
            .where(*a_kept, opens)
            .correlate_except(*a_local)
            .scalar_subquery()
        )
        c_kept, c_from, c_local = so_far(c)
        last = (
            select(func.max(c.c.timestamp_us))
            .select_from(c_from)
            .where(*c_kept)
            .correlate_except(*c_local)
            .scalar_subquery()
        )
        e = row.event
        return func.coalesce(
            and_(
                e.c.timestamp_us <= self.now_us,
                e.c.timestamp_us >= start,
                last >= self.now_us - gap,
            ),
            false(),
        )

    def items(
        self, row: _Row, path: tuple[str, ...]
    ) -> tuple[_Row, Any, ColumnElement[Any], ColumnElement[bool]]:
        """``items(path)``: the events joined to the object elements of their ``path`` array
        → (the row property() reads, the FROM clause, the element's place, the condition)."""
        e = row.event
        if self.is_pg:
            keys = literal(["properties", *path], ARRAY(Text))
            array = cast(e.c.payload, JSONB).op("#>", return_type=JSONB)(keys)
            elements = (
                func.jsonb_array_elements(
                    case(
                        (func.jsonb_typeof(array) == "array", array), else_=func.jsonb_build_array()
                    )
                )
                .table_valued("value", with_ordinality="place")
                .render_derived(name=f"j{self._next()}")
            )
            kept = func.jsonb_typeof(elements.c.value) == "object"
            place = elements.c.place
        else:
            json_path = "$" + "".join(
                '."' + p.replace('"', '\\"') + '"' for p in ("properties", *path)
            )
            elements = (
                func.json_each(e.c.payload, json_path)
                .table_valued("key", "value", "type")
                .alias(f"j{self._next()}")
            )
            kept = and_(
                func.json_type(e.c.payload, json_path) == "array", elements.c.type == "object"
            )
            place = elements.c.key
        item = _Row(e, elements.c.value, row.parent)
        return item, e.join(elements, true()), place, kept

    def filter(self, f: ast.Filter, row: _Row) -> ColumnElement[bool]:
        e = row.event
        if isinstance(f, ast.Where):
            return self.condition(f.condition, row)
        if isinstance(f, ast.Sources):
            return or_(e.c.source_id.is_(None), e.c.source_id.not_in(list(f.exclude)))
        if isinstance(f, ast.Within | ast.Between):
            newest, oldest = (
                (0, f.duration.seconds)
                if isinstance(f, ast.Within)
                else (f.newest.seconds, f.oldest.seconds)
            )
            if not f.parent:  # back from now
                return and_(
                    e.c.timestamp_us >= self.now_us - oldest * 1_000_000,
                    e.c.timestamp_us <= self.now_us - newest * 1_000_000,
                )
            if row.parent is None:  # pragma: no cover - the parser refuses it
                raise NotCompiled("parent: outside a nested stream")
            anchor = row.parent.event.c.timestamp_us  # after the parent event
            return and_(
                e.c.timestamp_us >= anchor + newest * 1_000_000,
                e.c.timestamp_us <= anchor + oldest * 1_000_000,
            )
        raise NotCompiled(type(f).__name__)  # pragma: no cover - aggregate() handles the rest


@dataclass(frozen=True)
class _Row:
    """The event at hand in a stream: its ``events`` alias; after ``items()`` the line item's
    JSON (``property()`` reads it); in a stream nested in ``where()``, the enclosing stream's
    row (``parent:`` reads it)."""

    event: Any
    item: Any = None
    parent: _Row | None = None
    #: the catalog join product() asked for (none or one), added where the row is selected
    catalog: list[Any] = field(default_factory=list, compare=False)


def _equal(a: _Json, b: _Json) -> ColumnElement[bool]:
    """The reference equality: booleans first, then numbers, then strings."""

    def either(kind: str) -> ColumnElement[bool]:
        return or_(a.kind == kind, b.kind == kind)

    return case(
        (or_(not_(a.exists()), not_(b.exists())), false()),
        (either("bool"), func.coalesce(a.boolean() == b.boolean(), false())),
        (either("number"), func.coalesce(a.number() == b.number(), false())),
        (and_(a.kind == "string", b.kind == "string"), a.raw == b.raw),
        else_=false(),
    )


_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "equals": lambda x, y: x == y,
    "greater_than": lambda x, y: x > y,
    "at_least": lambda x, y: x >= y,
    "less_than": lambda x, y: x < y,
    "at_most": lambda x, y: x <= y,
}


_ORDERINGS = ("greater_than", "at_least", "less_than", "at_most")
_TIME_TESTS = (
    "within_last",
    "within_next",
    "before_last",
    "after_next",
    "before_date",
    "after_date",
)


def _order(name: str, a: _Json, b: _Json) -> ColumnElement[bool]:
    """The reference ordering: as numbers when both read as numbers, else as strings."""
    test = _COMPARE[name]
    return case(
        (and_(a.number().is_not(None), b.number().is_not(None)), test(a.number(), b.number())),
        (and_(a.kind == "string", b.kind == "string"), test(a.string(), b.string())),
        else_=false(),
    )


def node_is_parent(node: ast.Property | ast.Product | ast.Context) -> bool:
    """Whether ``node`` reads the enclosing stream's event (``property(parent: …)``)."""
    return isinstance(node, ast.Property | ast.Product) and node.parent


def _numeric_against_constants(node: ast.Comparison) -> bool:
    """Whether ``node`` compares a numeric aggregate with constants only (the common
    ``count() >= 1``)."""
    if not (
        isinstance(node.value, ast.Aggregate)
        and node.comparator in ("exists", "absent", "equals", "differs", "one_of", *_ORDERINGS)
        and all(isinstance(a, ast.Literal) for a in node.arguments)
    ):
        return False
    if node.value.reducer in _NUMBERS:
        return True
    # min/max by number pick a value that reads as a number: against numbers (not words,
    # which the reference compares as text), its number is all that counts
    return (
        node.value.reducer in ("min", "max")
        and node.value.compare_as != "string"
        and all(
            isinstance(a, ast.Literal)
            and isinstance(a.value, int | float)
            and not isinstance(a.value, bool)
            for a in node.arguments
        )
    )


def json_number(dialect_name: str, document: Any, path: tuple[str, ...]) -> ColumnElement[Any]:
    """The value at ``path`` of the JSON text ``document`` as a number, by the reference's
    rule (numbers, and strings that read as one; else NULL) — for other readers of event
    properties (predicted CLV reads order amounts with it)."""
    context = _Context(dialect_name == "postgresql", "", 0, None, frozenset())
    return context._extract(document, path).number()


def _groupable(node: ast.Aggregate, as_number: bool = False) -> bool:
    """Whether a profile-level stream can be reduced for every profile in one grouped pass:
    a plain aggregate whose filters read only the event (no trait, nested stream or session,
    which are per profile)."""
    plain = node.reducer in ("count", "sum", "avg", "unique", "unique_count")
    picked = node.reducer in ("min", "max") and (node.compare_as == "string" or as_number)
    time = isinstance(node.argument, ast.Timestamp)  # first / last event's time: min / max
    if not (plain or picked or time):
        return False
    return not any(
        isinstance(f, ast.ExpiresAfter) or (isinstance(f, ast.Where) and _per_profile(f.condition))
        for f in node.stream.filters
    )


def _per_profile(node: Any) -> bool:
    """Whether a condition reads the profile (a trait, a nested stream, a parent event)."""
    if isinstance(node, ast.Trait | ast.Aggregate | ast.AnyUser | ast.AllUsers):
        return True
    if isinstance(node, ast.Property | ast.Product):
        return node.parent
    if isinstance(node, ast.And | ast.Or):
        return any(_per_profile(i) for i in node.items)
    if isinstance(node, ast.Not):
        return _per_profile(node.item)
    if isinstance(node, ast.Comparison):
        return _per_profile(node.value) or any(_per_profile(a) for a in node.arguments)
    return False


def _a_number(node: ast.Value | ast.Duration) -> bool:
    """Whether ``node`` is a number constant (booleans are not numbers)."""
    return (
        isinstance(node, ast.Literal)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )
