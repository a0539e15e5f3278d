"""The headless catalog's hot read: a product, its stock per location and its variants, in
one statement.

``GET /api/products/{id}`` is what web shops and apps call on every product page. Like the
Profile API's traits, it runs as one SQL statement compiled once, on the per-thread driver
connections of :mod:`opencdp.storage.hot_reads`. One statement reads one consistent snapshot
on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, bindparam, cast, literal_column, null, select, union_all

from opencdp.catalog.inventory import StockRow
from opencdp.storage.catalog import PRODUCT_COLUMNS
from opencdp.storage.hot_reads import HotReads
from opencdp.storage.schema import inventory, products


@dataclass(frozen=True, slots=True)
class ProductRead:
    """A product's columns (:data:`PRODUCT_COLUMNS`), its stock rows by location and the ids
    of its variants."""

    product: dict[str, Any]
    stock: list[StockRow]
    variants: list[str]


def product_read_query() -> Any:
    """The statement: one row per stock location of the product (one with NULL stock columns
    when it has none), kind 0; then one row per variant, kind 1, with the variant's id."""
    found = (
        select(
            literal_column("0").label("kind"),
            *(products.c[c] for c in PRODUCT_COLUMNS),
            inventory.c.location,
            inventory.c.quantity,
            inventory.c.updated_us.label("stock_us"),
        )
        .select_from(
            products.outerjoin(
                inventory,
                (inventory.c.workspace_id == products.c.workspace_id)
                & (inventory.c.product_id == products.c.id),
            )
        )
        .where(
            products.c.workspace_id == bindparam("workspace_id"),
            products.c.id == bindparam("product_id"),
        )
    )
    blanks = {
        "id": products.c.id,
        "created_us": products.c.created_us,
        "updated_us": products.c.updated_us,
    }
    variants = select(
        literal_column("1").label("kind"),
        *(blanks.get(c, cast(null(), products.c[c].type)) for c in PRODUCT_COLUMNS),
        cast(null(), String),
        cast(null(), Integer),
        cast(null(), products.c.updated_us.type),
    ).where(
        products.c.workspace_id == bindparam("workspace_id"),
        products.c.parent_id == bindparam("product_id"),
    )
    return union_all(found, variants)


class CatalogReads:
    """Runs :func:`product_read_query` on the runtime's hot reads (a per-thread connection)."""

    def __init__(self, hot: HotReads) -> None:
        self.hot = hot
        self._prepared = hot.prepare(product_read_query(), ("workspace_id", "product_id"))

    def product(self, workspace_id: str, product_id: str) -> ProductRead | None:
        """The product with its stock and variants; None when the catalog has no such id."""
        rows = self.hot.rows(
            self._prepared, {"workspace_id": workspace_id, "product_id": product_id}
        )
        width = len(PRODUCT_COLUMNS)
        product: dict[str, Any] | None = None
        stock: list[StockRow] = []
        variants: list[str] = []
        for row in rows:
            if row[0] == 1:
                variants.append(row[1])
                continue
            if product is None:
                product = dict(zip(PRODUCT_COLUMNS, row[1 : width + 1], strict=True))
            location, quantity, at_us = row[width + 1 :]
            if location is not None:
                stock.append(StockRow(location, int(quantity), int(at_us)))
        if product is None:
            return None
        stock.sort(key=lambda s: s.location)
        variants.sort()
        return ProductRead(product, stock, variants)
