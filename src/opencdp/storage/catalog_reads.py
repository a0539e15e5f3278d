"""The headless catalog's hot read: a product, its stock per location and its variants, in
one statement.

``GET /api/products/{id}`` is what web shops and apps call on every product page. Like the
Profile API's traits (:mod:`opencdp.storage.profile_reads`), it runs as one SQL statement,
compiled once, on one driver connection each thread keeps for itself: no pool checkout, no
``BEGIN``/``COMMIT`` round trips, no statement building per request. One statement reads one
consistent snapshot on both databases.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, bindparam, cast, literal_column, null, select, union_all

from opencdp.catalog.inventory import StockRow
from opencdp.errors import StorageUnavailable
from opencdp.storage.catalog import PRODUCT_COLUMNS
from opencdp.storage.db import Database
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
    """Runs :func:`product_read_query` on a per-thread driver connection."""

    _PARAMS = ("workspace_id", "product_id")

    def __init__(self, db: Database) -> None:
        self.db = db
        compiled = product_read_query().compile(dialect=db.engine.dialect)
        self._sql = str(compiled)
        # qmark (SQLite) binds by position, pyformat (psycopg) by name.
        self._positional = compiled.positiontup is not None and bool(compiled.positional)
        self._order = tuple(compiled.positiontup or self._PARAMS)
        self._local = threading.local()
        self._held: list[Any] = []
        self._lock = threading.Lock()

    def product(self, workspace_id: str, product_id: str) -> ProductRead | None:
        """The product with its stock and variants; None when the catalog has no such id."""
        values = {"workspace_id": workspace_id, "product_id": product_id}
        params: Any = tuple(values[k] for k in self._order) if self._positional else values
        raw = self._connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self._sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except Exception as exc:
            # A connection the server dropped (restart, failover) is not used again.
            self._forget(raw)
            raise StorageUnavailable(f"database read failed: {exc}") from exc
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

    def _connection(self) -> Any:
        raw = getattr(self._local, "connection", None)
        if raw is None:
            # Checked out of the engine's pool for good (returned by close()); the pool's
            # connect hooks have run, so SQLite is in WAL mode with pysqlite's autocommit.
            raw = self.db.engine.raw_connection()
            driver: Any = raw.driver_connection
            if not self.db.dialect.is_sqlite:
                driver.autocommit = True  # one statement, no idle-in-transaction session
            self._local.connection = raw
            with self._lock:
                self._held.append(raw)
        return raw

    def _forget(self, raw: Any) -> None:
        self._local.connection = None
        with self._lock:
            if raw in self._held:
                self._held.remove(raw)
        with contextlib.suppress(Exception):
            raw.invalidate()

    def close(self) -> None:
        """Give every held connection back (at shutdown)."""
        with self._lock:
            held, self._held = self._held, []
        for raw in held:
            with contextlib.suppress(Exception):  # closing at shutdown: nothing left to do
                raw.close()
        self._local = threading.local()
