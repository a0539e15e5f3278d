"""Predicted customer lifetime value, the use cases the API and the CLI share: fit the
workspace's BG/NBD and Gamma-Gamma model on its ``Order Completed`` history, show it, and
score every customer profile with it.

* **fit** (:func:`fit`): orders up to the calibration end (a date, included) make the summary
  the models read (:mod:`opencdp.predict.summary`); the parameters, the customers used and a
  holdout check (predicted against actual repeat purchases after the calibration end, when
  there are orders after it) are stored for the workspace and returned.
* **score** (:func:`score`): the computed traits ``predicted_clv_12m``, ``p_alive`` and
  ``predicted_orders_12m`` are definitions of the builtin ``clv('<output>')`` (created when
  missing); the compute engine computes them, every other ``clv()`` definition and what reads
  them, through the CLV provider (:mod:`opencdp.compute.clv`: the stored model applied to each
  customer's orders as of today), and stores the values that changed, so that they show on
  the profile and in ``GET /api/computed-traits``.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np

from opencdp.errors import NotFound, RequestError
from opencdp.predict import bgnbd, gamma_gamma, value
from opencdp.predict.summary import UNITS, FitError, Summary, from_day_counts
from opencdp.query import ast
from opencdp.runtime import Runtime
from opencdp.storage.clv import ClvStore, OrderHistory
from opencdp.storage.definitions import FAILED, DefinitionStore
from opencdp.timeutil import EPOCH, isoformat_us

#: The computed traits ``score`` writes, with their names.
TRAITS: dict[str, str] = {
    "predicted_clv_12m": "Predicted CLV, next 12 months",
    "p_alive": "Probability the customer is still active",
    "predicted_orders_12m": "Predicted orders, next 12 months",
}
_EPOCH_DAY = EPOCH.date()


def store(runtime: Runtime) -> ClvStore:
    return ClvStore(runtime.db)


def parse_date(text: Any, what: str = "calibration_end") -> date:
    """An ISO date (``1997-09-30``); RequestError ``invalid_date`` otherwise."""
    if isinstance(text, str) and len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise RequestError(f"{what} is a date like 1997-09-30, not {text!r}", code="invalid_date")


def check_unit(unit: Any) -> str:
    """``day`` or ``week``; RequestError ``invalid_time_unit`` otherwise."""
    if not isinstance(unit, str) or unit not in UNITS:
        raise RequestError(
            f"time_unit is {' or '.join(repr(u) for u in UNITS)}, not {unit!r}",
            code="invalid_time_unit",
        )
    return str(unit)


def _day(d: date) -> int:
    return (d - _EPOCH_DAY).days


def _today(runtime: Runtime) -> date:
    return runtime.clock.now().date()


def _summary(history: OrderHistory, calibration_end: int, unit: str) -> Summary:
    return from_day_counts(
        history.first_day,
        history.last_day,
        history.order_days,
        history.repeat_spend,
        history.repeat_spend_days,
        calibration_end,
        unit,
    )


# -- fit ------------------------------------------------------------------------------------------


def fit_request(runtime: Runtime, workspace_id: str, body: Any) -> dict[str, Any]:
    """:func:`fit` from an API body ``{"calibration_end": "1997-09-30", "time_unit": "week"}``
    (both optional: today, weeks)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise RequestError("send a JSON object", code="invalid_request")
    unknown = sorted(set(body) - {"calibration_end", "time_unit"})
    if unknown:
        raise RequestError(
            f"unknown keys {unknown}: the body has calibration_end and time_unit",
            code="invalid_request",
        )
    end = body.get("calibration_end")
    return fit(
        runtime,
        workspace_id,
        None if end is None else parse_date(end),
        check_unit(body.get("time_unit", "week")),
    )


