"""Journeys under ``/api`` (activation): definitions, presets, figures and instances."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import journeys as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import Handler, answer
from opencdp.web.inputs import json_body


def journeys_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Journeys"])

    async def run(request: Request, handler: Handler) -> Response:
        return await answer(runtime, request, handler)

    @router.get("/journeys", summary="List journeys")
    async def list_journeys(request: Request) -> Response:
        """Every journey of the workspace with its state and figures."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.list_journeys(runtime, token.workspace_id)}

        return await run(request, handler)

    @router.get("/journeys/{key}", summary="A journey and its per-step counts")
    async def get_journey(key: str, request: Request) -> Response:
        """The definition, the state (``active`` | ``paused``), how many entered, are under
        way, completed and exited early (by reason), and per step how many reached it and
        how many wait in it now."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.get_journey(runtime, token.workspace_id, key)

        return await run(request, handler)

    @router.put("/journeys/{key}", summary="Create or change a journey")
    async def put_journey(key: str, request: Request) -> Response:
        """The JSON form of a journey file (``entry``, ``reentry``, ``exit``, ``steps``), or a
        preset: ``{"preset": "abandoned-cart" | "welcome", "settings": {"wait": "1 hour",
        "destination": ID}}``. Checked in full first (``400`` naming the field)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            view, _created = await run_in_threadpool(
                service.put_journey, runtime, token.workspace_id, key, body
            )
            return view

        return await run(request, handler)

    @router.delete("/journeys/{key}", summary="Delete a journey")
    async def delete_journey(key: str, request: Request) -> Response:
        """The journey, its instances and their timers."""

        async def handler(request: Request, token: AccessToken) -> Any:
            service.delete_journey(runtime, token.workspace_id, key)
            return {"deleted": key}

        return await run(request, handler)

    @router.post("/journeys/{key}/pause", summary="Pause a journey")
    async def pause(key: str, request: Request) -> Response:
        """Nobody new enters; instances under way go on."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.set_state(runtime, token.workspace_id, key, "paused")

        return await run(request, handler)

    @router.post("/journeys/{key}/resume", summary="Resume a journey")
    async def resume(key: str, request: Request) -> Response:
        """Entries start again (what happened while paused starts nothing)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.set_state(runtime, token.workspace_id, key, "active")

        return await run(request, handler)

    @router.get("/journeys/{key}/instances", summary="A journey's instances")
    async def instances(key: str, request: Request) -> Response:
        """``?status=active|completed|exited&profile=&limit=`` (latest first)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            params = request.query_params
            try:
                limit = int(params.get("limit", "100"))
            except ValueError:
                raise RequestError("limit must be a whole number", code="invalid_limit") from None
            data = service.list_instances(
                runtime,
                token.workspace_id,
                key,
                status=params.get("status"),
                profile_id=params.get("profile"),
                limit=limit,
            )
            return {"data": data}

        return await run(request, handler)

    return router
