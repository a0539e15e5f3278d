"""The catalog as the serving rules see it: which products exist, their category, and whether
they are in stock at a location — a snapshot of the workspace's products and stock levels,
kept per process for a few seconds (``OPENCDP_RECS_CATALOG_TTL``) and read again in the
background when older (requests keep the previous snapshot meanwhile)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opencdp.clock import Clock
from opencdp.storage.recs import RecsStore
from opencdp.ttl_cache import RefreshingCache


class CatalogSnapshot:
    """A :class:`~opencdp.recs.rules.CatalogView` over one read of the catalog. A workspace
    without products knows every product; a product without a stock level at a location
    counts as in stock there (the shop did not say otherwise)."""

    def __init__(
        self, products: Sequence[dict[str, Any]], stock: Sequence[tuple[str, str, int]]
    ) -> None:
        self.products = {str(p["id"]): p for p in products}
        self._levels = {(pid, location): quantity for pid, location, quantity in stock}

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


class CatalogCache:
    def __init__(self, store: RecsStore, clock: Clock, ttl: float) -> None:
        self.store = store
        self._cache: RefreshingCache[str, CatalogSnapshot] = RefreshingCache(clock, ttl)

    def get(self, workspace_id: str) -> CatalogSnapshot:
        return self._cache.get(
            workspace_id, lambda: CatalogSnapshot(*self.store.catalog_snapshot(workspace_id))
        )

    def forget(self, workspace_id: str) -> None:
        self._cache.forget(workspace_id)
