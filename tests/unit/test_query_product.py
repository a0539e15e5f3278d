"""``product('field')``: parsed wherever ``property()`` is, refused with the parser's usual
errors, evaluated over a catalog by the reference rules, and compiled to one LEFT JOIN of
the catalog per event (item) row (no look-up per event)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from opencdp.query import ast
from opencdp.query.catalog import keys_in, product_key, product_value, uses_catalog
from opencdp.query.evaluate import Evaluator, EventRecord, ProfileData
from opencdp.query.parser import DefinitionError, parse
from opencdp.storage.definition_sql import DefinitionCompiler

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
ITEMS = ast.Items(("products",))


def test_product_is_an_event_field_like_property() -> None:
    d = parse("event('Order Completed').items('products').mode(product('brand'), 1)", "trait")
    stream = ast.Stream("Order Completed", (ITEMS,))
    assert d.root == ast.Aggregate(stream, "mode", ast.Product(("brand",)), None, 1)
    assert d.catalog and uses_catalog(d.root)
    assert not parse("event('A').mode(property('brand'), 1)", "trait").catalog


def test_product_in_where_in_a_funnel_and_as_an_attribute_path() -> None:
    d = parse(
        "event('Viewed').where(product('category') = 'Women > Shoes' AND "
        "event('Bought').within(parent: 7 days).where(product('id') = product(parent: 'id'))"
        ".count() = 0).count() >= 1"
    )
    assert d.catalog
    outer = d.root
    assert isinstance(outer, ast.Comparison) and isinstance(outer.value, ast.Aggregate)
    where = outer.value.stream.filters[0]
    assert isinstance(where, ast.Where) and isinstance(where.condition, ast.And)
    first, funnel = where.condition.items
    assert first == ast.Comparison(
        ast.Product(("category",)), "equals", (ast.Literal("Women > Shoes"),)
    )
    assert isinstance(funnel, ast.Comparison) and isinstance(funnel.value, ast.Aggregate)
    inner = funnel.value.stream.filters[1]
    assert inner == ast.Where(
        ast.Comparison(ast.Product(("id",)), "equals", (ast.Product(("id",), parent=True),))
    )
    nested = parse("event('A').first(product('size.eu'))", "trait").root
    assert isinstance(nested, ast.Aggregate) and nested.argument == ast.Product(("size", "eu"))


@pytest.mark.parametrize(
    ("query", "kind", "column", "needle"),
    [
        ("event('A').first(product('quantity'))", "trait", 26, "inventory API"),
        ("event('A').first(product('attributes'))", "trait", 26, "product('colour')"),
        ("event('A').first(product('workspace_id'))", "trait", 26, "not a product field"),
        ("event('A').first(product('brand.name'))", "trait", 26, "plain value"),
        ("event('A').first(product('a..b'))", "trait", 26, "empty part between dots"),
        ("event('A').first(product())", "trait", 18, "catalog field, e.g. product('brand')"),
        ("event('A').first(product('a', 'b'))", "trait", 18, "takes one name"),
        ("event('A').first(product(brand))", "trait", 31, "unexpected ')'"),
        ("event('A').first(product(7))", "trait", 26, "is a quoted string"),
        ("event('A').first(product(size: 'x'))", "trait", 26, "knows no argument size"),
        ("event('A').where(product(parent: 'id') = 1).count()", "trait", 26, "enclosing"),
        ("product('brand') = 'x'", "audience", 1, "reads the event at hand"),
        ("event('A').first(product('brand').exists())", "trait", 18, "reduces an event field"),
    ],
)
def test_bad_product_calls_say_where_and_what(
    query: str, kind: str, column: int, needle: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse(query, kind)  # type: ignore[arg-type]
    assert needle in caught.value.message, caught.value.message
    assert caught.value.column == column, str(caught.value)


CATALOG: dict[str, dict[str, Any]] = {
    "P1": {"id": "P1", "brand": "Acme", "price": 10.0, "attributes": {"colour": "red"}},
    "12": {"id": "12", "brand": None, "attributes": '{"size": {"eu": 38}}'},
}


@pytest.mark.parametrize(
    ("properties", "key"),
    [
        ({"product_id": "P1", "sku": "S"}, "P1"),
        ({"product_id": 12, "sku": "S"}, "12"),
        ({"product_id": 12.0}, "12"),
        ({"product_id": 12.5, "sku": "S"}, "S"),  # a fraction is no key: the SKU then
        ({"product_id": True, "sku": 7}, "7"),
        ({"product_id": None, "sku": "S"}, "S"),
        ({"product_id": {"id": 1}}, None),
        ({"product_id": 2**60}, None),  # beyond exact floats: no key
        ({}, None),
    ],
)
def test_the_key_is_the_product_id_else_the_sku(properties: dict[str, Any], key: Any) -> None:
    assert product_key(properties) == key


@pytest.mark.parametrize(
    ("properties", "path", "value"),
    [
        ({"product_id": "P1", "brand": "Own"}, ("brand",), "Acme"),  # the catalog wins
        ({"product_id": "P1"}, ("price",), 10.0),
        ({"product_id": "P1"}, ("colour",), "red"),  # an attribute
        ({"product_id": "P1", "name": "Own"}, ("name",), None),  # the catalog's empty field
        ({"product_id": 12, "brand": "Own"}, ("brand",), None),
        ({"product_id": "12"}, ("size", "eu"), 38),  # attributes stored as JSON text
        ({"product_id": "P2", "brand": "Own"}, ("brand",), "Own"),  # not in the catalog
        ({"brand": "Own"}, ("brand",), "Own"),  # no key
    ],
)
def test_a_field_is_the_catalogs_else_the_events(
    properties: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    assert product_value(CATALOG, properties, path) == value


def test_the_reference_evaluator_reads_the_catalog_it_is_given() -> None:
    orders = [
        EventRecord("Order Completed", NOW, {"products": [{"product_id": "P1"}, {"sku": "P1"}]}),
        EventRecord("Order Completed", NOW, {"products": [{"product_id": "X", "brand": "Own"}]}),
    ]
    profile = ProfileData(events=orders)
    root = parse("event('Order Completed').items('products').mode(product('brand'), 1)", "trait")
    assert Evaluator(NOW, CATALOG).evaluate(root.root, profile) == "Acme"
    assert Evaluator(NOW).evaluate(root.root, profile) == "Own"  # no catalog: the own brand
    assert keys_in(root.root, [e.properties for e in orders]) == {"P1", "X"}


def _sql(query: str, dialect: Any) -> str:
    name = "postgresql" if dialect is postgresql else "sqlite"
    statement = DefinitionCompiler(name).profile_values(
        parse(query, "trait").root, workspace_id="w", now=NOW
    )
    return str(statement.compile(dialect=dialect.dialect()))


@pytest.mark.parametrize("dialect", [sqlite, postgresql])
def test_batch_joins_the_catalog_once_per_event_row(dialect: Any) -> None:
    query = (
        "event('Order Completed').where(product('brand') = 'x')"
        ".items('products').where(product('brand') != 'y').mode(product('brand'), 1)"
    )
    sql = _sql(query, dialect)
    # one join for the order's product and one for each line item's, whatever reads them
    assert sql.count("LEFT OUTER JOIN products AS") == 2
    assert "FROM products" not in sql  # never a look-up per event
