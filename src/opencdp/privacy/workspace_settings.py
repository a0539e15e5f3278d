"""A workspace's privacy settings: the consent default and what the self-service profile allows.

Stored as JSON on the workspace; :func:`parse_settings` validates what an operator sends and
names the field that is wrong."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

CONSENT_DEFAULTS = ("opt-in", "opt-out")

#: traits a customer may edit on the self-service profile unless the workspace says otherwise
DEFAULT_SELF_SERVICE_TRAITS = (
    "first_name",
    "last_name",
    "name",
    "address",
    "communication_preferences",
)


@dataclass(frozen=True)
class WorkspaceSettings:
    """Privacy settings of one workspace.

    ``consent_default``: what a profile without a consent record for a category counts as —
    ``opt-in`` (the default: no record, no consent, as GDPR asks for marketing) or ``opt-out``
    (no record counts as consent until withdrawn).
    ``self_service_traits``: the traits a customer may edit through ``/api/self``.
    ``self_service_origins``: browser origins allowed to call ``/api/self`` (CORS).
    ``self_service_link_ttl``: seconds a self-service link token stays valid.
    """

    consent_default: str = "opt-in"
    self_service_traits: tuple[str, ...] = DEFAULT_SELF_SERVICE_TRAITS
    self_service_origins: tuple[str, ...] = ()
    self_service_link_ttl: int = 3 * 24 * 3600

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["self_service_traits"] = list(self.self_service_traits)
        out["self_service_origins"] = list(self.self_service_origins)
        return out

    def consent_missing_counts_as(self) -> bool:
        """What a category without a record on the profile counts as."""
        return self.consent_default == "opt-out"


_FIELDS = {f for f in WorkspaceSettings.__dataclass_fields__}
#: a browser origin: scheme, host name (or IPv4 address) and an optional port, nothing else
ORIGIN = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?")
_MAX_TTL = 90 * 24 * 3600


def parse_settings(raw: Any, base: WorkspaceSettings | None = None) -> WorkspaceSettings:
    """Settings from JSON (fields not given keep ``base``'s values); raises ``ValueError``
    naming the field and what it accepts."""
    if raw is None:
        return base or WorkspaceSettings()
    if not isinstance(raw, dict):
        raise ValueError("workspace settings must be a JSON object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(_FIELDS))}")
    current = (base or WorkspaceSettings()).to_dict()
    current.update(raw)
    default = current["consent_default"]
    if default not in CONSENT_DEFAULTS:
        raise ValueError(f"consent_default must be one of {', '.join(CONSENT_DEFAULTS)}")
    traits = _strings(current["self_service_traits"], "self_service_traits")
    origins = _strings(current["self_service_origins"], "self_service_origins")
    for origin in origins:
        if origin.endswith("/") and ORIGIN.fullmatch(origin[:-1]):
            raise ValueError(f"self_service_origins: {origin!r} must not end with '/'")
        if origin != "*" and not ORIGIN.fullmatch(origin):
            raise ValueError(
                f"self_service_origins: {origin!r} is not an origin such as https://shop.example"
            )
    ttl = current["self_service_link_ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= _MAX_TTL:
        raise ValueError(f"self_service_link_ttl must be whole seconds from 60 to {_MAX_TTL}")
    return WorkspaceSettings(default, tuple(traits), tuple(origins), ttl)


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a list of non-empty strings")
    return list(dict.fromkeys(value))
