"""Data-subject export under ``/api``: ``GET /api/profiles/{profile_id}/export``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.runtime import Runtime
from opencdp.services.export import export_profile, export_zip
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, note_profile


def export_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Privacy"])

    @router.get("/profiles/{profile_id}/export", summary="Everything kept about a person")
    async def export(profile_id: str, request: Request) -> Response:
        """One JSON document (``docs/export.md``) for the profile named by its id or any
        identifier (``email:ann@example.com``); ``?format=zip`` (or ``Accept:
        application/zip``) gives a ZIP of ``profile.json`` and one CSV per store. Admin only;
        every export is in the audit log."""

        async def handler(request: Request, token: AccessToken) -> Any:
            document = await run_in_threadpool(
                export_profile, runtime, token.workspace_id, profile_id
            )
            note_profile(request, document["profile_id"])
            name = f"opencdp-export-{document['profile_id']}"
            wants_zip = request.query_params.get("format") == "zip" or (
                "application/zip" in request.headers.get("accept", "")
            )
            if wants_zip:
                return Response(
                    await run_in_threadpool(export_zip, document),
                    media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
                )
            return Response(
                orjson.dumps(document),
                media_type="application/json",
                headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
            )

        return await answer(runtime, request, handler)

    return router
