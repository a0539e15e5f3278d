"""The product catalog and its stock: set-based writes in the caller's transaction, the list
reads with filters and keyset pages, and the history of stock changes.

The single-product read of the headless API (its hot path) is :mod:`opencdp.storage.catalog_reads`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, tuple_

from opencdp.catalog.inventory import CHANNELS, Restock, StockLevel, StockRow, restocks
from opencdp.catalog.products import CATEGORY_SEPARATOR, FIELDS, Product
from opencdp.storage.db import Connection, Database
from opencdp.storage.profiles import chunks
from opencdp.storage.rows import plain
from opencdp.storage.schema import inventory, inventory_history, products, sources

#: the columns a product write replaces (``created_us`` and the imported ``quantity`` stay)
_PRODUCT_UPDATED = (
    "sku",
    "name",
    "category",
    "brand",
    "price",
    "currency",
    "url",
    "image_url",
    "parent_id",
    "attributes",
    "source_id",
    "updated_us",
)
#: the columns the API shows of a product, in this order
PRODUCT_COLUMNS = (*FIELDS, "attributes", "created_us", "updated_us")
MAX_PAGE = 500


@dataclass(frozen=True)
class ProductFilter:
    """What ``GET /api/products`` asks for: ``category`` a path prefix (whole names),
    ``brand`` exactly, ``q`` a case-insensitive substring of the name, brand or id,
    ``in_stock`` whether some location holds some (None: either)."""

    category: str | None = None
    brand: str | None = None
    q: str | None = None
    in_stock: bool | None = None


@dataclass(frozen=True)
class ProductPage:
    """A list page: the products' columns, their stock rows and variants by product id, and
    the id the next page starts after (None on the last page)."""

    rows: list[dict[str, Any]]
    stock: dict[str, list[StockRow]]
    variants: dict[str, list[str]]
    after: str | None


class CatalogStore:
    """Products by (workspace, id): bulk upserts and the list reads."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._upsert = db.dialect.upsert(products, ["workspace_id", "id"], _PRODUCT_UPDATED)
        self.inventory = InventoryStore(db)

    # -- writes -------------------------------------------------------------------------------
    def upsert_products(
        self,
        conn: Connection,
        workspace_id: str,
        items: Iterable[Product],
        now_us: int,
        source_id: str | None = None,
        times: Mapping[str, int] | None = None,
    ) -> int:
        """Insert or replace products (the last of a repeated id wins; ``created_us`` is kept
        from the first write). ``times`` stamps products with their event's time instead of
        ``now_us``. Returns how many distinct products were written."""
        latest: dict[str, dict[str, Any]] = {}
        for item in items:
            at = (times or {}).get(item.id, now_us)
            latest[item.id] = {
                **item.columns(),
                "workspace_id": workspace_id,
                "source_id": source_id,
                "created_us": at,
                "updated_us": at,
            }
        rows = [latest[k] for k in sorted(latest)]  # one order: concurrent writers never cross
        for part in chunks(rows, 500):
            conn.execute(self._upsert, list(part))
        return len(rows)

    def updated_times(
        self, conn: Connection, workspace_id: str, ids: Iterable[str]
    ) -> dict[str, int]:
        """Product id → when it was last written (an event's time, or an API write's)."""
        out: dict[str, int] = {}
        for part in chunks(sorted(set(ids))):
            rows = conn.execute(
                select(products.c.id, products.c.updated_us).where(
                    products.c.workspace_id == workspace_id, products.c.id.in_(part)
                )
            )
            out.update((r.id, int(r.updated_us)) for r in rows)
        return out

    def existing_ids(self, conn: Connection, workspace_id: str, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` the workspace's catalog has."""
        found: set[str] = set()
        for part in chunks(sorted(set(ids))):
            found.update(
                conn.execute(
                    select(products.c.id).where(
                        products.c.workspace_id == workspace_id, products.c.id.in_(part)
                    )
                ).scalars()
            )
        return found

    def catalog_sources(
        self, conn: Connection, workspace_id: str, source_ids: Iterable[str]
    ) -> set[str]:
        """Those of ``source_ids`` that are the workspace's catalog sources."""
        wanted = sorted(set(source_ids))
        if not wanted:
            return set()
        return set(
            conn.execute(
                select(sources.c.id).where(
                    sources.c.workspace_id == workspace_id,
                    sources.c.catalog.is_(True),
                    sources.c.id.in_(wanted),
                )
            ).scalars()
        )

    # -- reads --------------------------------------------------------------------------------
    def get(self, workspace_id: str, product_id: str) -> dict[str, Any] | None:
        """One product's columns (:data:`PRODUCT_COLUMNS`), or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(*(products.c[c] for c in PRODUCT_COLUMNS)).where(
                    products.c.workspace_id == workspace_id, products.c.id == product_id
                )
            ).first()
        return plain(row) if row is not None else None

    def list_page(
        self,
        workspace_id: str,
        where: ProductFilter,
        *,
        limit: int = 50,
        after: str | None = None,
    ) -> ProductPage:
        """A page of products in id order after the id ``after``, with their stock and
        variants (read in one transaction), and the id the next page starts after (None on
        the last page). Keyset pagination: a page never repeats or skips a product that stays
        while the pages are read."""
        limit = max(1, min(limit, MAX_PAGE))
        conditions: list[Any] = [products.c.workspace_id == workspace_id]
        if after is not None:
            conditions.append(products.c.id > after)
        if where.category:
            conditions.append(
                or_(
                    products.c.category == where.category,
                    products.c.category.startswith(
                        where.category + CATEGORY_SEPARATOR, autoescape=True
                    ),
                )
            )
        if where.brand:
            conditions.append(products.c.brand == where.brand)
        if where.q:
            needle = where.q.lower()
            conditions.append(
                or_(
                    *(
                        func.lower(products.c[c]).contains(needle, autoescape=True)
                        for c in ("id", "name", "brand")
                    )
                )
            )
        if where.in_stock is not None:
            stocked = exists().where(
                inventory.c.workspace_id == products.c.workspace_id,
                inventory.c.product_id == products.c.id,
                inventory.c.quantity > 0,
            )
            conditions.append(stocked if where.in_stock else ~stocked)
        query = (
            select(*(products.c[c] for c in PRODUCT_COLUMNS))
            .where(and_(*conditions))
            .order_by(products.c.id)
            .limit(limit + 1)
        )
        with self.db.read() as conn:
            rows = [plain(r) for r in conn.execute(query)]
            after_id = None
            if len(rows) > limit:
                rows = rows[:limit]
                after_id = rows[-1]["id"]
            ids = [r["id"] for r in rows]
            return ProductPage(
                rows,
                _stock_of(conn, workspace_id, ids) if ids else {},
                _variants_of(conn, workspace_id, ids) if ids else {},
                after_id,
            )

    def count(self, workspace_id: str) -> int:
        """How many products the workspace has."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(products)
                    .where(products.c.workspace_id == workspace_id)
                ).scalar_one()
            )


@dataclass(frozen=True)
class LevelWrite:
    """What a write of stock levels did: how many levels changed, and the restocks."""

    changed: int
    restocks: list[Restock]


class InventoryStore:
    """Stock levels per (workspace, product, location) and their append-only history."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._placeholder = db.dialect.insert_ignore(inventory)
        self._upsert = db.dialect.upsert(
            inventory, ["workspace_id", "product_id", "location"], ["quantity", "updated_us"]
        )

    def level_times(
        self, conn: Connection, workspace_id: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(product, location) → when its level was last written."""
        out: dict[tuple[str, str], int] = {}
        for part in chunks(sorted(set(pairs)), 500):
            rows = conn.execute(
                select(inventory.c.product_id, inventory.c.location, inventory.c.updated_us).where(
                    inventory.c.workspace_id == workspace_id,
                    inventory.c.product_id.in_(sorted({p for p, _l in part})),
                    tuple_(inventory.c.product_id, inventory.c.location).in_(list(part)),
                )
            )
            out.update(((p, loc), int(at)) for p, loc, at in rows)
        return out

    def set_levels(
        self,
        conn: Connection,
        workspace_id: str,
        levels: Sequence[StockLevel],
        channel: str,
        reference: str | None,
        now_us: int,
    ) -> list[Restock]:
        """:meth:`write_levels`, answering only the restocks."""
        return self.write_levels(conn, workspace_id, levels, channel, reference, now_us).restocks

    def write_levels(
        self,
        conn: Connection,
        workspace_id: str,
        levels: Sequence[StockLevel],
        channel: str,
        reference: str | None,
        now_us: int,
    ) -> LevelWrite:
        """Set these stock levels in ``conn``'s transaction (the last of a repeated product and
        location wins): a level whose quantity changes is written with one history row; an
        unchanged one is left as it is. Returns how many changed and the restocks: the levels
        that went from 0 (or none) to above 0.

        Concurrent writers of one level take turns (its row is locked until commit, created
        first at 0 when it is new), so each restock is reported by exactly one of them.
        """
        if channel not in CHANNELS:
            raise ValueError(f"channel is one of {', '.join(CHANNELS)}, not {channel!r}")
        wanted: dict[tuple[str, str], int] = {}
        for level in levels:
            wanted[(level.product_id, level.location)] = level.quantity
        if not wanted:
            return LevelWrite(0, [])
        keys = sorted(wanted)
        # New levels start at 0 (so that the row can be locked); rows in key order, so that two
        # writers never wait for each other in a cycle.
        for part in chunks(keys, 500):
            conn.execute(
                self._placeholder,
                [
                    {
                        "workspace_id": workspace_id,
                        "product_id": pid,
                        "location": loc,
                        "quantity": 0,
                        "updated_us": now_us,
                    }
                    for pid, loc in part
                ],
            )
        before: dict[tuple[str, str], int] = {}
        for part in chunks(keys, 500):
            query = (
                select(inventory.c.product_id, inventory.c.location, inventory.c.quantity)
                .where(
                    inventory.c.workspace_id == workspace_id,
                    inventory.c.product_id.in_(sorted({p for p, _l in part})),
                    tuple_(inventory.c.product_id, inventory.c.location).in_(list(part)),
                )
                .order_by(inventory.c.product_id, inventory.c.location)
                .with_for_update()
            )
            before.update(((p, loc), int(q)) for p, loc, q in conn.execute(query))
        changed = {k: q for k, q in wanted.items() if before.get(k, 0) != q}
        if not changed:
            return LevelWrite(0, [])
        ordered = sorted(changed)
        for part in chunks(ordered, 500):
            conn.execute(
                self._upsert,
                [
                    {
                        "workspace_id": workspace_id,
                        "product_id": pid,
                        "location": loc,
                        "quantity": changed[(pid, loc)],
                        "updated_us": now_us,
                    }
                    for pid, loc in part
                ],
            )
            conn.execute(
                inventory_history.insert(),
                [
                    {
                        "workspace_id": workspace_id,
                        "product_id": pid,
                        "location": loc,
                        "quantity": changed[(pid, loc)],
                        "delta": changed[(pid, loc)] - before.get((pid, loc), 0),
                        "channel": channel,
                        "reference": reference[:200] if reference else None,
                        "at_us": now_us,
                    }
                    for pid, loc in part
                ],
            )
        return LevelWrite(len(changed), restocks(before, {k: changed[k] for k in ordered}))

    def levels(self, workspace_id: str, product_id: str) -> list[StockRow]:
        """A product's stock rows by location."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(inventory.c.location, inventory.c.quantity, inventory.c.updated_us)
                .where(
                    inventory.c.workspace_id == workspace_id,
                    inventory.c.product_id == product_id,
                )
                .order_by(inventory.c.location)
            )
            return [StockRow(loc, int(q), int(at)) for loc, q, at in rows]

    def history(self, workspace_id: str, product_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """A product's stock changes, newest first: location, quantity after, delta, channel,
        reference, at_us."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    inventory_history.c.location,
                    inventory_history.c.quantity,
                    inventory_history.c.delta,
                    inventory_history.c.channel,
                    inventory_history.c.reference,
                    inventory_history.c.at_us,
                )
                .where(
                    inventory_history.c.workspace_id == workspace_id,
                    inventory_history.c.product_id == product_id,
                )
                .order_by(inventory_history.c.at_us.desc(), inventory_history.c.id.desc())
                .limit(max(1, limit))
            )
            return [plain(r) for r in rows]


def _stock_of(
    conn: Connection, workspace_id: str, product_ids: Sequence[str]
) -> dict[str, list[StockRow]]:
    """Product id → its stock rows by location (products without any are left out)."""
    out: dict[str, list[StockRow]] = defaultdict(list)
    for part in chunks(sorted(set(product_ids))):
        rows = conn.execute(
            select(
                inventory.c.product_id,
                inventory.c.location,
                inventory.c.quantity,
                inventory.c.updated_us,
            )
            .where(inventory.c.workspace_id == workspace_id, inventory.c.product_id.in_(part))
            .order_by(inventory.c.product_id, inventory.c.location)
        )
        for pid, location, quantity, updated_us in rows:
            out[pid].append(StockRow(location, int(quantity), int(updated_us)))
    return dict(out)


def _variants_of(
    conn: Connection, workspace_id: str, product_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Parent id → the ids of its variants, in id order (parents without any left out)."""
    out: dict[str, list[str]] = defaultdict(list)
    for part in chunks(sorted(set(product_ids))):
        rows = conn.execute(
            select(products.c.parent_id, products.c.id)
            .where(products.c.workspace_id == workspace_id, products.c.parent_id.in_(part))
            .order_by(products.c.parent_id, products.c.id)
        )
        for parent, pid in rows:
            out[parent].append(pid)
    return dict(out)
