"""A product as the API, a ``Product Updated`` event or a file gives it, validated and
normalised into what the catalog stores.

* ``id`` is the product id or SKU (``product_id`` and ``sku`` name it too, in that order);
  the path's id wins over none, and a body naming another one is refused.
* ``category`` is a path: ``"Women > Shoes"`` or ``["Women", "Shoes"]``, stored as
  ``"Women > Shoes"`` (so that ``category=Women`` finds it by prefix).
* ``currency`` is an ISO 4217 code, stored upper-case; ``price`` a number ≥ 0.
* ``url`` and ``image_url`` are absolute http(s) URLs; ``parent_id`` groups a variant under
  its parent product.
* Every other field is an attribute (an ``attributes`` object is merged into them). What the
  API answers but never stores (``stock``, ``in_stock``, ``variants``, times) is dropped, so a
  client may send back what it read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from opencdp.errors import RequestError

CATEGORY_SEPARATOR: Final = " > "
#: column limits of the ``products`` table
MAX_ID: Final = 200
MAX_NAME: Final = 500
MAX_BRAND: Final = 200
MAX_CATEGORY: Final = 300
MAX_URL: Final = 2000
MAX_CATEGORY_DEPTH: Final = 20
#: the attributes of one product, as JSON
MAX_ATTRIBUTES_BYTES: Final = 32_768
#: the fields a product has besides its attributes
FIELDS: Final = (
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
#: what reads answer and writes ignore
READ_ONLY: Final = frozenset(
    {"stock", "in_stock", "variants", "created_at", "updated_at", "workspace_id"}
)
_ID_KEYS: Final = ("id", "product_id", "sku")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_URL = re.compile(r"https?://[^\s/?#]+\S*")
_NON_BLANK = re.compile(r"[^\x00]*[^\s\x00][^\x00]*")
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")


class CatalogError(RequestError):
    """A product or a stock level that cannot be stored; ``field`` names what to fix."""

    def __init__(self, field_name: str, reason: str, *, code: str = "invalid_product") -> None:
        super().__init__(f"{field_name}: {reason}", code=code)
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class Product:
    """A valid product (every text stripped, the category a path, the currency upper-case)."""

    id: str
    sku: str | None = None
    name: str | None = None
    brand: str | None = None
    category: str | None = None
    price: float | None = None
    currency: str | None = None
    url: str | None = None
    image_url: str | None = None
    parent_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The ``products`` columns this product sets (attributes as sorted JSON text)."""
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "brand": self.brand,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "url": self.url,
            "image_url": self.image_url,
            "parent_id": self.parent_id,
            "attributes": attributes_json(self.attributes),
        }


def attributes_json(attributes: Mapping[str, Any]) -> str:
    return orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode()


def product_from(body: Any, product_id: str | None = None) -> Product:
    """The product ``body`` describes (an API body or an event's properties); ``product_id``
    is the id the path names, if any. Raises :class:`CatalogError` naming the first field
    that is wrong."""
    if not isinstance(body, Mapping):
        raise CatalogError("product", "send a JSON object")
    named = _named_id(body)
    if product_id is not None:
        pid = identifier(product_id, "id")
        if named is not None and named[0] != "sku" and named[1] != pid:
            raise CatalogError(named[0], f"the body names {named[1]!r}, the path {pid!r}")
    elif named is not None:
        pid = named[1]
    else:
        raise CatalogError("id", "a product needs an id (or product_id, or sku)")
    parent = _optional_id(body.get("parent_id"), "parent_id")
    if parent == pid:
        raise CatalogError("parent_id", "a product cannot be its own parent")
    attributes: dict[str, Any] = {}
    if "attributes" in body:
        extra = body["attributes"]
        if not isinstance(extra, Mapping):
            raise CatalogError("attributes", "an object of attribute names and values")
        attributes.update(extra)
    for key, value in body.items():
        if key in FIELDS or key in READ_ONLY or key in _ID_KEYS or key == "attributes":
            continue
        attributes[str(key)] = value
    if len(attributes_json(attributes).encode()) > MAX_ATTRIBUTES_BYTES:
        raise CatalogError("attributes", f"more than {MAX_ATTRIBUTES_BYTES:,} bytes as JSON")
    return Product(
        id=pid,
        sku=identifier(body["sku"], "sku") if "sku" in body else pid,
        name=_text(body.get("name"), "name", MAX_NAME),
        brand=_text(body.get("brand"), "brand", MAX_BRAND),
        category=category_path(body.get("category")),
        price=_price(body.get("price")),
        currency=currency_code(body.get("currency")),
        url=_url(body.get("url"), "url"),
        image_url=_url(body.get("image_url"), "image_url"),
        parent_id=parent,
        attributes=attributes,
    )


