"""Normalization and validation of single messages (pure).

Every raw message of a request ends up either as a :class:`NormalizedEvent`, ready for the inbox,
or as a :class:`~opencdp.collect.rejection.Rejection` with a typed reason, which the collector
stores in quarantine with the raw payload. Nothing here touches a database or the clock:
``received_at`` is passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opencdp.collect.envelope import (
    Envelope,
    MessageNotEncodable,
    MessageNotUnicode,
    MessageTooDeep,
    clipped,
    encode_message,
    without_write_keys,
)
from opencdp.collect.rejection import Rejection
from opencdp.privacy.consent import CONSENT_PREFERENCES_MISSING, INVALID_CONSENT_PREFERENCES
from opencdp.privacy.consent import preferences_problem as consent_problem
from opencdp.timeutil import EPOCH, LATEST, isoformat, parse_timestamp, to_us

EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_ID = 100
MAX_EVENT_NAME = 200  # also page/screen names: both land in the 200-character events.event
MAX_ID_LENGTH = 500
MAX_TRAIT_KEY = 300  # the traits.key column

# Reasons a message is quarantined at collection time. Stable strings: the API filters on them.
MISSING_IDENTITY = "missing_identity"
MISSING_EVENT = "missing_event"
MISSING_GROUP_ID = "missing_group_id"
MISSING_PREVIOUS_ID = "missing_previous_id"
OVERSIZE_EVENT = "oversize_event"
BAD_TIMESTAMP = "bad_timestamp"
INVALID_TYPE = "invalid_type"
INVALID_MESSAGE_ID = "invalid_message_id"
INVALID_FIELD = "invalid_field"
NOT_AN_OBJECT = "not_an_object"
BATCH_LIMIT_EXCEEDED = "batch_limit_exceeded"
NESTED_TOO_DEEP = "nested_too_deep"
INVALID_UNICODE = "invalid_unicode"
REASONS = (
    MISSING_IDENTITY,
    MISSING_EVENT,
    MISSING_GROUP_ID,
    MISSING_PREVIOUS_ID,
    OVERSIZE_EVENT,
    BAD_TIMESTAMP,
    INVALID_TYPE,
    INVALID_MESSAGE_ID,
    INVALID_FIELD,
    NOT_AN_OBJECT,
    BATCH_LIMIT_EXCEEDED,
    NESTED_TOO_DEEP,
    INVALID_UNICODE,
    CONSENT_PREFERENCES_MISSING,
    INVALID_CONSENT_PREFERENCES,
)


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    """A valid message, normalized: what the inbox stores and the worker processes."""

    message_id: str
    type: str
    payload: dict[str, Any]
    timestamp_us: int
    received_us: int


def _clean_id(value: Any) -> str | None:
    """An identifier as a stripped string, or None when absent; numbers are accepted as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("must be a string, not a boolean")
    if isinstance(value, int | float):
        # Whole floats read as integers (42.0 -> "42"); others, and floats too large to be
        # exact integers (2.5e+210), keep their shortest form (repr).
        value = (
            (str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value))
            if isinstance(value, float)
            else str(value)
        )
    if not isinstance(value, str):
        raise TypeError(f"must be a string, not {type(value).__name__}")
    value = value.strip()
    return value or None


_OBJECT_FIELDS = ("traits", "properties", "context", "integrations")


