"""Self-service link tokens: what a customer's e-mail link carries to reach their own profile.

A token is ``sst1.<claims>.<signature>``, URL-safe text:

* ``claims``: base64url (no padding) of the workspace id, the profile id, the expiry (whole
  seconds since the epoch) and a random nonce, separated by ``\\x1f``;
* ``signature``: base64url of HMAC-SHA256 over everything before it (``sst1.<claims>``), under
  a key derived from the server's secret key with a label of its own (:func:`link_key`), so a
  link's signature is never the hash of a write key, a token or a suppressed subject.

:func:`verify` computes the signature of whatever it is given and compares it in constant time
before it reads a claim; every failure — malformed, forged, tampered, expired — is the same
``None``. Nothing here touches a database: whether the profile still exists is the caller's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "sst1."
#: what the server's key is derived with for link signatures (domain separation)
KEY_LABEL = b"opencdp-self-service-link/v1"
_SEP = "\x1f"
#: longer texts are refused after the same amount of work (a real token is ~120 characters)
MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True)
class LinkClaims:
    """What a valid link token says: whose profile, in which workspace, until when."""

    workspace_id: str
    profile_id: str
    expires_s: int
    nonce: str


def link_key(server_key: bytes) -> bytes:
    """The key link tokens are signed with, derived from the server's secret key."""
    return hmac.new(server_key, KEY_LABEL, hashlib.sha256).digest()


def issue(key: bytes, workspace_id: str, profile_id: str, expires_s: int, nonce: bytes) -> str:
    """A token for the profile, valid until ``expires_s`` (seconds since the epoch). ``key``
    comes from :func:`link_key`; ``nonce`` is random bytes (16 are plenty)."""
    for name, value in (("workspace_id", workspace_id), ("profile_id", profile_id)):
        if not value or _SEP in value:
            raise ValueError(f"{name} must be a non-empty id without \\x1f")
    fields = (workspace_id, profile_id, str(int(expires_s)), _b64(nonce))
    head = PREFIX + _b64(_SEP.join(fields).encode("utf-8"))
    return f"{head}.{_sign(key, head)}"


def verify(key: bytes, token: str, now_s: float) -> LinkClaims | None:
    """The claims of a token this server signed and that has not expired at ``now_s``; None for
    anything else (one answer for every kind of failure)."""
    head, _, signature = token[:MAX_TOKEN_CHARS].rpartition(".")
    expected = _sign(key, head)  # always computed, whatever the shape of the text
    given = signature.encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        return None
    if len(token) > MAX_TOKEN_CHARS or not head.startswith(PREFIX):
        return None
    try:
        text = base64.urlsafe_b64decode(_padded(head[len(PREFIX) :])).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):  # pragma: no cover - signed by us
        return None
    parts = text.split(_SEP)
    if len(parts) != 4 or not parts[2].isdigit():  # pragma: no cover - signed by us
        return None
    workspace_id, profile_id, expires, nonce = parts
    if int(expires) <= now_s:
        return None
    return LinkClaims(workspace_id, profile_id, int(expires), nonce)


def _sign(key: bytes, head: str) -> str:
    digest = hmac.new(key, head.encode("utf-8", "replace"), hashlib.sha256).digest()
    return _b64(digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)
