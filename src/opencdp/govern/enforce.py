"""Tracking-plan enforcement of one normalized message (pure).

:class:`CompiledPlan` compiles every rule's JSON Schema once; :func:`enforce` then judges a
message in Segment Protocols' order:

1. the standard controls: a Track event missing from the plan is blocked when unplanned events
   are not allowed; properties (traits for identify and group) the rule does not name are omitted
   when unplanned ones are not allowed; the event's own rule is validated and a violation blocks
   the event or omits the failing fields, as the settings say;
2. the COMMON rule, on what is left: ``ALLOW``, ``BLOCK`` or ``OMIT_PROPERTIES``/``OMIT_TRAITS``.

Whatever was omitted and every violation is recorded on the message under ``context.protocols``
(Segment's shape), so that nothing changes silently. The input message is never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from opencdp.govern.plan import MESSAGE_TYPE, Rule, TrackingPlan
from opencdp.govern.settings import EnforcementSettings

UNPLANNED_EVENT = "unplanned_event"
SCHEMA_VIOLATION = "schema_violation"
REASONS = (UNPLANNED_EVENT, SCHEMA_VIOLATION)

_JSON_TYPE = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed check: Segment's ``{type, field, description}`` plus the rule that failed."""

    type: str
    field: str
    description: str
    rule: str
    # The path as a list (names may contain dots): what omission uses. Not part of the record.
    path: tuple[str | int, ...] = ()

    def to_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "field": self.field,
            "description": self.description,
            "rule": self.rule,
        }


@dataclass(slots=True)
class Verdict:
    """What enforcement made of one message."""

    message: dict[str, Any]
    blocked: str | None = None  # a reason when the event is blocked
    detail: str = ""
    violations: list[Violation] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)
    omitted_on_violation: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    validator: Any  # a jsonschema_rs validator, or None for a rule without a schema
    planned: frozenset[str]  # the property (or trait) names the rule names


class CompiledPlan:
    """A tracking plan with every schema compiled, ready to judge messages quickly."""

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self._rules: dict[tuple[str, str | None], list[_CompiledRule]] = {}
        self._common: list[_CompiledRule] = []
        for rule in plan.rules:
            compiled = _compile(rule)
            if rule.type == "COMMON":
                self._common.append(compiled)
            else:
                self._rules.setdefault((MESSAGE_TYPE[rule.type], rule.key), []).append(compiled)
        for versions in self._rules.values():
            versions.sort(key=lambda c: c.rule.version)
        self._common.sort(key=lambda c: c.rule.version)

    @property
    def events(self) -> frozenset[str]:
        """The Track event names the plan knows."""
        return frozenset(k for (t, k) in self._rules if t == "track" and k)

    def rule_for(self, message: dict[str, Any]) -> _CompiledRule | None:
        """The rule version this message is checked against, or None when it has none."""
        typ = message.get("type", "")
        if typ == "track":
            versions = self._rules.get(("track", message.get("event")))
        elif typ in ("page", "screen"):
            versions = self._rules.get((typ, message.get("name"))) or self._rules.get((typ, None))
        else:
            versions = self._rules.get((typ, None))
        return _pick(versions, message) if versions else None

    def common_for(self, message: dict[str, Any]) -> _CompiledRule | None:
        return _pick(self._common, message) if self._common else None


def enforce(plan: CompiledPlan, settings: EnforcementSettings, message: dict[str, Any]) -> Verdict:
    """Judge one normalized message against a plan with a source's settings."""
    typ = message.get("type", "")
    section = "traits" if typ in ("identify", "group") else "properties"
    trait_settings = settings.identify if typ == "identify" else settings.group
    msg = message
    verdict = Verdict(message)

    def writable() -> dict[str, Any]:
        nonlocal msg
        if msg is message:  # copy on first change: the caller's message stays as it was
            msg = dict(message)
            if isinstance(msg.get(section), dict):
                msg[section] = dict(msg[section])
        return msg

    rule = plan.rule_for(message)
    if typ == "track" and rule is None and not settings.track.allow_unplanned_events:
        verdict.blocked = UNPLANNED_EVENT
        verdict.detail = (
            f"track event {message.get('event')!r} is not in tracking plan {plan.plan.id!r}"
        )
        return verdict
    if rule is not None:
        if typ in ("identify", "group"):
            allow_unplanned = trait_settings.allow_unplanned_traits
            allow_fields_on_violation = trait_settings.allow_traits_on_violations
            block_on_violation = False
        else:
            allow_unplanned = settings.track.allow_unplanned_event_properties
            allow_fields_on_violation = settings.track.allow_properties_on_violations
            block_on_violation = not settings.track.allow_event_on_violations
        values = msg.get(section)
        if not allow_unplanned and isinstance(values, dict):
            unplanned = [k for k in values if k not in rule.planned]
            if unplanned:
                target = writable()[section]
                for key in unplanned:
                    del target[key]
                verdict.omitted.extend(unplanned)
        if rule.validator is not None:
            found = _violations(rule, msg)
            if found:
                verdict.violations.extend(found)
                if block_on_violation:
                    verdict.blocked = SCHEMA_VIOLATION
                elif not allow_fields_on_violation:
                    verdict.omitted_on_violation.extend(_omit_failing(writable, section, found))
    common = plan.common_for(msg)
    if common is not None and common.validator is not None and verdict.blocked is None:
        found = _violations(common, msg)
        if found:
            verdict.violations.extend(found)
            action = settings.common_action(typ)
            if action == "BLOCK":
                verdict.blocked = SCHEMA_VIOLATION
            elif action.startswith("OMIT_"):
                verdict.omitted_on_violation.extend(_omit_failing(writable, section, found))
    if verdict.blocked:
        first = verdict.violations[0]
        more = len(verdict.violations) - 1
        verdict.detail = f"{first.description} ({first.rule})" + (
            f" and {more} more violation{'s' if more > 1 else ''}" if more else ""
        )
        return verdict
    if verdict.violations or verdict.omitted:
        out = writable()
        context = dict(out["context"]) if isinstance(out.get("context"), dict) else {}
        protocols = dict(context["protocols"]) if isinstance(context.get("protocols"), dict) else {}
        if verdict.omitted:
            protocols["omitted"] = list(verdict.omitted)
        if verdict.omitted_on_violation:
            protocols["omitted_on_violation"] = list(verdict.omitted_on_violation)
        if verdict.violations:
            protocols["violations"] = [v.to_dict() for v in verdict.violations]
        protocols["trackingPlanId"] = plan.plan.id
        protocols["trackingPlanRevision"] = plan.plan.revision
        context["protocols"] = protocols
        out["context"] = context
    verdict.message = msg
    return verdict


