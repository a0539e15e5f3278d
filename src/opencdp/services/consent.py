"""Consent use cases the HTTP API, the CLI and the self-service profile share: read a profile's
consent per category, and change it.

A change is not written to the profile directly: it is the track event ``Segment Consent
Preference Updated`` with ``context.consent.categoryPreferences``, committed through the
collector into the inbox from the workspace's internal source
(:mod:`opencdp.services.internal_events`, with ``context.opencdp = {channel, actor}``), so the
worker applies it like consent from any other touchpoint — by event time, with provenance, on
the timeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opencdp.errors import RequestError
from opencdp.privacy.consent import CONSENT_EVENT, category_problem, is_consent_key, recorded
from opencdp.runtime import Runtime
from opencdp.services.internal_events import emit
from opencdp.services.profile_lookup import locate_profile
from opencdp.timeutil import isoformat_us


def check_preferences(preferences: Any) -> dict[str, bool]:
    """``preferences`` as category id → bool; raises RequestError naming what is wrong."""
    if not isinstance(preferences, Mapping) or not preferences:
        raise RequestError(
            'categoryPreferences: an object of category id -> true|false, e.g. {"marketing": true}',
            code="invalid_consent",
        )
    for category, value in preferences.items():
        problem = category_problem(category)
        if problem is not None:
            raise RequestError(f"categoryPreferences: {problem}", code="invalid_consent")
        if not isinstance(value, bool):
            raise RequestError(
                f"categoryPreferences.{category}: true or false, not {value!r}",
                code="invalid_consent",
            )
    return dict(preferences)


def set_consent(
    runtime: Runtime,
    workspace_id: str,
    profile_id: str,
    preferences: Mapping[str, bool],
    *,
    channel: str,
    actor: str,
) -> str:
    """Record a consent change for the profile ``profile_id`` names (its id or any
    ``type:value`` identifier) as a :data:`CONSENT_EVENT` event in the inbox; returns its
    message id. Only the categories given change. Raises NotFound, RequestError."""
    checked = check_preferences(preferences)
    profile = locate_profile(runtime, workspace_id, profile_id)
    message = {
        "type": "track",
        "event": CONSENT_EVENT,
        "properties": {},
        "context": {"consent": {"categoryPreferences": checked}},
    }
    return emit(runtime, workspace_id, profile.id, message, channel=channel, actor=actor)


def get_consent(runtime: Runtime, workspace_id: str, profile_id: str) -> dict[str, Any]:
    """The profile's consent: each recorded category with its value, event time, source id and
    message id, and the workspace's default for a category without a record."""
    profile = locate_profile(runtime, workspace_id, profile_id)
    traits = {
        k: v
        for k, v in runtime.profiles.traits(workspace_id, profile.id).items()
        if is_consent_key(k) and v.message_id is not None  # not a computed value
    }
    categories = recorded(traits)
    settings = runtime.admin.workspace_settings(workspace_id)
    return {
        "profile_id": profile.id,
        "default": settings.consent_default,
        "categoryPreferences": {
            category: {
                "value": tv.value,
                "timestamp": isoformat_us(tv.event_us),
                "source_id": tv.source_id,
                "message_id": tv.message_id,
            }
            for category, tv in sorted(categories.items())
        },
    }
