"""Data governance (pure): tracking plans, enforcement settings, and their verdicts."""

from opencdp.govern.enforce import (
    REASONS,
    SCHEMA_VIOLATION,
    UNPLANNED_EVENT,
    CompiledPlan,
    Verdict,
    Violation,
    enforce,
)
from opencdp.govern.plan import PlanError, Rule, TrackingPlan, parse_plan
from opencdp.govern.settings import EnforcementSettings

__all__ = [
    "REASONS",
    "SCHEMA_VIOLATION",
    "UNPLANNED_EVENT",
    "CompiledPlan",
    "EnforcementSettings",
    "PlanError",
    "Rule",
    "TrackingPlan",
    "Verdict",
    "Violation",
    "enforce",
    "parse_plan",
]