def normalize(
    raw: Any,
    envelope: Envelope,
    *,
    received_at: datetime,
    max_event_bytes: int,
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> NormalizedEvent | Rejection:
    """Validate one raw message and bring it to the stored shape.

    The stored shape is the Segment message with: JSON nulls at the top level removed; ``type``
    set; a ``messageId`` (generated when missing); identify traits taken from
    ``context.traits`` when the top-level ``traits`` are absent; batch-level ``context`` and
    ``integrations`` merged under the message's own; ``writeKey`` removed (a secret); and the
    four Segment timestamps (``originalTimestamp``, ``timestamp`` corrected for client clock
    skew from ``sentAt``, ``sentAt``, ``receivedAt``).
    """
    if not isinstance(raw, dict):
        return Rejection(NOT_AN_OBJECT, f"a message must be a JSON object, not {_kind(raw)}", raw)
    # What cannot be stored as sent is quarantined as a copy that can: deep parts cut off, lone
    # surrogates replaced (the detail says so); the rest of its batch still lands.
    try:
        encoded = encode_message(raw)
    except (MessageTooDeep, MessageNotUnicode) as exc:
        kept = clipped(raw)
        too_deep = isinstance(exc, MessageTooDeep)
        return Rejection(
            NESTED_TOO_DEEP if too_deep else INVALID_UNICODE,
            f"message {exc}" + ("" if too_deep else " (kept with U+FFFD in its place)"),
            kept,
            message_id=_maybe_str(kept.get("messageId")),
            type=envelope.implied_type or _maybe_str(kept.get("type")),
            event=_maybe_str(kept.get("event")),
        )
    except MessageNotEncodable as exc:
        return Rejection(INVALID_FIELD, f"message {exc}", raw)
    msg = without_write_keys({k: v for k, v in raw.items() if v is not None})
    event = msg.get("event") if isinstance(msg.get("event"), str) else None
    typ = envelope.implied_type or msg.get("type")
    if not isinstance(typ, str) or typ.strip().lower() not in EVENT_TYPES:
        return Rejection(
            INVALID_TYPE,
            f"type must be one of {', '.join(sorted(EVENT_TYPES))}; got {typ!r}",
            raw,
            event=event,
        )
    typ = typ.strip().lower()
    msg["type"] = typ

    # PostgreSQL text cannot hold NUL: a message carrying one would fail the inbox commit or,
    # worse, every worker batch it is in. Refuse it on every backend (orjson writes \u0000).
    if (
        (b"\\u0000" in encoded and _has_nul(raw))
        or _has_nul(envelope.context)
        or _has_nul(envelope.integrations)
    ):
        return Rejection(INVALID_FIELD, "message contains a NUL character (\\u0000)", raw, type=typ)
    raw_size = len(encoded)
    if raw_size > max_event_bytes:
        return Rejection(
            OVERSIZE_EVENT,
            f"message is {raw_size} bytes; the limit per event is {max_event_bytes} bytes",
            raw,
            message_id=_maybe_str(msg.get("messageId")),
            type=typ,
            event=event,
        )

    # messageId: opaque, at most 100 characters, generated when missing.
    try:
        message_id = _clean_id(msg.get("messageId"))
    except TypeError as exc:
        return Rejection(INVALID_MESSAGE_ID, f"messageId {exc}", raw, type=typ, event=event)
    if message_id is None:
        message_id = new_message_id()
    elif len(message_id) > MAX_MESSAGE_ID:
        return Rejection(
            INVALID_MESSAGE_ID,
            f"messageId is {len(message_id)} characters; the limit is {MAX_MESSAGE_ID}",
            raw,
            message_id=None,  # not a valid id: the quarantine gives the row its own
            type=typ,
            event=event,
        )
    msg["messageId"] = message_id

    def reject(reason: str, detail: str) -> Rejection:
        return Rejection(reason, detail, raw, message_id=message_id, type=typ, event=event)

    for name in _OBJECT_FIELDS:
        if name in msg and not isinstance(msg[name], dict):
            return reject(INVALID_FIELD, f"{name} must be a JSON object, not {_kind(msg[name])}")

    # Identity: null counts as absent; numbers are accepted as text.
    for name in ("userId", "anonymousId", "groupId", "previousId"):
        try:
            value = _clean_id(msg.get(name))
        except TypeError as exc:
            return reject(INVALID_FIELD, f"{name} {exc}")
        if value is None:
            msg.pop(name, None)
        elif len(value) > MAX_ID_LENGTH:
            return reject(INVALID_FIELD, f"{name} is longer than {MAX_ID_LENGTH} characters")
        else:
            msg[name] = value
    if "userId" not in msg and "anonymousId" not in msg:
        return reject(MISSING_IDENTITY, "every message needs a non-empty userId or anonymousId")

    if typ == "track":
        if "event" in msg and not isinstance(msg["event"], str):
            return reject(INVALID_FIELD, f"event must be a string, not {_kind(msg['event'])}")
        name = (msg.get("event") or "").strip()
        if not name:
            return reject(MISSING_EVENT, "track messages need a non-empty event name")
        if len(name) > MAX_EVENT_NAME:
            return reject(INVALID_FIELD, f"event name is longer than {MAX_EVENT_NAME} characters")
        msg["event"] = name
    elif typ == "group" and "groupId" not in msg:
        return reject(MISSING_GROUP_ID, "group messages need a non-empty groupId")
    elif typ == "alias":
        if "previousId" not in msg:
            return reject(MISSING_PREVIOUS_ID, "alias messages need a non-empty previousId")
        if "userId" not in msg:
            return reject(MISSING_IDENTITY, "alias messages need a non-empty userId")
    for name in ("name", "category"):
        if name in msg and not isinstance(msg[name], str):
            return reject(INVALID_FIELD, f"{name} must be a string, not {_kind(msg[name])}")
    if len(msg.get("name", "")) > MAX_EVENT_NAME:
        return reject(INVALID_FIELD, f"name is longer than {MAX_EVENT_NAME} characters")

    # Batch-level context and integrations apply to every item; the item's own keys win.
    if envelope.context:
        msg["context"] = {**envelope.context, **msg.get("context", {})}
    if envelope.integrations:
        msg["integrations"] = {**envelope.integrations, **msg.get("integrations", {})}
    # Consent (engage-compat.md §5.3): the consent event needs its preferences, and
    # preferences anywhere must be category ids with booleans.
    refused = consent_problem(msg)
    if refused is not None:
        return reject(*refused)
    if typ == "identify" and "traits" not in msg:
        context_traits = msg.get("context", {}).get("traits")
        if isinstance(context_traits, dict):
            msg["traits"] = dict(context_traits)
    for where, traits in (("traits", msg.get("traits")), ("context.traits", _context_traits(msg))):
        if isinstance(traits, dict) and any(len(k) > MAX_TRAIT_KEY for k in traits):
            return reject(
                INVALID_FIELD, f"a key of {where} is longer than {MAX_TRAIT_KEY} characters"
            )

    # Timestamps (segment-compat.md §1.5).
    try:
        original = _first_time(msg, "originalTimestamp", "timestamp")
        sent_raw = msg.get("sentAt", envelope.sent_at)
        sent_at = parse_timestamp(sent_raw) if sent_raw is not None else None
    except ValueError as exc:
        return reject(BAD_TIMESTAMP, f"unreadable timestamp: {exc}")
    timestamp = original or received_at
    if original is not None and sent_at is not None:
        corrected = received_at - (sent_at - original)
        # A correction that lands outside 1970..2200 says the two client times disagree, not
        # that the event is unusable: it keeps the time the client gave.
        if EPOCH <= corrected < LATEST:
            timestamp = corrected
    msg["originalTimestamp"] = isoformat(original or timestamp)
    msg["timestamp"] = isoformat(timestamp)
    if sent_at is not None:
        msg["sentAt"] = isoformat(sent_at)
    msg["receivedAt"] = isoformat(received_at)

    return NormalizedEvent(
        message_id=message_id,
        type=typ,
        payload=msg,
        timestamp_us=to_us(timestamp),
        received_us=to_us(received_at),
    )


def _first_time(msg: dict[str, Any], *names: str) -> datetime | None:
    """The client-side time of the event: ``originalTimestamp`` if sent, else ``timestamp``."""
    for name in names:
        if name in msg:
            return parse_timestamp(msg[name])
    return None


def _context_traits(msg: dict[str, Any]) -> Any:
    context = msg.get("context")
    return context.get("traits") if isinstance(context, dict) else None


def _has_nul(value: Any) -> bool:
    """True when a string (or object key) anywhere in ``value`` contains U+0000."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _maybe_str(value: Any) -> str | None:
    """A usable message id for the quarantine row, or None (empty, or too long to be the id:
    a truncated id could be another message's)."""
    if isinstance(value, str) and value.strip() and len(value) <= MAX_MESSAGE_ID:
        return value
    return None


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
