"""Per-source enforcement settings, named as in Segment's Public API (pure).

The document shape is Segment's::

    {"track": {"allowUnplannedEvents": false, "allowUnplannedEventProperties": true,
               "allowEventOnViolations": true, "allowPropertiesOnViolations": true,
               "commonEventOnViolations": "ALLOW"},
     "identify": {"allowUnplannedTraits": true, "allowTraitsOnViolations": true,
                  "commonEventOnViolations": "ALLOW"},
     "group": {...same as identify...},
     "forwardingBlockedEventsTo": null, "forwardingViolationsTo": null}

Every setting defaults to Segment's default: allow everything, record violations.
Page and screen events follow the ``track`` settings (except ``allowUnplannedEvents``, which,
as in Segment, blocks Track events only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from opencdp.govern.plan import PlanError

TRACK_COMMON = ("ALLOW", "BLOCK", "OMIT_PROPERTIES")
TRAITS_COMMON = ("ALLOW", "BLOCK", "OMIT_TRAITS")


@dataclass(frozen=True, slots=True)
class TrackSettings:
    allow_unplanned_events: bool = True
    allow_unplanned_event_properties: bool = True
    allow_event_on_violations: bool = True
    allow_properties_on_violations: bool = True
    common_event_on_violations: str = "ALLOW"


@dataclass(frozen=True, slots=True)
class TraitSettings:
    allow_unplanned_traits: bool = True
    allow_traits_on_violations: bool = True
    common_event_on_violations: str = "ALLOW"


@dataclass(frozen=True, slots=True)
class EnforcementSettings:
    """How a source treats events its tracking plan does not allow."""

    track: TrackSettings = field(default_factory=TrackSettings)
    identify: TraitSettings = field(default_factory=TraitSettings)
    group: TraitSettings = field(default_factory=TraitSettings)
    forwarding_blocked_events_to: str | None = None
    forwarding_violations_to: str | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> EnforcementSettings:
        """Read Segment-named settings; unknown names and wrong values raise PlanError."""
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise PlanError("settings", "must be an object")
        known = {
            "track",
            "identify",
            "group",
            "forwardingBlockedEventsTo",
            "forwardingViolationsTo",
        }
        for key in doc:
            if key not in known:
                raise PlanError(
                    f"settings.{key}", f"unknown setting; known: {', '.join(sorted(known))}"
                )
        track = _section(doc.get("track"), TrackSettings, TRACK_COMMON, "settings.track")
        identify = _section(doc.get("identify"), TraitSettings, TRAITS_COMMON, "settings.identify")
        group = _section(doc.get("group"), TraitSettings, TRAITS_COMMON, "settings.group")
        fwd = {}
        for key in ("forwardingBlockedEventsTo", "forwardingViolationsTo"):
            value = doc.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise PlanError(f"settings.{key}", "must be a source id or null")
            fwd[key] = value
        return cls(
            track,  # type: ignore[arg-type]
            identify,  # type: ignore[arg-type]
            group,  # type: ignore[arg-type]
            fwd["forwardingBlockedEventsTo"],
            fwd["forwardingViolationsTo"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": _dump(self.track),
            "identify": _dump(self.identify),
            "group": _dump(self.group),
            "forwardingBlockedEventsTo": self.forwarding_blocked_events_to,
            "forwardingViolationsTo": self.forwarding_violations_to,
        }

    def merged(self, doc: Any) -> EnforcementSettings:
        """A copy with the settings ``doc`` names changed and every other one kept (a
        partial document, as ``PUT …/schema-settings`` takes it); ``None`` means the defaults."""
        if doc is None:
            return EnforcementSettings()
        if not isinstance(doc, dict):
            raise PlanError("settings", "must be an object")
        current = self.to_dict()
        for key, value in doc.items():
            section = current.get(key)
            if isinstance(value, dict) and isinstance(section, dict):
                current[key] = {**section, **value}
            else:
                current[key] = value
        return EnforcementSettings.from_dict(current)

    def with_value(self, dotted: str, value: Any) -> EnforcementSettings:
        """A copy with one setting changed, e.g. ``track.allowUnplannedEvents`` = False."""
        doc = self.to_dict()
        head, _, tail = dotted.partition(".")
        if tail:
            if not isinstance(doc.get(head), dict):
                raise PlanError(f"settings.{head}", "unknown section; use track, identify or group")
            doc[head][tail] = value
        else:
            doc[head] = value
        return EnforcementSettings.from_dict(doc)

    def common_action(self, message_type: str) -> str:
        section = (
            self.identify
            if message_type == "identify"
            else (self.group if message_type == "group" else self.track)
        )
        return section.common_event_on_violations


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _dump(section: TrackSettings | TraitSettings) -> dict[str, Any]:
    return {_camel(f.name): getattr(section, f.name) for f in fields(section)}


def _section(doc: Any, cls: type, actions: tuple[str, ...], where: str) -> object:
    base = cls()
    if doc is None:
        return base
    if not isinstance(doc, dict):
        raise PlanError(where, "must be an object")
    names = {_camel(f.name): f.name for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in names:
            raise PlanError(f"{where}.{key}", f"unknown setting; known: {', '.join(names)}")
        attr = names[key]
        if attr == "common_event_on_violations":
            if not isinstance(value, str) or value.upper() not in actions:
                raise PlanError(f"{where}.{key}", f"must be one of {', '.join(actions)}")
            value = value.upper()
        elif not isinstance(value, bool):
            raise PlanError(f"{where}.{key}", f"must be true or false, not {value!r}")
        changes[attr] = value
    return replace(base, **changes)
