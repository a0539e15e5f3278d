"""Privacy requests under ``/api`` in the shapes of Segment's Public API (engage-compat.md
§5.2): ``/api/regulations`` and ``/api/suppressions``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import NotFound, RequestError
from opencdp.privacy.regulations import STATUSES, TYPES
from opencdp.runtime import Runtime
from opencdp.services import privacy as service
from opencdp.storage.admin import AccessToken
from opencdp.web.audit_trail import actor_of
from opencdp.web.auth import Handler, answer
from opencdp.web.inputs import json_body

PAGE = 50
MAX_PAGE = 200


def privacy_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Privacy"])

    async def run(request: Request, handler: Handler) -> Response:
        return await answer(runtime, request, handler)

    @router.post("/regulations", summary="Request a deletion or a suppression")
    async def create(request: Request) -> Response:
        """``{"regulationType": "DELETE_ONLY" | "SUPPRESS_WITH_DELETE" | "SUPPRESS_ONLY" |
        "UNSUPPRESS" | "DELETE_INTERNAL" | "SUPPRESS_WITH_DELETE_INTERNAL", "subjectType":
        "USER_ID" | "EMAIL" | "PHONE" | "ANONYMOUS_ID" | "PROFILE_ID", "subjectIds": [...]}``
        → ``{"data": {"regulateId"}}``. A deletion takes the whole person (every identifier of
        the profile the subject resolves to); a suppression refuses their events at once."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            if not isinstance(body, dict):
                raise RequestError("send a JSON object", code="invalid_regulation")
            regulation = await run_in_threadpool(
                service.create_regulation_from,
                runtime,
                token.workspace_id,
                body,
                requested_by=actor_of(token),
            )
            return {"data": {"regulateId": regulation.id}}

        return await run(request, handler)

    @router.get("/regulations/{regulation_id}", summary="A regulation's status and report")
    async def get(regulation_id: str, request: Request) -> Response:
        """``{"data": {"regulation": {id, workspaceId, overallStatus, regulationType,
        subjectType, subjects, createdAt, finishedAt, streamStatus: [{id, destinationStatus:
        [{name, id, status, errString, finishedAt}]}], report: {store: rows removed}}}}``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            found = runtime.regulations.get(token.workspace_id, regulation_id)
            if found is None:
                raise NotFound(f"no regulation {regulation_id!r}")
            return {"data": {"regulation": service.regulation_view(found)}}

        return await run(request, handler)

    @router.get("/regulations", summary="List regulations")
    async def list_(request: Request) -> Response:
        """Newest first; filters ``status`` and ``regulationTypes`` (comma-separated),
        ``pagination.count`` (1-200) and ``pagination.cursor`` (the ``next`` of a page)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            q = request.query_params
            statuses = _csv(q.get("status"), STATUSES, "status")
            types = _csv(q.get("regulationTypes"), tuple(TYPES), "regulationTypes")
            count = _count(q.get("pagination.count") or q.get("count"))
            before = _cursor(q.get("pagination.cursor") or q.get("cursor"))
            page = runtime.regulations.page(
                token.workspace_id,
                statuses=statuses,
                types=types,
                before=before,
                limit=count + 1,
            )
            more = len(page) > count
            page = page[:count]
            last = page[-1] if more else None
            return {
                "data": {
                    "regulations": [service.list_view(r) for r in page],
                    "pagination": {
                        "current": q.get("pagination.cursor") or "MA==",
                        "next": _encode((last.created_us, last.id)) if last else None,
                        "totalEntries": None,
                    },
                }
            }

        return await run(request, handler)

    @router.get("/suppressions", summary="Suppressed subjects")
    async def suppressions(request: Request) -> Response:
        """``{"data": {"suppressed": [{"subjectType", "subjectIds": [...]}]}}``: a subject of a
        deleted person is shown as ``hash:…`` (only its keyed hash is kept)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": {"suppressed": service.suppressed_view(runtime, token.workspace_id)}}

        return await run(request, handler)

    return router


def _csv(raw: str | None, allowed: tuple[str, ...], name: str) -> list[str]:
    values = [v.strip() for v in (raw or "").split(",") if v.strip()]
    wrong = [v for v in values if v not in allowed]
    if wrong:
        raise RequestError(
            f"{name}: {wrong[0]!r} is not one of {', '.join(allowed)}", code="invalid_filter"
        )
    return values


def _count(raw: str | None) -> int:
    if raw is None:
        return PAGE
    try:
        value = int(raw)
    except ValueError:
        raise RequestError("pagination.count must be an integer", code="invalid_filter") from None
    if not 1 <= value <= MAX_PAGE:
        raise RequestError(f"pagination.count must be 1 to {MAX_PAGE}", code="invalid_filter")
    return value


#: a page's cursor: ``<created_us>.<regulation id>`` of the last regulation it showed
CURSOR = re.compile(r"([0-9]{1,18})\.(reg_[0-9A-Za-z]{1,40})")


def _encode(value: tuple[int, str]) -> str:
    return f"{value[0]}.{value[1]}"


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if not raw or raw == "MA==":
        return None
    found = CURSOR.fullmatch(raw)
    if found is None:
        raise RequestError(
            "pagination.cursor is not a cursor this API returned", code="invalid_filter"
        )
    return int(found.group(1)), found.group(2)
