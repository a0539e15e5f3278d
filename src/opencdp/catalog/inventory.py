"""Stock levels: how many of a product one location holds (``web`` for the web warehouse, a
store's id for a store), and the restocks a write makes (0 or none → above 0)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from opencdp.catalog.products import CatalogError, bounded_text, identifier

MAX_LOCATION: Final = 100
#: the largest quantity a level holds (the column is a 32-bit integer)
MAX_QUANTITY: Final = 2**31 - 1
_DIGITS = re.compile(r"\s*[0-9]{1,12}\s*")
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


def location_name(value: Any, field_name: str = "location", *, from_file: bool = False) -> str:
    """A location: text (a file's whole numbers too), not blank, at most 100 characters."""
    if from_file and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return bounded_text(
        value, field_name, MAX_LOCATION, code="invalid_stock", what="a location (e.g. web)"
    )


def quantity_of(value: Any, field_name: str = "quantity", *, from_file: bool = False) -> int:
    """A quantity: a whole number of 0 or more (``12.0`` is 12; a file's ``"12"`` too)."""
    number: Any = value
    text = from_file and isinstance(value, str) and _DIGITS.fullmatch(value) is not None
    if text or (isinstance(value, float) and value.is_integer()):
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


def stock_level(body: Any, product_id: str | None = None, *, from_file: bool = False) -> StockLevel:
    """The level ``body`` gives (``{"location", "quantity"}``, with ``product_id`` unless the
    path names it); ``from_file``: a CSV's or JSON Lines file's row, whose numbers may be
    text. Raises :class:`CatalogError` naming the field."""
    code = "invalid_stock"
    if not isinstance(body, Mapping):
        raise CatalogError("level", 'send {"location": "web", "quantity": 3}', code=code)
    extra = sorted(set(body) - {"product_id", "location", "quantity"})
    if extra:
        raise CatalogError(
            str(extra[0]),
            "not a field of a stock level (product_id, location, quantity)",
            code=code,
        )
    named = body.get("product_id")
    if "product_id" in body and named is None:
        raise CatalogError("product_id", "the product's id, not null", code=code)
    if from_file and isinstance(named, int) and not isinstance(named, bool):
        named = str(named)
    if product_id is None:
        if named is None:
            raise CatalogError("product_id", "a stock level needs the product's id", code=code)
        pid = identifier(named, "product_id", code=code)
    else:
        pid = identifier(product_id, "product_id", code=code)
        if named is not None and identifier(named, "product_id", code=code) != pid:
            raise CatalogError(
                "product_id", f"the body names {named!r}, the path {pid!r}", code=code
            )
    if "location" not in body:
        raise CatalogError("location", "a stock level needs a location, e.g. web", code=code)
    if "quantity" not in body:
        raise CatalogError("quantity", "a stock level needs a quantity", code=code)
    return StockLevel(
        pid,
        location_name(body["location"], from_file=from_file),
        quantity_of(body["quantity"], from_file=from_file),
    )


def restocks(
    before: Mapping[tuple[str, str], int], levels: Mapping[tuple[str, str], int]
) -> list[Restock]:
    """The levels that go from 0 (or none: absent from ``before``) to above 0."""
    return [
        Restock(pid, loc, before.get((pid, loc), 0), after)
        for (pid, loc), after in levels.items()
        if after > 0 and before.get((pid, loc), 0) == 0
    ]
