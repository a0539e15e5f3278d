"""Computed traits and audiences under ``/api`` (definitions in Segment's query language)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.query.parser import DefinitionKind
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import Handler, answer
from opencdp.web.inputs import json_body


def compute_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Computed traits and audiences"])

    async def run(request: Request, handler: Handler, *, status: int = 200) -> Response:
        return await answer(runtime, request, handler, status=status)

    kinds: tuple[tuple[DefinitionKind, str, str], ...] = (
        ("trait", "computed-traits", "computed trait"),
        ("audience", "audiences", "audience"),
    )
    for kind, path, word in kinds:
        _definition_routes(router, runtime, run, kind, path, word)

    @router.post("/audiences/preview", summary="Preview an audience")
    async def preview(request: Request) -> Response:
        """The size and a sample of the members of a definition, computed now; nothing is
        stored."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                compute.preview, runtime, token.workspace_id, body, "audience"
            )

        return await run(request, handler)

    @router.post("/audiences/{key}/recompute", summary="Recompute an audience in batch")
    async def recompute(key: str, request: Request) -> Response:
        """Evaluate the audience over every profile now; answers how many profiles the batch
        run added to and removed from the stored membership."""

        async def handler(request: Request, token: AccessToken) -> Any:
            ws = token.workspace_id
            if not compute.store(runtime).get(ws, key, "audience").enabled:
                raise RequestError(
                    f"the audience {key!r} is disabled: enable it to compute it",
                    code="disabled",
                )
            done = await run_in_threadpool(compute.compute, runtime, ws, key)
            row = compute.store(runtime).get(ws, key, "audience")
            if row.status == "failed":
                raise RequestError(f"the audience failed: {row.error}", code="computation_failed")
            return {"size": done.size, "entered": done.entered, "exited": done.exited}

        return await run(request, handler)

    @router.get("/audiences/{key}/members", summary="An audience's members")
    async def members(key: str, request: Request) -> Response:
        """Pages of ``{profile_id, external_ids}``; ``?limit=`` (1 to 1000, default 100),
        ``?next=`` from ``cursor.next``; ``?format=csv`` (or ``Accept: text/csv``) for CSV."""

        async def handler(request: Request, token: AccessToken) -> Any:
            params = request.query_params
            try:
                limit = int(params.get("limit", "100"))
            except ValueError:
                raise RequestError("limit must be a whole number", code="invalid_request") from None
            page = compute.members(runtime, token.workspace_id, key, limit, params.get("next"))
            wants_csv = params.get("format") == "csv" or "text/csv" in request.headers.get(
                "accept", ""
            )
            if not wants_csv:
                return page
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["profile_id", "type", "id"])
            for member in page["data"]:
                for ext in member["external_ids"] or [{"type": "", "id": ""}]:
                    writer.writerow([member["profile_id"], ext["type"], ext["id"]])
            headers = {}
            if page["cursor"]["has_more"]:
                headers["X-Next-Cursor"] = page["cursor"]["next"]
            return Response(out.getvalue(), media_type="text/csv", headers=headers)

        return await run(request, handler)

    return router


def _definition_routes(
    router: APIRouter,
    runtime: Runtime,
    run: Callable[..., Awaitable[Response]],
    kind: DefinitionKind,
    path: str,
    word: str,
) -> None:
    @router.get(f"/{path}", summary=f"List {word}s")
    async def list_definitions(request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            rows = compute.store(runtime).of_workspace(token.workspace_id, kind)
            return {"data": [compute.describe(runtime, r) for r in rows]}

        return await run(request, handler)

    @router.get(f"/{path}/{{key}}", summary=f"A {word}")
    async def get_definition(key: str, request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            return compute.describe(
                runtime, compute.store(runtime).get(token.workspace_id, key, kind)
            )

        return await run(request, handler)

    @router.put(f"/{path}/{{key}}", summary=f"Create or change a {word}")
    async def put_definition(key: str, request: Request) -> Response:
        """``{"name", "definition": {"type": "USERS", "query": "…"}, "enabled": true}``: stored,
        then computed over every profile (``status`` ``ready``, or ``failed`` with ``error``)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                compute.put_definition, runtime, token.workspace_id, kind, key, body
            )

        return await run(request, handler)

    @router.delete(f"/{path}/{{key}}", summary=f"Delete a {word}")
    async def delete_definition(key: str, request: Request) -> Response:
        """The definition and the values it computed are removed."""

        async def handler(request: Request, token: AccessToken) -> Any:
            compute.delete_definition(runtime, token.workspace_id, key, kind)
            return {"deleted": key}

        return await run(request, handler)
