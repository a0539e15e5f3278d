"""Segment's audience messages (pure): what a destination subscribed to an audience receives
when a profile enters or leaves it.

* an **identify** with the audience key as a boolean trait (``traits.<key>``: true on entry,
  false on exit) and the profile's e-mail in ``traits.email``;
* a **track** ``Audience Entered`` / ``Audience Exited`` with ``properties.audience_key`` and
  ``properties.<key>`` as a boolean, the e-mail in ``context.traits.email``;

each with ``context.personas`` (``computation_class: audience``, the key as
``computation_id`` and ``computation_key``, the workspace as ``namespace`` and
``space_id``) and ``integrations`` naming only the destination — the shapes Segment Engage
sends, so destinations built for them work unchanged. The profile is named by its first
``user_id``, else its first ``anonymous_id``, else its OpenCDP profile id as ``anonymousId``.

With ``per_identifier`` (Segment's "send one event per identifier"), the messages go once
per e-mail address of the profile — an ad or e-mail tool matching on addresses then hears of
every address — each named by its own message id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

ENTERED = "Audience Entered"
EXITED = "Audience Exited"


def membership_of(event: dict[str, Any]) -> tuple[str, bool] | None:
    """(audience key, entered) of a stored membership event, or None for any other event."""
    name = event.get("event")
    if event.get("type") != "track" or name not in (ENTERED, EXITED):
        return None
    key = (event.get("properties") or {}).get("audience_key")
    return (key, name == ENTERED) if isinstance(key, str) else None


def is_removal(message: dict[str, Any]) -> bool:
    """Whether a message tells a destination that a profile left an audience (the track
    ``Audience Exited``, or the identify with the audience's trait false). Such messages go
    even to a destination the profile does not consent to: dropping someone from an ad list
    or a mailing list serves their withdrawal, it does not use their data for it."""
    context = message.get("context")
    personas = context.get("personas") if isinstance(context, dict) else None
    if not isinstance(personas, dict) or personas.get("computation_class") != "audience":
        return False
    if message.get("type") == "track":
        return message.get("event") == EXITED
    key = personas.get("computation_key")
    traits = message.get("traits")
    return (
        message.get("type") == "identify" and isinstance(traits, dict) and traits.get(key) is False
    )


def audience_messages(
    *,
    workspace_id: str,
    destination_id: str,
    key: str,
    entered: bool,
    profile_id: str,
    identifiers: Sequence[tuple[str, str]],
    message_id: str,
    timestamp: str,
    identify: bool = True,
    track: bool = True,
    per_identifier: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """The messages of one membership change: (message id, payload) for the identify and/or
    the track, as chosen (with ``per_identifier``: for each e-mail address)."""
    emails = sorted({v for k, v in identifiers if k == "email"})
    if per_identifier and len(emails) > 1:
        out: list[tuple[str, dict[str, Any]]] = []
        others = [(k, v) for k, v in identifiers if k != "email"]
        for address in emails:
            digest = hashlib.sha1(address.encode(), usedforsecurity=False).hexdigest()[:12]
            out.extend(
                audience_messages(
                    workspace_id=workspace_id,
                    destination_id=destination_id,
                    key=key,
                    entered=entered,
                    profile_id=profile_id,
                    identifiers=[*others, ("email", address)],
                    message_id=f"{message_id}:{digest}",
                    timestamp=timestamp,
                    identify=identify,
                    track=track,
                )
            )
        return out
    first = _first(identifiers)
    who: dict[str, Any] = {}
    if "user_id" in first:
        who["userId"] = first["user_id"]
    else:
        who["anonymousId"] = first.get("anonymous_id", profile_id)
    email = first.get("email")
    personas = {
        "computation_class": "audience",
        "computation_id": key,
        "computation_key": key,
        "namespace": workspace_id,
        "space_id": workspace_id,
    }
    integrations = {"All": False, destination_id: True}
    out = []
    if identify:
        traits: dict[str, Any] = {key: entered}
        if email is not None:
            traits["email"] = email
        out.append(
            (
                f"{message_id}:identify",
                {
                    "type": "identify",
                    **who,
                    "messageId": f"{message_id}:identify",
                    "timestamp": timestamp,
                    "traits": traits,
                    "context": {"personas": personas},
                    "integrations": integrations,
                },
            )
        )
    if track:
        context: dict[str, Any] = {"personas": personas}
        if email is not None:
            context["traits"] = {"email": email}
        out.append(
            (
                f"{message_id}:track",
                {
                    "type": "track",
                    "event": ENTERED if entered else EXITED,
                    **who,
                    "messageId": f"{message_id}:track",
                    "timestamp": timestamp,
                    "properties": {"audience_key": key, key: entered},
                    "context": context,
                    "integrations": integrations,
                },
            )
        )
    return out


def _first(identifiers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The first value of each identifier type, in sorted order (stable across runs)."""
    out: dict[str, str] = {}
    for kind, value in sorted(identifiers):
        out.setdefault(kind, value)
    return out
