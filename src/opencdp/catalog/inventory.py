"""Stock levels: how many of a product one location holds (``web`` for the web warehouse, a
store's id for a store), and the restocks a write makes (0 or none → above 0)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from opencdp.catalog.products import CatalogError, identifier

MAX_LOCATION: Final = 100
#: the largest quantity a level holds (the column is a 32-bit integer)
MAX_QUANTITY: Final = 2**31 - 1
#: how an inventory write arrived (``inventory_history.channel``)
CHANNELS: Final = ("api", "import", "event")


class StockLevel(NamedTuple):
    """A product's stock at one location."""

    product_id: str
    location: str
    quantity: int


class StockRow(NamedTuple):
    """A stored stock level of one product: where, how many, when it last changed."""

    location: str
    quantity: int
    updated_us: int


class Restock(NamedTuple):
    """A stock level that went from 0 (or none) to above 0."""

    product_id: str
    location: str
    before: int
    after: int


def location_name(value: Any, field_name: str = "location") -> str:
    """A location: text, not blank, at most 100 characters."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CatalogError(
            field_name, "a location is text, e.g. web or a store id", code="invalid_stock"
        )
    text = str(value).strip()
    if not text:
        raise CatalogError(field_name, "a location cannot be empty", code="invalid_stock")
    if len(text) > MAX_LOCATION:
        raise CatalogError(field_name, f"at most {MAX_LOCATION} characters", code="invalid_stock")
    if "\x00" in text:
        raise CatalogError(field_name, "a NUL character cannot be stored", code="invalid_stock")
    return text


def quantity_of(value: Any, field_name: str = "quantity") -> int:
    """A quantity: a whole number of 0 or more (``"12"`` and ``12.0`` are 12)."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise CatalogError(
            field_name, f"a whole number of 0 or more, not {value!r}", code="invalid_stock"
        )
    if number < 0:
        raise CatalogError(field_name, "a whole number of 0 or more", code="invalid_stock")
    if number > MAX_QUANTITY:
        raise CatalogError(field_name, f"at most {MAX_QUANTITY:,}", code="invalid_stock")
    return number


def stock_level(body: Any, product_id: str | None = None) -> StockLevel:
    """The level ``body`` gives (``{"location", "quantity"}``, with ``product_id`` unless the
    path names it). Raises :class:`CatalogError` naming the field."""
    if not isinstance(body, Mapping):
        raise CatalogError("level", 'send {"location": "web", "quantity": 3}', code="invalid_stock")
    extra = sorted(set(body) - {"product_id", "location", "quantity"})
    if extra:
        raise CatalogError(
            extra[0],
            "not a field of a stock level (product_id, location, quantity)",
            code="invalid_stock",
        )
    if product_id is None:
        if body.get("product_id") is None:
            raise CatalogError(
                "product_id", "a stock level needs the product's id", code="invalid_stock"
            )
        pid = identifier(body["product_id"], "product_id")
    else:
        pid = identifier(product_id, "product_id")
        if (
            body.get("product_id") is not None
            and identifier(body["product_id"], "product_id") != pid
        ):
            raise CatalogError(
                "product_id",
                f"the body names {body['product_id']!r}, the path {pid!r}",
                code="invalid_stock",
            )
    if "location" not in body:
        raise CatalogError(
            "location", "a stock level needs a location, e.g. web", code="invalid_stock"
        )
    if "quantity" not in body:
        raise CatalogError("quantity", "a stock level needs a quantity", code="invalid_stock")
    return StockLevel(pid, location_name(body["location"]), quantity_of(body["quantity"]))


def restocks(
    before: Mapping[tuple[str, str], int], levels: Mapping[tuple[str, str], int]
) -> list[Restock]:
    """The levels that go from 0 (or none: absent from ``before``) to above 0."""
    return [
        Restock(pid, loc, before.get((pid, loc), 0), after)
        for (pid, loc), after in levels.items()
        if after > 0 and before.get((pid, loc), 0) == 0
    ]
