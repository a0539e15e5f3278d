"""The product catalog table: imported products, read by recommendations and back-in-stock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from opencdp.storage.db import Database
from opencdp.storage.schema import products

_UPDATED = (
    "sku",
    "name",
    "category",
    "brand",
    "price",
    "currency",
    "url",
    "image_url",
    "quantity",
    "attributes",
    "source_id",
    "updated_us",
)


class ProductStore:
    """Upserts and reads products by (workspace, id)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._upsert = db.dialect.upsert(products, ["workspace_id", "id"], _UPDATED)

    def upsert(self, rows: Sequence[dict[str, Any]], now_us: int) -> int:
        """Insert or update products; the last row wins when a batch repeats an id.

        ``created_us`` is kept from the first import; everything else is replaced.
        """
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            latest[(row["workspace_id"], row["id"])] = {
                **row,
                "created_us": now_us,
                "updated_us": now_us,
            }
        if latest:
            with self.db.write() as conn:
                conn.execute(self._upsert, list(latest.values()))
        return len(latest)

    def get(self, workspace_id: str, product_id: str) -> dict[str, Any] | None:
        """One product as a dict, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(products).where(
                    products.c.workspace_id == workspace_id, products.c.id == product_id
                )
            ).first()
        return row._asdict() if row is not None else None

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
