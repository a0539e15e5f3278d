"""Checks every request input passes before it reaches a service: no NUL characters.

PostgreSQL text cannot hold U+0000; a NUL that reaches a query is a 500 there (and a different
answer on SQLite). The Tracking API quarantines such events (collect/normalize); everywhere else
a NUL in a path, a query parameter or a JSON body is refused at the edge with a 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from opencdp.errors import RequestError
from opencdp.web.responses import error, profile_error

NUL_MESSAGE = "a NUL character (\\u0000) is not allowed in {where}"


def has_nul(value: Any) -> bool:
    """True when a string (or an object key) anywhere in ``value`` contains U+0000."""
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


def refuse_nul(value: Any, where: str = "the request body") -> Any:
    """``value`` unchanged, or a 400 ``invalid_request`` when it holds a NUL character."""
    if has_nul(value):
        raise RequestError(NUL_MESSAGE.format(where=where), code="invalid_request")
    return value


class RefuseNul:
    """ASGI middleware: a request whose path or query string holds a NUL gets a 400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            where = None
            if "\x00" in path or b"%00" in scope.get("raw_path", b"").lower():
                where = "the path"
            elif b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
                where = "a query parameter"
            if where is not None:
                message = NUL_MESSAGE.format(where=where)
                if path.startswith("/v1/spaces/"):
                    response = profile_error(400, "validation_error", message)
                else:
                    response = error(400, "invalid_request", message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def json_body(request: Request, default: Any = None) -> Any:
    """The request's JSON body (``default`` when it is empty), with NUL characters refused."""
    raw = await request.body()
    if not raw.strip():
        if default is not None:
            return default
        raise RequestError("send a JSON body", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}", code="invalid_json") from None
    return refuse_nul(value)
