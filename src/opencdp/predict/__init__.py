"""Predicted customer lifetime value: BG/NBD (how often a customer buys, and when they stop)
and Gamma-Gamma (how much they spend per purchase), fitted by maximum likelihood.

Pure functions over numpy arrays; nothing here reads a database or the clock. See
``docs/clv.md`` for the models, the choice of a small SciPy likelihood over a library, and the
figures on the CDNOW cohort.

* :mod:`~opencdp.predict.summary`: from transactions to each customer's repeat purchases,
  recency, age and mean repeat spend (the models' inputs).
* :mod:`~opencdp.predict.bgnbd`: the BG/NBD likelihood, its fit, expected purchases and
  P(alive).
* :mod:`~opencdp.predict.gamma_gamma`: the Gamma-Gamma likelihood, its fit, expected spend.
* :mod:`~opencdp.predict.value`: the two combined into a 12-month value per customer.
"""

from __future__ import annotations

from opencdp.predict.bgnbd import BgNbd
from opencdp.predict.gamma_gamma import GammaGamma
from opencdp.predict.summary import UNITS, FitError, Summary

__all__ = ["UNITS", "BgNbd", "FitError", "GammaGamma", "Summary"]
