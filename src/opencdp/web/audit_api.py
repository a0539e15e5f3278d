"""The audit log under ``/api/audit`` (administrators; read only: there is no route that
changes or deletes an entry)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.runtime import Runtime
from opencdp.services import audit as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer


def audit_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Workspaces and access"])

    @router.get("/audit", summary="The audit log")
    async def audit(request: Request) -> Response:
        """Entries of the workspace, oldest first: ``?since=&until=`` (ISO-8601 or epoch
        milliseconds; ``until`` exclusive), ``action=`` (exact, or a prefix such as
        ``destination``), ``actor=``, ``profile_id=``, ``limit=`` (1-1000, default 100) and
        ``next=`` (the ``next`` cursor of the previous page; ``null`` on the last page)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            params = dict(request.query_params)
            return await run_in_threadpool(service.query, runtime, token.workspace_id, params)

        return await answer(runtime, request, handler)

    return router
