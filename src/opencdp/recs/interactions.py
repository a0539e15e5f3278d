"""What the models learn from: who interacted with which product, how, when and how often.

Columnar (numpy arrays of one length), one row per (user, item, kind, time) with a count, as
storage reads it already grouped by day. :func:`matrix` turns it into the users x items matrix of
confidence weights: each row weighs its kind (a purchase above a cart add above a view) times its
count, decayed by its age with a half-life.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import scipy.sparse as sp

PURCHASE, CART, VIEW = 0, 1, 2
#: The events each kind is read from.
KIND_OF_EVENT = {"Order Completed": PURCHASE, "Product Added": CART, "Product Viewed": VIEW}
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Weights:
    """How much each kind of interaction counts, and how fast old ones fade."""

    purchase: float = 4.0
    cart: float = 2.0
    view: float = 1.0
    #: An interaction this many days old counts half; 0 turns the decay off.
    half_life_days: float = 90.0

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> Weights:
        """From ``{"purchase", "cart", "view", "half_life_days"}`` (each optional); a
        ValueError names the field that is wrong."""
        if document is None:
            return cls()
        if not isinstance(document, Mapping):
            raise ValueError("weights: expected an object")
        unknown = sorted(set(document) - {"purchase", "cart", "view", "half_life_days"})
        if unknown:
            raise ValueError(f"weights.{unknown[0]}: unknown field")
        values: dict[str, float] = {}
        for key, value in document.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"weights.{key}: expected a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or value > 1e6:
                raise ValueError(f"weights.{key}: expected a number from 0 to 1000000")
            values[key] = float(value)
        weights = cls(**values)
        if weights.purchase == weights.cart == weights.view == 0:
            raise ValueError("weights: at least one kind must count")
        return weights

    def to_document(self) -> dict[str, float]:
        return {
            "purchase": self.purchase,
            "cart": self.cart,
            "view": self.view,
            "half_life_days": self.half_life_days,
        }

    def by_kind(self) -> tuple[float, float, float]:
        return (self.purchase, self.cart, self.view)


@dataclass(frozen=True)
class Interactions:
    """One row per (user, item, kind, time): ``counts`` interactions of that kind then."""

    users: np.ndarray  # str ids (object)
    items: np.ndarray  # str ids (object)
    kinds: np.ndarray  # int8: PURCHASE, CART, VIEW
    times_us: np.ndarray  # int64
    counts: np.ndarray  # float32

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, int, int, float]]) -> Interactions:
        """From ``(user, item, kind, time_us, count)`` tuples (as storage returns them)."""
        import numpy as np

        listed = list(rows)
        if not listed:
            return cls.empty()
        users, items, kinds, times, counts = zip(*listed, strict=True)
        return cls(
            users=np.array(users, dtype=object),
            items=np.array(items, dtype=object),
            kinds=np.array(kinds, dtype=np.int8),
            times_us=np.array(times, dtype=np.int64),
            counts=np.array(counts, dtype=np.float32),
        )

    @classmethod
    def empty(cls) -> Interactions:
        import numpy as np

        return cls(
            users=np.array([], dtype=object),
            items=np.array([], dtype=object),
            kinds=np.array([], dtype=np.int8),
            times_us=np.array([], dtype=np.int64),
            counts=np.array([], dtype=np.float32),
        )

    def __len__(self) -> int:
        return len(self.users)

    def select(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` (booleans, or row indices) holds."""
        return Interactions(
            users=self.users[mask],
            items=self.items[mask],
            kinds=self.kinds[mask],
            times_us=self.times_us[mask],
            counts=self.counts[mask],
        )


@dataclass(frozen=True)
class Encoded:
    """Interactions as matrices: ``confidence`` (users x items, weighted and decayed) and
    ``purchased`` (users x items, 1 where the user bought the item)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    confidence: sp.csr_matrix
    purchased: sp.csr_matrix


def encode(
    interactions: Interactions,
    weights: Weights,
    now_us: int,
    *,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> Encoded:
    """The matrices of ``interactions`` as of ``now_us``: ids sorted, or the given id arrays
    (then rows of other users or items are dropped — a holdout's test rows against the
    training's ids)."""
    import numpy as np
    import scipy.sparse as sp

    rows, user_ids = _codes(interactions.users, user_ids)
    cols, item_ids = _codes(interactions.items, item_ids)
    keep = (rows >= 0) & (cols >= 0)
    rows, cols = rows[keep], cols[keep]
    kinds = interactions.kinds[keep]
    counts = interactions.counts[keep].astype(np.float64)
    by_kind = np.array(weights.by_kind(), dtype=np.float64)
    value = by_kind[kinds] * counts
    if weights.half_life_days > 0 and len(value):
        age_days = np.maximum(now_us - interactions.times_us[keep], 0) / DAY_US
        value = value * np.power(0.5, age_days / weights.half_life_days)
    shape = (len(user_ids), len(item_ids))
    confidence = sp.csr_matrix(
        (value.astype(np.float32), (rows, cols)), shape=shape, dtype=np.float32
    )
    confidence.sum_duplicates()
    confidence.eliminate_zeros()
    bought = kinds == PURCHASE
    purchased = sp.csr_matrix(
        (np.ones(int(bought.sum()), dtype=np.float32), (rows[bought], cols[bought])),
        shape=shape,
        dtype=np.float32,
    )
    purchased.sum_duplicates()
    purchased.data[:] = 1.0
    return Encoded(user_ids, item_ids, confidence, purchased)


def _codes(values: np.ndarray, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each value's index in ``ids`` (-1 where absent) and ``ids``: the sorted distinct values
    when not given (fixed-width strings: sorting them is far faster than Python objects)."""
    import numpy as np

    text = values.astype(str) if len(values) else np.array([], dtype=str)
    if ids is None:
        if not len(text):
            return np.array([], dtype=np.int64), text
        unique, inverse = np.unique(text, return_inverse=True)
        return inverse.astype(np.int64), unique
    return _positions(np.asarray(ids, dtype=str), text), ids


def _positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's index in ``sorted_ids`` (sorted, unique), -1 where it is absent."""
    import numpy as np

    if not len(sorted_ids) or not len(values):
        return np.full(len(values), -1, dtype=np.int64)
    at = np.searchsorted(sorted_ids, values)
    at = np.minimum(at, len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == values, at, -1).astype(np.int64)
