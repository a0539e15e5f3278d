"""The self-service profile: what a customer sees and changes of their own profile through a
link (``/api/self/…``), so that the profile stays the single source of truth.

A link token (:mod:`opencdp.privacy.self_token`) names one profile of one workspace and
expires. Every change is an event with provenance (``context.opencdp = {"channel":
"self-service", "actor": "customer"}``) from the workspace's internal source, applied by the
worker like any other; export and deletion are the same use cases an operator runs. Any
problem with a token — malformed, forged, expired, another workspace's or a profile that no
longer exists — is the one :class:`InvalidLink`, so nothing can be learned by trying.
"""

from __future__ import annotations

import secrets
from typing import Any

from opencdp.errors import AuthenticationError, NotFound, RequestError
from opencdp.privacy import self_token
from opencdp.runtime import Runtime
from opencdp.services.consent import get_consent, set_consent
from opencdp.services.export import export_profile
from opencdp.services.internal_events import emit
from opencdp.services.privacy import create_regulation
from opencdp.services.profile_lookup import locate_profile
from opencdp.storage.audit import AuditEntry
from opencdp.timeutil import isoformat_us

CHANNEL = "self-service"
ACTOR = "customer"


class InvalidLink(AuthenticationError):
    """The one answer to any token that does not open a profile."""

    code = "invalid_link"

    def __init__(self) -> None:
        super().__init__("this link is not valid (it may have expired): ask for a new one")


def issue_link(rt: Runtime, workspace_id: str, ref: str, ttl_seconds: Any = None) -> dict[str, Any]:
    """A link token for the profile ``ref`` names (an id or ``type:value``), valid for the
    workspace's ``self_service_link_ttl`` or the shorter ``ttl_seconds``."""
    profile = locate_profile(rt, workspace_id, ref)
    ttl = rt.admin.workspace_settings(workspace_id).self_service_link_ttl
    if ttl_seconds is not None:
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 60:
            raise RequestError("ttl must be whole seconds, at least 60", code="invalid_ttl")
        ttl = min(ttl, ttl_seconds)
    expires_s = rt.now_us() // 1_000_000 + ttl
    token = self_token.issue(_key(rt), workspace_id, profile.id, expires_s, secrets.token_bytes(16))
    return {
        "token": token,
        "expires_at": isoformat_us(expires_s * 1_000_000),
        "profile_id": profile.id,
    }


def authorize(rt: Runtime, token: str | None) -> tuple[str, str]:
    """(workspace, live profile id) the token opens; raises :class:`InvalidLink`."""
    claims = self_token.verify(_key(rt), token or "", rt.now_us() / 1_000_000)
    if claims is None:
        raise InvalidLink()
    try:
        profile = rt.profiles.resolve_id(claims.workspace_id, claims.profile_id)
    except NotFound:  # erased since, or never there
        raise InvalidLink() from None
    return claims.workspace_id, profile.id


def view(rt: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    """What the customer sees: identifiers, traits (consent apart), consent, and which traits
    they may edit."""
    traits = rt.profiles.traits(workspace_id, profile_id)
    return {
        "profile_id": profile_id,
        "identifiers": [
            {"type": i.id_type, "value": i.id_value}
            for i in rt.profiles.identifiers(workspace_id, profile_id)
        ],
        "traits": {k: v.value for k, v in sorted(traits.items()) if not k.startswith("consent.")},
        "consent": get_consent(rt, workspace_id, profile_id)["categoryPreferences"],
        "editable_traits": sorted(editable_traits(rt, workspace_id)),
    }


def edit_traits(rt: Runtime, workspace_id: str, profile_id: str, traits: Any) -> str:
    """Record the customer's edit of the traits the workspace allows (an identify event);
    returns its message id. Raises RequestError naming traits that may not be edited."""
    if not isinstance(traits, dict) or not traits:
        raise RequestError('send {"traits": {name: value, …}}', code="invalid_traits")
    allowed = editable_traits(rt, workspace_id)
    refused = sorted(set(traits) - allowed)
    if refused:
        raise RequestError(
            f"these traits cannot be changed here: {', '.join(refused)}; editable: "
            f"{', '.join(sorted(allowed)) or 'none'}",
            code="trait_not_editable",
        )
    message_id = emit(
        rt,
        workspace_id,
        profile_id,
        {"type": "identify", "traits": dict(traits)},
        channel=CHANNEL,
        actor=ACTOR,
    )
    _audit(rt, workspace_id, profile_id, "self.profile.edit")
    return message_id


def editable_traits(rt: Runtime, workspace_id: str) -> set[str]:
    """The workspace's ``self_service_traits`` minus anything that is an identifier (e-mail,
    phone, the identity rules' trait keys) or consent: an edited e-mail could join the
    customer to someone else's profile (whose data the link would then open), and consent
    has its own route."""
    config = rt.identity_config(workspace_id)
    identifying = {"email", "phone", "user_id", "userid", "anonymous_id", *config.trait_keys}
    return {
        t
        for t in rt.admin.workspace_settings(workspace_id).self_service_traits
        if t.lower() not in identifying and not t.startswith("consent.")
    }


def change_consent(rt: Runtime, workspace_id: str, profile_id: str, preferences: Any) -> str:
    message_id = set_consent(
        rt, workspace_id, profile_id, preferences, channel=CHANNEL, actor=ACTOR
    )
    _audit(rt, workspace_id, profile_id, "self.consent.put")
    return message_id


def export(rt: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    _audit(rt, workspace_id, profile_id, "self.export")
    return export_profile(rt, workspace_id, profile_id)


def request_deletion(rt: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    """A deletion of the customer (``DELETE_ONLY`` of their profile: every identifier, every
    store, forwarded to destinations); the link stops working once it ran."""
    _audit(rt, workspace_id, profile_id, "self.deletion")
    regulation = create_regulation(
        rt, workspace_id, "DELETE_ONLY", "PROFILE_ID", [profile_id], requested_by=CHANNEL
    )
    return {"regulateId": regulation.id, "status": regulation.status}


def _audit(rt: Runtime, workspace_id: str, profile_id: str, action: str) -> None:
    rt.audit.record(
        [
            AuditEntry(
                workspace_id=workspace_id,
                at_us=rt.now_us(),
                actor=ACTOR,
                role="self",
                channel="self",
                action=action,
                target=profile_id,
                profile_id=profile_id,
            )
        ]
    )


def _key(rt: Runtime) -> bytes:
    return self_token.link_key(rt.admin.key)
