"""Top-N ranking metrics of a recommendation list against what the customer did next."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence


def precision(ranked: Sequence[str | int], truth: Collection[str | int], k: int) -> float:
    """Share of the first ``k`` recommendations that were right (out of ``k``)."""
    return sum(1 for item in ranked[:k] if item in truth) / k


def recall(ranked: Sequence[str | int], truth: Collection[str | int], k: int) -> float:
    """Share of what the customer did next found among the first ``k``."""
    if not truth:
        return 0.0
    return sum(1 for item in ranked[:k] if item in truth) / len(truth)


def average_precision(ranked: Sequence[str | int], truth: Collection[str | int], k: int) -> float:
    """AP@k: the precision at each hit, averaged over min(|truth|, k)."""
    if not truth:
        return 0.0
    hits = 0
    total = 0.0
    for i, item in enumerate(ranked[:k]):
        if item in truth:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(truth), k)


def ndcg(ranked: Sequence[str | int], truth: Collection[str | int], k: int) -> float:
    """NDCG@k with binary relevance: hits discounted by log2 of their rank, over the best
    possible list's."""
    if not truth:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in truth)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(truth), k)))
    return dcg / ideal


def coverage(lists: Iterable[Sequence[str | int]], catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in anyone's first ``k``."""
    if catalog_size <= 0:
        return 0.0
    shown: set[str | int] = set()
    for ranked in lists:
        shown.update(ranked[:k])
    return len(shown) / catalog_size
