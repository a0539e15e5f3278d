"""Segment's query language → typed AST: every function, precedence, and errors that say
where and what was expected."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opencdp.query import ast
from opencdp.query.parser import MAX_PRIMARY_EXPRESSIONS, DefinitionError, parse

ORDERS = ast.Stream("Order Completed")


def count(stream: ast.Stream = ORDERS) -> ast.Aggregate:
    return ast.Aggregate(stream, "count")


def test_an_audience_on_event_counts_within_a_window() -> None:
    d = parse("event('Order Completed').within(30 days).count() >= 1")
    window = ast.Stream("Order Completed", (ast.Within(ast.Duration(30, "days")),))
    assert d.root == ast.Comparison(count(window), "at_least", (ast.Literal(1),))
    assert d.events == {"Order Completed"} and d.traits == frozenset()
    assert d.reads_events


@pytest.mark.parametrize(
    ("sugar", "comparator"),
    [
        ("=", "equals"),
        ("==", "equals"),
        ("!=", "differs"),
        (">", "greater_than"),
        (">=", "at_least"),
        ("<", "less_than"),
        ("<=", "at_most"),
    ],
)
def test_comparison_sugar_means_the_named_comparator(sugar: str, comparator: str) -> None:
    sugared = parse(f"trait('ltv') {sugar} 500").root
    named = parse(f"trait('ltv').{comparator}(500)").root
    assert sugared == named == ast.Comparison(ast.Trait(("ltv",)), comparator, (ast.Literal(500),))


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = (ast.Comparison(ast.Trait((k,)), "exists") for k in "abc")
    q = "trait('a').exists() OR trait('b').exists() AND trait('c').exists()"
    assert parse(q).root == ast.Or((a, ast.And((b, c))))
    q = "(trait('a').exists() OR trait('b').exists()) AND trait('c').exists()"
    assert parse(q).root == ast.And((ast.Or((a, b)), c))
    q = "NOT trait('a').exists() and not (trait('b').exists() or trait('c').exists())"
    assert parse(q).root == ast.And((ast.Not(a), ast.Not(ast.Or((b, c)))))


def test_every_filter() -> None:
    q = (
        "event('Order Completed')"
        ".where(property('total') >= 100 AND context('page.url').contains('sale'))"
        ".sources({exclude: ['src_a', 'src_b']})"
        ".between(7 days, 10 days)"
        ".within(48 hours)"
        ".expires_after(1800 seconds)"
        ".count() > 0"
    )
    [where, sources, between, within, expires] = parse(q).root.value.stream.filters
    assert where == ast.Where(
        ast.And(
            (
                ast.Comparison(ast.Property(("total",)), "at_least", (ast.Literal(100),)),
                ast.Comparison(ast.Context(("page", "url")), "contains", (ast.Literal("sale"),)),
            )
        )
    )
    assert sources == ast.Sources(("src_a", "src_b"))
    assert between == ast.Between(ast.Duration(7, "days"), ast.Duration(10, "days"))
    assert within == ast.Within(ast.Duration(48, "hours"))
    assert within.duration.seconds == 48 * 3600
    assert expires == ast.ExpiresAfter(ast.Duration(1800, "seconds"))


def test_alternative_spellings_give_the_same_tree() -> None:
    a = parse("event('A').where(property('x') = 'y').sources({exclude: ['s1','s2']}).count() = 0")
    c = parse(
        "event('A').where({property('x') == \"y\"}).sources({exclude: 's1', 's2'}).count() == 0"
    )
    assert a.root == c.root


@pytest.mark.parametrize(
    ("reducer", "expected"),
    [
        ("count()", ast.Aggregate(ORDERS, "count")),
        ("sum(property('revenue'))", ast.Aggregate(ORDERS, "sum", ast.Property(("revenue",)))),
        ("avg(property('revenue'))", ast.Aggregate(ORDERS, "avg", ast.Property(("revenue",)))),
        ("min(property('total'))", ast.Aggregate(ORDERS, "min", ast.Property(("total",)))),
        (
            "max(property('sku') as string)",
            ast.Aggregate(ORDERS, "max", ast.Property(("sku",)), "string"),
        ),
        (
            "mode(property('category'), 2)",
            ast.Aggregate(ORDERS, "mode", ast.Property(("category",)), None, 2),
        ),
        (
            "mode(property('tags') as array, 1)",
            ast.Aggregate(ORDERS, "mode", ast.Property(("tags",)), "array", 1),
        ),
        ("first(property('coupon'))", ast.Aggregate(ORDERS, "first", ast.Property(("coupon",)))),
        (
            "last(context('campaign.name'))",
            ast.Aggregate(ORDERS, "last", ast.Context(("campaign", "name"))),
        ),
        ("unique(property('brand'))", ast.Aggregate(ORDERS, "unique", ast.Property(("brand",)))),
        (
            "unique(property('brand')).count()",
            ast.Aggregate(ORDERS, "unique_count", ast.Property(("brand",))),
        ),
    ],
)
def test_every_reducer_as_a_computed_trait(reducer: str, expected: ast.Aggregate) -> None:
    assert parse(f"event('Order Completed').{reducer}", "trait").root == expected


@pytest.mark.parametrize(
    ("call", "comparator", "arguments"),
    [
        ("equals('gold')", "equals", (ast.Literal("gold"),)),
        ("differs('gold')", "differs", (ast.Literal("gold"),)),
        ("greater_than(1.5)", "greater_than", (ast.Literal(1.5),)),
        ("at_least(-2)", "at_least", (ast.Literal(-2),)),
        ("less_than(3)", "less_than", (ast.Literal(3),)),
        ("at_most(3)", "at_most", (ast.Literal(3),)),
        ("exists()", "exists", ()),
        ("absent()", "absent", ()),
        ("contains('a', 'b')", "contains", (ast.Literal("a"), ast.Literal("b"))),
        ("omits('a')", "omits", (ast.Literal("a"),)),
        ("starts_with('gold')", "starts_with", (ast.Literal("gold"),)),
        ("ends_with('.com')", "ends_with", (ast.Literal(".com"),)),
        ("one_of('a', 'b', 'c')", "one_of", tuple(ast.Literal(x) for x in "abc")),
        ("none_of('a')", "none_of", (ast.Literal("a"),)),
        (
            "before_date('2024-01-31T12:00:00Z')",
            "before_date",
            (ast.Literal(datetime(2024, 1, 31, 12, tzinfo=UTC)),),
        ),
        (
            "after_date(2024-01-31)",
            "after_date",
            (ast.Literal(datetime(2024, 1, 31, tzinfo=UTC)),),
        ),
        ("within_last(7 days)", "within_last", (ast.Duration(7, "days"),)),
        ("within_next(12 hours)", "within_next", (ast.Duration(12, "hours"),)),
        ("before_last(30 days)", "before_last", (ast.Duration(30, "days"),)),
        ("after_next(1 day)", "after_next", (ast.Duration(1, "day"),)),
        ("equals(true)", "equals", (ast.Literal(True),)),
        ("equals(null)", "equals", (ast.Literal(None),)),
        ("equals(literal('x'))", "equals", (ast.Literal("x"),)),
        ("equals(trait('other'))", "equals", (ast.Trait(("other",)),)),
    ],
)
def test_every_comparator(call: str, comparator: str, arguments: tuple[object, ...]) -> None:
    assert parse(f"trait('t').{call}").root == ast.Comparison(
        ast.Trait(("t",)), comparator, arguments
    )


def test_a_funnel_reads_the_parent_event() -> None:
    q = (
        "event('Product Added').where("
        "event('Order Completed').where(property('cart_id') = property(parent: 'cart_id'))"
        ".within(parent: 1 days).count() = 0"
        ").within(7 days).count() >= 1"
    )
    outer = parse(q).root.value.stream
    inner = outer.filters[0].condition.value.stream
    assert inner.filters[1] == ast.Within(ast.Duration(1, "days"), parent=True)
    assert inner.filters[0].condition.arguments == (ast.Property(("cart_id",), parent=True),)
    assert parse(q).events == {"Product Added", "Order Completed"}


def test_trait_paths_split_on_unescaped_dots() -> None:
    assert parse("trait('address.city') = 'Berlin'").root.value == ast.Trait(("address", "city"))
    assert parse(r"trait('a\\.b') = 1").root.value == ast.Trait(("a.b",))
    assert parse("trait('address.city') = 'B'").traits == {"address"}


def test_account_definitions_aggregate_over_users() -> None:
    d = parse(
        "ANY trait('plan') = 'pro' AND ALL NOT trait('churned') = true", definition_type="ACCOUNTS"
    )
    plan = ast.Comparison(ast.Trait(("plan",)), "equals", (ast.Literal("pro"),))
    churned = ast.Comparison(ast.Trait(("churned",)), "equals", (ast.Literal(True),))
    assert d.root == ast.And((ast.AnyUser(plan), ast.AllUsers(ast.Not(churned))))


def test_a_trait_reference_is_a_trait_value() -> None:
    assert parse("trait('lifetime_value')", "trait").root == ast.Trait(("lifetime_value",))
    assert parse("literal(5)", "trait").root == ast.Literal(5)


@pytest.mark.parametrize(
    ("query", "kind", "line", "column", "needle"),
    [
        ("event('A').count( >= 1", "audience", 1, 19, "unexpected '>='; expected"),
        ("event('A').count() >=", "audience", 1, 22, "unexpected end of the definition"),
        ("event('A').count() >= 1\nAND trait('p') = ", "audience", 2, 18, "end of the definition"),
        ("event('A').count() > 1 $", "audience", 1, 24, "unexpected character '$'"),
        ("event('A').within(30 days)", "audience", 1, 12, "not a value: end it with a reducer"),
        ("event('A').foo() >= 1", "audience", 1, 12, "foo() cannot follow event()"),
        ("trait('x').count() > 1", "audience", 1, 12, "count() cannot follow trait()"),
        ("event('A').count()", "audience", 1, 1, "an audience needs a condition"),
        ("event('A').count() > 1", "trait", 1, 1, "a computed trait needs a value"),
        ("property('x') = 1", "audience", 1, 1, "use it inside where()"),
        ("event('A').within(3 weeks).count() > 1", "audience", 1, 21, "unknown unit weeks"),
        ("event('A').within(3 seconds).count() > 1", "audience", 1, 19, "hours or days"),
        ("event('A').within(0 days).count() > 1", "audience", 1, 19, "at least 1"),
        ("ANY trait('x') = 1", "audience", 1, 1, "only in ACCOUNTS definitions"),
        (
            "event('A').sum('x') > 1",
            "audience",
            1,
            16,
            "property('name'), product('field') or context('path')",
        ),
        ("event('A').unique(property('c')) > 1", "audience", 1, 1, "unique() is a list"),
        (
            "event('A').unique(property('c')).sum(property('x')) > 1",
            "audience",
            1,
            34,
            "may only be counted",
        ),
        ("trait('x').equals(1).exists()", "audience", 1, 22, "a comparator ends an expression"),
        (
            "event('A').between(10 days, 7 days).count() > 1",
            "audience",
            1,
            12,
            "nearer bound first",
        ),
        ("foo('x') = 1", "audience", 1, 1, "unknown function foo()"),
        (
            "event('A').within(parent: 1 days).count() > 0",
            "audience",
            1,
            19,
            "inside where() of another",
        ),
        ("trait('a').exists() AND trait('b')", "audience", 1, 25, "this is a value"),
        ("event('A').mode(property('c')) = 'x'", "audience", 1, 12, "least number of occurrences"),
        (
            "event('A').sum(property('c') as string) > 1",
            "audience",
            1,
            33,
            "only min, max and mode",
        ),
        ("trait('d').before_date('yesterday')", "audience", 1, 24, "ISO 8601 timestamp"),
        (
            "event('A').expires_after(10 seconds).count() > 1",
            "audience",
            1,
            12,
            "30 minutes and 90 days",
        ),
        ("entity('cars').count() > 1", "audience", 1, 1, "Linked audiences"),
        ("event('').count() > 1", "audience", 1, 7, "the event name is empty"),
        (
            "event('A').sources({include: ['x']}).count() > 1",
            "audience",
            1,
            21,
            "{exclude: …} only",
        ),
        ("trait('a..b') = 1", "audience", 1, 7, "empty part between dots"),
        ("   ", "audience", None, None, "the query is empty"),
    ],
)
def test_errors_say_where_and_what(
    query: str, kind: str, line: int | None, column: int | None, needle: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse(query, kind)
    error = caught.value
    assert needle in error.message, error.message
    assert (error.line, error.column) == (line, column), str(error)
    if line is not None:
        assert str(error).startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("trait('a') = 99999999999999999999", "does not fit in 64 bits"),
        ("trait('a') = " + "1" * 5000, "is too long"),
        ("event('A').within(40000 days).count() > 1", "longer than 100 years"),
        ("event('A').within(" + "9" * 5000 + " days).count() > 1", "whole number"),
        ("NOT " * 4000 + "trait('a') = 1", "nested too deeply"),
        ("trait('a') = '" + "x" * 20_001 + "'", "at most 20,000"),
    ],
)
def test_limits_are_refused_not_crashed_on(query: str, needle: str) -> None:
    with pytest.raises(DefinitionError, match=needle):
        parse(query)


def test_at_most_fifty_primary_expressions() -> None:
    one = "event('A').count() > 0"
    parse(" OR ".join([one] * MAX_PRIMARY_EXPRESSIONS))
    with pytest.raises(DefinitionError, match="at most 50"):
        parse(" OR ".join([one] * (MAX_PRIMARY_EXPRESSIONS + 1)))


def test_function_names_are_lower_case_as_in_segment() -> None:
    with pytest.raises(DefinitionError, match="unknown function EVENT"):
        parse("EVENT('A').count() > 0")
    assert parse("event('A').count() > 0 and TRUE = true") is not None


# -- OpenCDP's extensions: timestamp(), items(), functions ---------------------------------------


def test_timestamp_is_the_argument_of_first_and_last() -> None:
    for reducer in ("first", "last"):
        root = parse(f"event('Order Completed').{reducer}(timestamp())", "trait").root
        assert root == ast.Aggregate(ORDERS, reducer, ast.Timestamp())  # type: ignore[arg-type]


def test_items_narrows_the_stream_to_line_items_after_the_event_filters() -> None:
    root = parse(
        "event('Order Completed').within(30 days).items('products')"
        ".where(property('category') = 'shoes' AND context('channel') = 'web')"
        ".mode(property('brand'), 1)",
        "trait",
    ).root
    assert root == ast.Aggregate(
        ast.Stream(
            "Order Completed",
            (
                ast.Within(ast.Duration(30, "days")),
                ast.Items(("products",)),
                ast.Where(
                    ast.And(
                        (
                            ast.Comparison(
                                ast.Property(("category",)), "equals", (ast.Literal("shoes"),)
                            ),
                            ast.Comparison(
                                ast.Context(("channel",)), "equals", (ast.Literal("web"),)
                            ),
                        )
                    )
                ),
            ),
        ),
        "mode",
        ast.Property(("brand",)),
        min_count=1,
    )
    nested = parse("event('A').items('cart.lines').count()", "trait").root
    assert isinstance(nested, ast.Aggregate)
    assert nested.stream.filters == (ast.Items(("cart", "lines")),)


def test_functions_are_whole_computed_traits() -> None:
    definition = parse("quintile(trait('lifetime_value'), trait('order_count') >= 1)", "trait")
    assert definition.root == ast.Function(
        "quintile",
        (
            ast.Trait(("lifetime_value",)),
            ast.Comparison(ast.Trait(("order_count",)), "at_least", (ast.Literal(1),)),
        ),
    )
    assert definition.traits == {"lifetime_value", "order_count"}
    divide = parse("divide(event('Signed In').within(28 days).count(), 4)", "trait")
    assert divide.root == ast.Function(
        "divide",
        (
            count(ast.Stream("Signed In", (ast.Within(ast.Duration(28, "days")),))),
            ast.Literal(4),
        ),
    )
    assert divide.events == {"Signed In"}
    assert parse("clv('p_alive')", "trait").root == ast.Function("clv", (ast.Literal("p_alive"),))
    assert parse("quintile(trait('x'))", "trait").root == ast.Function(
        "quintile", (ast.Trait(("x",)),)
    )


@pytest.mark.parametrize(
    ("query", "population", "time_dependent"),
    [
        ("days_since(trait('last_order_at'))", False, True),
        ("divide(trait('n'), 4)", False, False),
        ("divide(event('Signed In').within(28 days).count(), 4)", False, True),
        ("rfm_segment(trait('r'), trait('f'))", False, False),
        ("quintile(trait('last_order_at'))", True, False),
        ("quintile(trait('v'), trait('n') >= 1)", True, False),
        ("quintile(trait('v'), trait('seen').within_last(7 days))", True, True),
        ("clv('predicted_clv_12m')", True, False),
        ("event('A').last(timestamp())", False, False),
        ("event('A').within(3 days).items('products').count()", False, True),
    ],
)
def test_what_functions_depend_on(query: str, population: bool, time_dependent: bool) -> None:
    definition = parse(query, "trait")
    assert (definition.population, definition.time_dependent) == (population, time_dependent)


@pytest.mark.parametrize(
    ("query", "kind", "line", "column", "needle"),
    [
        # timestamp() is read by first() and last() only
        ("event('A').max(timestamp())", "trait", 1, 16, "first() and last() only"),
        ("event('A').unique(timestamp())", "trait", 1, 19, "first() and last() only"),
        ("event('A').last(timestamp(1))", "trait", 1, 17, "timestamp() takes no arguments"),
        ("timestamp()", "trait", 1, 1, "argument of first() or last()"),
        (
            "event('A').where(timestamp() > '2024-01-01').count() > 1",
            "audience",
            1,
            18,
            "argument of first() or last()",
        ),
        ("trait('t') = timestamp()", "audience", 1, 14, "argument of first() or last()"),
        # after items() only where() and a reducer
        (
            "event('A').items('products').within(3 days).count()",
            "trait",
            1,
            30,
            "within() cannot follow items()",
        ),
        (
            "event('A').items('products')\n  .sources({exclude: ['x']}).count()",
            "trait",
            2,
            4,
            "put windows and sources before items()",
        ),
        (
            "event('A').items('products').expires_after(1 hours).count()",
            "trait",
            1,
            30,
            "expires_after() cannot follow items()",
        ),
        (
            "event('A').items('products').items('parts').count()",
            "trait",
            1,
            30,
            "items() cannot follow items()",
        ),
        ("event('A').items().count()", "trait", 1, 12, "e.g. items('products')"),
        ("event('A').items(1).count()", "trait", 1, 18, "is a quoted string"),
        ("event('A').items('products')", "trait", 1, 12, "not a value: end it with a reducer"),
        # functions: whole computed traits only
        ("days_since(trait('x')) > 3", "audience", 1, 1, "is a whole computed trait"),
        (
            "trait('a') = 1 AND\n  quintile(trait('v')) = 5",
            "audience",
            2,
            3,
            "read it with trait()",
        ),
        ("divide(days_since(trait('a')), 2)", "trait", 1, 8, "is a whole computed trait"),
        (
            "event('A').where(days_since(property('t')) > 1).count()",
            "trait",
            1,
            18,
            "is a whole computed trait",
        ),
        ("days_since(trait('a')).count()", "trait", 1, 24, "count() cannot follow days_since()"),
        ("days_since(trait('x'))", "audience", 1, 1, "define it as a computed trait"),
        ("rfm_segment(trait('r'), trait('f'))", "audience", 1, 1, "computes a trait"),
        # arity
        ("days_since()", "trait", 1, 1, "days_since() is written days_since(trait("),
        ("divide(trait('x'))", "trait", 1, 1, "divide() is written divide("),
        ("rfm_segment(trait('r'))", "trait", 1, 1, "rfm_segment() is written"),
        ("quintile(trait('a'), trait('b') > 1, 3)", "trait", 1, 1, "quintile() is written"),
        ("clv()", "trait", 1, 1, "clv() is written clv('predicted_clv_12m')"),
        # arguments of the wrong kind
        ("divide(trait('x'), 0)", "trait", 1, 20, "cannot divide by zero"),
        ("divide(trait('x'), 0.0)", "trait", 1, 20, "cannot divide by zero"),
        ("divide(trait('x'), '4')", "trait", 1, 20, "divisor is a number"),
        ("divide(trait('x'), trait('y'))", "trait", 1, 20, "expected a constant"),
        ("clv('lifetime')", "trait", 1, 5, "'p_alive'"),
        ("clv(trait('x'))", "trait", 1, 5, "expected a constant"),
        (
            "quintile(event('A').unique(property('c')))",
            "trait",
            1,
            10,
            "unique() is a list",
        ),
        ("quintile(trait('v'), trait('n'))", "trait", 1, 22, "second argument is a condition"),
        ("days_since(trait('a') > 1)", "trait", 1, 12, "this is a condition"),
    ],
)
def test_extension_errors_say_where_and_what(
    query: str, kind: str, line: int, column: int, needle: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse(query, kind)  # type: ignore[arg-type]
    error = caught.value
    assert needle in error.message, error.message
    assert (error.line, error.column) == (line, column), str(error)


def test_an_unknown_clv_output_names_the_ones_there_are() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse("clv('churn')", "trait")
    message = caught.value.message
    assert all(
        f"'{o}'" in message for o in ("predicted_clv_12m", "p_alive", "predicted_orders_12m")
    )
    assert "not 'churn'" in message
