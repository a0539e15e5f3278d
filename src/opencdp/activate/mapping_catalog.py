"""``@catalog``: a field of a product in the workspace's catalog, in a mapping (an OpenCDP
extension of Segment's mapping kit; Segment has no such directive)::

    {"name": {"@catalog": {"id": {"@path": "$.properties.product_id"}, "field": "name"}}}

``id`` is a raw value or a directive; it names a product by its id (a string, or a whole
number's digits). ``field`` is a column of the catalog (``name``, ``brand``, ``category``,
``price``, ``currency``, ``url``, ``image_url``, ``sku``, ``parent_id``, ``id``) or else an
attribute key (a dotted path reads into the attributes); without ``field`` the value is the
whole product. A product the catalog lacks (or an ``id`` that names none) is *undefined*: the
key is left out, as for a ``@path`` that is not there; a field the product leaves empty is
``null``.

The mapping stays pure: the catalog is read through a lookup given when the mapping is
applied (:meth:`~opencdp.activate.mapping.CompiledMapping.apply`'s ``catalog``), within the
workspace of the event; without one, every ``@catalog`` is undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from opencdp.activate.mapping_values import UNDEFINED
from opencdp.query.catalog import COLUMNS, REFUSED, CatalogLookup, field_of

#: The settings ``@catalog`` takes.
KEYS: Final = frozenset({"id", "field"})

_LOOKUP: ContextVar[CatalogLookup | None] = ContextVar("opencdp_mapping_catalog", default=None)


@contextmanager
def catalog_lookup(lookup: CatalogLookup | None) -> Iterator[None]:
    """While inside, ``@catalog`` reads products through ``lookup``."""
    token = _LOOKUP.set(lookup)
    try:
        yield
    finally:
        _LOOKUP.reset(token)


def field_path(field: Any) -> tuple[tuple[str, ...] | None, str | None]:
    """``field`` as a path into a product → (the path, None) or (None, what is wrong)."""
    if not isinstance(field, str):
        return None, 'is a product field such as "name" (a string)'
    parts = tuple(field.split("."))
    if not field or any(not p for p in parts):
        return None, f"{field!r} is not a field name (an empty part between dots)"
    if parts[0] in REFUSED:
        return None, f"{parts[0]!r} is not a product field: {REFUSED[parts[0]]}"
    if len(parts) > 1 and parts[0] in COLUMNS:
        return None, f'the catalog\'s {parts[0]} is a plain value: write "{parts[0]}"'
    return parts, None


def catalog_resolver(
    product_id: Callable[[Any], Any], path: tuple[str, ...] | None
) -> Callable[[Any], Any]:
    """The resolver of ``@catalog``: the product ``product_id`` names, read through the
    lookup of the moment, then its field ``path`` (None: the whole product)."""

    def resolve_catalog(payload: Any) -> Any:
        lookup = _LOOKUP.get()
        if lookup is None:
            return UNDEFINED
        key = product_id(payload)
        product = None if key is UNDEFINED else lookup(key)
        if not isinstance(product, Mapping):
            return UNDEFINED
        if path is None:
            return dict(product)
        if len(path) == 1 and path[0] in COLUMNS:
            return product.get(path[0])
        value = field_of(product, path)
        return UNDEFINED if value is None and not _has(product, path) else value

    return resolve_catalog


def _has(product: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether the product's attributes hold ``path`` at all (a null there is null)."""
    current: Any = product.get("attributes")
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True
