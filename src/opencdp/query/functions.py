"""OpenCDP's functions for computed traits: what Segment's language cannot say (pure).

A function is the whole definition of a computed trait, applied to values (or conditions) of
the language: ``days_since(trait('last_order_at'))``, ``quintile(trait('lifetime_value'),
trait('order_count') >= 1)``. Two families:

* **per profile** (``days_since``, ``divide``, ``rfm_segment``): each profile's value follows
  from its own arguments, so real time keeps it current like any other definition;
* **over the population** (``quintile``, ``clv``): a profile's value depends on every other
  profile of the workspace (its rank, a model fitted on everyone), so it is computed in batch,
  on the schedule and on demand, never in real time.

The engine evaluates the arguments set-based (SQL) and applies the function here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from opencdp.query.values import number_of, parse_timestamp, plain_number

#: The outputs of ``clv('…')``: the predicted traits of the fitted BG/NBD + Gamma-Gamma model.
CLV_OUTPUTS: Final = ("predicted_clv_12m", "p_alive", "predicted_orders_12m")


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What the parser checks of a function and what the engine needs to know."""

    name: str
    #: the arguments it takes, each ``value``, ``condition``, ``number`` (a constant other than
    #: zero) or ``output`` (a quoted name from :data:`CLV_OUTPUTS`); the optional ones last
    arguments: tuple[str, ...]
    required: int
    #: whether a profile's value depends on the others (batch only)
    population: bool = False
    #: whether time alone changes its value
    time_dependent: bool = False
    usage: str = ""


FUNCTIONS: Final[dict[str, FunctionSpec]] = {
    spec.name: spec
    for spec in (
        FunctionSpec(
            "days_since",
            ("value",),
            1,
            time_dependent=True,
            usage="days_since(trait('last_order_at'))",
        ),
        FunctionSpec(
            "divide",
            ("value", "number"),
            2,
            usage="divide(event('Signed In').within(28 days).count(), 4)",
        ),
        FunctionSpec(
            "quintile",
            ("value", "condition"),
            1,
            population=True,
            usage="quintile(trait('lifetime_value'), trait('order_count') >= 1)",
        ),
        FunctionSpec(
            "rfm_segment",
            ("value", "value"),
            2,
            usage="rfm_segment(trait('rfm_recency'), trait('rfm_frequency'))",
        ),
        FunctionSpec("clv", ("output",), 1, population=True, usage="clv('predicted_clv_12m')"),
        # the product ids the workspace's active recommendation model picks for the profile
        FunctionSpec("recommended_items", (), 0, population=True, usage="recommended_items()"),
    )
}


def apply(name: str, arguments: list[Any], now: datetime) -> Any:
    """The value of per-profile function ``name`` for one profile's argument values."""
    return _PER_PROFILE[name](arguments, now)


def _days_since(arguments: list[Any], now: datetime) -> int | None:
    stamp = parse_timestamp(arguments[0])
    if stamp is None:
        return None
    return math.floor((now - stamp).total_seconds() / 86_400)


def _divide(arguments: list[Any], now: datetime) -> int | float | None:
    value, divisor = number_of(arguments[0]), number_of(arguments[1])
    if value is None or divisor is None or divisor == 0:
        return None
    return plain_number(value / divisor)


#: RFM segments from the recency and frequency scores (1-5), first match wins; every one of
#: the 25 cells has a segment (see docs/compute.md).
RFM_SEGMENTS: Final[tuple[tuple[str, Callable[[int, int], bool]], ...]] = (
    ("Champions", lambda r, f: r >= 4 and f >= 4),
    ("Loyal", lambda r, f: r >= 3 and f >= 3),
    ("New customers", lambda r, f: r == 5 and f == 1),
    ("Promising", lambda r, f: r >= 4),
    ("Need attention", lambda r, f: r == 3),
    ("Can't lose them", lambda r, f: r == 1 and f >= 4),
    ("At risk", lambda r, f: f >= 3),
    ("Hibernating", lambda r, f: r == 2),
    ("Lost", lambda r, f: True),
)


def rfm_segment(recency: Any, frequency: Any) -> str | None:
    """The segment of a recency and a frequency score (None unless both are 1-5)."""
    r, f = _score(recency), _score(frequency)
    if r is None or f is None:
        return None
    return next(name for name, test in RFM_SEGMENTS if test(r, f))


def _score(value: Any) -> int | None:
    n = number_of(value)
    if n is None or n != n.to_integral_value() or not 1 <= n <= 5:
        return None
    return int(n)


_PER_PROFILE: Final[dict[str, Callable[[list[Any], datetime], Any]]] = {
    "days_since": _days_since,
    "divide": _divide,
    "rfm_segment": lambda arguments, now: rfm_segment(arguments[0], arguments[1]),
}


def quintiles(values: Mapping[str, Any]) -> dict[str, int]:
    """Profile → quintile score 1-5 of its value among all ``values`` (nulls not ranked).

    5 is the top fifth. Equal values score the same: a value's score is one more than the
    fifths below it, ``1 + floor(5 * (values strictly lower) / count)``. Numbers (and numeric
    strings) rank as numbers, timestamps as times, anything else as text; numbers rank below
    timestamps below text when a trait mixes them.
    """
    keyed = {pid: key for pid, v in values.items() if (key := rank_key(v)) is not None}
    if not keyed:
        return {}
    ordered = sorted(keyed.values())
    count = len(ordered)
    scores: dict[Any, int] = {}
    below = 0
    for i, key in enumerate(ordered):
        if i and key != ordered[i - 1]:
            below = i
        if key not in scores:
            scores[key] = 1 + (5 * below) // count
    return {pid: scores[key] for pid, key in keyed.items()}


def rank_key(value: Any) -> tuple[int, Any] | None:
    """How :func:`quintiles` orders a value (None: not ranked)."""
    if value is None or isinstance(value, bool | list | dict):
        return None
    n = number_of(value)
    if n is not None:
        return (0, n)
    stamp = parse_timestamp(value)
    if stamp is not None:
        return (1, stamp)
    return (2, str(value))
