"""``Request-Id`` on every response, errors included (Segment's Profile API sends one).

A client's own ``Request-Id`` is echoed when it is a plain token of 1-200 characters (letters,
digits and ``-_.:``), so that it can be logged and correlated safely; otherwise the server makes
one (a UUID).
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: where the request's id is left for the routes and the audit trail
REQUEST_ID_KEY = "opencdp.request_id"

_SAFE = re.compile(rb"[A-Za-z0-9._:\-]{1,200}")


def request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's ``Request-Id`` when it is safe to echo, else a new UUID."""
    for name, value in headers:
        if name.lower() == b"request-id" and _SAFE.fullmatch(value):
            return value
    return str(uuid.uuid4()).encode()


class RequestId:
    """ASGI middleware: sets ``Request-Id`` on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers", []))
        scope[REQUEST_ID_KEY] = rid.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"request-id"
                ]
                headers.append((b"request-id", rid))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
