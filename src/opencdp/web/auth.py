"""Access-token authentication for the Profile API and OpenCDP's own APIs."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from opencdp.errors import AuthenticationError, Forbidden, OpenCDPError
from opencdp.privacy.roles import Permission, allows
from opencdp.runtime import Runtime
from opencdp.storage.admin import AccessToken
from opencdp.web.access import WORKSPACE_HEADER, Rule, rule_for
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
    """The access token of the request, checked against the route's rule (``web/access.py``).

    The token must hold the route's permission, and belong to ``workspace_id`` (a workspace
    the route's path names) or to the one the ``OpenCDP-Workspace`` header names — unless it is
    an instance administrator's, which acts in any workspace. The token returned carries the
    workspace of the request, so routes read ``token.workspace_id``.
    """
    rule = _rule(request)
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
    wanted = workspace_id or request.headers.get(WORKSPACE_HEADER) or token.workspace_id
    if wanted != token.workspace_id:
        if not token.instance_admin:
            if workspace_id is not None:
                raise AuthenticationError(
                    f"this token does not belong to workspace {workspace_id!r}",
                    code="authentication_error",
                )
            raise Forbidden(
                f"this token belongs to workspace {token.workspace_id!r}; only an instance "
                f"administrator can act in another one"
            )
        token = replace(token, workspace_id=wanted)
    request.scope[ACCESS_KEY] = (token, rule)
    if not allows(token.role, rule.permission, instance_admin=token.instance_admin):
        raise Forbidden(
            f"{rule.action} needs {_NEEDS[rule.permission]}; this token has the {token.role} role"
        )
    return token


#: where :func:`authenticate` leaves ``(token, rule)`` for the audit trail
ACCESS_KEY = "opencdp.access"
#: where a route leaves the id of the profile it read or changed, for the audit trail
PROFILE_KEY = "opencdp.profile_id"
#: where a route leaves the id of an object it created (not in its path), for the audit trail
TARGET_KEY = "opencdp.target"

_NEEDS = {
    Permission.READ_PROFILES: "a token of any role",
    Permission.READ_CONFIG: "the read, write or admin role",
    Permission.WRITE: "the write or admin role",
    Permission.ADMIN: "the admin role",
    Permission.INSTANCE: "an instance administrator's token",
}


def _rule(request: Request) -> Rule:
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or request.url.path
    found = rule_for(request.method, path)
    if found is None:  # a programming error: the route was never given a rule
        raise OpenCDPError(
            f"{request.method} {path} has no access rule; it refuses every token",
            code="no_access_rule",
        )
    return found


def note_profile(request: Request, profile_id: str) -> None:
    """Tell the audit trail which profile this request read or changed."""
    request.scope[PROFILE_KEY] = profile_id


def note_target(request: Request, object_id: str) -> None:
    """Tell the audit trail the id of the object this request created (a workspace, a source,
    a token): an id the platform or the operator chose, never a customer's value."""
    request.scope[TARGET_KEY] = object_id


async def answer(
    runtime: Runtime,
    request: Request,
    handler: Handler,
    *,
    status: int = 200,
) -> Response:
    """Authenticate (for the route's rule), run ``handler``, and answer its body as JSON;
    OpenCDP errors become the ``{code, message}`` shape."""
    try:
        token = authenticate(runtime, request)
        body = await handler(request, token)
    except OpenCDPError as exc:
        return from_exception(exc)
    if isinstance(body, Response):
        return body
    return JSON(body, status_code=status)
