"""The plan cache: each source's tracking plan and enforcement settings, found, compiled and
cached, and the judgement of events against them at collection time (an adapter around the
pure ``govern`` core).

Each source's plan and settings are looked up once and cached for a few seconds (so a plan
applied in another process takes effect quickly, without a query per request); each plan
revision is compiled once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from opencdp.clock import Clock
from opencdp.collect.normalize import NormalizedEvent
from opencdp.collect.rejection import Rejection
from opencdp.govern import CompiledPlan, EnforcementSettings, enforce
from opencdp.govern.forward import forwarded_blocked, violation_messages
from opencdp.storage.admin import INTERNAL_SOURCE, AdminStore, Source
from opencdp.storage.plans import PlanStore
from opencdp.ttl_cache import TtlCache


@dataclass(frozen=True)
class Governance:
    """What a source's events are checked against."""

    plan: CompiledPlan
    settings: EnforcementSettings


@dataclass
class Judgement:
    """The outcome of enforcement for one event, and what it forwards elsewhere."""

    outcome: NormalizedEvent | Rejection | None  # None: blocked and forwarded, not quarantined
    forwards: list[tuple[Source, dict[str, Any]]]


class PlanCache:
    """Finds, compiles and caches the governance of each source."""

    def __init__(self, plans: PlanStore, admin: AdminStore, clock: Clock, ttl: float) -> None:
        self.plans = plans
        self.admin = admin
        self.clock = clock
        self.ttl = ttl
        self._by_source: TtlCache[str, Governance | None] = TtlCache(clock, ttl)
        self._compiled: dict[tuple[str, str, int], CompiledPlan] = {}
        self._sources: TtlCache[str, Source | None] = TtlCache(clock, ttl)
        self._lock = threading.Lock()

    def for_source(self, source: Source) -> Governance | None:
        return self._by_source.get(source.id, lambda: self._load(source))

    def invalidate(self) -> None:
        """Forget everything cached (after a plan or settings change in this process)."""
        self._by_source.clear()
        self._sources.clear()

    def _load(self, source: Source) -> Governance | None:
        if source.name == INTERNAL_SOURCE:  # OpenCDP's own changes: no plan applies
            return None
        config = self.plans.effective(source.workspace_id, source.id)
        if config is None or config.tracking_plan_id is None:
            return None
        plan = self.plans.get(source.workspace_id, config.tracking_plan_id)
        if plan is None:
            return None
        key = (source.workspace_id, plan.id, plan.revision)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = CompiledPlan(plan)
            with self._lock:
                self._compiled[key] = compiled
        return Governance(compiled, config.settings)

    def target(self, source: Source, target_id: str | None) -> Source | None:
        """A forwarding target: an enabled source of the same workspace, else None."""
        found = self.source(target_id) if target_id else None
        if found is None or found.workspace_id != source.workspace_id or not found.enabled:
            return None
        return found if found.id != source.id else None

    def source(self, source_id: str) -> Source | None:
        return self._sources.get(source_id, lambda: self.admin.source_by_id(source_id))

    def judge(self, source: Source, event: NormalizedEvent, gov: Governance) -> Judgement:
        """Enforce the source's plan (``gov``, from :meth:`for_source`) on one event."""
        verdict = enforce(gov.plan, gov.settings, event.payload)
        plan = gov.plan.plan
        forwards: list[tuple[Source, dict[str, Any]]] = []
        if verdict.violations and gov.settings.forwarding_violations_to:
            target = self.target(source, gov.settings.forwarding_violations_to)
            if target is not None:
                forwards.extend(
                    (target, m)
                    for m in violation_messages(
                        event.payload,
                        verdict,
                        source_id=source.id,
                        source_name=source.name,
                        plan=plan,
                    )
                )
        if verdict.blocked:
            target = self.target(source, gov.settings.forwarding_blocked_events_to)
            if target is not None:
                forwards.append((target, forwarded_blocked(event.payload, verdict, source.id)))
                return Judgement(None, forwards)
            return Judgement(
                Rejection(
                    verdict.blocked,
                    verdict.detail,
                    event.payload,
                    message_id=event.message_id,
                    type=event.type,
                    event=event.payload.get("event") or event.payload.get("name"),
                    plan_id=plan.id,
                    plan_revision=plan.revision,
                    violations=tuple(v.to_dict() for v in verdict.violations),
                ),
                forwards,
            )
        if verdict.message is not event.payload:
            event = replace(event, payload=verdict.message)
        return Judgement(event, forwards)
