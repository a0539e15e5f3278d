"""Training: evaluate the models on a holdout, keep the best, refit it on everything.

The choice is per workspace and per training, by NDCG@10 on the holdout (see
:mod:`.evaluation`); popularity wins when nothing beats it (a young shop). Popularity and
co-occurrence are fitted in every artifact whatever the choice: the first is the cold-start
answer, the second gives similar products, sessions and reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opencdp.recs.interactions import Encoded, Interactions, Weights, encode
from opencdp.recs.model import KINDS, TrainedModel

#: Below this many training rows or customers the holdout says nothing: co-occurrence is kept.
MIN_ROWS = 20
MIN_USERS = 5


@dataclass(frozen=True)
class TrainConfig:
    weights: Weights = field(default_factory=Weights)
    factors: int = 64
    iterations: int = 15
    regularization: float = 1.0
    #: How much more an interaction's weight counts than an unobserved pair's (ALS's alpha).
    alpha: float = 5.0
    neighbours: int = 50
    holdout: str = "last-basket"
    models: tuple[str, ...] = ("cooccurrence", "als")
    repeat: bool = True
    seed: int = 7

    def to_document(self) -> dict[str, Any]:
        return {
            "weights": self.weights.to_document(),
            "factors": self.factors,
            "iterations": self.iterations,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "neighbours": self.neighbours,
            "holdout": self.holdout,
            "models": list(self.models),
            "repeat": self.repeat,
        }


def train(
    interactions: Interactions,
    item_categories: Mapping[str, str],
    now_us: int,
    config: TrainConfig | None = None,
) -> TrainedModel:
    """The artifact for ``interactions`` as of ``now_us``, its kind chosen by evaluation."""
    from opencdp.recs.evaluation import evaluate

    config = config or TrainConfig()
    unknown = [kind for kind in config.models if kind not in KINDS]
    if unknown:
        raise ValueError(f"models: unknown model {unknown[0]!r} (models: {', '.join(KINDS)})")
    report = evaluate(interactions, item_categories, now_us, config, repeat=config.repeat)
    if report.chosen and report.users >= MIN_USERS and report.interactions >= MIN_ROWS:
        kind = report.chosen
    else:
        kind = "cooccurrence" if len(interactions) else "popularity"
    encoded = encode(interactions, config.weights, now_us)
    model = fit_models(encoded, item_categories, now_us, config, kind)
    model.evaluation = report.to_document()
    return model


def fit_models(
    encoded: Encoded,
    item_categories: Mapping[str, str],
    now_us: int,
    config: TrainConfig,
    kind: str,
    *,
    complete: bool = True,
) -> TrainedModel:
    """Popularity and co-occurrence, plus ALS factors when ``kind`` is ``als``; not
    ``complete``: only what scoring by ``kind`` needs (an evaluation's)."""
    import numpy as np
    import scipy.sparse as sp

    from opencdp.recs import cooccurrence, factorization

    confidence = encoded.confidence
    popularity = np.asarray(confidence.sum(axis=0)).ravel().astype(np.float32)
    if complete or kind == "cooccurrence":
        neighbours = cooccurrence.similarities(confidence, config.neighbours)
    else:
        neighbours = sp.csr_matrix((len(encoded.item_ids),) * 2, dtype=np.float32)
    user_factors = item_factors = None
    if kind == "als" and confidence.nnz:
        factors = factorization.fit(
            confidence,
            factors=config.factors,
            iterations=config.iterations,
            regularization=config.regularization,
            alpha=config.alpha,
            seed=config.seed,
        )
        user_factors, item_factors = factors.users, factors.items
    categories = np.array(
        [item_categories.get(str(item)) or "" for item in encoded.item_ids], dtype=str
    )
    return TrainedModel(
        kind=kind,
        trained_us=now_us,
        user_ids=np.asarray(encoded.user_ids, dtype=str),
        item_ids=np.asarray(encoded.item_ids, dtype=str),
        item_categories=categories,
        popularity=popularity,
        neighbours=neighbours,
        history=confidence,
        purchases=encoded.purchased,
        user_factors=user_factors,
        item_factors=item_factors,
        params=config.to_document(),
    )
