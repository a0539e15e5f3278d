"""``Product Updated`` events from a catalog source write the product catalog.

A source marked as a catalog source (``opencdp source add NAME --catalog``, or
``"catalog": true`` in ``POST /api/sources``) sends a track event ``Product Updated`` whose
properties are the product as ``PUT /api/products/{id}`` takes it (``product_id`` or ``id``
names it). A ``stock`` list of ``{"location", "quantity"}`` sets its stock levels too (history
channel ``event``, reference the message id; restocks told to the restock hooks). It is written
set-based in the batch's transaction, before loyalty and computed traits read the catalog.

The same event from any other source only lands on the timeline: a web page cannot rewrite the
catalog. A product that does not validate is skipped (logged with the field to fix); the event
stays on the timeline either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.catalog.inventory import Restock, StockLevel, location_name, quantity_of
from opencdp.catalog.products import CatalogError, Product, product_from
from opencdp.timeutil import to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.resolve.batch import BatchChanges
    from opencdp.storage.catalog import CatalogStore
    from opencdp.storage.db import Connection

log = logging.getLogger(__name__)

PRODUCT_UPDATED = "Product Updated"

#: told of the levels an event write restocked, in the batch's transaction
RestockHook = Callable[["Connection", str, Sequence[Restock]], int]


class CatalogListener:
    """The batch listener (see the module docstring)."""

    def __init__(self, store: CatalogStore, clock: Clock, restocked: RestockHook) -> None:
        self.store = store
        self.clock = clock
        self.restocked = restocked

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        if PRODUCT_UPDATED not in changes.events:
            return
        ws = changes.workspace_id
        found: list[tuple[str, str, Mapping[str, Any]]] = []
        for stored in changes.stored:
            if stored.source_id is None:
                continue
            payload = orjson.loads(stored.payload)
            if payload.get("type") != "track" or payload.get("event") != PRODUCT_UPDATED:
                continue
            props = payload.get("properties")
            found.append(
                (stored.source_id, stored.message_id, props if isinstance(props, dict) else {})
            )
        if not found:
            return
        catalogs = self.store.catalog_sources(conn, ws, {source for source, _m, _p in found})
        latest: dict[str, tuple[Product, str]] = {}
        levels: list[tuple[StockLevel, str]] = []
        for source_id, message_id, props in found:
            if source_id not in catalogs:
                continue
            try:
                product = product_from(_ids_as_text(props))
            except CatalogError as exc:
                log.warning("Product Updated %s skipped: %s", message_id, exc.message)
                continue
            latest[product.id] = (product, source_id)
            levels.extend((level, message_id) for level in _stock(product.id, props, message_id))
        if not latest:
            return
        now_us = to_us(self.clock.now())
        by_source: dict[str, list[Product]] = {}
        for product, source_id in latest.values():
            by_source.setdefault(source_id, []).append(product)
        for source_id, items in sorted(by_source.items()):
            self.store.upsert_products(conn, ws, items, now_us, source_id=source_id)
        restocks: list[Restock] = []
        # one write per event (its message id is the history's reference), in batch order
        for message_id in dict.fromkeys(m for _l, m in levels):
            mine = [level for level, m in levels if m == message_id]
            restocks.extend(
                self.store.inventory.set_levels(conn, ws, mine, "event", message_id, now_us)
            )
        if restocks:
            self.restocked(conn, ws, restocks)


def _ids_as_text(props: Mapping[str, Any]) -> dict[str, Any]:
    """Events from SDKs often send ids as numbers: as text, like the API takes them."""
    out = dict(props)
    for key in ("id", "product_id", "sku", "parent_id"):
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = str(value)
    return out


def _stock(product_id: str, props: Mapping[str, Any], message_id: str) -> list[StockLevel]:
    """The levels of a ``stock`` property (entries that do not validate are skipped)."""
    stock = props.get("stock")
    if not isinstance(stock, list):
        return []
    out: list[StockLevel] = []
    for i, entry in enumerate(stock):
        try:
            if not isinstance(entry, Mapping):
                raise CatalogError(f"stock[{i}]", "an object with location and quantity")
            out.append(
                StockLevel(
                    product_id,
                    location_name(entry.get("location"), f"stock[{i}].location", from_file=True),
                    quantity_of(entry.get("quantity"), f"stock[{i}].quantity", from_file=True),
                )
            )
        except CatalogError as exc:
            log.warning("Product Updated %s: %s skipped", message_id, exc.message)
    return out
