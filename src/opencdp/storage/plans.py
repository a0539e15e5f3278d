"""Tracking plans and enforcement settings in the system of record."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError

from opencdp.govern import EnforcementSettings, TrackingPlan, parse_plan
from opencdp.storage.db import Database
from opencdp.storage.schema import schema_settings, tracking_plans

WORKSPACE_SCOPE = "*"


@dataclass(frozen=True)
class SchemaConfig:
    """What one scope (a source, or ``*`` for the whole workspace) is checked against."""

    workspace_id: str
    scope: str
    tracking_plan_id: str | None
    settings: EnforcementSettings
    updated_us: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": "workspace" if self.scope == WORKSPACE_SCOPE else "source",
            "sourceId": None if self.scope == WORKSPACE_SCOPE else self.scope,
            "trackingPlanId": self.tracking_plan_id,
            "settings": self.settings.to_dict(),
        }


class PlanStore:
    """Stores plan revisions (never overwritten) and per-scope enforcement settings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- plans ------------------------------------------------------------------------------------
    def save(self, workspace_id: str, plan: TrackingPlan, now_us: int) -> tuple[TrackingPlan, bool]:
        """Store ``plan`` as a new revision unless it equals the current one.

        Returns the stored plan (with its revision) and whether a new revision was written.
        Two concurrent saves of one plan (PostgreSQL) both read revision N; the second insert
        of N+1 fails on the key, and that save is retried on top of the first.
        """
        for attempt in range(5):
            try:
                return self._save(workspace_id, plan, now_us)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _save(
        self, workspace_id: str, plan: TrackingPlan, now_us: int
    ) -> tuple[TrackingPlan, bool]:
        with self.db.write() as conn:
            current = self._latest(conn, workspace_id, plan.id, include_deleted=True)
            if current is not None and current[1] is None and current[0].same_rules(plan):
                return current[0], False
            revision = (current[0].revision if current else 0) + 1
            conn.execute(
                tracking_plans.insert().values(
                    workspace_id=workspace_id,
                    id=plan.id,
                    revision=revision,
                    name=plan.name,
                    description=plan.description,
                    rules=orjson.dumps([r.to_dict() for r in plan.rules]).decode(),
                    created_us=now_us,
                    deleted_us=None,
                )
            )
        return self.get(workspace_id, plan.id, revision) or plan, True

    def get(
        self, workspace_id: str, plan_id: str, revision: int | None = None
    ) -> TrackingPlan | None:
        """The current revision (or the one asked for) of a plan; None when unknown or deleted."""
        with self.db.read() as conn:
            if revision is None:
                found = self._latest(conn, workspace_id, plan_id, include_deleted=False)
                return found[0] if found else None
            row = conn.execute(
                select(tracking_plans).where(
                    tracking_plans.c.workspace_id == workspace_id,
                    tracking_plans.c.id == plan_id,
                    tracking_plans.c.revision == revision,
                )
            ).first()
            return _plan(row) if row else None

    def list(self, workspace_id: str) -> list[TrackingPlan]:
        """Current revision of every plan of the workspace, by id."""
        latest = (
            select(tracking_plans.c.id, func.max(tracking_plans.c.revision).label("rev"))
            .where(tracking_plans.c.workspace_id == workspace_id)
            .group_by(tracking_plans.c.id)
            .subquery()
        )
        query = (
            select(tracking_plans)
            .join(
                latest,
                and_(tracking_plans.c.id == latest.c.id, tracking_plans.c.revision == latest.c.rev),
            )
            .where(
                tracking_plans.c.workspace_id == workspace_id,
                tracking_plans.c.deleted_us.is_(None),
            )
            .order_by(tracking_plans.c.id)
        )
        with self.db.read() as conn:
            return [_plan(r) for r in conn.execute(query)]

    def delete(self, workspace_id: str, plan_id: str, now_us: int) -> bool:
        """Retire a plan (its revisions stay for the record); scopes using it stop enforcing."""
        with self.db.write() as conn:
            result = conn.execute(
                update(tracking_plans)
                .where(
                    tracking_plans.c.workspace_id == workspace_id,
                    tracking_plans.c.id == plan_id,
                    tracking_plans.c.deleted_us.is_(None),
                )
                .values(deleted_us=now_us)
            )
            return bool(result.rowcount)

    def _latest(
        self, conn: Any, workspace_id: str, plan_id: str, *, include_deleted: bool
    ) -> tuple[TrackingPlan, int | None] | None:
        row = conn.execute(
            select(tracking_plans)
            .where(tracking_plans.c.workspace_id == workspace_id, tracking_plans.c.id == plan_id)
            .order_by(tracking_plans.c.revision.desc())
            .limit(1)
        ).first()
        if row is None or (row.deleted_us is not None and not include_deleted):
            return None
        return _plan(row), row.deleted_us

    # -- settings ---------------------------------------------------------------------------------
    def config(self, workspace_id: str, scope: str) -> SchemaConfig | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(schema_settings).where(
                    schema_settings.c.workspace_id == workspace_id, schema_settings.c.scope == scope
                )
            ).first()
        if row is None:
            return None
        return SchemaConfig(
            workspace_id,
            scope,
            row.tracking_plan_id,
            EnforcementSettings.from_dict(orjson.loads(row.settings)),
            row.updated_us,
        )

    def set_config(
        self,
        workspace_id: str,
        scope: str,
        tracking_plan_id: str | None,
        settings: EnforcementSettings,
        now_us: int,
    ) -> SchemaConfig:
        """Attach a plan (or none) and settings to a source or, with scope ``*``, the workspace."""
        stmt = self.db.dialect.upsert(
            schema_settings,
            ["workspace_id", "scope"],
            ["tracking_plan_id", "settings", "updated_us"],
        )
        with self.db.write() as conn:
            conn.execute(
                stmt,
                {
                    "workspace_id": workspace_id,
                    "scope": scope,
                    "tracking_plan_id": tracking_plan_id,
                    "settings": orjson.dumps(settings.to_dict()).decode(),
                    "updated_us": now_us,
                },
            )
        return SchemaConfig(workspace_id, scope, tracking_plan_id, settings, now_us)

    def effective(self, workspace_id: str, source_id: str) -> SchemaConfig | None:
        """The source's own configuration, else the workspace's, else None (nothing enforced)."""
        return self.config(workspace_id, source_id) or self.config(workspace_id, WORKSPACE_SCOPE)

    def scopes_using(self, workspace_id: str, plan_id: str) -> builtins.list[str]:
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(schema_settings.c.scope).where(
                        schema_settings.c.workspace_id == workspace_id,
                        schema_settings.c.tracking_plan_id == plan_id,
                    )
                ).scalars()
            )


def _plan(row: Any) -> TrackingPlan:
    plan = parse_plan(
        {
            "id": row.id,
            "name": row.name,
            "description": row.description,
            "rules": orjson.loads(row.rules),
        }
    )
    return TrackingPlan(plan.id, plan.name, plan.rules, plan.description, int(row.revision))
