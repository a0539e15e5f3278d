"""Back in stock: a shopper asks to be told (``Back In Stock Requested`` with ``product_id``,
from any SDK), and when that product's stock in the shopper's channel goes from 0 to above 0,
a ``Back In Stock`` event lands on the shopper's timeline — once per request — which the
``back-in-stock`` journey preset turns into one e-mail with the product's name, image and link.

* The request's channel is its ``location`` property, else ``store_id``, else ``web`` (the
  web warehouse): the stock that must come back is that location's.
* A request for a product in stock there is answered at once (in the batch that stores it).
* Inventory writes call :meth:`BackInStock.restocked` in their own transaction with the levels
  that went from 0 to above 0; the waiting requests are answered then.
* Several waiting requests of one shopper for one product and location get one answer.
* The e-mail's promise is checked again when it is sent (:class:`StockPromise`): a product that
  sold out again in between is not announced; its requests wait for the next restock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.catalog.inventory import Restock
from opencdp.retail.derived import DerivedEvents, addressed
from opencdp.storage.profiles import addresses
from opencdp.storage.stock_requests import WAITING, StockRequestStore
from opencdp.timeutil import isoformat_us, parse_timestamp, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.resolve.batch import BatchChanges
    from opencdp.storage.db import Connection, Database

REQUESTED = "Back In Stock Requested"
BACK_IN_STOCK = "Back In Stock"
#: the location of the web warehouse, the default channel's stock
WEB = "web"
#: how often the timer answers waiting requests whose stock is there
SWEEP_EVERY_SECONDS = 60.0


def location_of(properties: Mapping[str, Any]) -> str:
    """The stock a request waits for: ``location``, else ``store_id``, else the web's."""
    for key in ("location", "store_id"):
        value = properties.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:100]
    return WEB


def product_of(properties: Mapping[str, Any]) -> str | None:
    for key in ("product_id", "sku"):
        value = properties.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:200]
    return None