def fit(
    runtime: Runtime, workspace_id: str, calibration_end: date | None, time_unit: str = "week"
) -> dict[str, Any]:
    """Fit both models on the orders up to ``calibration_end`` (included; None: today), store
    and return the model. RequestError ``no_orders`` when no profile has an order by then,
    ``cannot_fit`` when the data cannot give a model (too few customers, no repeat purchase)."""
    unit = check_unit(time_unit)
    end = calibration_end or _today(runtime)
    end_day = _day(end)
    history = store(runtime).order_history(workspace_id, end_day)
    if not history.profile_ids:
        raise RequestError(
            f"no profile of workspace {workspace_id!r} has an Order Completed event on or "
            f"before {end.isoformat()}: nothing to fit",
            code="no_orders",
        )
    summary = _summary(history, end_day, unit)
    try:
        bg = bgnbd.fit(summary.frequency, summary.recency, summary.age)
        gg = gamma_gamma.fit(summary.frequency, summary.spend)
    except FitError as exc:
        raise RequestError(f"cannot fit the CLV model: {exc}", code="cannot_fit") from None
    model: dict[str, Any] = {
        "calibration_end": end.isoformat(),
        "time_unit": unit,
        "customers": len(summary),
        "repeat_customers": int(np.sum(summary.frequency > 0)),
        "repeat_purchases": int(np.sum(summary.frequency)),
        "bgnbd": {
            "r": bg.r,
            "alpha": bg.alpha,
            "a": bg.a,
            "b": bg.b,
            "log_likelihood": bg.log_likelihood,
        },
        "gamma_gamma": {
            "p": gg.p,
            "q": gg.q,
            "v": gg.v,
            "log_likelihood": gg.log_likelihood,
            "customers": gg.customers,
            "mean_spend": gg.mean_spend if math.isfinite(gg.mean_spend) else None,
        },
        "spend_frequency_correlation": value.spend_frequency_correlation(summary),
        "holdout": _holdout(history, summary, bg, end, unit),
    }
    now = runtime.now_us()
    store(runtime).save_model(workspace_id, unit, end.isoformat(), model, now)
    return {**model, "fitted_at": isoformat_us(now)}


def _holdout(
    history: OrderHistory, summary: Summary, bg: bgnbd.BgNbd, end: date, unit: str
) -> dict[str, Any] | None:
    """Predicted against actual repeat purchases from the day after the calibration end to the
    workspace's last order day; None when no order comes after the calibration end."""
    last = history.last_order_day
    if last is None or last <= _day(end):
        return None
    length = (last - _day(end)) / UNITS[unit]
    actual = np.asarray(history.holdout_days, dtype=np.float64)
    check = value.holdout_check(bg, summary, actual, length)
    return {
        "from": date.fromordinal(end.toordinal() + 1).isoformat(),
        "to": date.fromordinal(_EPOCH_DAY.toordinal() + last).isoformat(),
        "length": length,
        "predicted": check.predicted,
        "actual": int(check.actual),
        "error": check.error,
    }


# -- the model ------------------------------------------------------------------------------------


def model(runtime: Runtime, workspace_id: str) -> dict[str, Any]:
    """The workspace's fitted model; NotFound when none was fitted."""
    stored = store(runtime).model(workspace_id)
    if stored is None:
        raise NotFound(
            f"no CLV model in workspace {workspace_id!r}: fit one first "
            "(`opencdp clv fit` or POST /api/clv/fit)"
        )
    return {**stored.model, "fitted_at": isoformat_us(stored.fitted_us)}


# -- score ----------------------------------------------------------------------------------------


def score(runtime: Runtime, workspace_id: str) -> dict[str, Any]:
    """Compute, with the stored model, every enabled ``clv('…')`` definition of the workspace
    and what reads them, in dependency order — creating the computed traits
    ``predicted_clv_12m``, ``p_alive`` and ``predicted_orders_12m`` first when they are missing
    — and store the values that changed; returns how many profiles were scored and changed."""
    model(runtime, workspace_id)  # NotFound before the first fit
    definitions = DefinitionStore(runtime.db)
    _ensure_definitions(runtime, definitions, workspace_id)
    runtime.compute.forget(workspace_id)
    keys = [
        item.key
        for item in runtime.compute.enabled(workspace_id)
        if isinstance(item.definition.root, ast.Function) and item.definition.root.name == "clv"
    ]
    done = {}
    with runtime.compute.shared():  # the three outputs from one summary of the orders
        for key in runtime.compute.in_dependency_order(workspace_id, keys):
            done[key] = runtime.compute.compute(workspace_id, key)
    for key in done:
        row = definitions.get(workspace_id, key)
        if row.status == FAILED:
            raise RequestError(f"{key} failed: {row.error}", code="computation_failed")
    return {
        "profiles": done["p_alive"].size if "p_alive" in done else 0,
        "changed": {key: computation.changed for key, computation in done.items()},
        "scored_at": isoformat_us(runtime.now_us()),
    }


def _ensure_definitions(runtime: Runtime, definitions: DefinitionStore, workspace_id: str) -> None:
    """The computed-trait definitions of the three outputs, created (enabled, not yet
    computed) when missing; a key already taken by another definition is refused."""
    existing = {row.key: row for row in definitions.of_workspace(workspace_id)}
    now = runtime.now_us()
    for key, name in TRAITS.items():
        query = f"clv('{key}')"
        row = existing.get(key)
        if row is not None:
            if row.kind != "trait" or row.query.replace('"', "'") != query:
                raise RequestError(
                    f"{key!r} is already the key of another definition ({row.query}): delete "
                    "it before scoring CLV",
                    code="key_taken",
                )
            continue
        definitions.put_system_trait(workspace_id, key, name, query, now)
