"""``product('field')`` in SQL: the catalog joined to the events a definition reads.

The meaning is :mod:`opencdp.query.catalog`'s. A stream whose events (or line items) read
``product()`` gets one LEFT JOIN of the ``products`` table per event (or item) row, on the
event's workspace and the key its properties give (``product_id``, else ``sku``): set-based,
never a look-up per event. The field is then the catalog's when the join found a product,
else the event's (the item's) own property of that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Numeric, Text, and_, case, cast, func, null
from sqlalchemy.sql import ColumnElement

from opencdp.query.catalog import COLUMNS, KEY_PROPERTIES, MAX_NUMBER_KEY
from opencdp.storage.definition_json import Json, extract
from opencdp.storage.schema import products


@dataclass(frozen=True)
class CatalogJoin:
    """The catalog row of one event (item) row: an alias of ``products`` and its ON clause."""

    alias: Any
    on: ColumnElement[bool]

    @property
    def found(self) -> ColumnElement[bool]:
        found: ColumnElement[bool] = self.alias.c.id.is_not(None)
        return found


def catalog_join(
    is_pg: bool, workspace_id: str, document: Any, prefix: tuple[str, ...], name: str
) -> CatalogJoin:
    """The join of the product named by the properties at ``prefix`` of JSON ``document``."""
    alias = products.alias(name)
    key = catalog_key(is_pg, document, prefix)
    return CatalogJoin(alias, and_(alias.c.workspace_id == workspace_id, alias.c.id == key))


def catalog_key(is_pg: bool, document: Any, prefix: tuple[str, ...]) -> ColumnElement[Any]:
    """The key :func:`opencdp.query.catalog.product_key` reads, in SQL (NULL: none)."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    for name in KEY_PROPERTIES:
        value = extract(is_pg, document, (*prefix, name))
        whens.append((value.kind == "string", value.raw))
        if is_pg:
            number: ColumnElement[Any] = case(
                (value.kind == "number", cast(value.raw, Numeric)), else_=null()
            )
            whole: ColumnElement[Any] = func.trunc(number)
            digits = cast(whole, Text)
        else:
            number = case((value.kind == "number", value.native), else_=null())
            whole = cast(number, Integer)
            digits = cast(whole, Text)
        whens.append((and_(number == whole, func.abs(number) <= MAX_NUMBER_KEY), digits))
    return case(*whens, else_=null())


def catalog_field(is_pg: bool, alias: Any, path: tuple[str, ...]) -> Json:
    """Field ``path`` of the catalog row ``alias`` as a JSON value: a column, else a path into
    its ``attributes``."""
    if not (len(path) == 1 and path[0] in COLUMNS):
        return extract(is_pg, alias.c.attributes, path)
    column = alias.c[path[0]]
    kind = case((column.is_(None), "null"), else_="number" if path[0] == "price" else "string")
    if is_pg:
        raw = cast(column, Text) if path[0] == "price" else column
        return Json(kind, raw, cast(func.to_jsonb(column), Text), True)
    return Json(kind, column, func.json_quote(column), False, column)


def product_value(is_pg: bool, join: CatalogJoin, own: Json, path: tuple[str, ...]) -> Json:
    """``product(path)``: the catalog's field when ``join`` found the product, else ``own``
    (the event's or item's property of that name)."""
    field = catalog_field(is_pg, join.alias, path)
    found = join.found

    def pick(catalog: Any, event: Any) -> Any:
        return case((found, catalog), else_=event)

    native = None if is_pg else pick(field.native, own.native)
    return Json(
        pick(field.kind, own.kind),
        pick(field.raw, own.raw),
        pick(field.encoded, own.encoded),
        is_pg,
        native,
    )
