"""Implicit-feedback matrix factorisation: alternating least squares from the ``implicit``
library (Hu, Koren and Volinsky's confidence-weighted model), on the decayed, weighted
interaction matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import scipy.sparse as sp


@dataclass(frozen=True)
class Factors:
    users: np.ndarray  # users x factors, float32
    items: np.ndarray  # items x factors, float32


def fit(
    confidence: sp.csr_matrix,
    *,
    factors: int,
    iterations: int,
    regularization: float,
    alpha: float,
    seed: int,
) -> Factors:
    """Fit ALS on ``confidence`` (users x items)."""
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit runs its own threads; a multi-threaded BLAS under them only oversubscribes
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            iterations=iterations,
            regularization=regularization,
            alpha=alpha,
            random_state=seed,
            calculate_training_loss=False,
        )
        model.fit(confidence.tocsr().astype(np.float32), show_progress=False)
    return Factors(
        users=np.ascontiguousarray(model.user_factors, dtype=np.float32),
        items=np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )
