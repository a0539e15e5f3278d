"""Governance under ``/api``: tracking plans, enforcement settings, quarantine and replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services import governance as gov
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import Handler, answer, authenticate
from opencdp.web.inputs import json_body

REPLAY_KEYS = frozenset(
    {"source", "source_id", "reason", "event", "type", "since", "until", "ids", "limit", "dry_run"}
)


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise RequestError(f"{name} must be an integer", code="invalid_request") from None
    if not low <= number <= high:
        raise RequestError(f"{name} must be between {low} and {high}", code="invalid_request")
    return number


def _plan_in(document: Any, plan_id: str) -> Any:
    """The plan a request body describes; keys a plan does not have are refused."""
    plan = gov.parse_plan_document(document, plan_id)
    extra = sorted(set(plan.meta) - {"revision", "scopes", "created_revision"})
    if extra:
        raise RequestError(
            f"unknown keys {extra}: a plan has name, description and rules; attach it "
            "to sources with PUT /api/sources/{source}/schema-settings",
            code="invalid_plan",
        )
    return plan


def _whole(value: Any, name: str, default: int, low: int, high: int) -> int:
    """A whole number of a JSON body (``12`` or ``12.0``) within ``low..high``, or ``default``."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(
            f"{name} must be a whole number from {low} to {high}", code="invalid_request"
        )
    return value


def _row_ids(value: Any) -> list[int] | None:
    """Quarantine row ids of a request body (``12`` or ``12.0``: JSON does not tell them apart)."""
    if value is None:
        return None
    if isinstance(value, list):
        ids = [
            int(i)
            for i in value
            if (isinstance(i, int) and not isinstance(i, bool))
            or (isinstance(i, float) and i.is_integer())
        ]
        if len(ids) == len(value) and all(0 < i < 1 << 63 for i in ids):
            return ids
    raise RequestError("ids must be a list of row ids (whole numbers)", code="invalid_request")


def governance_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Governance"])

    async def run(request: Request, handler: Handler, *, status: int = 200) -> Response:
        return await answer(runtime, request, handler, status=status)

    # -- tracking plans ---------------------------------------------------------------------------
    @router.get("/tracking-plans", summary="List tracking plans")
    async def list_plans(request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            plans = runtime.plans.list(token.workspace_id)
            return {"data": [p.to_dict() for p in plans]}

        return await run(request, handler)

    @router.get("/tracking-plans/{plan_id}", summary="A tracking plan")
    async def get_plan(plan_id: str, request: Request) -> Response:
        """The current revision, or ``?revision=N``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            rev = request.query_params.get("revision")
            revision = _int(rev, "revision", 0, 1, 1 << 30) if rev else None
            plan = gov.get_plan(runtime, token.workspace_id, plan_id, revision)
            return {
                **plan.to_dict(),
                "scopes": runtime.plans.scopes_using(token.workspace_id, plan_id),
            }

        return await run(request, handler)

    @router.put("/tracking-plans/{plan_id}", summary="Create or change a tracking plan")
    async def put_plan(plan_id: str, request: Request) -> Response:
        """Body: ``{name, description, rules: [{type, key, version, jsonSchema}]}``. A change
        stores a new revision; an identical body changes nothing."""

        async def handler(request: Request, token: AccessToken) -> Any:
            plan = _plan_in(await json_body(request), plan_id)
            stored, created = gov.save_plan(runtime, token.workspace_id, plan)
            return {**stored.to_dict(), "created_revision": created}

        return await run(request, handler)

    @router.delete("/tracking-plans/{plan_id}", summary="Retire a tracking plan")
    async def delete_plan(plan_id: str, request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            gov.delete_plan(runtime, token.workspace_id, plan_id)
            return {"deleted": plan_id}

        return await run(request, handler)

    @router.post("/tracking-plans/{plan_id}/dry-run", summary="What a plan would do")
    async def dry_run(plan_id: str, request: Request) -> Response:
        """Body (optional): ``{"days": 7, "plan": {...}, "sources": [...], "settings": {...}}``.
        Without ``plan`` the stored plan is tried; nothing is changed either way."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            if not isinstance(body, dict):
                raise RequestError("send a JSON object", code="invalid_request")
            days = body.get("days", 7)
            if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
                raise RequestError("days must be a positive number", code="invalid_request")
            if body.get("plan") is not None:
                plan = _plan_in(body["plan"], plan_id)
            else:
                plan = gov.get_plan(runtime, token.workspace_id, plan_id)
            doc = {
                **plan.to_dict(),
                "sources": body.get("sources"),
                "settings": body.get("settings"),
            }
            doc = {k: v for k, v in doc.items() if v is not None}
            return gov.apply_plan_document(
                runtime, token.workspace_id, doc, dry_run=True, days=float(days)
            )

        return await run(request, handler)

    # -- enforcement settings ---------------------------------------------------------------------
    @router.get("/sources/{source}/schema-settings", summary="A source's plan and settings")
    async def get_source_settings(source: str, request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            scope = gov.scope_for(runtime, token.workspace_id, source)
            return gov.schema_config(runtime, token.workspace_id, scope).to_dict()

        return await run(request, handler)

    @router.put("/sources/{source}/schema-settings", summary="Set a source's plan and settings")
    async def put_source_settings(source: str, request: Request) -> Response:
        """Body: ``{"trackingPlanId": "web", "settings": {"track": {...}, ...}}``; a key left out
        keeps its value. Segment's setting names."""

        async def handler(request: Request, token: AccessToken) -> Any:
            scope = gov.scope_for(runtime, token.workspace_id, source)
            return _put_settings(token.workspace_id, scope, await json_body(request))

        return await run(request, handler)

    @router.get("/workspaces/{workspace_id}/schema-settings", summary="Workspace plan and settings")
    async def get_ws_settings(workspace_id: str, request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            authenticate(runtime, request, workspace_id)
            return gov.schema_config(runtime, workspace_id, "*").to_dict()

        return await run(request, handler)

    @router.put("/workspaces/{workspace_id}/schema-settings", summary="Set workspace plan")
    async def put_ws_settings(workspace_id: str, request: Request) -> Response:
        """The plan and settings of every source of the workspace that has none of its own."""

        async def handler(request: Request, token: AccessToken) -> Any:
            authenticate(runtime, request, workspace_id)
            return _put_settings(workspace_id, "*", await json_body(request))

        return await run(request, handler)

    def _put_settings(workspace_id: str, scope: str, body: Any) -> Any:
        if not isinstance(body, dict):
            raise RequestError("send a JSON object", code="invalid_settings")
        unknown = set(body) - {"trackingPlanId", "settings"}
        if unknown:
            raise RequestError(
                f"unknown keys {sorted(unknown)}; send trackingPlanId and/or settings",
                code="invalid_settings",
            )
        config = gov.set_schema_config(
            runtime,
            workspace_id,
            scope,
            tracking_plan_id=body.get("trackingPlanId", ...),
            settings=body.get("settings", ...),
        )
        return config.to_dict()

    # -- quarantine -------------------------------------------------------------------------------
    def _filter(token: AccessToken, q: Any, ids: list[int] | None = None) -> Any:
        return gov.quarantine_filter(
            runtime,
            token.workspace_id,
            source=q.get("source") or q.get("source_id"),
            reason=q.get("reason"),
            event=q.get("event"),
            event_type=q.get("type"),
            since=q.get("since"),
            until=q.get("until"),
            ids=ids,
            status=q.get("status") or "open",
        )

    @router.get("/quarantine", summary="Quarantined events")
    async def quarantine(request: Request) -> Response:
        """Filters: ``source`` (name or id), ``reason``, ``event``, ``type``, ``since``/``until``
        (ISO-8601 or ``24h``, ``7d``), ``status`` (open, resolved, all); paging with ``before``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            q = request.query_params
            limit = _int(q.get("limit"), "limit", 100, 1, 1000)
            before = _int(q.get("before"), "before", 0, 1, 1 << 62) if q.get("before") else None
            where = _filter(token, q)
            rows = runtime.quarantine.list(
                token.workspace_id, limit=limit, before_id=before, where=where
            )
            return {
                "data": [gov.quarantine_json(r) for r in rows],
                "counts": runtime.quarantine.counts(token.workspace_id, where),
                "next_before": rows[-1].id if len(rows) == limit else None,
            }

        return await run(request, handler)

    @router.get("/quarantine/stats", summary="Quarantine counts per reason over time")
    async def quarantine_stats(request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            bucket = request.query_params.get("bucket", "day")
            return gov.quarantine_stats(runtime, _filter(token, request.query_params), bucket)

        return await run(request, handler)

    @router.get("/quarantine/{row_id:int}", summary="One quarantined event, whole")
    async def quarantine_one(row_id: int, request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            row = (
                runtime.quarantine.get(token.workspace_id, row_id) if 0 < row_id < 1 << 63 else None
            )
            if row is None:
                raise NotFound(f"no quarantined event {row_id}", code="not_found")
            return gov.quarantine_json(row)

        return await run(request, handler)

    @router.post("/quarantine/replay", summary="Replay quarantined events")
    async def quarantine_replay(request: Request) -> Response:
        """Body: the list filters (``source``, ``reason``, ``event``, ``type``, ``since``,
        ``until``) and/or ``ids``, plus ``limit`` and ``dry_run``. Events that now pass go to
        the inbox with their message ids (processed exactly once); the rest stay, with their
        new reason."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            if not isinstance(body, dict):
                raise RequestError("send a JSON object of filters", code="invalid_request")
            unknown = set(body) - REPLAY_KEYS
            if unknown:
                raise RequestError(
                    f"unknown keys {sorted(unknown)}; send {', '.join(sorted(REPLAY_KEYS))}",
                    code="invalid_request",
                )
            ids = _row_ids(body.get("ids"))
            dry = body.get("dry_run")
            if dry is not None and not isinstance(dry, bool):
                raise RequestError("dry_run must be true or false", code="invalid_request")
            limit = _whole(body.get("limit"), "limit", 100_000, 1, 1_000_000)
            q = {k: v for k, v in body.items() if k not in ("ids", "limit", "dry_run")}
            for name, value in q.items():
                if value is not None and not isinstance(value, str):
                    raise RequestError(f"{name} must be a string", code="invalid_request")
            where = _filter(token, q, ids)
            result = gov.replay_quarantine(runtime, where, limit=limit, dry_run=bool(dry))
            return result.to_dict()

        return await run(request, handler)

    @router.post("/quarantine/dismiss", summary="Dismiss quarantined events")
    async def quarantine_dismiss(request: Request) -> Response:
        """Body: ``{"ids": [12, 13], "reason": "test orders, never shipped"}``. Open rows are
        closed as ``dismissed`` with the reason; the answer lists the ids ``dismissed``, those
        ``not_found`` in the workspace and those ``closed`` already."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            if not isinstance(body, dict):
                raise RequestError("send a JSON object: ids and reason", code="invalid_request")
            unknown = set(body) - {"ids", "reason"}
            if unknown:
                raise RequestError(
                    f"unknown keys {sorted(unknown)}; send ids and reason", code="invalid_request"
                )
            ids = _row_ids(body.get("ids"))
            return gov.dismiss_quarantine(runtime, token.workspace_id, ids, body.get("reason"))

        return await run(request, handler)

    return router
