"""Request envelopes of the Tracking API (pure).

Turns the bytes and headers of one HTTP request into the write key and the list of raw messages
it carries. Only *envelope* problems raise here (not JSON, corrupt compression, body too large,
no write key); problems of single messages are left to :mod:`opencdp.collect.normalize`, so a
batch with a few bad events still lands.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from opencdp.errors import AuthenticationError, InvalidPayload, PayloadTooLarge
from opencdp.timeutil import parse_timestamp

# Path segment -> implied message type; None means the body is a batch envelope.
ROUTES: dict[str, str | None] = {
    "identify": "identify",
    "track": "track",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
    "batch": None,
    "import": None,
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": None,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one request carries: its messages plus the batch-level fields that apply to each."""

    messages: list[Any]
    implied_type: str | None
    sent_at: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    integrations: dict[str, Any] = field(default_factory=dict)


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The request body with ``Content-Encoding`` (gzip, deflate) undone.

    Decompression is bounded by ``max_bytes`` so that a small compression bomb cannot take the
    server's memory: anything that inflates past the limit raises :class:`PayloadTooLarge`.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > max_bytes:
            raise PayloadTooLarge(
                f"request body is {len(body)} bytes; the limit is {max_bytes} bytes",
                code="payload_too_large",
            )
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        # RFC 9110 "deflate" is zlib-wrapped; some clients send raw deflate. Detect the header.
        wbits = zlib.MAX_WBITS if _looks_like_zlib(body) else -zlib.MAX_WBITS
    else:
        raise InvalidPayload(
            f"unsupported Content-Encoding {content_encoding!r}; send gzip, deflate or none",
            code="unsupported_encoding",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"decompressed body exceeds the limit of {max_bytes} bytes",
                code="payload_too_large",
            )
        out += inflater.flush()
    except zlib.error as exc:
        raise InvalidPayload(
            f"body is not valid {encoding} data ({exc}); check Content-Encoding",
            code="invalid_encoding",
        ) from None
    if not inflater.eof:
        raise InvalidPayload(
            f"{encoding} body is truncated; resend the whole request", code="invalid_encoding"
        )
    if len(out) > max_bytes:
        raise PayloadTooLarge(
            f"decompressed body exceeds the limit of {max_bytes} bytes", code="payload_too_large"
        )
    return out


def _looks_like_zlib(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] * 256 + body[1]) % 31 == 0


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body parsed as a JSON object, whatever the Content-Type said.

    Nesting is not limited here: a message nested too deep is a problem of that message, which
    :func:`encode_message` finds, so the rest of its batch still lands. A body deeper than the
    parser's own limit (1,024 levels) cannot be read at all and is ``invalid_json``.
    """
    if not body.strip():
        raise InvalidPayload("request body is empty; send a JSON object", code="invalid_json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        value = _parse_with_lone_surrogates(body, exc)
    if not isinstance(value, dict):
        raise InvalidPayload(
            f"body must be a JSON object, not {type(value).__name__}", code="invalid_json"
        )
    return value


# A "\uD800"-"\uDFFF" escape is valid JSON syntax that orjson refuses (a lone surrogate is no
# Unicode character). Such a body is read with the standard library so that only the messages
# holding one are quarantined (``invalid_unicode``), not the whole batch.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _parse_with_lone_surrogates(body: bytes, error: orjson.JSONDecodeError) -> Any:
    invalid = InvalidPayload(f"body is not valid JSON: {error}", code="invalid_json")
    if not _SURROGATE_ESCAPE.search(body):
        raise invalid from None
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise invalid from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# orjson parses up to 1024 levels but encodes at most 254, and every message is encoded again
# (size check, inbox row, API responses that wrap it a few levels deeper). A message deeper than
# this is quarantined (``nested_too_deep``) instead of failing later with a 500.
MAX_JSON_DEPTH = 128
_ORJSON_MAX_ENCODE_DEPTH = 254
_PROBE_LEVELS = _ORJSON_MAX_ENCODE_DEPTH - MAX_JSON_DEPTH


class MessageTooDeep(ValueError):
    """A message nested deeper than :data:`MAX_JSON_DEPTH` levels."""


class MessageNotUnicode(ValueError):
    """A message holding a lone UTF-16 surrogate (a string no UTF-8 text can carry)."""


class MessageNotEncodable(ValueError):
    """A message JSON cannot hold otherwise (an integer beyond 64 bits)."""


def encode_message(value: Any) -> bytes:
    """``value`` as JSON bytes; raises :class:`MessageTooDeep` or :class:`MessageNotUnicode`.

    Encodes the value under ``254 - MAX_JSON_DEPTH`` extra levels, so that orjson (in C)
    refuses exactly when the value itself is too deep, and the same encoding serves as the
    message's bytes (the extra brackets are cut off). A Python walk would cost 20x more.
    """
    probe: Any = value
    for _ in range(_PROBE_LEVELS):
        probe = [probe]
    try:
        encoded = orjson.dumps(probe)
    except orjson.JSONEncodeError as exc:
        if has_lone_surrogate(value):
            raise MessageNotUnicode("holds a lone UTF-16 surrogate, which is not text") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise MessageTooDeep(f"is nested deeper than {MAX_JSON_DEPTH} levels") from None
        raise MessageNotEncodable(f"cannot be stored as JSON: {exc}") from None
    return encoded[_PROBE_LEVELS:-_PROBE_LEVELS]


def _depth(value: Any) -> int:
    """Levels of arrays/objects in ``value`` (only on the error path: a Python walk)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def storable(value: Any) -> bool:
    """True when ``value`` can be stored as it is (not too deep, valid text)."""
    try:
        encode_message(value)
    except ValueError:
        return False
    return True