class BackInStock:
    """The batch listener and restock hook (see the module docstring)."""

    def __init__(self, store: StockRequestStore, events: DerivedEvents, clock: Clock) -> None:
        self.store = store
        self.db = store.db
        self.events = events
        self.clock = clock
        self._swept = -1e18

    # -- requests, in the worker's batch ------------------------------------------------------
    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        if REQUESTED not in changes.events:
            return
        ws = changes.workspace_id
        rows: list[dict[str, Any]] = []
        for stored in changes.stored:
            payload = orjson.loads(stored.payload)
            if payload.get("type") != "track" or payload.get("event") != REQUESTED:
                continue
            props = payload.get("properties") if isinstance(payload.get("properties"), dict) else {}
            product = product_of(props)
            if product is None:
                continue  # nothing to wait for (a tracking plan can require product_id)
            try:
                at_us = to_us(parse_timestamp(payload.get("timestamp")))
            except (TypeError, ValueError):
                at_us = to_us(self.clock.now())
            rows.append(
                {
                    "workspace_id": ws,
                    "id": stored.message_id,
                    "profile_id": stored.profile_id,
                    "product_id": product,
                    "location": location_of(props),
                    "status": WAITING,
                    "requested_us": at_us,
                    "answered_us": None,
                    "answer_id": None,
                }
            )
        if rows:
            self.store.add(conn, rows)
            self.answer(conn, ws, {(r["product_id"], r["location"]) for r in rows})

    # -- restocks, in the inventory write's transaction ---------------------------------------
    def restocked(self, conn: Connection, workspace_id: str, restocks: Sequence[Restock]) -> int:
        pairs = {(r.product_id, r.location) for r in restocks if r.after > 0}
        return self.answer(conn, workspace_id, pairs) if pairs else 0

    def answer(self, conn: Connection, workspace_id: str, pairs: Iterable[tuple[str, str]]) -> int:
        """Answer the waiting requests of these (product, location) pairs that are in stock
        now: one ``Back In Stock`` event per shopper, product and location. Returns how many
        events were written."""
        waiting = self.store.waiting_for(conn, workspace_id, pairs)
        if not waiting:
            return 0
        stock = self.store.in_stock(
            conn, workspace_id, {(w.product_id, w.location) for w in waiting}
        )
        groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for w in waiting:
            if (w.product_id, w.location) in stock:
                groups[(w.profile_id, w.product_id, w.location)].append(w.id)
        if not groups:
            return 0
        catalog = self.store.products_of(conn, workspace_id, {k[1] for k in groups})
        found = addresses(conn, workspace_id, {k[0] for k in groups})
        now_us = to_us(self.clock.now())
        messages: list[dict[str, Any]] = []
        for (profile_id, product_id, location), request_ids in sorted(groups.items()):
            address = found.get(profile_id)
            if address is None:  # a profile without identifiers (erased): nobody to tell
                continue
            message_id = f"back-in-stock-{uuid.uuid4()}"
            claimed = self.store.claim(conn, workspace_id, request_ids, message_id, now_us)
            if not claimed:
                continue  # answered by a concurrent restock: one answer per request
            product = {k: v for k, v in catalog.get(product_id, {}).items() if v is not None}
            properties = {
                "product_id": product_id,
                "location": location,
                "quantity": stock[(product_id, location)],
                **product,
                "request_ids": claimed,
            }
            messages.append(
                addressed(
                    address,
                    {
                        "type": "track",
                        "event": BACK_IN_STOCK,
                        "messageId": message_id,
                        "properties": properties,
                        "timestamp": isoformat_us(now_us),
                    },
                )
            )
        self.events.append(conn, workspace_id, messages, channel="back-in-stock", actor="worker")
        return len(messages)

    def sweep(self) -> int:
        """Answer the waiting requests whose stock is there (the worker's timer, every
        :data:`SWEEP_EVERY_SECONDS`): a request stored while a restock was being committed
        beside it saw no stock, and the restock did not see the request."""
        now = self.clock.monotonic()
        if now - self._swept < SWEEP_EVERY_SECONDS:
            return 0
        self._swept = now
        answered = 0
        for ws, pairs in self.store.waiting_in_stock().items():
            with self.db.write() as conn:
                answered += self.answer(conn, ws, pairs)
        return answered


class StockPromise:
    """The dispatcher's check at send time: a delivery that announces a product back in stock
    (its journey's context holds a ``Back In Stock`` event) is not sent when the product has
    sold out there again; the shopper's requests go back to waiting."""

    def __init__(self, db: Database, store: StockRequestStore) -> None:
        self.db = db
        self.store = store

    def broken(
        self, workspace_id: str, deliveries: Sequence[tuple[int, str | None, str]]
    ) -> dict[int, str]:
        """Of ``(seq, profile id, payload)``, the deliveries whose promise no longer holds,
        with the reason."""
        promised: dict[int, tuple[str, str, list[str]]] = {}
        for seq, _profile_id, payload in deliveries:
            if BACK_IN_STOCK not in payload:
                continue  # cheap: most deliveries are not about stock
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            properties = message.get("properties")
            context = properties.get("journey_context") if isinstance(properties, dict) else None
            event = context.get(BACK_IN_STOCK) if isinstance(context, dict) else None
            if not isinstance(event, dict):
                continue
            product = product_of(event)
            requests = event.get("request_ids")
            if product is not None:
                ids = [str(r) for r in requests] if isinstance(requests, list) else []
                promised[seq] = (product, location_of(event), ids)
        if not promised:
            return {}
        with self.db.write() as conn:
            stock = self.store.in_stock(
                conn, workspace_id, {(p, loc) for p, loc, _ids in promised.values()}
            )
            gone = {seq: key for seq, key in promised.items() if (key[0], key[1]) not in stock}
            # the requests this e-mail answered wait again (not older, already mailed ones)
            self.store.reopen(conn, workspace_id, [r for _p, _l, ids in gone.values() for r in ids])
        return {seq: f"out of stock again: {p} at {loc}" for seq, (p, loc, _ids) in gone.items()}
