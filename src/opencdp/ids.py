"""Opaque identifiers and secrets: profile ids, source ids, write keys, access tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """A random id such as ``use_3kT…`` (128 bits of randomness, 22 base62 characters)."""
    return f"{prefix}_{_base62(secrets.randbits(128), 22)}"


def new_secret() -> str:
    """A fresh write key or access token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """The stored form of a write key or token: only its SHA-256 is kept."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def hint(secret: str) -> str:
    """The first characters of a secret, enough to tell keys apart in a listing."""
    return secret[:4] + "…"
