"""Tracking plans: Segment-shaped rules, parsed and checked (pure).

A plan is a list of rules in the shape of Segment's Public API (``RuleV1``)::

    {"type": "TRACK", "key": "Order Completed", "version": 2, "jsonSchema": {...}}

``type`` is one of COMMON, TRACK, IDENTIFY, GROUP, PAGE, SCREEN. ``key`` names the Track event
(or, optionally, the page or screen name); COMMON, IDENTIFY and GROUP rules have no key. Each
``jsonSchema`` is a JSON Schema (draft-07) of the *whole* event, so the rules for properties sit
under ``properties.properties`` and those for traits under ``properties.traits``. Several versions
of one rule may coexist; an event picks one with ``context.protocols.event_version``.

The legacy Config API shape (``{"rules": {"events": [...], "global": ..., "identify": ...,
"group": ...}}``) is accepted too and converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

RULE_TYPES = ("COMMON", "TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN")
KEYED_TYPES = frozenset({"TRACK", "PAGE", "SCREEN"})
# The message type each rule type applies to (COMMON applies to all).
MESSAGE_TYPE = {
    "TRACK": "track",
    "IDENTIFY": "identify",
    "GROUP": "group",
    "PAGE": "page",
    "SCREEN": "screen",
}
_PLAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DRAFT_07 = "http://json-schema.org/draft-07/schema#"


class PlanError(ValueError):
    """A tracking plan document that cannot be used; ``where`` points into the document."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True, slots=True)
class Rule:
    """One versioned JSON Schema rule of a tracking plan."""

    type: str
    key: str | None
    version: int
    json_schema: dict[str, Any] | None

    @property
    def label(self) -> str:
        """How violations name the rule: ``TRACK "Order Completed" v2``, ``COMMON v1``."""
        key = f' "{self.key}"' if self.key else ""
        return f"{self.type}{key} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "key": self.key,
            "version": self.version,
            "jsonSchema": self.json_schema,
        }


@dataclass(frozen=True, slots=True)
class TrackingPlan:
    """A named set of rules; ``revision`` counts how often it was changed (0: not stored)."""

    id: str
    name: str
    rules: tuple[Rule, ...]
    description: str | None = None
    revision: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "revision": self.revision,
            "rules": [r.to_dict() for r in self.rules],
        }

    def same_rules(self, other: TrackingPlan) -> bool:
        """True when applying ``other`` would change nothing worth a new revision."""
        return (
            self.name == other.name
            and self.description == other.description
            and [r.to_dict() for r in self.rules] == [r.to_dict() for r in other.rules]
        )


def parse_plan(doc: Any, *, plan_id: str | None = None) -> TrackingPlan:
    """Read a plan document (OpenCDP/Public API shape or legacy Config API shape).

    Raises :class:`PlanError` naming the offending place, e.g. ``rules[3].jsonSchema``.
    """
    if not isinstance(doc, dict):
        raise PlanError("", f"a tracking plan must be an object, not {type(doc).__name__}")
    pid = doc.get("id", plan_id) if plan_id is None else plan_id
    if plan_id is not None and doc.get("id") not in (None, plan_id):
        raise PlanError("id", f"the document says {doc.get('id')!r} but the plan is {plan_id!r}")
    if not isinstance(pid, str) or not _PLAN_ID.match(pid):
        raise PlanError(
            "id", "needs 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    name = doc.get("name")
    if name is None or name == "":
        name = doc.get("display_name") or pid
    if not isinstance(name, str) or len(name) > 200:
        raise PlanError("name", "must be a string of at most 200 characters")
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        raise PlanError("description", "must be a string")
    for where, text in (("name", name), ("description", description)):
        if text and "\x00" in text:
            raise PlanError(where, "must not contain a NUL character (\\u0000)")
    raw_rules = doc.get("rules", [])
    placed: list[tuple[str, Any]]
    if isinstance(raw_rules, dict):
        placed = _from_config_api(raw_rules)
    elif isinstance(raw_rules, list):
        placed = [(f"rules[{i}]", raw) for i, raw in enumerate(raw_rules)]
    else:
        raise PlanError("rules", "must be a list of rules")
    rules = [_parse_rule(where, raw) for where, raw in placed]
    seen: set[tuple[str, str | None, int]] = set()
    for (where, _), rule in zip(placed, rules, strict=True):
        ident = (rule.type, rule.key, rule.version)
        if ident in seen:
            raise PlanError(where, f"{rule.label} is defined twice")
        seen.add(ident)
    extra = {k: v for k, v in doc.items() if k not in ("id", "name", "description", "rules")}
    return TrackingPlan(pid, name, tuple(rules), description, 0, extra)


def _parse_rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise PlanError(where, "a rule must be an object with type, key, version and jsonSchema")
    typ = raw.get("type")
    if not isinstance(typ, str) or typ.upper() not in RULE_TYPES:
        raise PlanError(f"{where}.type", f"must be one of {', '.join(RULE_TYPES)}; got {typ!r}")
    typ = typ.upper()
    key = raw.get("key")
    if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > 200):
        raise PlanError(f"{where}.key", "must be a non-empty string of at most 200 characters")
    if key is not None and "\x00" in key:
        raise PlanError(f"{where}.key", "must not contain a NUL character (\\u0000)")
    if typ == "TRACK" and key is None:
        raise PlanError(f"{where}.key", "a TRACK rule needs the event name as its key")
    if typ not in KEYED_TYPES and key is not None:
        raise PlanError(f"{where}.key", f"{typ} rules have no key")
    version = raw.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PlanError(
            f"{where}.version", f"must be a whole number of at least 1; got {version!r}"
        )
    schema = raw.get("jsonSchema", raw.get("json_schema"))
    if schema is not None:
        if not isinstance(schema, dict):
            raise PlanError(f"{where}.jsonSchema", "must be a JSON Schema object or null")
        schema = dict(schema)
        schema.setdefault("$schema", _DRAFT_07)
        try:
            jsonschema_rs.meta.validate(schema)
            jsonschema_rs.validator_for(schema)
        except (jsonschema_rs.ValidationError, ValueError, TypeError) as exc:
            # TypeError: a value JSON cannot hold, e.g. a YAML date (quote it in the file)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PlanError(f"{where}.jsonSchema", f"is not a valid JSON Schema: {first}") from exc
    return Rule(typ, key, version, schema)


def _from_config_api(rules: dict[str, Any]) -> list[tuple[str, Any]]:
    """Rules of the legacy Config API plan shape as RuleV1 objects, each with its place in the
    legacy document (so that errors point at what the user wrote)."""
    out: list[tuple[str, Any]] = []
    events = rules.get("events") or []
    if not isinstance(events, list):
        raise PlanError("rules.events", "must be a list of events")
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise PlanError(f"rules.events[{i}]", "must be an object with name and rules")
        out.append(
            (
                f"rules.events[{i}]",
                {
                    "type": "TRACK",
                    "key": ev.get("name"),
                    "version": ev.get("version", 1),
                    "jsonSchema": ev.get("rules"),
                },
            )
        )
    for legacy, typ in (("global", "COMMON"), ("identify", "IDENTIFY"), ("group", "GROUP")):
        if rules.get(legacy) is not None:
            out.append(
                (f"rules.{legacy}", {"type": typ, "version": 1, "jsonSchema": rules[legacy]})
            )
    return out
