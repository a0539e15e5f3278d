"""Maximum likelihood over log-parameters, shared by the two models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opencdp.predict.summary import FitError, Floats

#: What the objective returns where the likelihood is not finite (keeps the optimiser away).
_WALL = 1e300


def fit_log_params(
    mean_log_likelihood: Callable[[Floats], float], size: int
) -> tuple[Floats, float]:
    """The parameters (all positive) that maximise ``mean_log_likelihood``, searched over their
    logarithms from 1, …, 1, and the maximum. Nelder-Mead gets close from any start, then
    BFGS polishes (the likelihoods are smooth in the log-parameters). Raises FitError when no
    finite maximum is found."""

    def objective(log_params: Floats) -> float:
        value = -mean_log_likelihood(np.exp(log_params))
        return value if np.isfinite(value) else _WALL

    from scipy.optimize import minimize  # only a fit needs it: kept off every start-up

    start = minimize(objective, np.zeros(size), method="Nelder-Mead", options={"maxiter": 4000})
    found = minimize(objective, start.x, method="BFGS", options={"gtol": 1e-8})
    best = found if found.fun <= start.fun else start
    if not np.all(np.isfinite(best.x)) or best.fun >= _WALL:
        raise FitError(f"the optimiser found no maximum of the likelihood: {found.message}")
    return np.exp(best.x), -float(best.fun)
