"""The catalog as the serving rules see it: which products exist, their category, and whether
they are in stock at a location — a snapshot of the workspace's products and stock levels,
kept per process for a few seconds (``OPENCDP_RECS_CATALOG_TTL``) and brought up to date in
the background when older (requests keep reading it meanwhile).

Bringing it up to date reads only the rows stamped since its previous read began, less a
minute (so that a transaction that stamped its rows earlier but committed later, or a clock a
little behind on another machine, is not missed), and the whole catalog every five minutes:
rereading it all every ten seconds held the serving process's interpreter long enough to put
6 ms into the p99 of the recommendation reads (``docs/benchmarks.md``). Products are never
deleted, so changes are all there is to apply. Products and stock written from events carry
the event's time: an event that arrives more than a minute after it happened (a device that
was offline, an SDK's queue, a replay) reaches the snapshot at the next whole read, within
five minutes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opencdp.clock import Clock
from opencdp.storage.recs import RecsStore
from opencdp.timeutil import to_us
from opencdp.ttl_cache import RefreshingCache


class CatalogSnapshot:
    """A :class:`~opencdp.recs.rules.CatalogView` over one read of the catalog. A workspace
    without products knows every product; a product without a stock level at a location
    counts as in stock there (the shop did not say otherwise)."""

    def __init__(
        self,
        products: Sequence[dict[str, Any]],
        stock: Sequence[tuple[str, str, int]],
        read_us: int = 0,
        read_at: float = 0.0,
    ) -> None:
        self.products = {str(p["id"]): p for p in products}
        self._levels = {(pid, location): quantity for pid, location, quantity in stock}
        #: when the last read of the database began (the clock's time, microseconds)
        self.read_us = read_us
        #: when the whole catalog was read (the clock's monotonic seconds)
        self.read_at = read_at

    def apply(
        self, products: Sequence[dict[str, Any]], stock: Sequence[tuple[str, str, int]]
    ) -> None:
        """Take in products and stock levels written since (each replaces its key: a
        lookup in the meantime sees the old row or the new one)."""
        self.products.update((str(p["id"]), p) for p in products)
        self._levels.update(((pid, location), quantity) for pid, location, quantity in stock)

    def known(self, product_id: str) -> bool:
        return not self.products or product_id in self.products

    def in_stock(self, product_id: str, location: str) -> bool:
        return self._levels.get((product_id, location), 1) > 0

    def category(self, product_id: str) -> str | None:
        product = self.products.get(product_id)
        return None if product is None else product.get("category")

    def name(self, product_id: str) -> str | None:
        product = self.products.get(product_id)
        return None if product is None else product.get("name")

    def details(self, product_id: str) -> dict[str, Any]:
        """The product's name, category, brand, price, currency, URL and image (None each
        when the catalog does not have it)."""
        product = self.products.get(product_id, {})
        return {
            key: product.get(key)
            for key in ("name", "category", "brand", "price", "currency", "url", "image_url")
        }


#: rows stamped this long before the previous read began are read again
LOOKBACK_US = 60_000_000
#: the whole catalog is read again this often (seconds)
FULL_READ_EVERY = 300.0


class CatalogCache:
    def __init__(self, store: RecsStore, clock: Clock, ttl: float) -> None:
        self.store = store
        self.clock = clock
        self._cache: RefreshingCache[str, CatalogSnapshot] = RefreshingCache(clock, ttl)

    def get(self, workspace_id: str) -> CatalogSnapshot:
        return self._cache.get(workspace_id, lambda: self._load(workspace_id))

    def _load(self, workspace_id: str) -> CatalogSnapshot:
        """The snapshot the cache holds, brought up to date; a whole read when it holds none
        or read it whole long enough ago. (The cache runs one reload of a workspace at a
        time, and a forget() drops the snapshot, so no two loads update one snapshot.)"""
        now = self.clock.monotonic()
        started_us = to_us(self.clock.now())
        old = self._cache.peek(workspace_id)
        if old is None or now - old.read_at >= FULL_READ_EVERY:
            return CatalogSnapshot(
                *self.store.catalog_snapshot(workspace_id), read_us=started_us, read_at=now
            )
        since = max(0, old.read_us - LOOKBACK_US)
        old.apply(*self.store.catalog_snapshot(workspace_id, since_us=since))
        old.read_us = started_us
        return old

    def forget(self, workspace_id: str) -> None:
        """Read the workspace's whole catalog at its next use."""
        self._cache.forget(workspace_id)
