"""Standard Webhooks 1.0 signatures (pure): what a receiver verifies to trust a delivery.

* A secret is 32 random bytes shown as ``whsec_`` + base64 (:func:`new_secret`); the HMAC key
  is the decoded bytes (:func:`secret_bytes`).
* ``webhook-id`` (``msg_`` + 26 hex characters) is derived from what the delivery is (destination, subscription, the source
  message), so every retry and every replay of it carries the same id: the receiver's
  idempotency key (:func:`webhook_id`).
* ``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(key, ``id.timestamp.body``)) over the
  exact body bytes sent, one per key while a rotated-out key is still honoured
  (:func:`signature_header`).
* Segment's classic ``X-Signature`` (hex HMAC-SHA1 under the raw secret text) on request
  (:func:`segment_signature`); it signs the whole body, where Segment signs a batch's first
  event only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret. Raises ``ValueError`` saying what is wrong."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret holds 24 to 64 bytes, this one {len(key)}")
    return key


def webhook_id(destination_id: str, subscription: str, message_id: str) -> str:
    """``msg_`` + 26 hex characters (104 bits) of SHA-256 over what the delivery is: the same
    for every attempt and every replay of it. (Hex, not base32: Python's base32 encoder is
    pure Python, and the worker derives an id for every delivery it routes.)"""
    digest = hashlib.sha256(
        "\x1f".join((destination_id, subscription, message_id)).encode("utf-8")
    ).hexdigest()
    return "msg_" + digest[:26]


def batch_id(ids: Sequence[str]) -> str:
    """The ``webhook-id`` of a request carrying several deliveries: derived from all of
    them, in order (receivers de-duplicate each message by its own ``messageId``)."""
    return "msg_" + hashlib.sha256("\x1f".join(ids).encode("utf-8")).hexdigest()[:26]


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` as sent at ``timestamp`` (Unix seconds)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: a signature per secret (the current one and any still honoured
    after a rotation), separated by spaces."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_)


def segment_signature(secret: str, body: bytes) -> str:
    """Segment's classic ``X-Signature``: hex HMAC-SHA1 of the body under the secret text."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
