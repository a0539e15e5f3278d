"""Workspaces, sources and access tokens under ``/api`` (who may call what: ``web/access.py``).

Routes without a workspace in their path act in the token's workspace (an instance
administrator names another with the ``OpenCDP-Workspace`` header). Secrets are answered once,
when a source or token is created or a token rotated.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import OpenCDPError, RequestError
from opencdp.runtime import Runtime
from opencdp.services import access as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import Handler, answer, authenticate, note_target
from opencdp.web.inputs import json_body
from opencdp.web.responses import JSON, from_exception


async def _object(request: Request, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of the request, holding no field but ``fields``."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise RequestError(f"send a JSON object: {what}", code="invalid_request")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestError(
            f"unknown field {unknown[0]!r}; send {', '.join(fields)}", code="invalid_request"
        )
    return body


def workspaces_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Workspaces and access"])

    async def run(request: Request, handler: Handler, status: int = 200) -> Response:
        return await answer(runtime, request, handler, status=status)

    async def in_workspace(workspace_id: str, request: Request, handler: Handler) -> Response:
        """For routes whose path names the workspace: the token must belong to it."""
        try:
            token = authenticate(runtime, request, workspace_id)
            body = await handler(request, token)
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(body)

    # -- workspaces -------------------------------------------------------------------------------

    @router.post("/workspaces", summary="Create a workspace", status_code=201)
    async def add_workspace(request: Request) -> Response:
        """``{"id": "b2c-shop", "name": "B2C shop"}`` — instance administrators only. ``201``
        with the workspace; ``409`` when the id is taken; ``400`` naming a bad id."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await _object(request, '{"id": "b2c-shop", "name": "B2C shop"}', ("id", "name"))
            view = await run_in_threadpool(
                service.add_workspace, runtime, body.get("id"), body.get("name")
            )
            note_target(request, f"/api/workspaces/{view['id']}")
            return view

        return await run(request, handler, status=201)

    @router.get("/workspaces", summary="List workspaces")
    async def list_workspaces(request: Request) -> Response:
        """Every workspace for an instance administrator; only its own for any other token."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.list_workspaces(runtime, token)}

        return await run(request, handler)

    @router.get("/workspaces/{workspace_id}", summary="A workspace, its sources and tokens")
    async def get_workspace(workspace_id: str, request: Request) -> Response:
        """The workspace's name, settings, sources and tokens (hints only, never a secret)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.get_workspace(runtime, workspace_id)

        return await in_workspace(workspace_id, request, handler)

    @router.put("/workspaces/{workspace_id}/settings", summary="Change a workspace's settings")
    async def put_settings(workspace_id: str, request: Request) -> Response:
        """Some of ``consent_default`` (``opt-in`` | ``opt-out``), ``self_service_traits``,
        ``self_service_origins``, ``self_service_link_ttl`` (seconds); fields not sent keep
        their value. ``400`` naming the field that is wrong (and nothing changes)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return service.set_workspace_settings(runtime, workspace_id, body)

        return await in_workspace(workspace_id, request, handler)

    # -- sources ----------------------------------------------------------------------------------

    @router.get("/sources", summary="List sources")
    async def list_sources(request: Request) -> Response:
        """The workspace's sources with a hint of each write key."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.list_sources(runtime, token.workspace_id)}

        return await run(request, handler)

    @router.post("/sources", summary="Create a source", status_code=201)
    async def add_source(request: Request) -> Response:
        """``{"name": "web-shop"}``; the answer's ``write_key`` is shown only this once.
        ``"catalog": true`` makes a catalog source (its ``Product Updated`` events write the
        product catalog)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await _object(request, '{"name": "web-shop"}', ("name", "catalog"))
            view = await run_in_threadpool(
                lambda: service.add_source(
                    runtime,
                    token.workspace_id,
                    body.get("name"),
                    catalog=body.get("catalog", False),
                )
            )
            note_target(request, f"/api/sources/{view['id']}")
            return view

        return await run(request, handler, status=201)

    # -- tokens -----------------------------------------------------------------------------------

    @router.get("/tokens", summary="List access tokens")
    async def list_tokens(request: Request) -> Response:
        """The workspace's tokens: id, name, role, a hint of the secret (never the secret)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.list_tokens(runtime, token.workspace_id)}

        return await run(request, handler)

    @router.post("/tokens", summary="Create an access token", status_code=201)
    async def add_token(request: Request) -> Response:
        """``{"name": "crm-sync", "role": "admin" | "write" | "read" | "support",
        "instance_admin": false}`` (role ``read`` unless said; an instance administrator's is
        ``admin``); the answer's ``token`` is shown only this once. Only an instance
        administrator creates an instance administrator's token."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await _object(
                request, '{"name": "crm-sync", "role": "read"}', ("name", "role", "instance_admin")
            )
            view = await run_in_threadpool(
                lambda: service.add_token(
                    runtime,
                    token,
                    token.workspace_id,
                    body.get("name"),
                    body.get("role", "admin" if body.get("instance_admin") is True else "read"),
                    instance_admin=body.get("instance_admin", False),
                )
            )
            note_target(request, f"/api/tokens/{view['id']}")
            return view

        return await run(request, handler, status=201)

    @router.post("/tokens/{token_id}/rotate", summary="Rotate an access token")
    async def rotate_token(token_id: str, request: Request) -> Response:
        """A new secret (answered once) for the same id, name and role; the old one stops
        working."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.rotate_token(runtime, token, token.workspace_id, token_id)

        return await run(request, handler)

    @router.delete("/tokens/{token_id}", summary="Revoke an access token")
    async def revoke_token(token_id: str, request: Request) -> Response:
        """Requests with the token get ``401`` from now on."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.revoke_token(runtime, token, token.workspace_id, token_id)

        return await run(request, handler)

    return router
