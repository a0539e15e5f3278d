"""Opaque identifiers and secrets: profile ids, source ids, write keys, access tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from opencdp.errors import ConfigurationError

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


def hash_secret(secret: str, key: bytes) -> str:
    """The stored form of a write key or token: HMAC-SHA256 under the server's secret key.

    A keyed hash, so that a copy of the database alone does not let anyone test guesses of a
    low-entropy secret (a bootstrap token someone chose by hand): that needs the key too.
    """
    return hmac.new(key, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def legacy_hash(secret: str) -> str:
    """The unkeyed SHA-256 that earlier versions stored (rows are upgraded when used)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str, key: bytes) -> bool:
    """Constant-time comparison of a presented secret with a stored (keyed) hash."""
    return hmac.compare_digest(hash_secret(secret, key), stored_hash)


def load_or_create_key(path: Path) -> bytes:
    """The server's secret key kept in ``path`` (created with mode 0600 on first use)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_key(path)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
    if not text:
        raise ConfigurationError(
            f"{path} is empty: delete it to make a new key (tokens and write keys hashed with the old one stop working)"
        )
    return text.encode("utf-8")


def hint(secret: str) -> str:
    """The first characters of a secret, enough to tell keys apart in a listing."""
    return secret[:4] + "…"
