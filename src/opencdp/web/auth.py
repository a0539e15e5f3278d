"""Access-token authentication for the Profile API and OpenCDP's own APIs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opencdp.errors import AuthenticationError, Forbidden, OpenCDPError
from opencdp.runtime import Runtime
from opencdp.storage.admin import AccessToken
from opencdp.web.responses import JSON, from_exception

#: A route's work once its token is known: the JSON body to answer (or a ready Response).
Handler = Callable[[Request, AccessToken], Awaitable[Any]]


def token_from_header(authorization: str | None) -> str | None:
    """The secret of ``Basic base64(token:)`` (Segment's form) or ``Bearer token``."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None
    return None


def authenticate(
    runtime: Runtime, request: Request, workspace_id: str | None = None
) -> AccessToken:
    """The access token of the request; it must belong to ``workspace_id`` when one is given."""
    secret = token_from_header(request.headers.get("authorization"))
    if secret is None:
        raise AuthenticationError(
            "send an access token as the Basic auth username (curl -u TOKEN:) or as a Bearer token",
            code="authentication_error",
        )
    token = runtime.tokens.get(secret)
    if token is None:
        raise AuthenticationError(
            "unknown access token; create one with `opencdp token add`",
            code="authentication_error",
        )
    if workspace_id is not None and token.workspace_id != workspace_id:
        raise AuthenticationError(
            f"this token does not belong to workspace {workspace_id!r}", code="authentication_error"
        )
    return token


async def answer(
    runtime: Runtime,
    request: Request,
    handler: Handler,
    *,
    admin: bool = False,
    status: int = 200,
) -> Response:
    """Authenticate (``admin``: an admin token), run ``handler``, and answer its body as JSON;
    OpenCDP errors become the ``{code, message}`` shape."""
    try:
        token = authenticate(runtime, request)
        if admin and token.scope != "admin":
            raise Forbidden("this change needs an admin token; this one is read-only")
        body = await handler(request, token)
    except OpenCDPError as exc:
        return from_exception(exc)
    if isinstance(body, Response):
        return body
    return JSON(body, status_code=status)
