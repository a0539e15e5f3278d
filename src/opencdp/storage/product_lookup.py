"""Reads of the product catalog for what reaches a product from an event: the reference
evaluator of ``product()`` (the compute engine's fallback), e-mail templates (``product(id)``)
and mapping directives (``@catalog``). Always within one workspace."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from opencdp.catalog.products import FIELDS as PRODUCT_FIELDS
from opencdp.query.catalog import CatalogUnavailable, key_of
from opencdp.storage.db import Connection, Database
from opencdp.storage.schema import products

#: The columns a product is read with (stock and bookkeeping are not product fields).
FIELDS: Final = (*PRODUCT_FIELDS, "attributes")
#: At most this many ids per statement (SQLite's bound parameters).
_CHUNK: Final = 500


def products_by_id(
    conn: Connection, workspace_id: str, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Product id → its catalog row (``attributes`` read from JSON) for the ``ids`` that the
    workspace's catalog has; the others are left out."""
    wanted = sorted({i for i in ids if isinstance(i, str)})
    columns = [products.c[name] for name in FIELDS]
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = conn.execute(
            select(*columns).where(
                products.c.workspace_id == workspace_id, products.c.id.in_(chunk)
            )
        )
        for row in rows:
            product = row._asdict()
            product["attributes"] = _attributes(product.get("attributes"))
            out[product["id"]] = product
    return out


def _attributes(raw: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class ProductLookup:
    """One workspace's products by id for one send (a :data:`~opencdp.query.catalog.
    CatalogLookup`): each distinct id is read once, by its own query, and kept while the
    lookup lives (at most ``limit`` ids); every call returns a copy, so a template cannot
    change what the next one reads. Safe to share between a send's threads."""

    def __init__(self, db: Database, workspace_id: str, limit: int = 1000) -> None:
        self.db = db
        self.workspace_id = workspace_id
        self.limit = limit
        self.reads = 0  # how many queries it made
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def __call__(self, product_id: Any) -> dict[str, Any] | None:
        key = key_of(product_id)
        if key is None:
            return None
        with self._lock:
            if key not in self._cache:
                if len(self._cache) >= self.limit:
                    self._cache.clear()
                try:
                    with self.db.read() as conn:
                        found = products_by_id(conn, self.workspace_id, [key])
                except (SQLAlchemyError, OSError) as exc:
                    raise CatalogUnavailable(f"the catalog cannot be read: {exc}") from exc
                self.reads += 1
                self._cache[key] = found.get(key)
            row = self._cache[key]
        return copy.deepcopy(row) if row is not None else None
