"""Gamma-Gamma (Fader and Hardie's note on monetary value, after Colombo and Jiang 1999): a
customer's purchase amounts are Gamma(p, nu) with nu ~ Gamma(q, v) across customers, independent
of how often they buy. Written here from those definitions.

Per customer with x repeat purchases of mean amount m::

    f(m | p, q, v, x) = Γ(px+q) / (Γ(px) Γ(q)) · v^q · m^(px-1) · x^(px) / (v + x m)^(px+q)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from opencdp.predict.mle import fit_log_params
from opencdp.predict.summary import FitError, Floats

MIN_CUSTOMERS = 10


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters and the log-likelihood of the repeat customers' mean
    amounts."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int

    @property
    def mean_spend(self) -> float:
        """E[amount per purchase] of a customer nothing is known about: p·v/(q-1) (infinite
        when q ≤ 1)."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else float("inf")


def log_likelihood(params: npt.ArrayLike, x: npt.ArrayLike, m: npt.ArrayLike) -> Floats:
    """Each customer's log-density of their mean amount ``m`` at ``params`` = (p, q, v)."""
    p, q, v = (float(value) for value in np.asarray(params, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m),
        dtype=np.float64,
    )


def fit(x: npt.ArrayLike, m: npt.ArrayLike) -> GammaGamma:
    """Maximum-likelihood parameters from the customers with x > 0 and m > 0 (the others are
    ignored); raises FitError with fewer than MIN_CUSTOMERS of them."""
    all_x = np.asarray(x, dtype=np.float64)
    all_m = np.asarray(m, dtype=np.float64)
    keep = (all_x > 0) & np.isfinite(all_m) & (all_m > 0)
    xs, ms = all_x[keep], all_m[keep]
    if len(xs) < MIN_CUSTOMERS:
        raise FitError(
            f"{len(xs)} customers with repeat purchases and amounts: Gamma-Gamma needs at least "
            f"{MIN_CUSTOMERS}"
        )

    params, mean = fit_log_params(lambda p: float(np.mean(log_likelihood(p, xs, ms))), size=3)
    p, q, v = (float(value) for value in params)
    return GammaGamma(p, q, v, mean * len(xs), len(xs))


def expected_spend(model: GammaGamma, x: npt.ArrayLike, m: npt.ArrayLike) -> Floats:
    """E[amount per purchase | x, m]: a weighted mean of the population's mean and the
    customer's own, the weight px/(px+q-1) growing with x. Customers without a repeat purchase
    (x = 0, or m unknown) get the population's mean."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    known = (x > 0) & np.isfinite(m) & (m > 0)
    xs = np.where(known, x, 0.0)
    ms = np.where(known, m, 0.0)
    p, q, v = model.p, model.q, model.v
    weight = p * xs + q - 1
    # q <= 1: the population's mean is infinite, so a customer without a repeat purchase
    # has no finite expectation (NaN), never a negative one
    with np.errstate(divide="ignore", invalid="ignore"):
        spend = np.where(weight > 0, p * (v + xs * ms) / weight, np.nan)
    return np.asarray(spend, dtype=np.float64)
