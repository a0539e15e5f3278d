"""The two models combined: each customer's expected purchases, P(alive) and value over a
horizon, and the holdout check of a fit.

The value is expected purchases times expected amount per purchase, **undiscounted**: over a
12-month horizon a yearly discount rate d changes it by less than d/2 (under 5 % at 10 % a
year), less than the models' own error on a customer, and an undiscounted figure is what a
marketer can check against next year's orders. Gamma-Gamma assumes amounts do not depend on
how often a customer buys; :func:`spend_frequency_correlation` says how far the data agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opencdp.predict import bgnbd, gamma_gamma
from opencdp.predict.bgnbd import BgNbd
from opencdp.predict.gamma_gamma import GammaGamma
from opencdp.predict.summary import Floats, Summary, unit_days

#: 12 months, in days.
YEAR_DAYS = 365.0


@dataclass(frozen=True)
class Predictions:
    """Per customer, in the order of the summary."""

    orders: Floats  # expected purchases over the horizon
    p_alive: Floats
    spend: Floats  # expected amount per purchase
    value: Floats  # orders * spend


def horizon(days: float, unit: str) -> float:
    """``days`` in the model's time unit."""
    return days / unit_days(unit)


def predict(bg: BgNbd, gg: GammaGamma, summary: Summary, days: float = YEAR_DAYS) -> Predictions:
    """Each customer's expected purchases and value over the next ``days``, and P(alive)."""
    x, t_x, T = summary.frequency, summary.recency, summary.age
    orders = bgnbd.expected_purchases(bg, horizon(days, summary.unit), x, t_x, T)
    spend = gamma_gamma.expected_spend(gg, x, summary.spend)
    return Predictions(orders, bgnbd.p_alive(bg, x, t_x, T), spend, orders * spend)


@dataclass(frozen=True)
class Holdout:
    """Predicted against actual repeat purchases after the calibration end."""

    length: float  # in the model's unit
    predicted: float
    actual: float

    @property
    def error(self) -> float:
        """(predicted - actual) / actual; 0 when both are 0."""
        if self.actual == 0:
            return 0.0 if self.predicted == 0 else float("inf")
        return (self.predicted - self.actual) / self.actual


def holdout_check(bg: BgNbd, summary: Summary, actual: Floats, length: float) -> Holdout:
    """The sum over customers of E[purchases in ``length`` | calibration history] against the
    purchases they made."""
    predicted = bgnbd.expected_purchases(
        bg, length, summary.frequency, summary.recency, summary.age
    )
    return Holdout(length, float(np.sum(predicted)), float(np.sum(actual)))


def spend_frequency_correlation(summary: Summary) -> float | None:
    """Pearson's correlation between repeat purchases and mean amount among repeat customers
    (near 0 is what Gamma-Gamma assumes); None with fewer than 3 of them."""
    keep = summary.repeaters
    if keep.sum() < 3:
        return None
    x, m = summary.frequency[keep], summary.spend[keep]
    if np.std(x) == 0 or np.std(m) == 0:
        return None
    return float(np.corrcoef(x, m)[0, 1])
