"""From orders to what the models read about each customer.

A *customer* is someone with at least one order on or before the calibration end. Orders are
counted per distinct day (two orders on one day are one purchase, their amounts added), and
time is continuous, measured in the chosen unit (``day`` or ``week`` = 7 days) between days:

* ``frequency`` (x): repeat purchases, the distinct order days after the first, up to the
  calibration end included;
* ``recency`` (t_x): from the first order day to the last one of the calibration period;
* ``age`` (T): from the first order day to the calibration end;
* ``spend`` (m_x): the mean amount of the repeat purchase days (NaN when there is none); the
  first purchase is left out, as in Fader and Hardie's Gamma-Gamma note.

Days are whole numbers (``date.toordinal()``, or days since 1970 — any origin, as long as the
calibration end uses the same one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Time units the models can be fitted in, in days.
UNITS: dict[str, int] = {"day": 1, "week": 7}


class FitError(ValueError):
    """The data cannot give a model: too few customers, no repeat purchases, a bad unit."""


@dataclass(frozen=True)
class Summary:
    """Each customer's repeat purchases, recency, age and mean repeat spend (arrays of one
    length), in ``unit``."""

    frequency: Floats
    recency: Floats
    age: Floats
    spend: Floats
    unit: str

    def __len__(self) -> int:
        return len(self.frequency)

    @property
    def repeaters(self) -> npt.NDArray[np.bool_]:
        """Customers with a repeat purchase and a known mean repeat spend (Gamma-Gamma's)."""
        return (self.frequency > 0) & np.isfinite(self.spend) & (self.spend > 0)


def unit_days(unit: str) -> int:
    """The length of ``unit`` in days; raises FitError for an unknown unit."""
    try:
        return UNITS[unit]
    except KeyError:
        raise FitError(f"unknown time unit {unit!r}: use {' or '.join(UNITS)}") from None


def from_day_counts(
    first_day: npt.ArrayLike,
    last_day: npt.ArrayLike,
    order_days: npt.ArrayLike,
    repeat_spend: npt.ArrayLike,
    repeat_spend_days: npt.ArrayLike,
    calibration_end: int,
    unit: str,
) -> Summary:
    """A summary from per-customer aggregates of the calibration period: the first and last
    order day, how many distinct order days, the total amount of the repeat days and how many
    of them had an amount (those are what a set-based SQL query returns)."""
    days = unit_days(unit)
    first = np.asarray(first_day, dtype=np.float64)
    last = np.asarray(last_day, dtype=np.float64)
    count = np.asarray(order_days, dtype=np.float64)
    total = np.asarray(repeat_spend, dtype=np.float64)
    with_amount = np.asarray(repeat_spend_days, dtype=np.float64)
    if np.any(first > calibration_end) or np.any(last < first) or np.any(count < 1):
        raise ValueError("every customer has an order day on or before the calibration end")
    with np.errstate(invalid="ignore", divide="ignore"):
        spend = np.where(with_amount > 0, total / np.where(with_amount > 0, with_amount, 1), np.nan)
    return Summary(
        frequency=count - 1,
        recency=(last - first) / days,
        age=(calibration_end - first) / days,
        spend=spend,
        unit=unit,
    )


@dataclass(frozen=True)
class Transactions:
    """Customers summarised from plain transactions, with their holdout purchases."""

    customers: list[str]
    summary: Summary
    holdout: Floats  # distinct order days after the calibration end, per customer
    holdout_length: float  # from the calibration end to the last order day, in the unit


def from_transactions(
    customers: Sequence[str],
    days: npt.ArrayLike,
    amounts: npt.ArrayLike,
    calibration_end: int,
    unit: str,
) -> Transactions:
    """Summarise transactions (customer, day, amount; NaN for an unknown amount) as of
    ``calibration_end``; customers whose first order comes later are left out. The holdout is
    every order day after the calibration end."""
    unit_length = unit_days(unit)
    day = np.asarray(days, dtype=np.int64)
    amount = np.asarray(amounts, dtype=np.float64)
    names, who = np.unique(np.asarray(customers, dtype=str), return_inverse=True)
    # one row per (customer, day): the day's amount is the sum of its known amounts
    pairs, at = np.unique(np.stack([who, day], axis=1), axis=0, return_inverse=True)
    at = at.reshape(-1)
    day_spend = np.bincount(at, weights=np.nan_to_num(amount), minlength=len(pairs))
    day_known = np.bincount(at, weights=np.isfinite(amount), minlength=len(pairs)) > 0
    cust, pday = pairs[:, 0], pairs[:, 1]
    n = len(names)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, cust, pday)
    calib = pday <= calibration_end
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, cust[calib], pday[calib])
    count = np.bincount(cust[calib], minlength=n)
    repeat = calib & (pday > first[cust]) & day_known
    total = np.bincount(cust[repeat], weights=day_spend[repeat], minlength=n)
    known = np.bincount(cust[repeat], minlength=n)
    holdout = np.bincount(cust[~calib], minlength=n).astype(np.float64)
    keep = first <= calibration_end
    summary = from_day_counts(
        first[keep], last[keep], count[keep], total[keep], known[keep], calibration_end, unit
    )
    end = int(pday.max()) if len(pday) else calibration_end
    return Transactions(
        customers=[str(c) for c in names[keep]],
        summary=summary,
        holdout=holdout[keep],
        holdout_length=max(end - calibration_end, 0) / unit_length,
    )
