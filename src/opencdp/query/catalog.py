"""``product('field')``: an event's product in the workspace's catalog (pure).

An OpenCDP extension of the query language (see ``docs/compute.md``). The rules that the
reference evaluator applies and the SQL compiler reproduces, decided here once:

* **The key.** The event's (after ``items()``: the line item's) ``product_id`` property when it
  is a string or a whole number (its digits: ``12`` and ``12.0`` are ``'12'``), else its
  ``sku`` property read the same way; anything else (missing, null, a boolean, a fraction, an
  object) is no key.
* **The look-up.** The catalog row of the event's workspace whose ``id`` is the key (one row
  at most: the id is the primary key). Another workspace's catalog is never read.
* **The field.** A column of the row (:data:`COLUMNS`), or else a key of its ``attributes``
  (a dotted path reads into them, as ``property()`` does). A product in the catalog is the
  authority: a field it leaves empty stays empty.
* **The fallback.** No key, or no such product: the event's (the item's) own property of the
  same name, so ``product('brand')`` works for shops without a catalog as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

from opencdp.query import ast
from opencdp.query.values import lookup

#: The catalog columns ``product()`` reads (anything else is an attribute key).
COLUMNS: Final = (
    "id",
    "sku",
    "name",
    "brand",
    "category",
    "price",
    "currency",
    "url",
    "image_url",
    "parent_id",
)
#: Columns of the catalog table that are not product fields, and why.
REFUSED: Final[dict[str, str]] = {
    "quantity": "stock changes without an event: read it from the inventory API",
    "attributes": "write the attribute key itself, e.g. product('colour')",
    "workspace_id": "a product is always the event's own workspace's",
    "source_id": "not a product field",
    "created_us": "not a product field",
    "updated_us": "not a product field",
}
#: The properties that name an event's (an item's) product, in the order they are tried.
KEY_PROPERTIES: Final = ("product_id", "sku")

Catalog = Mapping[str, Mapping[str, Any]]
"""Product id → its catalog row (``attributes`` already read from JSON): what the reference
evaluator is given of a workspace's catalog."""


class CatalogUnavailable(Exception):
    """A lookup could not read the catalog (the database): what needs a product is tried
    again later, never failed for good."""


CatalogLookup = Callable[[Any], Mapping[str, Any] | None]
"""One workspace's product of an id (a string, or a whole number's digits), None when the
catalog has none: what e-mail templates (``product(id)``) and mapping directives
(``@catalog``) are given when they render; raises :class:`CatalogUnavailable` when the
catalog cannot be read."""


#: The largest whole number (either sign) that is a catalog key: beyond it a JSON number may
#: be a float that no longer reads as the digits written.
MAX_NUMBER_KEY: Final = 2**53


def key_of(value: Any) -> str | None:
    """A property value as a catalog key: a string as it is, a whole number (``12``, ``12.0``)
    of at most :data:`MAX_NUMBER_KEY` as its digits; anything else is no key."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return str(int(value)) if abs(value) <= MAX_NUMBER_KEY else None


def product_key(properties: Mapping[str, Any]) -> str | None:
    """The catalog key of an event's (an item's) properties: ``product_id``, else ``sku``."""
    for name in KEY_PROPERTIES:
        key = key_of(properties.get(name))
        if key is not None:
            return key
    return None


def field_of(row: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Field ``path`` of catalog row ``row``: a column, else a path into its attributes."""
    if len(path) == 1 and path[0] in COLUMNS:
        return row.get(path[0])
    attributes = row.get("attributes")
    if isinstance(attributes, str | bytes):
        attributes = orjson.loads(attributes)
    return lookup(attributes, path) if isinstance(attributes, Mapping) else None


def product_value(catalog: Catalog, properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """What ``product(path)`` reads for an event (an item) with ``properties``."""
    key = product_key(properties)
    row = catalog.get(key) if key is not None else None
    if row is None:
        return lookup(properties, path)
    return field_of(row, path)


def check_field(path: tuple[str, ...]) -> str | None:
    """Why ``product()`` cannot read ``path`` (None: it can)."""
    if path[0] in REFUSED:
        return f"product('{path[0]}') is not a product field: {REFUSED[path[0]]}"
    if len(path) > 1 and path[0] in COLUMNS:
        return f"the catalog's {path[0]} is a plain value: write product('{path[0]}')"
    return None


def uses_catalog(node: Any) -> bool:
    """Whether a definition's AST reads the catalog (``product()`` anywhere in it)."""
    return any(isinstance(n, ast.Product) for n in walk(node))


def walk(node: Any) -> Iterable[Any]:
    """Every node of an AST, depth first."""
    yield node
    if isinstance(node, ast.And | ast.Or):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, ast.Not | ast.AnyUser | ast.AllUsers):
        yield from walk(node.item)
    elif isinstance(node, ast.Comparison):
        yield from walk(node.value)
        for argument in node.arguments:
            yield from walk(argument)
    elif isinstance(node, ast.Function):
        for expr in node.arguments:
            yield from walk(expr)
    elif isinstance(node, ast.Aggregate):
        if node.argument is not None:
            yield from walk(node.argument)
        for f in node.stream.filters:
            yield f
            if isinstance(f, ast.Where):
                yield from walk(f.condition)


def keys_in(root: Any, events: Iterable[Mapping[str, Any]]) -> set[str]:
    """The catalog keys a definition can look up in events with these ``properties``: each
    event's own, and those of its line items under every ``items()`` path of ``root``."""
    paths = {f.path for f in walk(root) if isinstance(f, ast.Items)}
    out: set[str] = set()
    for properties in events:
        key = product_key(properties)
        if key is not None:
            out.add(key)
        for path in paths:
            array = lookup(properties, path)
            if isinstance(array, Sequence) and not isinstance(array, str):
                out.update(
                    k
                    for item in array
                    if isinstance(item, Mapping) and (k := product_key(item)) is not None
                )
    return out
