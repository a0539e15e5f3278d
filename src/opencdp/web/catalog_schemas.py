"""The catalog API's request bodies and answers for the OpenAPI document, exactly as
:mod:`opencdp.catalog` validates them (strings as long as its limits, the same patterns)."""

from __future__ import annotations

from typing import Final

from opencdp.catalog.inventory import MAX_LOCATION, MAX_QUANTITY
from opencdp.catalog.products import (
    MAX_BRAND,
    MAX_CATEGORY,
    MAX_CATEGORY_DEPTH,
    MAX_ID,
    MAX_NAME,
    MAX_URL,
    READ_ONLY,
)
from opencdp.web.wire_schemas import TEXT_PATTERN, Schema, nullable, ref

MAX_BATCH: Final = 1000
_NON_BLANK: Final = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


def _text(limit: int, pattern: str = TEXT_PATTERN) -> Schema:
    return {"type": "string", "maxLength": limit, "pattern": pattern}


_ID: Final[Schema] = {**_text(MAX_ID, _NON_BLANK), "minLength": 1}
_URL: Final[Schema] = nullable(
    {
        **_text(MAX_URL, "^(|https?://[^\\s/?#]+\\S*)$"),
        "description": "An absolute http(s) URL (empty: none).",
    }
)

PRODUCT: Final[Schema] = {
    "type": "object",
    "description": "A product. Every field besides these is kept as an attribute; what "
    "reads answer besides them (stock, in_stock, variants, times) is ignored.",
    "properties": {
        "id": {**_ID, "description": "The product id or SKU (the path's, when it names one)."},
        "product_id": {**_ID, "description": "Another name of id."},
        "sku": _ID,
        "name": nullable(_text(MAX_NAME)),
        "brand": nullable(_text(MAX_BRAND)),
        "category": {
            "description": 'A path: "Women > Shoes", or ["Women", "Shoes"] (no name empty).',
            "anyOf": [
                {"type": "null"},
                _text(MAX_CATEGORY),
                {
                    "type": "array",
                    "maxItems": MAX_CATEGORY_DEPTH,
                    "items": _text(MAX_CATEGORY),
                },
            ],
        },
        "price": {
            "anyOf": [
                {"type": "null"},
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]{1,15}(\\.[0-9]{1,6})?$"},
            ]
        },
        "currency": nullable({"type": "string", "pattern": "^[A-Za-z]{3}$"}),
        "url": _URL,
        "image_url": _URL,
        "parent_id": nullable({**_ID, "description": "The product this one is a variant of."}),
        "attributes": ref("JsonObject"),
        **{name: {"description": "Ignored (answered by reads)."} for name in sorted(READ_ONLY)},
    },
    "additionalProperties": ref("JsonValue"),
}
PRODUCTS_BATCH: Final[Schema] = {
    "type": "object",
    "properties": {
        "products": {
            "type": "array",
            "maxItems": MAX_BATCH,
            "items": {**PRODUCT, "anyOf": [{"required": [k]} for k in ("id", "product_id", "sku")]},
        }
    },
    "required": ["products"],
    "additionalProperties": False,
}
_LOCATION: Final[Schema] = {**_text(MAX_LOCATION, _NON_BLANK), "minLength": 1}
_QUANTITY: Final[Schema] = {"type": "integer", "minimum": 0, "maximum": MAX_QUANTITY}
LEVEL: Final[Schema] = {
    "type": "object",
    "properties": {
        "location": {**_LOCATION, "description": "web for the web warehouse, or a store id."},
        "quantity": _QUANTITY,
        "product_id": {**_ID, "description": "The path's product (may be left out)."},
    },
    "required": ["location", "quantity"],
    "additionalProperties": False,
}
LEVELS_BATCH: Final[Schema] = {
    "type": "object",
    "properties": {
        "levels": {
            "type": "array",
            "maxItems": MAX_BATCH,
            "items": {
                "type": "object",
                "properties": {"product_id": _ID, "location": _LOCATION, "quantity": _QUANTITY},
                "required": ["product_id", "location", "quantity"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["levels"],
    "additionalProperties": False,
}
_STOCK: Final[Schema] = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "quantity": {"type": "integer"},
        "updated_at": {"type": "string"},
    },
}
PRODUCT_VIEW: Final[Schema] = {
    "type": "object",
    "required": ["id", "attributes", "stock", "in_stock", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string"},
        "stock": {"type": "array", "items": _STOCK},
        "in_stock": {"type": "boolean"},
        "variants": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object"},
    },
}
PRODUCT_PAGE: Final[Schema] = {
    "type": "object",
    "required": ["data", "next"],
    "properties": {
        "data": {"type": "array", "items": PRODUCT_VIEW},
        "next": {"type": ["string", "null"]},
    },
}
