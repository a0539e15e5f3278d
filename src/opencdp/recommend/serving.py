"""Answering a recommendation: the active model's candidates for a profile (or a product),
filtered by the workspace's rules against the live catalog, filled up from popular products
when the rules took too many away.

A profile's own recent product events (its last 50 in 30 days, one indexed read) count twice:
its purchases since the training are excluded as bought, and a visitor the model never saw is
recommended what goes with the products of its session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from opencdp.recommend.catalog_view import CatalogCache, CatalogSnapshot
from opencdp.recommend.models import Loaded, ModelCache
from opencdp.recs.interactions import DAY_US, PURCHASE
from opencdp.recs.rules import Candidate, Rules, apply
from opencdp.storage.definitions import DefinitionStore
from opencdp.storage.recs import RecsReads, RecsStore
from opencdp.ttl_cache import RefreshingCache

#: How far back a profile's own events count for its session and its recent purchases.
RECENT_US = 30 * DAY_US
RECENT_EVENTS = 50
#: Candidates asked of the model per wanted product: room for the rules to remove some.
POOL = 5
DEFAULT_LOCATION = "web"


@dataclass(frozen=True)
class Served:
    loaded: Loaded
    items: list[Candidate]
    catalog: CatalogSnapshot


class Recommender:
    def __init__(
        self,
        store: RecsStore,
        reads: RecsReads,
        models: ModelCache,
        catalogs: CatalogCache,
        rules_ttl: RefreshingCache[str, Rules],
        definitions: DefinitionStore,
    ) -> None:
        self.store = store
        self.reads = reads
        self.models = models
        self.catalogs = catalogs
        self._rules = rules_ttl
        self.definitions = definitions

    def rules(self, workspace_id: str) -> Rules:
        def load() -> Rules:
            document = self.store.settings(workspace_id) or {}
            try:
                return Rules.from_document(document.get("rules"))
            except ValueError:  # pragma: no cover - settings are validated when written
                return Rules()

        return self._rules.get(workspace_id, load)

    def forget(self, workspace_id: str) -> None:
        self.models.forget(workspace_id)
        self.catalogs.forget(workspace_id)
        self._rules.forget(workspace_id)

    def for_profile(
        self,
        workspace_id: str,
        profile_id: str,
        *,
        limit: int,
        now_us: int,
        location: str | None = None,
        category: str | None = None,
    ) -> Served | None:
        """The profile's top ``limit`` products; None when the workspace has no model."""
        loaded = self.models.get(workspace_id)
        if loaded is None:
            return None
        model = loaded.model
        recent = self.reads.recent_products(
            workspace_id, profile_id, now_us - RECENT_US, RECENT_EVENTS
        )
        bought = model.purchased(profile_id) | {p for p, kind in recent if kind == PURCHASE}
        recent_items = list(dict.fromkeys(p for p, _ in recent))
        catalog = self.catalogs.get(workspace_id)
        nameable = catalog.known if catalog.products else None
        candidates = model.recommend(profile_id, recent_items, limit * POOL, category, nameable)
        return self._serve(loaded, workspace_id, candidates, limit, bought, location, category)

    def similar(
        self, workspace_id: str, product_id: str, *, limit: int, location: str | None = None
    ) -> Served | None:
        """Products like ``product_id``; None when the workspace has no model."""
        loaded = self.models.get(workspace_id)
        if loaded is None:
            return None
        candidates = loaded.model.similar(product_id, limit * POOL)
        if not candidates:  # a product the model never saw: popular in its category
            category = self.catalogs.get(workspace_id).category(product_id)
            candidates = loaded.model.popular(limit * POOL, category)
        candidates = [c for c in candidates if c.product_id != product_id]
        return self._serve(loaded, workspace_id, candidates, limit, {product_id}, location, None)

    def _serve(
        self,
        loaded: Loaded,
        workspace_id: str,
        candidates: Sequence[Candidate],
        limit: int,
        bought: set[str],
        location: str | None,
        category: str | None,
    ) -> Served:
        catalog = self.catalogs.get(workspace_id)
        rules = self.rules(workspace_id)
        where = location or DEFAULT_LOCATION
        chosen = apply(
            candidates, limit=limit, bought=bought, catalog=catalog, location=where, rules=rules
        )
        if len(chosen) < limit:  # the rules took many away: popular products fill up
            taken = {c.product_id for c in chosen}
            more = [
                c
                for c in loaded.model.popular(limit * POOL * 2, category)
                if c.product_id not in taken
            ]
            chosen += apply(
                more,
                limit=limit - len(chosen),
                bought=bought | taken,
                catalog=catalog,
                location=where,
                rules=replace(rules, pinned=()),
            )
        return Served(loaded, [_named(c, catalog) for c in chosen], catalog)

    def trait_values(
        self, workspace_id: str, profile_ids: Sequence[str]
    ) -> dict[str, list[str] | None]:
        """``recommended_items`` for each of ``profile_ids``: the ids of its top products
        (as many as the rules' ``trait_items``), at the web location; None without a model."""
        loaded = self.models.get(workspace_id)
        if loaded is None:
            return dict.fromkeys(profile_ids)
        model = loaded.model
        catalog = self.catalogs.get(workspace_id)
        rules = self.rules(workspace_id)
        n = rules.trait_items
        wanted = set(profile_ids)

        def pick(candidates: Sequence[Candidate], bought: set[str]) -> list[str]:
            chosen = apply(
                candidates,
                limit=n,
                bought=bought,
                catalog=catalog,
                location=DEFAULT_LOCATION,
                rules=rules,
            )
            return [c.product_id for c in chosen]

        popular = model.popular(n * POOL * 2)
        out: dict[str, list[str] | None] = {}
        for profile_id, candidates in model.top_for_all(n * POOL):
            if profile_id in wanted:
                bought = model.purchased(profile_id)
                items = pick(candidates, bought)
                if len(items) < n:
                    extra = pick([c for c in popular if c.product_id not in items], bought)
                    items += extra[: n - len(items)]
                out[profile_id] = items
        default = pick(popular, set())
        for profile_id in profile_ids:
            out.setdefault(profile_id, default)
        return out

    def __call__(
        self,
        conn: Any,
        workspace_id: str,
        arguments: tuple[Any, ...],
        only: Sequence[str] | None,
        now_us: int,
    ) -> dict[str, Any]:
        """The compute engine's provider of ``recommended_items()`` (see
        :data:`~opencdp.compute.engine.Provider`)."""
        ids = (
            list(only)
            if only is not None
            else self.definitions.live_profile_ids(workspace_id, "users")
        )
        if self.models.get(workspace_id) is None:
            raise ValueError(
                f"no recommendation model in workspace {workspace_id!r}: run `opencdp recs "
                "train` (or POST /api/recs/train)"
            )
        return dict(self.trait_values(workspace_id, ids))


def _named(candidate: Candidate, catalog: CatalogSnapshot) -> Candidate:
    """The reason with the product's name instead of its id, when the catalog has it."""
    if candidate.because is None:
        return candidate
    name = catalog.name(candidate.because)
    if not name:
        return candidate
    return replace(candidate, reason=candidate.reason.replace(candidate.because, name))
