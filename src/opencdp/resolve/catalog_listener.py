"""``Product Updated`` events from a catalog source write the product catalog.

A source marked as a catalog source (``opencdp source add NAME --catalog``, or
``"catalog": true`` in ``POST /api/sources``) sends a track event ``Product Updated`` whose
properties are the product as ``PUT /api/products/{id}`` takes it (``product_id`` or ``id``
names it). A ``stock`` list of ``{"location", "quantity"}`` sets its stock levels too (history
channel ``event``, reference the message id; restocks told to the restock hooks). It is written
set-based in the batch's transaction, before loyalty and computed traits read the catalog.

Event time decides, not arrival order: within a batch the latest event of a product wins, and
an event older than what the catalog holds (a product or a stock level written later, by an
event or the API) changes nothing — so a replayed feed cannot roll the catalog back, nor fake
a restock.

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
from opencdp.timeutil import parse_timestamp, to_us

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
        found: list[tuple[int, str, str, Mapping[str, Any]]] = []
        for stored in changes.stored:
            if stored.source_id is None:
                continue
            payload = orjson.loads(stored.payload)
            if payload.get("type") != "track" or payload.get("event") != PRODUCT_UPDATED:
                continue
            props = payload.get("properties")
            try:
                at_us = to_us(parse_timestamp(payload.get("timestamp")))
            except (TypeError, ValueError):
                at_us = to_us(self.clock.now())
            found.append(
                (
                    at_us,
                    stored.source_id,
                    stored.message_id,
                    props if isinstance(props, dict) else {},
                )
            )
        if not found:
            return
        # event time, not arrival order (invariant 3): the batch's events oldest first, and
        # none older than what the catalog holds already
        found.sort(key=lambda f: f[0])
        catalogs = self.store.catalog_sources(conn, ws, {source for _t, source, _m, _p in found})
        latest: dict[str, tuple[Product, str, int]] = {}
        levels: list[tuple[StockLevel, str, int]] = []
        for at_us, source_id, message_id, props in found:
            if source_id not in catalogs:
                continue
            try:
                product = product_from(_ids_as_text(props))
            except CatalogError as exc:
                log.warning("Product Updated %s skipped: %s", message_id, exc.message)
                continue
            latest[product.id] = (product, source_id, at_us)
            levels.extend(
                (level, message_id, at_us) for level in _stock(product.id, props, message_id)
            )
        if not latest:
            return
        written = self.store.updated_times(conn, ws, latest)
        by_source: dict[str, list[Product]] = {}
        times: dict[str, int] = {}
        for product, source_id, at_us in latest.values():
            if at_us < written.get(product.id, -1):
                continue  # a late or replayed event: the catalog holds newer data
            by_source.setdefault(source_id, []).append(product)
            times[product.id] = at_us
        for source_id, items in sorted(by_source.items()):
            self.store.upsert_products(conn, ws, items, 0, source_id=source_id, times=times)
        stocked = self.store.inventory.level_times(
            conn, ws, {(level.product_id, level.location) for level, _m, _t in levels}
        )
        restocks: list[Restock] = []
        # one write per event (its message id is the history's reference), oldest first,
        # stamped with the event's time; a level newer than the event is left alone
        for message_id in dict.fromkeys(m for _l, m, _t in levels):
            mine = [
                (level, at)
                for level, m, at in levels
                if m == message_id and at >= stocked.get((level.product_id, level.location), -1)
            ]
            if not mine:
                continue
            at_us = mine[0][1]
            restocks.extend(
                self.store.inventory.set_levels(
                    conn, ws, [level for level, _at in mine], "event", message_id, at_us
                )
            )
            for level, _at in mine:
                stocked[(level.product_id, level.location)] = at_us
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