def identifier(value: Any, field_name: str, *, code: str = "invalid_product") -> str:
    """A product id: text, not blank, at most 200 characters (surrounding blanks dropped)."""
    return bounded_text(value, field_name, MAX_ID, code=code, what="a product id")


def bounded_text(
    value: Any, field_name: str, limit: int, *, code: str = "invalid_product", what: str = "it"
) -> str:
    """Text of at most ``limit`` characters holding something besides blanks (and no NUL),
    stripped: what the OpenAPI document's ``maxLength`` and non-blank pattern allow."""
    if not isinstance(value, str):
        raise CatalogError(field_name, f"{what} is text", code=code)
    if len(value) > limit:
        raise CatalogError(field_name, f"at most {limit} characters", code=code)
    if "\x00" in value:
        raise CatalogError(field_name, "a NUL character cannot be stored", code=code)
    if not _NON_BLANK.fullmatch(value):
        raise CatalogError(field_name, f"{what} cannot be blank", code=code)
    return value.strip()


def _named_id(body: Mapping[str, Any]) -> tuple[str, str] | None:
    found = [(key, identifier(body[key], key)) for key in _ID_KEYS if key in body]
    return found[0] if found else None


def _optional_id(value: Any, field_name: str) -> str | None:
    return None if value is None else identifier(value, field_name)


def _text(value: Any, field_name: str, limit: int) -> str | None:
    """Optional text (blank is none)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogError(field_name, "text")
    if len(value) > limit:
        raise CatalogError(field_name, f"at most {limit} characters")
    if "\x00" in value:
        raise CatalogError(field_name, "a NUL character cannot be stored")
    return value.strip() or None


def category_path(value: Any) -> str | None:
    """``"Women > Shoes"`` or ``["Women", "Shoes"]`` as ``"Women > Shoes"`` (None for none)."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_CATEGORY:
        parts = value.split(">")
    elif isinstance(value, str):
        raise CatalogError("category", f"at most {MAX_CATEGORY} characters")
    elif isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        if len(value) > MAX_CATEGORY_DEPTH:
            raise CatalogError("category", f"at most {MAX_CATEGORY_DEPTH} names")
        parts = list(value)
    else:
        raise CatalogError("category", 'a path as text ("Women > Shoes") or a list of names')
    names = [p.strip() for p in parts]
    if not any(names):
        return None
    if not all(names):
        raise CatalogError("category", "an empty name in the path")
    if any(">" in n for n in names):
        raise CatalogError("category", "a name in a list cannot hold '>'")
    path = CATEGORY_SEPARATOR.join(names)
    if len(path) > MAX_CATEGORY:
        raise CatalogError("category", f"at most {MAX_CATEGORY} characters")
    if "\x00" in path:
        raise CatalogError("category", "a NUL character cannot be stored")
    return path


def _price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise CatalogError("price", f"a number such as 19.99, not {value!r}")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogError("price", "a number")
    try:
        number = float(value)
    except OverflowError:
        raise CatalogError("price", "a number this side of 1e308") from None
    if not math.isfinite(number) or number < 0:
        raise CatalogError("price", "a number of 0 or more")
    return number


def currency_code(value: Any) -> str | None:
    """An ISO 4217 code (three letters), upper-case."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise CatalogError("currency", "an ISO 4217 code of three letters, e.g. EUR")
    return value.upper()


def _url(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogError(field_name, "an http(s) URL")
    if not value:
        return None
    if len(value) > MAX_URL:
        raise CatalogError(field_name, f"at most {MAX_URL} characters")
    if not _URL.fullmatch(value):
        raise CatalogError(field_name, "an absolute http(s) URL, e.g. https://shop.example/p/1")
    return value
