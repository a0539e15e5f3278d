"""``clv('<output>')``: the compute engine's provider of predicted CLV traits.

A definition whose query is ``clv('predicted_clv_12m')`` (or ``p_alive``,
``predicted_orders_12m``) is computed here: the workspace's stored BG/NBD + Gamma-Gamma model
(``opencdp clv fit``) applied to each customer's orders up to the day of ``now``. Like every
function over the population it runs in batch only — when defined, on the schedule, on
``opencdp clv score`` — never in real time. Every live user profile gets a value or None (no
order: the models describe customers from their first purchase on), so a profile that lost
its orders loses its value.

The three outputs come from one summary of the orders: inside :meth:`ClvProvider.shared`
(what ``clv score`` uses) it is computed once for the three; outside, once per definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opencdp.query.functions import CLV_OUTPUTS
from opencdp.storage.clv import DAY_US, ClvStore, OrderHistory, StoredModel
from opencdp.storage.db import Connection
from opencdp.storage.definitions import DefinitionStore

#: The horizon of the ``_12m`` outputs, in days.
HORIZON_DAYS = 365.0


class ClvProvider:
    """Computes ``clv(output)`` for the engine (a :data:`~opencdp.compute.engine.Provider`)."""

    def __init__(self, store: ClvStore, definitions: DefinitionStore) -> None:
        self.store = store
        self.definitions = definitions
        self._memo: dict[tuple[str, int, int], dict[str, dict[str, Any]]] | None = None

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Within this block the three outputs share one summary per workspace and day
        (re-entrant: an inner block keeps the outer one's summaries)."""
        if self._memo is not None:
            yield
            return
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    def __call__(
        self,
        conn: Connection,
        workspace_id: str,
        arguments: tuple[Any, ...],
        only: Sequence[str] | None,
        now_us: int,
    ) -> dict[str, Any]:
        output = arguments[0] if arguments else None
        if output not in CLV_OUTPUTS:  # pragma: no cover - the parser checks it
            raise ValueError(f"clv() outputs are {', '.join(CLV_OUTPUTS)}, not {output!r}")
        model = self.store.model(workspace_id, conn)
        if model is None:
            raise ValueError(
                f"no CLV model in workspace {workspace_id!r}: run `opencdp clv fit` (or POST "
                "/api/clv/fit), then `opencdp clv score`"
            )
        today = now_us // DAY_US
        key = (workspace_id, today, model.fitted_us)
        if self._memo is not None and key in self._memo:
            outputs = self._memo[key]
        else:
            outputs = predictions(model, self.store.order_history(workspace_id, today, conn))
            if self._memo is not None:
                self._memo[key] = outputs
        ids = (
            list(only)
            if only is not None
            else self.definitions.live_profile_ids(workspace_id, "users")
        )
        values = outputs[output]
        return {pid: values.get(pid) for pid in ids}


def predictions(model: StoredModel, history: OrderHistory) -> dict[str, dict[str, Any]]:
    """Output → profile id → value for every customer of ``history`` (as of its calibration
    end, which is today's day for scoring)."""
    # imported here: numpy and scipy cost every process that starts a fifth of a second
    from opencdp.predict import bgnbd, gamma_gamma, value
    from opencdp.predict.summary import from_day_counts

    document = model.model
    bg = bgnbd.BgNbd(**document["bgnbd"], customers=document["customers"])
    gg = gamma_gamma.GammaGamma(
        **{k: document["gamma_gamma"][k] for k in ("p", "q", "v", "log_likelihood")},
        customers=document["gamma_gamma"]["customers"],
    )
    out: dict[str, dict[str, Any]] = {output: {} for output in CLV_OUTPUTS}
    if not history.profile_ids:
        return out
    summary = from_day_counts(
        history.first_day,
        history.last_day,
        history.order_days,
        history.repeat_spend,
        history.repeat_spend_days,
        history.calibration_end,
        model.time_unit,
    )
    predicted = value.predict(bg, gg, summary, HORIZON_DAYS)
    for i, pid in enumerate(history.profile_ids):
        worth = float(predicted.value[i])  # NaN: no finite expectation (see expected_spend)
        out["predicted_clv_12m"][pid] = round(worth, 2) if math.isfinite(worth) else None
        out["p_alive"][pid] = _significant(predicted.p_alive[i])
        out["predicted_orders_12m"][pid] = _significant(predicted.orders[i])
    return out


def _significant(number: float) -> float:
    """Six significant digits: enough for any use, and stable from one scoring to the next."""
    return float(f"{float(number):.6g}")
