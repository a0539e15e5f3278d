"""A person's data under ``/api``: the data-subject export
(``GET /api/profiles/{profile_id}/export``) and links to the self-service profile
(``POST /api/profiles/{profile_id}/self-service-link``)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services.export import export_profile, export_zip
from opencdp.services.self_service import issue_link
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, note_profile
from opencdp.web.inputs import json_body


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

    @router.post(
        "/profiles/{profile_id}/self-service-link", summary="A link to the self-service profile"
    )
    async def self_service_link(profile_id: str, request: Request) -> Response:
        """``{"ttl": seconds}`` (optional, at most the workspace's ``self_service_link_ttl``)
        → ``{"token", "expires_at", "profile_id"}``: put the token in the link an e-mail
        carries; the customer's page sends it as ``Authorization: Bearer`` to ``/api/self``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            if not isinstance(body, dict):
                raise RequestError('send {"ttl": seconds} or nothing', code="invalid_request")
            link = await run_in_threadpool(
                issue_link, runtime, token.workspace_id, profile_id, body.get("ttl")
            )
            note_profile(request, link["profile_id"])
            return link

        return await answer(runtime, request, handler, status=201)

    return router
