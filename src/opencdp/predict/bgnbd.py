"""BG/NBD (Fader, Hardie and Lee, 2005): while alive, a customer buys as a Poisson process of
rate λ, λ ~ Gamma(r, alpha) across customers; after each purchase they drop out for good with
probability p, p ~ Beta(a, b) across customers. Written here from those definitions.

Per customer with x repeat purchases, the last at t_x, observed for T::

    L = B(a, b+x)/B(a, b) · Γ(r+x) alpha^r / (Γ(r) (alpha+T)^(r+x))
      + [x > 0] B(a+1, b+x-1)/B(a, b) · Γ(r+x) alpha^r / (Γ(r) (alpha+t_x)^(r+x))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, gammaln, hyp2f1

from opencdp.predict.mle import fit_log_params
from opencdp.predict.summary import FitError, Floats

#: At least this many customers, and some repeat purchases, before a fit is attempted.
MIN_CUSTOMERS = 10


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time in the unit of the data) and the log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int


def log_likelihood(
    params: npt.ArrayLike, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> Floats:
    """Each customer's log-likelihood at ``params`` = (r, alpha, a, b)."""
    r, alpha, a, b = (float(v) for v in np.asarray(params, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    still = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    # B(a+1, b+x-1) is only defined (and only needed) for x > 0
    dropped = np.full_like(x, -np.inf)
    dropped[repeat] = betaln(a + 1, b + x[repeat] - 1) - (r + x[repeat]) * np.log(
        alpha + t_x[repeat]
    )
    return np.asarray(common + np.logaddexp(still, dropped), dtype=np.float64)


def fit(x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> BgNbd:
    """Maximum-likelihood parameters (over their logarithms, from 1, 1, 1, 1); raises FitError
    when there are too few customers or no repeat purchase, or the optimiser fails."""
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if len(x) < MIN_CUSTOMERS:
        raise FitError(f"{len(x)} customers: BG/NBD needs at least {MIN_CUSTOMERS}")
    if not np.any(x > 0):
        raise FitError("no customer bought twice: BG/NBD needs repeat purchases")
    if np.any((x < 0) | (t_x < 0) | (t_x > T) | ((x == 0) & (t_x != 0))):
        raise FitError("each customer needs 0 ≤ recency ≤ age, and recency 0 without repeats")

    params, mean = fit_log_params(lambda p: float(np.mean(log_likelihood(p, x, t_x, T))), size=4)
    r, alpha, a, b = (float(v) for v in params)
    return BgNbd(r, alpha, a, b, mean * len(x), len(x))


def expected_purchases(
    model: BgNbd, t: float, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike
) -> Floats:
    """E[purchases in the next ``t`` | x, t_x, T] for each customer."""
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if t <= 0:
        return np.zeros_like(x)
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    return np.asarray(head * tail / _alive_odds(model, x, t_x, T), dtype=np.float64)


def expected_purchases_new(model: BgNbd, t: float) -> float:
    """E[purchases in ``t``] of a customer just acquired (their first purchase at 0)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    return float(
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    )


def p_alive(model: BgNbd, x: npt.ArrayLike, t_x: npt.ArrayLike, T: npt.ArrayLike) -> Floats:
    """P(still alive at T | x, t_x, T): 1 for customers who never bought again (the model
    lets a customer drop out only right after a purchase)."""
    x = np.asarray(x, dtype=np.float64)
    t_x = np.asarray(t_x, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    return np.asarray(1 / _alive_odds(model, x, t_x, T), dtype=np.float64)


def _alive_odds(model: BgNbd, x: Floats, t_x: Floats, T: Floats) -> Floats:
    """1 + [x > 0] · a/(b+x-1) · ((alpha+T)/(alpha+t_x))^(r+x) — 1/P(alive)."""
    odds = np.ones_like(x)
    repeat = x > 0
    xr = x[repeat]
    odds[repeat] += (
        model.a
        / (model.b + xr - 1)
        * ((model.alpha + T[repeat]) / (model.alpha + t_x[repeat])) ** (model.r + xr)
    )
    return odds
