"""The catalog, pure: products and stock levels as the API, events and files give them
(validated and normalised, errors naming the field), restocks, ETags and list cursors.

Storage (:mod:`opencdp.storage.catalog`) keeps them; nothing here touches a database.
"""

from opencdp.catalog.etag import (
    decode_cursor,
    encode_cursor,
    etag_matches,
    list_etag,
    product_etag,
)
from opencdp.catalog.inventory import Restock, StockLevel, stock_level
from opencdp.catalog.products import CATEGORY_SEPARATOR, CatalogError, Product, product_from

__all__ = [
    "CATEGORY_SEPARATOR",
    "CatalogError",
    "Product",
    "Restock",
    "StockLevel",
    "decode_cursor",
    "encode_cursor",
    "etag_matches",
    "list_etag",
    "product_etag",
    "product_from",
    "stock_level",
]
