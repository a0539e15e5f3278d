"""The self-service profile under ``/api/self`` (``docs/self-service.md``): the customer's own
identifiers, traits and consent, edits, export and deletion — authorized by a link token, not
an access token (these routes are outside ``web/access.py``'s rules).

Any wrong, expired or foreign token gets the same 401; requests are rate-limited per link and
per client address; browsers get CORS only from the origins the token's workspace lists
(preflights, which carry no token, from an origin any workspace lists).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.collect.ratelimit import RateLimiter, retry_after_seconds
from opencdp.errors import OpenCDPError, RateLimited, RequestError
from opencdp.runtime import Runtime
from opencdp.services import loyalty
from opencdp.services import self_service as service
from opencdp.web.auth import token_from_header
from opencdp.web.inputs import json_body
from opencdp.web.responses import JSON, from_exception

SELF_SERVICE_PREFIX = "/api/self"
_ALLOW_HEADERS = "Authorization, Content-Type"
_ALLOW_METHODS = "GET, PATCH, PUT, POST, OPTIONS"

#: a route's work once the link is checked: (request, workspace, profile id) → body
Work = Callable[[Request, str, str], Awaitable[Any]]


def self_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix=SELF_SERVICE_PREFIX, tags=["Self-service profile"])
    per_minute = runtime.settings.self_service_rate_per_minute
    limiter = RateLimiter(per_minute / 60.0, burst=max(per_minute / 6.0, 1.0), max_keys=100_000)

    def limit(key: str) -> None:
        wait = limiter.try_acquire(key, 1, runtime.clock.monotonic())
        if wait:
            seconds = retry_after_seconds(wait)
            raise RateLimited(f"too many requests; retry in {seconds} s", retry_after=seconds)

    async def run(request: Request, work: Work, status: int = 200) -> Response:
        origin = request.headers.get("origin")
        workspace = None
        try:
            secret = token_from_header(request.headers.get("authorization"))
            if not secret:  # nothing to guess with: the plain answer, not counted
                raise service.InvalidLink()
            client = request.client.host if request.client else "?"
            limit(f"addr:{client}")
            limit(f"link:{secret[-32:]}")
            workspace, profile_id = await run_in_threadpool(service.authorize, runtime, secret)
            body = await work(request, workspace, profile_id)
            response: Response = (
                body if isinstance(body, Response) else JSON(body, status_code=status)
            )
        except OpenCDPError as exc:
            response = from_exception(exc)
        if origin and workspace and _allowed(runtime, workspace, origin):
            response.headers.update(_cors(origin))
        return response

    @router.options("/{path:path}", include_in_schema=False)
    async def preflight(path: str, request: Request) -> Response:
        origin = request.headers.get("origin") or ""
        listed = any(
            origin in w.settings.self_service_origins or "*" in w.settings.self_service_origins
            for w in await run_in_threadpool(runtime.admin.list_workspaces)
        )
        if not origin or not listed:
            return Response(status_code=403)
        return Response(status_code=204, headers=_cors(origin))

    @router.get("/profile", summary="The customer's own profile")
    async def get_profile(request: Request) -> Response:
        """Identifiers, traits, consent, and which traits the customer may edit."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            return await run_in_threadpool(service.view, runtime, ws, pid)

        return await run(request, work)

    @router.patch("/profile", summary="Edit the traits the workspace allows")
    async def patch_profile(request: Request) -> Response:
        """``{"traits": {"first_name": "Ann"}}`` → 202 ``{"messageId"}``: recorded as an identify
        event (provenance: channel self-service), applied by the worker."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            body = await json_body(request)
            if not isinstance(body, dict):
                raise RequestError('send {"traits": {…}}', code="invalid_traits")
            mid = await run_in_threadpool(service.edit_traits, runtime, ws, pid, body.get("traits"))
            return {"messageId": mid}

        return await run(request, work, 202)

    @router.put("/consent", summary="Set consent per category")
    async def put_consent(request: Request) -> Response:
        """``{"categoryPreferences": {"marketing": false}}`` → 202 ``{"messageId"}``."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            body = await json_body(request)
            preferences = body.get("categoryPreferences") if isinstance(body, dict) else None
            mid = await run_in_threadpool(service.change_consent, runtime, ws, pid, preferences)
            return {"messageId": mid}

        return await run(request, work, 202)

    @router.post("/export", summary="Everything kept about the customer")
    async def post_export(request: Request) -> Response:
        """The data-subject export (``docs/export.md``)."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            return await run_in_threadpool(service.export, runtime, ws, pid)

        return await run(request, work)

    @router.post("/loyalty", summary="Join the loyalty programme")
    async def post_loyalty(request: Request) -> Response:
        """Enrol the customer in the workspace's programme → ``201`` with the member and its
        token (``200`` when a member already); the card is at the member card routes."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            created, member = await run_in_threadpool(
                lambda: loyalty.enrol(
                    runtime, ws, {"profile_id": pid, "channel": "online"}, actor="customer"
                )
            )
            return JSON(member, status_code=201 if created else 200)

        return await run(request, work)

    for extension, media_type in (("svg", "image/svg+xml"), ("png", "image/png")):
        router.add_api_route(
            f"/loyalty/card.{extension}",
            _card(run, runtime, extension, media_type),
            methods=["GET"],
            summary=f"The customer's member card as {extension.upper()}",
        )

    @router.post("/deletion", summary="Delete me")
    async def post_deletion(request: Request) -> Response:
        """A deletion of the customer (``DELETE_ONLY``) → 202 ``{"regulateId", "status"}``;
        the link stops working once it ran."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            return await run_in_threadpool(service.request_deletion, runtime, ws, pid)

        return await run(request, work, 202)

    return router


def _card(
    run: Callable[[Request, Work], Awaitable[Response]],
    runtime: Runtime,
    extension: str,
    media_type: str,
) -> Callable[[Request], Awaitable[Response]]:
    async def card(request: Request) -> Response:
        """The member card (barcode and QR code of the token) of the customer, when a member."""

        async def work(request: Request, ws: str, pid: str) -> Any:
            content, _profile = await run_in_threadpool(loyalty.card, runtime, ws, pid, extension)
            return Response(
                content, media_type=media_type, headers={"Cache-Control": "private, no-store"}
            )

        return await run(request, work)

    return card


def _allowed(runtime: Runtime, workspace: str, origin: str) -> bool:
    origins = runtime.admin.workspace_settings(workspace).self_service_origins
    return origin in origins or "*" in origins


def _cors(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": _ALLOW_METHODS,
        "Access-Control-Allow-Headers": _ALLOW_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
