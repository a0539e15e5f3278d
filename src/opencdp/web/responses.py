"""JSON responses and error bodies shared by every route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from opencdp.errors import OpenCDPError, RateLimited, StorageError

#: Seconds a client should wait after a 503 (the database failed to write, e.g. disk full).
STORAGE_RETRY_AFTER = 5


class JSON(Response):
    """A JSON response rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSON:
    """Tracking API / OpenCDP API error body: ``{"code", "message"}``."""
    return JSON({"code": code, "message": message}, status_code=status, headers=headers)


def from_exception(exc: OpenCDPError) -> JSON:
    """The response for an OpenCDP error (429s carry Retry-After and X-RateLimit-Reset; 503s,
    when the database cannot write, Retry-After)."""
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after), "X-RateLimit-Reset": str(exc.retry_after)}
    elif isinstance(exc, StorageError):
        headers = {"Retry-After": str(STORAGE_RETRY_AFTER)}
    return error(exc.status, exc.code, exc.message, headers)


def profile_error(status: int, code: str, message: str) -> JSON:
    """Segment Profile API error body: ``{"error": {"code", "message"}}`` (the Request-Id
    header is set on every response by :mod:`opencdp.web.request_id`)."""
    return JSON({"error": {"code": code, "message": message}}, status_code=status)
