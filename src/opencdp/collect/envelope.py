"""Request envelopes of the Tracking API (pure).

Turns the bytes and headers of one HTTP request into the write key and the list of raw messages
it carries. Only *envelope* problems raise here (not JSON, corrupt compression, body too large,
no write key); problems of single messages are left to :mod:`opencdp.collect.normalize`, so a
batch with a few bad events still lands.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from opencdp.errors import AuthenticationError, InvalidPayload, PayloadTooLarge

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
    """The body parsed as a JSON object, whatever the Content-Type said."""
    if not body.strip():
        raise InvalidPayload("request body is empty; send a JSON object", code="invalid_json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise InvalidPayload(
            f"body must be a JSON object, not {type(value).__name__}", code="invalid_json"
        )
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise InvalidPayload(
            f"body is nested deeper than {MAX_JSON_DEPTH} levels", code="invalid_json"
        )
    return value


# orjson parses up to 1024 levels but encodes at most 254, and every message is encoded again
# (size check, inbox row, API responses that wrap it a few levels deeper). Refuse at the door
# what could not be stored or served, instead of failing later with a 500.
MAX_JSON_DEPTH = 128
_ORJSON_MAX_ENCODE_DEPTH = 254


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """True when ``value`` has more than ``limit`` levels of arrays/objects.

    Encodes the value under ``254 - limit`` extra levels: orjson (in C, ~1 ms per 500 KB)
    refuses exactly when the value itself is deeper than ``limit``. A Python walk costs 20x more.
    """
    probe: Any = value
    for _ in range(_ORJSON_MAX_ENCODE_DEPTH - limit):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        return True
    return False


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
    if isinstance(candidate, str) and candidate:
        return candidate
    batch = body.get("batch")
    if isinstance(batch, list) and batch and isinstance(batch[0], dict):
        candidate = batch[0].get("writeKey")
        if isinstance(candidate, str) and candidate:
            return candidate
    raise AuthenticationError(
        "no write key: send it as the Basic auth username or as writeKey in the body",
        code="missing_write_key",
    )


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
    context = body.get("context")
    integrations = body.get("integrations")
    return Envelope(
        messages=batch,
        implied_type=None,
        sent_at=body.get("sentAt"),
        context=context if isinstance(context, dict) else {},
        integrations=integrations if isinstance(integrations, dict) else {},
    )
