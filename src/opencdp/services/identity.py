"""Identity use cases the HTTP API and the CLI share: a workspace's identity rules, and why a
profile's identifiers belong together."""

from __future__ import annotations

from typing import Any

from opencdp.errors import ConfigurationError, RequestError
from opencdp.identity import IdentityConfig
from opencdp.runtime import Runtime
from opencdp.timeutil import isoformat_us


def set_identity_rules(runtime: Runtime, workspace_id: str, overrides: dict[str, Any]) -> Any:
    """Validate and store a workspace's identity-rule overrides; returns the effective rules."""
    base = runtime.base_identity_config()
    try:
        config = IdentityConfig.from_dict(overrides, base=base) if overrides else base
    except ConfigurationError as exc:
        # The client's document is wrong, not the server's configuration: a 400 that names it.
        raise RequestError(f"invalid identity rules: {exc.message}", code="invalid_rules") from None
    runtime.admin.set_identity_config(workspace_id, overrides or None)
    runtime.invalidate_identity_config(workspace_id)
    return config


def explain_profile(runtime: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    """Why the identifiers of a profile belong together: each link and each merge, with the
    message and rule that made it."""
    store = runtime.profiles
    profile = store.resolve_id(workspace_id, profile_id)
    absorbed = store.absorbed_ids(workspace_id, profile.id)
    return {
        "profile_id": profile.id,
        "requested_id": profile_id,
        "collection": profile.collection,
        "created_at": isoformat_us(profile.created_us),
        "identifiers": [
            {
                "type": r.id_type,
                "value": r.id_value,
                "rule": r.rule,
                "message_id": r.message_id,
                "source_id": r.source_id,
                "linked_at": isoformat_us(r.created_us),
                "last_seen_at": isoformat_us(r.last_seen_us),
            }
            for r in store.identifiers(workspace_id, profile.id)
        ],
        "merges": [
            {
                "from_profile_id": m.from_profile_id,
                "into_profile_id": m.into_profile_id,
                "rule": m.rule,
                "message_id": m.message_id,
                "bridging_identifiers": m.detail.get("identifiers", []),
                "merged_at": isoformat_us(m.created_us),
            }
            for m in store.merges_of(workspace_id, [profile.id, *absorbed])
        ],
        "absorbed_profile_ids": absorbed,
    }
