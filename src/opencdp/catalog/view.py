"""What the catalog API answers for a product: its fields, attributes, stock per location,
whether it is in stock, its variants and its times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from opencdp.catalog.inventory import StockRow
from opencdp.timeutil import isoformat_us

_SHOWN = (
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


def product_view(
    product: Mapping[str, Any], stock: Sequence[StockRow], variants: Sequence[str] = ()
) -> dict[str, Any]:
    """The answer for a product row (its stored columns), its stock rows and its variants'
    ids; ``variants`` appears only on a parent."""
    attributes = product.get("attributes")
    view: dict[str, Any] = {key: product.get(key) for key in _SHOWN}
    view["attributes"] = orjson.loads(attributes) if attributes else {}
    view["stock"] = [stock_view(s) for s in stock]
    view["in_stock"] = any(s.quantity > 0 for s in stock)
    if variants:
        view["variants"] = list(variants)
    view["created_at"] = isoformat_us(product["created_us"])
    view["updated_at"] = isoformat_us(product["updated_us"])
    return view


def stock_view(row: StockRow) -> dict[str, Any]:
    return {
        "location": row.location,
        "quantity": row.quantity,
        "updated_at": isoformat_us(row.updated_us),
    }