def has_lone_surrogate(value: Any) -> bool:
    """True when a string (or an object key) anywhere in ``value`` holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _is_utf8_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _is_utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clipped(value: Any, levels: int = MAX_JSON_DEPTH - 1) -> Any:
    """A storable copy of a message for the quarantine: containers deeper than ``levels`` are
    replaced by a note, lone surrogates by U+FFFD. The rest stays as sent, for inspection."""
    if isinstance(value, str):
        if _is_utf8_text(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict | list) and levels <= 0:
        return f"(nested deeper than {MAX_JSON_DEPTH} levels: removed)"
    if isinstance(value, dict):
        return {clipped(k, 1): clipped(v, levels - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clipped(v, levels - 1) for v in value]
    return value


def write_key_from_basic(authorization: str | None) -> str | None:
    """The write key in an ``Authorization: Basic`` header (username; the colon is optional)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username = decoded.split(":", 1)[0]
    return username or None


def find_write_key(authorization: str | None, body: dict[str, Any]) -> str:
    """The write key by Segment's order: Basic username, body ``writeKey``, ``batch[0].writeKey``."""
    key = write_key_from_basic(authorization)
    if key:
        return key
    candidate = body.get("writeKey")
    if isinstance(candidate, str) and candidate and _is_utf8_text(candidate):
        return candidate
    batch = body.get("batch")
    if isinstance(batch, list) and batch and isinstance(batch[0], dict):
        candidate = batch[0].get("writeKey")
        if isinstance(candidate, str) and candidate and _is_utf8_text(candidate):
            return candidate
    raise AuthenticationError(
        "no write key: send it as the Basic auth username or as writeKey in the body",
        code="missing_write_key",
    )


def without_write_keys(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without its write keys (top level and ``context.writeKey``): a secret is
    never stored, in the inbox or in quarantine."""
    context = message.get("context")
    if "writeKey" not in message and not (isinstance(context, dict) and "writeKey" in context):
        return message
    out = {k: v for k, v in message.items() if k != "writeKey"}
    if isinstance(context, dict) and "writeKey" in context:
        out["context"] = {k: v for k, v in context.items() if k != "writeKey"}
    return out


def split_envelope(route: str, body: dict[str, Any]) -> Envelope:
    """The messages of a request to ``/v1/{route}`` and the batch-level fields.

    Single-message routes carry one message whose type the path implies. Batch routes carry
    ``batch``: a list whose items must each name their ``type``.
    """
    implied = ROUTES[route]
    if implied is not None:
        return Envelope(messages=[body], implied_type=implied)
    batch = body.get("batch")
    if batch is None:
        raise InvalidPayload("batch request has no 'batch' list", code="invalid_batch")
    if not isinstance(batch, list):
        raise InvalidPayload("'batch' must be a JSON array of messages", code="invalid_batch")
    # The batch's own fields only add to its messages. One that cannot be used (``"sentAt":
    # "yesterday"``, ``"context": "str"``, an object too deep to store) is ignored, so the
    # messages still land: a garbage envelope must not cost good events.
    context = body.get("context")
    integrations = body.get("integrations")
    return Envelope(
        messages=batch,
        implied_type=None,
        sent_at=_readable_time(body.get("sentAt")),
        context=context if isinstance(context, dict) and storable(context) else {},
        integrations=(
            integrations if isinstance(integrations, dict) and storable(integrations) else {}
        ),
    )


def _readable_time(value: Any) -> Any:
    """``value`` when it is a readable timestamp, else None."""
    if value is None:
        return None
    try:
        parse_timestamp(value)
    except (TypeError, ValueError):
        return None
    return value
