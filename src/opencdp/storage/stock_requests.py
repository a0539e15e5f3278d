"""Back-in-stock requests: who asked to be told about which product's stock where, and when it
was answered; plus the reads an answer needs (stock levels, the product's name and links)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_, update

from opencdp.storage.db import Connection, Database
from opencdp.storage.profiles import chunks
from opencdp.storage.rows import plain
from opencdp.storage.schema import inventory, products, stock_requests

WAITING = "waiting"
ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class StockRequest:
    id: str
    profile_id: str
    product_id: str
    location: str
    requested_us: int


class StockRequestStore:
    """Reads and writes of ``stock_requests`` in the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = db.dialect.insert_ignore(stock_requests)

    def add(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record requests (a request's id is its event's message id: a redo adds nothing)."""
        if rows:
            conn.execute(self._insert, [dict(r) for r in rows])

    def waiting_for(
        self, conn: Connection, workspace_id: str, pairs: Iterable[tuple[str, str]]
    ) -> list[StockRequest]:
        """The waiting requests for these (product, location) pairs, oldest first."""
        out: list[StockRequest] = []
        for part in chunks(sorted(set(pairs)), 500):
            rows = conn.execute(
                select(stock_requests)
                .where(
                    stock_requests.c.workspace_id == workspace_id,
                    stock_requests.c.status == WAITING,
                    stock_requests.c.product_id.in_(sorted({p for p, _l in part})),
                    tuple_(stock_requests.c.product_id, stock_requests.c.location).in_(list(part)),
                )
                .order_by(stock_requests.c.requested_us, stock_requests.c.id)
            )
            out.extend(_request(r) for r in rows)
        return out

    def claim(
        self,
        conn: Connection,
        workspace_id: str,
        request_ids: Sequence[str],
        answer_id: str,
        now_us: int,
    ) -> list[str]:
        """Mark the still waiting ones of ``request_ids`` answered by ``answer_id``; returns
        those it marked (a concurrent answer took the others: they get no second event)."""
        if not request_ids:
            return []
        rows = conn.execute(
            update(stock_requests)
            .where(
                stock_requests.c.workspace_id == workspace_id,
                stock_requests.c.id.in_(list(request_ids)),
                stock_requests.c.status == WAITING,
            )
            .values(status=ANSWERED, answered_us=now_us, answer_id=answer_id)
            .returning(stock_requests.c.id)
        )
        return sorted(rows.scalars())

    def reopen(self, conn: Connection, workspace_id: str, request_ids: Iterable[str]) -> int:
        """Put answered requests back to waiting: the product sold out again before the
        e-mail went, so the next restock answers them."""
        wanted = sorted(set(request_ids))
        if not wanted:
            return 0
        result = conn.execute(
            update(stock_requests)
            .where(
                stock_requests.c.workspace_id == workspace_id,
                stock_requests.c.id.in_(wanted),
                stock_requests.c.status == ANSWERED,
            )
            .values(status=WAITING, answered_us=None, answer_id=None)
        )
        return int(result.rowcount or 0)

    def waiting_in_stock(self, limit: int = 1000) -> dict[str, set[tuple[str, str]]]:
        """Workspace → the (product, location) pairs that have waiting requests and stock
        now: what a restock committed beside a new request left unanswered."""
        query = (
            select(
                stock_requests.c.workspace_id,
                stock_requests.c.product_id,
                stock_requests.c.location,
            )
            .join(
                inventory,
                (inventory.c.workspace_id == stock_requests.c.workspace_id)
                & (inventory.c.product_id == stock_requests.c.product_id)
                & (inventory.c.location == stock_requests.c.location),
            )
            .where(stock_requests.c.status == WAITING, inventory.c.quantity > 0)
            .distinct()
            .limit(limit)
        )
        out: dict[str, set[tuple[str, str]]] = {}
        with self.db.read() as conn:
            for ws, product, location in conn.execute(query):
                out.setdefault(ws, set()).add((product, location))
        return out

    def of_profile(self, workspace_id: str, profile_id: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(stock_requests)
                .where(
                    stock_requests.c.workspace_id == workspace_id,
                    stock_requests.c.profile_id == profile_id,
                )
                .order_by(stock_requests.c.requested_us)
            )
            return [plain(r) for r in rows]

    # -- what an answer reads -----------------------------------------------------------------
    def in_stock(
        self, conn: Connection, workspace_id: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(product, location) → quantity, for the pairs with stock above zero."""
        out: dict[tuple[str, str], int] = {}
        for part in chunks(sorted(set(pairs)), 500):
            rows = conn.execute(
                select(inventory.c.product_id, inventory.c.location, inventory.c.quantity).where(
                    inventory.c.workspace_id == workspace_id,
                    inventory.c.quantity > 0,
                    inventory.c.product_id.in_(sorted({p for p, _l in part})),
                    tuple_(inventory.c.product_id, inventory.c.location).in_(list(part)),
                )
            )
            out.update(((p, loc), int(q)) for p, loc, q in rows)
        return out

    def products_of(
        self, conn: Connection, workspace_id: str, product_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """Product id → what an e-mail shows: name, brand, price, currency, url, image_url."""
        out: dict[str, dict[str, Any]] = {}
        for part in chunks(sorted(set(product_ids))):
            rows = conn.execute(
                select(
                    products.c.id,
                    products.c.name,
                    products.c.brand,
                    products.c.price,
                    products.c.currency,
                    products.c.url,
                    products.c.image_url,
                ).where(products.c.workspace_id == workspace_id, products.c.id.in_(part))
            )
            out.update(
                (r.id, {str(k): v for k, v in r._mapping.items() if k != "id"}) for r in rows
            )
        return out


def _request(row: Any) -> StockRequest:
    return StockRequest(row.id, row.profile_id, row.product_id, row.location, int(row.requested_us))
