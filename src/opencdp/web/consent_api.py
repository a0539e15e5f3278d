"""A profile's consent under ``/api`` (privacy): read it per category, change it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import consent as service
from opencdp.services.profile_lookup import locate_profile
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, note_profile
from opencdp.web.inputs import json_body


def consent_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Consent"])

    @router.get("/profiles/{profile_id}/consent", summary="A profile's consent per category")
    async def get_consent(profile_id: str, request: Request) -> Response:
        """Each recorded category with its value, event time, source and message id, and the
        workspace's ``default`` (``opt-in``: a category without a record is not consent).
        ``profile_id``: a profile id or any identifier as ``type:value``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await run_in_threadpool(
                service.get_consent, runtime, token.workspace_id, profile_id
            )
            note_profile(request, body["profile_id"])
            return body

        return await answer(runtime, request, handler)

    @router.put("/profiles/{profile_id}/consent", summary="Change a profile's consent")
    async def put_consent(profile_id: str, request: Request) -> Response:
        """``{"categoryPreferences": {"marketing": true, "analytics": false}}``: only the
        categories given change. Recorded as a ``Segment Consent Preference Updated`` event
        (channel ``api``, the token as actor) and applied by the worker: ``202`` with its
        ``messageId``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            if not isinstance(body, dict) or set(body) != {"categoryPreferences"}:
                raise RequestError(
                    'send {"categoryPreferences": {"<category id>": true|false, …}}',
                    code="invalid_consent",
                )
            profile = await run_in_threadpool(
                locate_profile, runtime, token.workspace_id, profile_id
            )
            note_profile(request, profile.id)
            message_id = await run_in_threadpool(
                lambda: service.set_consent(
                    runtime,
                    token.workspace_id,
                    profile.id,
                    body["categoryPreferences"],
                    channel="api",
                    actor=token.id,
                )
            )
            return {"profile_id": profile.id, "messageId": message_id}

        return await answer(runtime, request, handler, status=202)

    return router
