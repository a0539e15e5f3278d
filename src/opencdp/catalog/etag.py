"""ETags of the catalog's answers and the cursor of its list pages.

An ETag is a digest of what the answer shows: the product's columns, its stock rows (with
their times) and its variants. Any change of any of them changes it; the same content has the
same ETag in every process (no time, no process state in it). It is weak (``W/"…"``): the
same content may be encoded differently on the wire (compression).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from opencdp.catalog.products import MAX_ID, CatalogError

_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(part)
        h.update(b"\x00")
    return f'W/"{h.hexdigest()}"'


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def product_etag(
    product: Mapping[str, Any],
    stock: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]] = (),
    variants: Iterable[str] = (),
) -> str:
    """The ETag of a product (its row or its answer), its stock rows and its variants."""
    rows = [tuple(s) if isinstance(s, tuple) else s for s in stock]  # NamedTuples as arrays
    return _digest(_canonical(product), _canonical(rows), _canonical(list(variants)))


def list_etag(items: Iterable[Mapping[str, Any]], next_cursor: str | None) -> str:
    """The ETag of a list page: its products and where the next page starts."""
    return _digest(_canonical(list(items)), (next_cursor or "").encode())


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as RFC 9110 asks
    for this header; ``*`` matches any)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _TAG.fullmatch(etag)
    opaque = wanted.group(2) if wanted else etag
    for candidate in if_none_match.split(","):
        found = _TAG.fullmatch(candidate)
        if found is not None and found.group(2) == opaque:
            return True
    return False


def encode_cursor(last_id: str) -> str:
    """The opaque ``next`` cursor after the product ``last_id`` (base64url, no padding)."""
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The product id a cursor of :func:`encode_cursor` holds; :class:`CatalogError` for
    anything else."""
    if not _CURSOR.fullmatch(cursor):
        raise _bad_cursor()
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None
    if not text or len(text) > MAX_ID or "\x00" in text or encode_cursor(text) != cursor:
        raise _bad_cursor()
    return text


def _bad_cursor() -> CatalogError:
    return CatalogError("next", "not a cursor this API returned", code="invalid_cursor")
