"""Member tokens: what a member card's barcode and QR code carry, and what the till scans.

A token is 20 characters of Crockford's base32 (digits and upper-case letters without I, L,
O, U: nothing to misread on a receipt or type wrongly at a till), 100 random bits: unguessable,
and short enough for a Code 128 barcode that scanners read from a phone screen.
"""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 20
#: what a token or a physical card number may look like in a URL path
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_\-]{4,64}")


def new_member_token() -> str:
    """A fresh random token."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(LENGTH))


def is_token_shaped(value: str) -> bool:
    """Whether ``value`` can be a token or a card number (4 to 64 of ``A-Za-z0-9_-``)."""
    return TOKEN_PATTERN.fullmatch(value) is not None
