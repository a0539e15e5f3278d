"""The second step of parsing: a Lark parse tree → the typed AST of :mod:`opencdp.query.ast`
(pure).

:class:`Builder` walks the tree and turns each chain of calls into typed nodes, checking the
type lattice of Segment's documentation: a chain starts with an extractor, filters may follow
``event()``, one reducer ends a stream, ``unique()`` may only be counted, one comparator ends a
chain; OpenCDP's extensions (``timestamp()``, ``items()``, the functions) are checked here too.
Every error is a :class:`~opencdp.query.syntax.DefinitionError` naming line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, cast, get_args

from lark import Token, Tree

from opencdp.query import ast, leaves
from opencdp.query.catalog import check_field
from opencdp.query.functions import CLV_OUTPUTS, FUNCTIONS
from opencdp.query.syntax import DefinitionError, DefinitionType, one_of, pos

#: The longest duration accepted (windows, sessions, date comparisons): 100 years.
MAX_DURATION_SECONDS: Final = 36_500 * 86_400

_SUGAR: Final[dict[str, ast.ComparatorName]] = {
    "=": "equals",
    "==": "equals",
    "!=": "differs",
    ">": "greater_than",
    ">=": "at_least",
    "<": "less_than",
    "<=": "at_most",
}
_COMPARATORS: Final = frozenset(get_args(ast.ComparatorName))
_REDUCERS: Final = frozenset(
    {"count", "sum", "avg", "min", "max", "mode", "first", "last", "unique"}
)
_FILTERS: Final = frozenset({"where", "sources", "within", "between", "expires_after"})
_EXTRACTORS: Final = frozenset(
    {"event", "entity", "trait", "property", "product", "context", "literal"}
)
_WINDOW_UNITS: Final = frozenset({"hour", "hours", "day", "days"})


def is_condition(node: ast.Expr) -> bool:
    return isinstance(
        node, ast.Comparison | ast.And | ast.Or | ast.Not | ast.AnyUser | ast.AllUsers
    )


@dataclass
class _Scope:
    """Where an expression is written: inside a ``where()`` (events are at hand) and inside a
    stream nested in another (``parent:`` references are allowed)."""

    in_where: bool = False
    nested_stream: bool = False


class Builder:
    def __init__(self, definition_type: DefinitionType, root: Any) -> None:
        self.definition_type = definition_type
        self.root = root  # the parse tree of the whole definition (where functions may stand)
        self.primaries = 0
        self.events: set[str] = set()
        self.traits: set[str] = set()
        self.catalog = False  # whether product() reads the catalog

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, node: Any, scope: _Scope | None = None) -> ast.Expr:
        scope = scope or _Scope()
        if isinstance(node, Token):
            return self.literal_token(node)
        rule = node.data
        if rule == "or_expr":
            return ast.Or(tuple(self.condition(c, scope) for c in node.children))
        if rule == "and_expr":
            return ast.And(tuple(self.condition(c, scope) for c in node.children))
        if rule == "not_":
            return ast.Not(self.condition(node.children[0], scope))
        if rule in ("any_", "all_"):
            word = "ANY" if rule == "any_" else "ALL"
            if self.definition_type != "ACCOUNTS" or scope.in_where:
                raise DefinitionError(
                    f"{word} aggregates over an account's users: only in ACCOUNTS definitions, "
                    "at the top of the condition",
                    *pos(node),
                )
            inner = self.condition(node.children[0], scope)
            return ast.AnyUser(inner) if word == "ANY" else ast.AllUsers(inner)
        if rule == "comparison":
            left, op, right = node.children
            value = leaves.comparable(self.value(left, scope), left)
            operand = leaves.comparable(self.value(right, scope), right)
            return ast.Comparison(value, _SUGAR[str(op)], (operand,))
        if rule == "literal":
            return self.literal_token(node.children[0])
        if rule == "chain":
            return self.chain(node, scope)
        raise DefinitionError(f"{leaves.describe(node)} cannot stand here", *pos(node))

    def condition(self, node: Any, scope: _Scope) -> ast.Condition:
        result = self.expr(node, scope)
        if not is_condition(result):
            raise DefinitionError(
                "AND, OR and NOT join conditions; this is a value: compare it, "
                "e.g. … >= 1 or ….exists()",
                *pos(node),
            )
        return cast(ast.Condition, result)

    def value(self, node: Any, scope: _Scope) -> ast.Value:
        result = self.expr(node, scope)
        if is_condition(result):
            raise DefinitionError(
                "a comparison needs a value on each side; this is a condition", *pos(node)
            )
        return cast(ast.Value, result)

    # -- chains -----------------------------------------------------------------------------------
    def chain(self, node: Tree[Any], scope: _Scope) -> ast.Expr:
        calls: list[Tree[Any]] = list(node.children)
        head = calls[0]
        name = str(head.children[0])
        if name in FUNCTIONS:
            return self.function(node, scope)
        if name == "timestamp":
            raise DefinitionError(
                "timestamp() is the time of the event at hand: use it as the argument of "
                "first() or last(), e.g. event('Order Completed').last(timestamp())",
                *pos(head),
            )
        if name not in _EXTRACTORS:
            raise DefinitionError(
                f"unknown function {name}(): a chain starts with event(), trait(), property(), "
                "product(), context() or literal()",
                *pos(head),
            )
        self.primaries += 1
        rest = calls[1:]
        current: ast.Expr
        if name == "event":
            stream = ast.Stream(self.string_arg(head, "event"))
            self.events.add(stream.event)
            current, rest = self.stream(stream, rest, scope)
        elif name == "entity":
            raise DefinitionError(
                "entity() reads the Data Graph of Linked audiences, which OpenCDP does not have: "
                "use event() or trait()",
                *pos(head),
            )
        else:
            current = self.scalar(name, head, scope)
        if not rest:
            return current
        call = rest[0]
        comparator = str(call.children[0])
        if comparator not in _COMPARATORS:
            raise DefinitionError(
                f"{comparator}() cannot follow {leaves.kind(current)}: "
                + (
                    "a filter or reducer follows event() only"
                    if comparator in _FILTERS | _REDUCERS
                    else "expected a comparator such as equals(), exists() or one_of()"
                ),
                *pos(call),
            )
        if len(rest) > 1:
            extra = rest[1]
            raise DefinitionError(
                f"{extra.children[0]}() cannot follow the comparator {comparator}(): "
                "a comparator ends an expression (join conditions with AND / OR)",
                *pos(extra),
            )
        return self.comparison(cast(ast.Value, current), comparator, call, scope)

    def stream(
        self, stream: ast.Stream, calls: list[Tree[Any]], scope: _Scope
    ) -> tuple[ast.Expr, list[Tree[Any]]]:
        filters: list[ast.Filter] = []
        for i, call in enumerate(calls):
            name = str(call.children[0])
            itemised = any(isinstance(f, ast.Items) for f in filters)
            if name == "items" or (itemised and name in _FILTERS and name != "where"):
                filters.append(self.items(call, itemised))
                continue
            if name in _FILTERS:
                filters.append(self.filter(name, call, scope))
                continue
            if name in _REDUCERS:
                aggregate = self.reducer(ast.Stream(stream.event, tuple(filters)), name, call)
                rest = calls[i + 1 :]
                if aggregate.reducer == "unique" and rest and str(rest[0].children[0]) == "count":
                    if leaves.args(rest[0]):
                        raise DefinitionError("count() takes no arguments", *pos(rest[0]))
                    aggregate = ast.Aggregate(aggregate.stream, "unique_count", aggregate.argument)
                    rest = rest[1:]
                elif aggregate.reducer == "unique" and rest:
                    raise DefinitionError(
                        f"{rest[0].children[0]}() cannot follow unique(): a list may only be "
                        "counted (.count())",
                        *pos(rest[0]),
                    )
                return aggregate, rest
            raise DefinitionError(
                f"{name}() cannot follow event(): expected a filter (where, sources, within, "
                "between, expires_after) or a reducer (count, sum, avg, min, max, mode, first, "
                "last, unique)",
                *pos(call),
            )
        raise DefinitionError(
            f"event('{stream.event}') is a stream of events, not a value: end it with a "
            "reducer such as .count() or .sum(property('revenue'))",
            *pos(calls[-1] if calls else None),
        )

    def filter(self, name: str, call: Tree[Any], scope: _Scope) -> ast.Filter:
        args = leaves.args(call)
        if name == "where":
            if len(args) != 1:
                raise DefinitionError("where() takes one condition", *pos(call))
            arg = args[0]
            if isinstance(arg, Tree) and arg.data == "braces":
                inner = leaves.args(arg)
                if len(inner) != 1:
                    raise DefinitionError("where({…}) takes one condition", *pos(arg))
                arg = inner[0]
            inner_scope = _Scope(in_where=True, nested_stream=scope.in_where)
            return ast.Where(self.condition(arg, inner_scope))
        if name == "sources":
            return ast.Sources(self.exclude(call, args))
        if name == "within":
            parent, window = self.maybe_parent(call, args, 1, scope)
            return ast.Within(self.window(window[0]), parent)
        if name == "between":
            parent, durations = self.maybe_parent(call, args, 2, scope)
            newest, oldest = (self.window(d) for d in durations)
            if newest.seconds >= oldest.seconds:
                raise DefinitionError(
                    f"between({newest}, {oldest}): write the nearer bound first, e.g. "
                    "between(7 days, 10 days) for 7 to 10 days ago",
                    *pos(call),
                )
            return ast.Between(newest, oldest, parent)
        # expires_after
        if len(args) != 1:
            raise DefinitionError("expires_after() takes one duration", *pos(call))
        session = self.duration(args[0])
        if not 1_800 <= session.seconds <= 90 * 86_400:
            raise DefinitionError(
                "a session (expires_after) lasts between 30 minutes and 90 days", *pos(call)
            )
        return ast.ExpiresAfter(session)

    def items(self, call: Tree[Any], itemised: bool) -> ast.Items:
        name = str(call.children[0])
        if itemised:
            raise DefinitionError(
                f"{name}() cannot follow items(): after items() only where() and a reducer may "
                "follow (put windows and sources before items())",
                *pos(call),
            )
        args = leaves.args(call)
        if len(args) != 1:
            raise DefinitionError(
                "items() takes the property that holds the line items, e.g. items('products')",
                *pos(call),
            )
        return ast.Items(leaves.path(self.string(args[0], "the items property"), args[0]))

    def function(self, node: Tree[Any], scope: _Scope) -> ast.Function:
        """``quintile(…)`` and the other functions of :mod:`opencdp.query.functions`: only as
        the whole definition of a computed trait."""
        calls: list[Tree[Any]] = list(node.children)
        head = calls[0]
        name = str(head.children[0])
        spec = FUNCTIONS[name]
        if node is not self.root or scope.in_where:
            raise DefinitionError(
                f"{name}() is a whole computed trait, not part of an expression: define "
                f"it as its own trait ({spec.usage}) and read it with trait()",
                *pos(head),
            )
        if len(calls) > 1:
            raise DefinitionError(
                f"{calls[1].children[0]}() cannot follow {name}(): it is a whole computed trait",
                *pos(calls[1]),
            )
        args = leaves.args(head)
        if not spec.required <= len(args) <= len(spec.arguments):
            raise DefinitionError(f"{name}() is written {spec.usage}", *pos(head))
        arguments: list[ast.Expr] = []
        for kind, arg in zip(spec.arguments, args, strict=False):
            if kind == "value":
                arguments.append(leaves.comparable(self.value(arg, _Scope()), arg))
            elif kind == "condition":
                among = self.expr(arg, _Scope())
                if not is_condition(among):
                    raise DefinitionError(
                        f"{name}()'s second argument is a condition that picks the profiles "
                        "to rank, e.g. trait('order_count') >= 1",
                        *pos(arg),
                    )
                arguments.append(among)
            elif kind == "number":
                number = self.literal_of(arg)
                if isinstance(number.value, bool) or not isinstance(number.value, int | float):
                    raise DefinitionError(f"{name}()'s divisor is a number", *pos(arg))
                if number.value == 0:
                    raise DefinitionError(f"{name}() cannot divide by zero", *pos(arg))
                arguments.append(number)
            else:  # output
                output = self.string(arg, f"{name}()'s output")
                if output not in CLV_OUTPUTS:
                    raise DefinitionError(
                        f"{name}() predicts {one_of([repr(o) for o in CLV_OUTPUTS])}, "
                        f"not {output!r}",
                        *pos(arg),
                    )
                arguments.append(ast.Literal(output))
        return ast.Function(name, tuple(arguments))

    def maybe_parent(
        self, call: Tree[Any], args: list[Any], count: int, scope: _Scope
    ) -> tuple[bool, list[Any]]:
        name = call.children[0]
        parent = False
        if args and isinstance(args[0], Tree) and args[0].data == "named":
            key, value = args[0].children
            if str(key) != "parent":
                raise DefinitionError(
                    f"{name}() knows no argument {key}: (only parent:)", *pos(key)
                )
            if not scope.in_where:
                raise DefinitionError(
                    f"{name}(parent: …) relates an event to the event of an enclosing stream: "
                    "use it inside where() of another event()",
                    *pos(args[0]),
                )
            parent = True
            args = [value, *args[1:]]
        if len(args) != count:
            word = "one duration" if count == 1 else "two durations"
            raise DefinitionError(f"{name}() takes {word}", *pos(call))
        return parent, args

    def exclude(self, call: Tree[Any], args: list[Any]) -> tuple[str, ...]:
        if len(args) == 1 and isinstance(args[0], Tree) and args[0].data == "braces":
            args = leaves.args(args[0])
        if not args or not (isinstance(args[0], Tree) and args[0].data == "named"):
            raise DefinitionError("sources() takes {exclude: ['source id', …]}", *pos(call))
        key, first = args[0].children
        if str(key) != "exclude":
            raise DefinitionError(f"sources() knows {{exclude: …}} only, not {key}:", *pos(key))
        items = [first, *args[1:]]
        if len(items) == 1 and isinstance(first, Tree) and first.data == "brackets":
            items = leaves.args(first)
        ids = tuple(self.string(item, "a source id") for item in items)
        if not ids:
            raise DefinitionError("sources({exclude: …}) needs at least one source id", *pos(call))
        return ids

    def reducer(self, stream: ast.Stream, name: str, call: Tree[Any]) -> ast.Aggregate:
        args = leaves.args(call)
        if name == "count":
            if args:
                raise DefinitionError("count() takes no arguments", *pos(call))
            return ast.Aggregate(stream, "count")
        if not args:
            raise DefinitionError(
                f"{name}() needs the property to reduce, e.g. {name}(property('total'))",
                *pos(call),
            )
        compare_as: ast.CompareAs | None = None
        first = args[0]
        if isinstance(first, Tree) and first.data == "cast":
            target, kind = first.children
            allowed = ("number", "string", "array") if name == "mode" else ("number", "string")
            if name not in ("min", "max", "mode") or str(kind).lower() not in allowed:
                raise DefinitionError(
                    f"{name}(… as {kind}): "
                    + (
                        f"compare as {one_of(list(allowed))}"
                        if name in ("min", "max", "mode")
                        else "only min, max and mode take 'as'"
                    ),
                    *pos(kind),
                )
            compare_as = cast(ast.CompareAs, str(kind).lower())
            first = target
        argument = self.event_field(first, name)
        if name == "mode":
            if len(args) != 2:
                raise DefinitionError(
                    "mode() takes the property and the least number of occurrences, "
                    "e.g. mode(property('category'), 2)",
                    *pos(call),
                )
            threshold = self.literal_of(args[1])
            if (
                not isinstance(threshold.value, int)
                or isinstance(threshold.value, bool)
                or threshold.value < 1
            ):
                raise DefinitionError(
                    "mode()'s second argument is a whole number of at least 1", *pos(args[1])
                )
            return ast.Aggregate(stream, "mode", argument, compare_as, threshold.value)
        if len(args) != 1:
            raise DefinitionError(f"{name}() takes one property", *pos(call))
        return ast.Aggregate(stream, cast(ast.ReducerName, name), argument, compare_as)

    def event_field(
        self, node: Any, reducer: str
    ) -> ast.Property | ast.Product | ast.Context | ast.Timestamp:
        if isinstance(node, Tree) and node.data == "chain" and len(node.children) == 1:
            call = node.children[0]
            name = str(call.children[0])
            if name == "timestamp":
                if reducer not in ("first", "last"):
                    raise DefinitionError(
                        f"{reducer}(timestamp()): the time of an event is read by first() "
                        "and last() only",
                        *pos(call),
                    )
                if leaves.args(call):
                    raise DefinitionError("timestamp() takes no arguments", *pos(call))
                return ast.Timestamp()
            if name in ("property", "product", "context"):
                self.primaries += 1
                field = self.scalar(name, call, _Scope(in_where=True))
                return cast(ast.Property | ast.Product | ast.Context, field)
        raise DefinitionError(
            f"{reducer}() reduces an event field: property('name'), product('field') or "
            "context('path')",
            *pos(node),
        )

    # -- scalars and comparisons -----------------------------------------------------------------
    def scalar(self, name: str, call: Tree[Any], scope: _Scope) -> ast.Value:
        args = leaves.args(call)
        if name == "literal":
            if len(args) != 1:
                raise DefinitionError("literal() takes one value", *pos(call))
            return self.literal_of(args[0])
        parent = False
        parented = name in ("property", "product")
        if parented and args and isinstance(args[0], Tree) and args[0].data == "named":
            key, value = args[0].children
            if str(key) != "parent":
                raise DefinitionError(f"{name}() knows no argument {key}:", *pos(key))
            if not scope.nested_stream:
                raise DefinitionError(
                    f"{name}(parent: …) reads the event of an enclosing stream: use it in "
                    "where() of an event() that is itself inside where()",
                    *pos(args[0]),
                )
            parent = True
            args = [value]
        if len(args) != 1:
            usage = " (a catalog field, e.g. product('brand'))" if name == "product" else ""
            raise DefinitionError(f"{name}() takes one name{usage}", *pos(call))
        path = leaves.path(self.string(args[0], f"the {name} name"), args[0])
        if name == "product" and (problem := check_field(path)) is not None:
            raise DefinitionError(problem, *pos(args[0]))
        if name == "trait":
            if path[0] == "consent" and len(path) > 1:
                # consent is kept as flat traits ``consent.<category>`` (privacy/consent.py):
                # trait('consent.marketing') reads the category, not a nested key
                path = (f"consent.{path[1]}", *path[2:])
            self.traits.add(path[0])
            return ast.Trait(path)
        if not scope.in_where:
            raise DefinitionError(
                f"{name}() reads the event at hand: use it inside where() or as a reducer's "
                "argument (trait() reads the profile)",
                *pos(call),
            )
        if name == "property":
            return ast.Property(path, parent)
        if name == "product":
            self.catalog = True
            return ast.Product(path, parent)
        return ast.Context(path)

    def comparison(
        self, value: ast.Value, name: str, call: Tree[Any], scope: _Scope
    ) -> ast.Comparison:
        comparator = cast(ast.ComparatorName, name)
        args = leaves.args(call)
        if name not in ("exists", "absent", "contains", "omits"):
            leaves.comparable(value, call)
        if name in ("exists", "absent"):
            if args:
                raise DefinitionError(f"{name}() takes no arguments", *pos(call))
            return ast.Comparison(value, comparator)
        if name in ("within_last", "within_next", "before_last", "after_next"):
            if len(args) != 1:
                raise DefinitionError(f"{name}() takes one duration, e.g. 7 days", *pos(call))
            return ast.Comparison(value, comparator, (self.window(args[0]),))
        if name in ("before_date", "after_date"):
            if len(args) != 1:
                raise DefinitionError(f"{name}() takes one timestamp", *pos(call))
            when = self.literal_of(args[0])
            stamp = leaves.timestamp(when.value)
            if stamp is None:
                raise DefinitionError(
                    f"{name}() compares with an ISO 8601 timestamp such as '2024-01-31T00:00:00Z'",
                    *pos(args[0]),
                )
            return ast.Comparison(value, comparator, (ast.Literal(stamp),))
        if name in ("contains", "omits", "starts_with", "ends_with", "one_of", "none_of"):
            if not args or (name in ("starts_with", "ends_with") and len(args) != 1):
                word = "one string" if name in ("starts_with", "ends_with") else "values"
                raise DefinitionError(f"{name}() takes {word}", *pos(call))
            return ast.Comparison(value, comparator, tuple(self.operand(a, scope) for a in args))
        if len(args) != 1:
            raise DefinitionError(f"{name}() takes one value", *pos(call))
        return ast.Comparison(value, comparator, (self.operand(args[0], scope),))

    def operand(self, node: Any, scope: _Scope) -> ast.Value:
        if isinstance(node, Tree) and node.data in (
            "duration",
            "named",
            "braces",
            "brackets",
            "cast",
        ):
            raise DefinitionError(f"{leaves.describe(node)} is not a value here", *pos(node))
        return self.value(node, scope)

    # -- leaves ----------------------------------------------------------------------------------
    def literal_token(self, token: Token) -> ast.Literal:
        kind = token.type
        text = str(token)
        if kind == "STRING":
            return ast.Literal(leaves.unquote(text))
        if kind == "NUMBER":
            return ast.Literal(leaves.number(text, token))
        if kind == "TIMESTAMP":
            stamp = leaves.timestamp(text)
            if stamp is None:
                raise DefinitionError(f"{text} is not a valid date or timestamp", *pos(token))
            return ast.Literal(stamp)
        if kind in ("TRUE", "FALSE"):
            return ast.Literal(kind == "TRUE")
        if kind == "NULL":
            return ast.Literal(None)
        raise DefinitionError(f"unexpected {text!r}", *pos(token))  # pragma: no cover

    def literal_of(self, node: Any) -> ast.Literal:
        if isinstance(node, Tree) and node.data == "literal":
            return self.literal_token(cast(Token, node.children[0]))
        if isinstance(node, Token):
            return self.literal_token(node)
        raise DefinitionError(f"expected a constant here, not {leaves.describe(node)}", *pos(node))

    def string(self, node: Any, what: str) -> str:
        value = self.literal_of(node).value
        if not isinstance(value, str):
            raise DefinitionError(f"{what} is a quoted string", *pos(node))
        return value

    def string_arg(self, call: Tree[Any], name: str) -> str:
        args = leaves.args(call)
        if len(args) != 1:
            raise DefinitionError(f"{name}() takes one quoted name", *pos(call))
        text = self.string(args[0], f"the {name} name")
        if not text.strip():
            raise DefinitionError(f"the {name} name is empty", *pos(args[0]))
        return text

    def duration(self, node: Any) -> ast.Duration:
        if not (isinstance(node, Tree) and node.data == "duration"):
            raise DefinitionError(
                f"expected a duration such as 30 days, not {leaves.describe(node)}", *pos(node)
            )
        amount, unit_token = node.children
        unit = str(unit_token).lower()
        if "." in str(amount) or len(str(amount)) > 12 or int(str(amount)) < 1:
            raise DefinitionError("a duration is a whole number of at least 1", *pos(amount))
        if unit not in ast.UNITS:
            raise DefinitionError(
                f"unknown unit {unit_token}: use hours, days or (in expires_after) seconds",
                *pos(unit_token),
            )
        duration = ast.Duration(int(str(amount)), unit)
        if duration.seconds > MAX_DURATION_SECONDS:
            raise DefinitionError(f"{duration} is longer than 100 years (36500 days)", *pos(node))
        return duration

    def window(self, node: Any) -> ast.Duration:
        duration = self.duration(node)
        if duration.unit not in _WINDOW_UNITS:
            raise DefinitionError(f"windows are in hours or days, not {duration.unit}", *pos(node))
        return duration
