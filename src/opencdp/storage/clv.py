"""Predicted CLV's storage: each customer's order history summed up by SQL, and the model
fitted for each workspace.

The history is read set-based: one statement groups the workspace's ``Order Completed``
events by profile and day, then by profile — no event reaches Python. An order's amount is
``properties.revenue``, else ``properties.total``, read by the computed traits' number rule
(numbers and numeric strings); orders with neither still count as purchases.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, case, func, select

from opencdp.storage.db import Connection, Database
from opencdp.storage.definition_sql import json_number
from opencdp.storage.schema import clv_models, events, profiles

#: Microseconds in a day: event days are ``timestamp_us // DAY_US`` (days since 1970, UTC).
DAY_US = 86_400_000_000
ORDER_EVENT = "Order Completed"


@dataclass(frozen=True)
class OrderHistory:
    """Per live profile with an order on or before the calibration end (lists of one length,
    in profile-id order); days are days since 1970-01-01 UTC."""

    calibration_end: int
    profile_ids: list[str]
    first_day: list[int]
    last_day: list[int]  # the last order day up to the calibration end
    order_days: list[int]  # distinct order days up to the calibration end
    repeat_spend: list[float]  # the amounts of the repeat days up to the calibration end
    repeat_spend_days: list[int]  # the repeat days that had an amount
    holdout_days: list[int]  # distinct order days after the calibration end
    last_order_day: int | None  # the workspace's last order day (None: no order)


@dataclass(frozen=True)
class StoredModel:
    workspace_id: str
    time_unit: str
    calibration_end: str
    model: dict[str, Any]
    fitted_us: int


class ClvStore:
    """Order histories and fitted CLV models of every workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._upsert = db.dialect.upsert(
            clv_models,
            keys=("workspace_id",),
            update=("time_unit", "calibration_end", "model", "fitted_us"),
        )

    @contextmanager
    def _reading(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.db.read() as own:
                yield own

    def order_history(
        self, workspace_id: str, calibration_end_day: int, conn: Connection | None = None
    ) -> OrderHistory:
        """Each live user profile's order history as of ``calibration_end_day`` (included),
        summed up in one statement (on ``conn`` when given)."""
        dialect = self.db.dialect.name
        amount = func.coalesce(
            json_number(dialect, events.c.payload, ("properties", "revenue")),
            json_number(dialect, events.c.payload, ("properties", "total")),
        )
        orders = (
            select(
                events.c.profile_id.label("pid"),
                (events.c.timestamp_us // DAY_US).label("day"),
                amount.label("amount"),
            )
            .join_from(
                events,
                profiles,
                and_(
                    profiles.c.workspace_id == events.c.workspace_id,
                    profiles.c.id == events.c.profile_id,
                ),
            )
            .where(
                events.c.workspace_id == workspace_id,
                events.c.type == "track",
                events.c.event == ORDER_EVENT,
                profiles.c.collection == "users",
                profiles.c.merged_into.is_(None),
            )
            .cte("orders")
        )
        days = (
            select(
                orders.c.pid,
                orders.c.day,
                func.sum(orders.c.amount).label("spend"),
                func.count(orders.c.amount).label("known"),
            )
            .group_by(orders.c.pid, orders.c.day)
            .cte("order_days")
        )
        firsts = (
            select(days.c.pid, func.min(days.c.day).label("first_day"))
            .group_by(days.c.pid)
            .cte("first_days")
        )
        calib = days.c.day <= calibration_end_day
        repeat = and_(calib, days.c.day > firsts.c.first_day, days.c.known > 0)
        statement = (
            select(
                days.c.pid,
                firsts.c.first_day,
                func.max(case((calib, days.c.day))),
                func.sum(case((calib, 1), else_=0)),
                func.sum(case((repeat, days.c.spend))),
                func.sum(case((repeat, 1), else_=0)),
                func.sum(case((days.c.day > calibration_end_day, 1), else_=0)),
            )
            .join_from(days, firsts, days.c.pid == firsts.c.pid)
            .where(firsts.c.first_day <= calibration_end_day)
            .group_by(days.c.pid, firsts.c.first_day)
            .order_by(days.c.pid)
        )
        with self._reading(conn) as reading:
            rows = reading.execute(statement).all()
            last = reading.execute(select(func.max(days.c.day))).scalar_one_or_none()
        return OrderHistory(
            calibration_end=calibration_end_day,
            profile_ids=[r[0] for r in rows],
            first_day=[int(r[1]) for r in rows],
            last_day=[int(r[2]) for r in rows],
            order_days=[int(r[3]) for r in rows],
            repeat_spend=[float(r[4] or 0) for r in rows],
            repeat_spend_days=[int(r[5]) for r in rows],
            holdout_days=[int(r[6]) for r in rows],
            last_order_day=None if last is None else int(last),
        )

    def save_model(
        self,
        workspace_id: str,
        time_unit: str,
        calibration_end: str,
        model: dict[str, Any],
        fitted_us: int,
    ) -> None:
        """Store the workspace's model, replacing the one before."""
        with self.db.write() as conn:
            conn.execute(
                self._upsert,
                [
                    {
                        "workspace_id": workspace_id,
                        "time_unit": time_unit,
                        "calibration_end": calibration_end,
                        "model": orjson.dumps(model).decode(),
                        "fitted_us": fitted_us,
                    }
                ],
            )

    def model(self, workspace_id: str, conn: Connection | None = None) -> StoredModel | None:
        """The workspace's fitted model, or None."""
        with self._reading(conn) as reading:
            row = reading.execute(
                select(clv_models).where(clv_models.c.workspace_id == workspace_id)
            ).one_or_none()
        if row is None:
            return None
        return StoredModel(
            row.workspace_id,
            row.time_unit,
            row.calibration_end,
            orjson.loads(row.model),
            row.fitted_us,
        )
