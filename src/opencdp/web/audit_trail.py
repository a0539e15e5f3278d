"""ASGI middleware that writes the audit log: every write through the API, and every read by a
role whose reads are audited (support), with who, what, when, the request id and the answer.

Routes tell it who called through :func:`opencdp.web.auth.authenticate` (the token and the
route's rule) and which profile they touched through :func:`opencdp.web.auth.note_profile`.
The entry is written after the answer is sent, off the event loop; a failure to write it is
logged, never turned into a failed request that already succeeded.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencdp.errors import loggable
from opencdp.privacy.roles import audited_reads
from opencdp.runtime import Runtime
from opencdp.storage.audit import AuditEntry
from opencdp.web.auth import ACCESS_KEY, PROFILE_KEY, TARGET_KEY
from opencdp.web.request_id import REQUEST_ID_KEY

log = logging.getLogger(__name__)


def actor_of(token: Any) -> str:
    """How the audit log names a token: its id and its name."""
    return f"{token.id} ({token.name})"


class AuditTrail:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            entry = self._entry(scope, status[0] if status else 500)
            if entry is not None:
                try:
                    await run_in_threadpool(self.runtime.audit.record, [entry])
                except Exception as exc:  # the answer is sent; keep the failure visible
                    log.error("audit: an entry could not be written: %s", loggable(exc))

    def _entry(self, scope: Scope, status: int) -> AuditEntry | None:
        access = scope.get(ACCESS_KEY)
        if access is None:
            return None
        token, rule = access
        if not (rule.writes or audited_reads(token.role)):
            return None
        route = scope.get("route")
        return AuditEntry(
            workspace_id=token.workspace_id,
            at_us=self.runtime.now_us(),
            actor=actor_of(token),
            role="instance_admin" if token.instance_admin else token.role,
            channel="api",
            action=rule.action,
            target=scope.get(TARGET_KEY) or _target(scope, route),
            profile_id=scope.get(PROFILE_KEY),
            request_id=scope.get(REQUEST_ID_KEY),
            status=status,
        )


#: path parameters that name configuration (safe to log); any other (a profile's external id,
#: which can be an e-mail) is written as its template
_NAMING_PARAMETERS = frozenset(
    {
        "key",
        "plan_id",
        "destination_id",
        "delivery_id",
        "workspace_id",
        "source",
        "token_id",
        "row_id",
        "regulation_id",
        "space",
        "collection",
    }
)


#: what a configuration key looks like; anything else a client put where a key goes (an
#: e-mail address, a phone number: ``PUT /api/destinations/ann@example.com``) is not written
_KEY_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_DIGITS = re.compile(r"[0-9]{7}")


def safe_key(value: str) -> bool:
    """Whether a path value can be written to the audit log: a key, not a person's value."""
    return bool(_KEY_LIKE.fullmatch(value)) and _DIGITS.search(value) is None


def _target(scope: Scope, route: Any) -> str | None:
    """The route with the parameters that name configuration filled in (when they look like
    keys; the template's ``{name}`` stays otherwise)."""
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return None
    params = scope.get("path_params", {})
    for name, value in params.items():
        if name in _NAMING_PARAMETERS and (
            safe_key(str(value)) or (name == "row_id" and str(value).isdigit())
        ):
            template = template.replace("{" + name + "}", str(value))
    return template
