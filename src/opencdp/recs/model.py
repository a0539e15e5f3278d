"""A trained recommender: everything serving needs, in arrays (see :mod:`.artifact`).

Three models live in one artifact. Popularity (decayed, weighted interactions per product) is
the cold-start answer and the baseline. Item-to-item co-occurrence gives similar products, the
session of a visitor the model has not seen, and the reasons (``bought together with …``).
Alternating least squares factors, when the evaluation chose them, score known customers.
``kind`` says which one scores a known customer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from opencdp.recs.rules import Candidate

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import scipy.sparse as sp

KINDS = ("popularity", "cooccurrence", "als")


@dataclass
class TrainedModel:
    kind: str
    trained_us: int
    user_ids: np.ndarray  # sorted str ("U")
    item_ids: np.ndarray  # sorted str ("U")
    item_categories: np.ndarray  # str per item, "" for none
    popularity: np.ndarray  # float32 per item
    neighbours: sp.csr_matrix  # items x items, the closest neighbours of each
    history: sp.csr_matrix  # users x items, decayed weighted interactions
    purchases: sp.csr_matrix  # users x items, 1 where bought
    user_factors: np.ndarray | None = None
    item_factors: np.ndarray | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    _popular_order: np.ndarray | None = field(default=None, repr=False)
    _item_list: list[str] | None = field(default=None, repr=False)
    _category_list: list[str | None] | None = field(default=None, repr=False)

    def keeping_users(self, keep: np.ndarray) -> TrainedModel:
        """This model without the customers whose ``keep`` is False (an erasure): their rows
        of history, purchases and ALS factors go; what was learnt about products stays."""
        return replace(
            self,
            user_ids=self.user_ids[keep],
            history=self.history[keep],
            purchases=self.purchases[keep],
            user_factors=None if self.user_factors is None else self.user_factors[keep],
        )

    # -- lookups ----------------------------------------------------------------------------

    def user_index(self, profile_id: str) -> int | None:
        return _index(self.user_ids, profile_id)

    def item_index(self, product_id: str) -> int | None:
        return _index(self.item_ids, product_id)

    def history_of(self, profile_id: str) -> set[str]:
        """The products the profile had (bought, added or viewed) at training."""
        u = self.user_index(profile_id)
        return set() if u is None else set(self._row_items(self.history, u))

    def purchased(self, profile_id: str) -> set[str]:
        """The products the profile had bought at training."""
        u = self.user_index(profile_id)
        return set() if u is None else set(self._row_items(self.purchases, u))

    def _row_items(self, matrix: sp.csr_matrix, u: int) -> list[str]:
        start, end = matrix.indptr[u], matrix.indptr[u + 1]
        return [str(i) for i in self.item_ids[matrix.indices[start:end]]]

    def category_of(self, i: int) -> str | None:
        return self._lists()[1][i]

    # -- scoring ----------------------------------------------------------------------------

    def recommend(
        self,
        profile_id: str | None,
        recent_items: Sequence[str],
        n: int,
        category: str | None = None,
        nameable: Callable[[str], bool] | None = None,
    ) -> list[Candidate]:
        """At most ``n`` scored candidates, best first. A known profile is scored by the
        chosen model (its recent products join its history for co-occurrence); an unknown one
        by the products of its recent session; nothing known → popular products (in
        ``category`` when given). Popular products fill up a short list. Reasons name only
        products that ``nameable`` accepts (the catalog's, for a shop that has one)."""
        import numpy as np

        u = self.user_index(profile_id) if profile_id is not None else None
        recent = [i for i in (self.item_index(p) for p in recent_items) if i is not None]
        had, weights = self._own(u, recent)
        links = self._links(had)
        if u is not None and self.kind == "als" and self.user_factors is not None:
            assert self.item_factors is not None
            scores = np.asarray(self.item_factors @ self.user_factors[u], dtype=np.float32)
        elif (u is not None and self.kind != "popularity") or (u is None and recent):
            scores = self._cooccurrence_scores(had, weights, links)
        else:
            scores = np.zeros(len(self.item_ids), dtype=np.float32)
        mask = self._category_mask(category)
        picked = _top(scores, n, positive=True, mask=mask)
        candidates = self._explain(picked, scores, had, links, u, nameable)
        if len(candidates) < n:
            taken = {c.product_id for c in candidates}
            candidates.extend(c for c in self.popular(n, category) if c.product_id not in taken)
        return candidates[:n]

    def popular(self, n: int, category: str | None = None) -> list[Candidate]:
        """The ``n`` most popular products (in ``category`` and its sub-categories when given;
        overall when it has none)."""
        mask = self._category_mask(category)
        if self._popular_order is None:
            import numpy as np

            self._popular_order = np.argsort(-self.popularity, kind="stable")
        out: list[Candidate] = []
        for i in self._popular_order:
            if len(out) >= n:
                break
            if mask is not None and not mask[i]:
                continue
            cat = self.category_of(int(i))
            reason = f"popular in {cat}" if cat else "popular"
            out.append(Candidate(str(self.item_ids[i]), float(self.popularity[i]), reason, cat))
        if not out and category is not None:
            return self.popular(n)
        return out

    def similar(self, product_id: str, n: int) -> list[Candidate]:
        """Products like ``product_id``: co-occurrence neighbours, then (ALS) the nearest item
        factors, then popular products of its category. An unknown product: []."""
        import numpy as np

        j = self.item_index(product_id)
        if j is None:
            return []
        start, end = self.neighbours.indptr[j], self.neighbours.indptr[j + 1]
        cols = self.neighbours.indices[start:end]
        values = self.neighbours.data[start:end]
        order = np.argsort(-values, kind="stable")
        out = [
            Candidate(
                str(self.item_ids[cols[o]]),
                float(values[o]),
                f"bought together with {product_id}",
                self.category_of(int(cols[o])),
                product_id,
            )
            for o in order[:n]
        ]
        taken = {product_id, *(c.product_id for c in out)}
        if len(out) < n and self.item_factors is not None:
            vectors = self.item_factors
            norms = np.linalg.norm(vectors, axis=1) + 1e-9
            cosine = (vectors @ vectors[j]) / (norms * norms[j])
            for i in _top(cosine, n + len(taken), positive=True, mask=None):
                item = str(self.item_ids[i])
                if item not in taken and len(out) < n:
                    taken.add(item)
                    out.append(
                        Candidate(
                            item,
                            float(cosine[i]),
                            f"liked with {product_id}",
                            self.category_of(int(i)),
                            product_id,
                        )
                    )
        if len(out) < n:
            out.extend(
                c
                for c in self.popular(n + len(taken), self.category_of(j))
                if c.product_id not in taken
            )
        return out[:n]

    def top_for_all(self, n: int, chunk: int = 2048) -> Iterator[tuple[str, list[Candidate]]]:
        """Every modelled profile's ``n`` best raw candidates (no reasons), in batches."""
        import numpy as np

        users = len(self.user_ids)
        for start in range(0, users, chunk):
            rows = np.arange(start, min(start + chunk, users))
            scores = self.batch_scores(rows)
            k = min(n, scores.shape[1])
            if k == 0:
                for u in rows:
                    yield str(self.user_ids[u]), []
                continue
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for r, u in enumerate(rows):
                idx = top[r][np.argsort(-scores[r, top[r]], kind="stable")]
                yield (
                    str(self.user_ids[u]),
                    [
                        Candidate(
                            str(self.item_ids[i]), float(scores[r, i]), "", self.category_of(int(i))
                        )
                        for i in idx
                        if scores[r, i] > 0
                    ]
                    or self.popular(n),
                )

    def batch_scores(self, users: np.ndarray) -> np.ndarray:
        """``users`` (row indices) x items scores of the chosen model."""
        import numpy as np

        from opencdp.recs import cooccurrence

        if self.kind == "als" and self.user_factors is not None and self.item_factors is not None:
            return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)
        if self.kind == "cooccurrence":
            return cooccurrence.scores(self.history[users], self.neighbours)
        return np.tile(self.popularity, (len(users), 1))

    # -- internals --------------------------------------------------------------------------

    def _own(self, u: int | None, recent: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The products the customer had (its training history plus ``recent``, each recent
        one weighing 1) and their summed weights, by product index."""
        import numpy as np

        had: np.ndarray
        weights: np.ndarray
        if u is not None:
            start, end = self.history.indptr[u], self.history.indptr[u + 1]
            had = np.asarray(self.history.indices[start:end], dtype=np.int64)
            weights = np.asarray(self.history.data[start:end], dtype=np.float64)
        else:
            had = np.zeros(0, dtype=np.int64)
            weights = np.zeros(0, dtype=np.float64)
        if recent:
            had = np.concatenate([had, np.asarray(recent, dtype=np.int64)])
            weights = np.concatenate([weights, np.ones(len(recent))])
            had, inverse = np.unique(had, return_inverse=True)
            weights = np.bincount(inverse, weights=weights)
        return had, weights

    def _links(self, had: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The neighbours of the products ``had``: (from, to, similarity), one entry each."""
        import numpy as np

        indptr = self.neighbours.indptr
        if not len(had):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.float32)
        starts = np.asarray(indptr[had], dtype=np.int64)
        lengths = np.asarray(indptr[had + 1], dtype=np.int64) - starts
        total = int(lengths.sum())
        # the positions of every neighbour entry of every product had, without a Python loop
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        positions = np.arange(total, dtype=np.int64) + offsets
        return (
            np.repeat(np.arange(len(had)), lengths),
            np.asarray(self.neighbours.indices[positions], dtype=np.int64),
            np.asarray(self.neighbours.data[positions], dtype=np.float32),
        )

    def _cooccurrence_scores(
        self,
        had: np.ndarray,
        weights: np.ndarray,
        links: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Co-occurrence scores for one customer, as :func:`.cooccurrence.scores` computes
        them for many: the log weights times the similarities, plus the log weights."""
        import numpy as np

        source, target, similarity = links
        logged = np.log1p(weights)
        n_items = len(self.item_ids)
        scores = np.bincount(target, weights=logged[source] * similarity, minlength=n_items)
        scores[had] += logged
        return np.asarray(scores, dtype=np.float32)

    def _category_mask(self, category: str | None) -> np.ndarray | None:
        if not category:
            return None
        import numpy as np

        cats = self.item_categories.astype(str)
        mask = (
            (cats == category)
            | np.char.startswith(cats, category + "/")
            | np.char.startswith(cats, category + " > ")
        )
        return mask if mask.any() else None

    def _explain(
        self,
        picked: list[int],
        scores: np.ndarray,
        had: np.ndarray,
        links: tuple[np.ndarray, np.ndarray, np.ndarray],
        u: int | None,
        nameable: Callable[[str], bool] | None = None,
    ) -> list[Candidate]:
        """The ``picked`` items as candidates with why: the customer's product most similar
        to each (among those ``nameable`` accepts)."""
        import numpy as np

        items, categories = self._lists()
        source, target, similarity = links
        keep = np.isin(target, picked)
        if nameable is not None and len(had):  # a reason names a product the shopper knows
            allowed = np.array([nameable(items[h]) for h in had.tolist()], dtype=bool)
            keep &= allowed[source]
        best: dict[int, int] = {}  # picked item -> the product had that explains it
        if keep.any():
            src, dst, sim = source[keep], target[keep], similarity[keep]
            order = np.lexsort((-sim, dst))
            first = np.ones(len(order), dtype=bool)
            first[1:] = dst[order][1:] != dst[order][:-1]
            for j, h in zip(dst[order][first].tolist(), src[order][first].tolist(), strict=True):
                best[j] = int(had[h])
        bought: set[int] = (
            set(
                self.purchases.indices[
                    self.purchases.indptr[u] : self.purchases.indptr[u + 1]
                ].tolist()
            )
            if u is not None
            else set()
        )
        owned = set(had.tolist())
        out: list[Candidate] = []
        for i in picked:
            item, category, score = items[i], categories[i], float(scores[i])
            h = best.get(i)
            if h is not None:
                verb = "bought" if h in bought else "viewed"
                because = items[h]
                reason = f"{verb} together with {because}"
                out.append(Candidate(item, score, reason, category, because))
            elif i in owned:
                reason = "bought before" if i in bought else "viewed recently"
                out.append(Candidate(item, score, reason, category))
            elif self.kind == "als" and u is not None:
                out.append(Candidate(item, score, "liked by customers like you", category))
            else:
                reason = f"popular in {category}" if category else "popular"
                out.append(Candidate(item, score, reason, category))
        return out

    def _lists(self) -> tuple[list[str], list[str | None]]:
        """Product ids and categories as Python lists (memory-mapped arrays are slow to index
        one element at a time), made once."""
        if self._item_list is None:
            self._item_list = [str(i) for i in self.item_ids.tolist()]
            self._category_list = [str(c) or None for c in self.item_categories.tolist()]
        assert self._category_list is not None
        return self._item_list, self._category_list


def _index(ids: np.ndarray, key: str) -> int | None:
    import numpy as np

    if not len(ids):
        return None
    at = int(np.searchsorted(ids, key))
    if at < len(ids) and ids[at] == key:
        return at
    return None


def _top(scores: np.ndarray, n: int, *, positive: bool, mask: np.ndarray | None) -> list[int]:
    """Indices of the ``n`` highest ``scores`` (best first), only positive ones when asked,
    only where ``mask`` holds."""
    import numpy as np

    values = scores if mask is None else np.where(mask, scores, -np.inf)
    if n <= 0 or not len(values):
        return []
    k = min(n, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    ordered = part[np.lexsort((part, -values[part]))]
    keep = values[ordered] > 0 if positive else np.isfinite(values[ordered])
    ordered = ordered[keep]
    return [int(i) for i in ordered]
