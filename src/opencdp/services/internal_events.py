"""Events that OpenCDP itself records on a profile: a consent change through the API, a trait
edited on the self-service profile. Every such change is an ordinary event, committed through
the collector into the inbox and applied by the worker like any other, so the profile's
history and its provenance stay in one place (the timeline).

They come from an internal source per workspace, named :data:`INTERNAL_SOURCE` (created on
first use; its write key is random and never shown, so nothing outside can send as it), and
are not subject to tracking plans (they are OpenCDP's own, in a shape it defines), and
carry ``context.opencdp = {"channel", "actor"}``: which channel made the change (``api``,
``self-service``) and who (a token id, or ``customer``).
"""

from __future__ import annotations

import uuid
from typing import Any

from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.storage.admin import INTERNAL_SOURCE, Source


def internal_source(rt: Runtime, workspace_id: str) -> Source:
    """The workspace's internal source, created on first use."""
    found = rt.admin.find_source(workspace_id, INTERNAL_SOURCE)
    if found is not None:
        return found
    try:
        return rt.admin.add_source(workspace_id, INTERNAL_SOURCE, rt.now_us(), internal=True)[0]
    except Exception:  # a concurrent caller made it first
        again = rt.admin.find_source(workspace_id, INTERNAL_SOURCE)
        if again is None:
            raise
        return again


def addressed_to(rt: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    """The identifying part of a message that resolves to the profile: its user id, else an
    anonymous id, else its other identifiers as ``context.externalIds`` (e-mail and phone as
    traits). Raises NotFound for a profile without identifiers (erased or unknown)."""
    rows = rt.profiles.identifiers(workspace_id, profile_id)
    by_type: dict[str, str] = {}
    for row in rows:
        by_type.setdefault(row.id_type, row.id_value)
    if not by_type:
        raise NotFound(f"no profile {profile_id!r}")
    if "user_id" in by_type:
        return {"userId": by_type["user_id"]}
    if "anonymous_id" in by_type:
        return {"anonymousId": by_type["anonymous_id"]}
    kind, value = sorted(by_type.items())[0]
    if kind in ("email", "phone"):
        return {"context": {"traits": {kind: value}}, "traits": {kind: value}}
    return {
        "context": {
            "externalIds": [{"id": value, "type": kind, "collection": "users", "encoding": "none"}]
        }
    }


def emit(
    rt: Runtime,
    workspace_id: str,
    profile_id: str,
    message: dict[str, Any],
    *,
    channel: str,
    actor: str,
) -> str:
    """Commit ``message`` (a Segment message without identifiers: type, event, properties,
    traits, context) for the profile into the inbox; returns its message id. Raises
    RequestError when the collector refuses it (the refusal is in the quarantine)."""
    address = addressed_to(rt, workspace_id, profile_id)
    context = {**address.get("context", {}), **message.get("context", {})}
    if "externalIds" in address.get("context", {}) and "externalIds" in message.get("context", {}):
        # the message's identifiers add to the profile's, never replace them
        context["externalIds"] = [
            *address["context"]["externalIds"],
            *message["context"]["externalIds"],
        ]
    context["opencdp"] = {"channel": channel, "actor": actor}
    context.setdefault("library", {"name": f"opencdp-{channel}"})
    full = {**message, **{k: v for k, v in address.items() if k != "context"}}
    if "traits" in address and "traits" in message:
        full["traits"] = {**address["traits"], **message["traits"]}
    full["context"] = context
    full.setdefault("messageId", f"{channel}-{uuid.uuid4()}")
    result = rt.collector.ingest_messages(internal_source(rt, workspace_id), [full])
    if result.quarantined:
        detail = result.errors[0]["message"] if result.errors else "refused"
        raise RequestError(f"the change was refused: {detail}", code="invalid_change")
    return str(full["messageId"])