def _compile(rule: Rule) -> _CompiledRule:
    section = "traits" if rule.type in ("IDENTIFY", "GROUP") else "properties"
    planned: frozenset[str] = frozenset()
    validator = None
    if rule.json_schema is not None:
        validator = jsonschema_rs.validator_for(rule.json_schema)
        props = rule.json_schema.get("properties", {})
        inner = props.get(section, {}) if isinstance(props, dict) else {}
        names = inner.get("properties", {}) if isinstance(inner, dict) else {}
        planned = frozenset(names) if isinstance(names, dict) else frozenset()
    return _CompiledRule(rule, validator, planned)


def _pick(versions: list[_CompiledRule], message: dict[str, Any]) -> _CompiledRule:
    """The version ``context.protocols.event_version`` asks for; the oldest when it is
    missing or names no version (Segment's rule)."""
    if len(versions) == 1:
        return versions[0]
    context = message.get("context")
    wanted = None
    if isinstance(context, dict) and isinstance(context.get("protocols"), dict):
        wanted = context["protocols"].get("event_version")
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        for compiled in versions:
            if compiled.rule.version == wanted:
                return compiled
    return versions[0]


def _violations(compiled: _CompiledRule, message: dict[str, Any]) -> list[Violation]:
    validator = compiled.validator
    if validator.is_valid(message):
        return []
    label = compiled.rule.label
    out = []
    for error in validator.iter_errors(message):
        parts = tuple(error.instance_path)
        path = ".".join(str(p) for p in parts)
        kind = error.kind
        name = type(kind).__name__
        if name == "Required":
            prop = kind.property
            field_name = f"{path}.{prop}" if path else str(prop)
            out.append(
                Violation(
                    "Required", field_name, f"{field_name} is required", label, (*parts, prop)
                )
            )
        elif name == "Type":
            expected = ", ".join(str(t) for t in kind.types)
            given = _JSON_TYPE.get(type(error.instance), "unknown")
            out.append(
                Violation(
                    "Invalid Type",
                    path,
                    f"Invalid type. Expected: {expected}, given: {given}",
                    label,
                    parts,
                )
            )
        else:
            kind_name = {
                "Pattern": "Invalid Pattern",
                "Enum": "Invalid Enum",
                "Format": "Invalid Format",
                "Constant": "Invalid Value",
            }.get(name, f"Invalid {name}")
            out.append(
                Violation(kind_name, path, f"{path or 'event'}: {error.message}", label, parts)
            )
    return out


def _omit_failing(writable: Any, section: str, violations: list[Violation]) -> list[str]:
    """Remove the top-level properties (or traits) that failed; returns their names."""
    names: list[str] = []
    for v in violations:
        name = v.path[1] if len(v.path) >= 2 and v.path[0] == section else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    omitted = []
    for name in names:
        values = writable().get(section)
        if isinstance(values, dict) and name in values:
            del values[name]
            omitted.append(name)
    return omitted


#: What enforcement (and forwarding of blocked events, govern/forward.py) records under
#: ``context.protocols``; the sender's own keys such as ``event_version`` are not among them.
_PLAN_KEYS = frozenset(
    {
        "omitted",
        "omitted_on_violation",
        "violations",
        "trackingPlanId",
        "trackingPlanRevision",
        "blocked",
        "blockedReason",
        "sourceId",
    }
)


def strip_protocols(message: Any) -> Any:
    """The message without what an earlier plan recorded under ``context.protocols`` (what the
    sender put there, such as ``event_version``, stays): the input of a re-enforcement."""
    context = message.get("context") if isinstance(message, dict) else None
    protocols = context.get("protocols") if isinstance(context, dict) else None
    if not isinstance(protocols, dict) or not _PLAN_KEYS & protocols.keys():
        return message
    assert isinstance(context, dict)
    kept = {k: v for k, v in protocols.items() if k not in _PLAN_KEYS}
    if kept:
        context = {**context, "protocols": kept}
    else:
        context = {k: v for k, v in context.items() if k != "protocols"}
    return {**message, "context": context}
