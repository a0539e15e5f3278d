"""What a tracking plan would do to a set of events: the dry-run report (pure accumulator)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from opencdp.govern.enforce import Verdict


@dataclass
class DryRunReport:
    """Counts of what enforcement would pass, change and block."""

    events: int = 0
    passed: int = 0
    changed: int = 0  # passed with omitted fields
    with_violations: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    unplanned_events: Counter[str] = field(default_factory=Counter)
    violations: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    omitted: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    quarantined_seen: int = 0
    quarantined_would_pass: int = 0

    def add(self, message: dict[str, Any], verdict: Verdict) -> None:
        """Count one event's verdict."""
        self.events += 1
        name = str(message.get("event") or message.get("name") or message.get("type") or "")
        if verdict.blocked:
            self.blocked[verdict.blocked] += 1
            if verdict.blocked == "unplanned_event":
                self.unplanned_events[name] += 1
            examples = self.examples.setdefault(verdict.blocked, [])
            if len(examples) < 5:
                examples.append(str(message.get("messageId")))
        else:
            self.passed += 1
            if verdict.omitted or verdict.omitted_on_violation:
                self.changed += 1
        if verdict.violations:
            self.with_violations += 1
        for v in verdict.violations:
            self.violations[(name, v.type, v.field, v.rule)] += 1
        for key in (*verdict.omitted, *verdict.omitted_on_violation):
            self.omitted[f"{name}: {key}"] += 1

    def add_quarantined(self, verdict: Verdict) -> None:
        """Count a currently quarantined event the new plan was tried on."""
        self.quarantined_seen += 1
        if not verdict.blocked:
            self.quarantined_would_pass += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "would_pass": self.passed,
            "would_pass_changed": self.changed,
            "with_violations": self.with_violations,
            "would_block": dict(self.blocked),
            "would_block_total": sum(self.blocked.values()),
            "unplanned_events": dict(self.unplanned_events.most_common(50)),
            "violations": [
                {"event": e, "type": t, "field": f, "rule": r, "count": n}
                for (e, t, f, r), n in self.violations.most_common(50)
            ],
            "omitted": dict(self.omitted.most_common(50)),
            "examples": self.examples,
            "quarantined": {
                "checked": self.quarantined_seen,
                "would_pass": self.quarantined_would_pass,
            },
        }
