"""Offline evaluation: hold out what customers did last, train on the rest, and measure how
well each model's top ten foresaw it — against the popularity baseline.

Holdouts (:func:`split`): ``last-basket`` (each customer's last purchase day, or last
interaction when nobody bought: next-basket prediction), ``days:N`` (everything in the last N
days) and ``last:N`` (each customer's last N interactions). The truth is what was bought in the
holdout when the data has purchases, else every holdout interaction. With ``repeat`` a product
the customer had before may be recommended again (groceries); without, it is masked
(films one has rated).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencdp.recs import metrics
from opencdp.recs.interactions import DAY_US, PURCHASE, Interactions, encode

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from opencdp.recs.training import TrainConfig

METRICS = ("precision@10", "recall@10", "map@10", "ndcg@10", "coverage")
K = 10
#: At most this many customers are scored (a fixed sample beyond): enough for stable figures.
MAX_USERS = 5_000


@dataclass(frozen=True)
class Report:
    holdout: str
    users: int  # customers evaluated
    interactions: int  # training rows
    models: dict[str, dict[str, float]]  # model → metric → value
    chosen: str
    seconds: dict[str, float] = field(default_factory=dict)  # fit seconds per model
    baseline: str = "popularity"
    repeat: bool = True
    items: int = 0

    @property
    def lift(self) -> float | None:
        """The chosen model's NDCG@10 over the baseline's, relative (0.2 = 20 % better)."""
        base = self.models.get(self.baseline, {}).get("ndcg@10", 0.0)
        best = self.models.get(self.chosen, {}).get("ndcg@10", 0.0)
        return None if base <= 0 else best / base - 1.0

    def to_document(self) -> dict[str, Any]:
        return {
            "holdout": self.holdout,
            "users": self.users,
            "interactions": self.interactions,
            "items": self.items,
            "repeat": self.repeat,
            "models": self.models,
            "chosen": self.chosen,
            "baseline": self.baseline,
            "lift": None if self.lift is None else round(self.lift, 4),
            "seconds": self.seconds,
        }


def parse_holdout(spec: str | int | None) -> tuple[str, int]:
    """``last-basket`` | ``days:N`` | ``last:N`` (an int N means ``days:N``) → (mode, N);
    ValueError saying what is accepted."""
    if spec is None or spec == "last-basket":
        return ("last-basket", 0)
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = f"days:{spec}"
    if isinstance(spec, str) and ":" in spec:
        mode, _, number = spec.partition(":")
        if mode in ("days", "last") and number.isdigit() and 1 <= int(number) <= 3650:
            return (mode, int(number))
    raise ValueError(
        f"holdout: expected last-basket, days:N or last:N (N from 1 to 3650), got {spec!r}"
    )


def split(
    interactions: Interactions, holdout: str | int | None
) -> tuple[Interactions, Interactions]:
    """(training rows, held-out rows)."""
    import numpy as np

    mode, n = parse_holdout(holdout)
    if not len(interactions):
        return interactions, interactions
    times = interactions.times_us
    if mode == "days":
        cut = int(times.max()) - n * DAY_US
        test = times > cut
    elif mode == "last":
        order = np.lexsort((-times, interactions.users))
        users_sorted = interactions.users[order]
        starts = np.r_[0, np.flatnonzero(users_sorted[1:] != users_sorted[:-1]) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        rank = np.arange(len(order)) - group_start
        test = np.zeros(len(times), dtype=bool)
        test[order[rank < n]] = True
    else:
        bought = interactions.kinds == PURCHASE
        basis = bought if bought.any() else np.ones(len(times), dtype=bool)
        users, inverse = np.unique(interactions.users, return_inverse=True)
        last = np.full(len(users), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, inverse[basis], times[basis])
        # the last basket: that day's purchases; other kinds of that moment and later are
        # held out too (they happened after what training may know)
        test = times >= last[inverse]
        test &= last[inverse] > np.iinfo(np.int64).min
    return interactions.select(~test), interactions.select(test)


def evaluate(
    interactions: Interactions,
    item_categories: Mapping[str, str],
    now_us: int,
    config: TrainConfig,
    *,
    repeat: bool = True,
) -> Report:
    """Each model of ``config.models`` (and popularity) trained on the training part and
    scored on the holdout."""
    import numpy as np

    from opencdp.recs.training import fit_models

    train, test = split(interactions, config.holdout)
    mode, n = parse_holdout(config.holdout)
    label = mode if mode == "last-basket" else f"{mode}:{n}"
    if not len(train) or not len(test):
        return Report(label, 0, len(train), {}, chosen="", repeat=repeat)
    cut_us = int(train.times_us.max()) + 1
    encoded = encode(train, config.weights, cut_us)
    held = encode(
        test, config.weights, cut_us, user_ids=encoded.user_ids, item_ids=encoded.item_ids
    )
    truth_matrix = held.purchased if held.purchased.nnz else held.confidence
    users = np.flatnonzero(np.diff(truth_matrix.indptr) > 0)
    if len(users) > MAX_USERS:
        users = np.sort(np.random.default_rng(config.seed).choice(users, MAX_USERS, replace=False))
    if not len(users):
        return Report(label, 0, len(train), {}, chosen="", repeat=repeat)
    truths = [
        set(truth_matrix.indices[truth_matrix.indptr[u] : truth_matrix.indptr[u + 1]].tolist())
        for u in users
    ]
    kinds = tuple(dict.fromkeys(("popularity", *config.models)))
    models: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for kind in kinds:
        started = time.perf_counter()
        model = fit_models(encoded, item_categories, cut_us, config, kind, complete=False)
        seconds[kind] = round(time.perf_counter() - started, 3)
        lists = _top_lists(model, users, repeat, encoded.confidence)
        models[kind] = _measure(lists, truths, len(encoded.item_ids))
    chosen = max(kinds, key=lambda k: (models[k]["ndcg@10"], -kinds.index(k)))
    return Report(
        label,
        len(users),
        len(train),
        models,
        chosen=chosen,
        seconds=seconds,
        repeat=repeat,
        items=len(encoded.item_ids),
    )


def _top_lists(
    model: Any, users: np.ndarray, repeat: bool, seen: Any, chunk: int = 1024
) -> list[list[int]]:
    import numpy as np

    out: list[list[int]] = []
    for start in range(0, len(users), chunk):
        rows = users[start : start + chunk]
        scores = model.batch_scores(rows)
        if not repeat:
            part = seen[rows]
            r, c = part.nonzero()
            scores[r, c] = -np.inf
        k = min(K, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for r in range(len(rows)):
            idx = top[r][np.lexsort((top[r], -scores[r, top[r]]))]
            out.append([int(i) for i in idx if np.isfinite(scores[r, i])])
    return out


def _measure(lists: list[list[int]], truths: list[set[int]], n_items: int) -> dict[str, float]:
    count = len(lists)
    values = {
        "precision@10": sum(metrics.precision(r, t, K) for r, t in zip(lists, truths, strict=True))
        / count,
        "recall@10": sum(metrics.recall(r, t, K) for r, t in zip(lists, truths, strict=True))
        / count,
        "map@10": sum(
            metrics.average_precision(r, t, K) for r, t in zip(lists, truths, strict=True)
        )
        / count,
        "ndcg@10": sum(metrics.ndcg(r, t, K) for r, t in zip(lists, truths, strict=True)) / count,
        "coverage": metrics.coverage(lists, n_items, K),
    }
    return {key: round(value, 5) for key, value in values.items()}
