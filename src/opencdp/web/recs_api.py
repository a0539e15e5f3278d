"""Recommendations over HTTP: a profile's top products and a product's similar ones (read on
every page of a shop: answered on the event loop from the process's loaded model, as the
catalog's product read is), and training, versions, rollback and settings under ``/api/recs``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import recs
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer
from opencdp.web.inputs import json_body


def recs_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["Recommendations"])

    @router.get("/api/profiles/{profile_id}/recommendations", summary="A profile's recommendations")
    async def for_profile(profile_id: str, request: Request) -> Response:
        """The profile's top products (any identifier, as in the Profile API), best first,
        each with its ``score``, its ``reason`` (``bought together with …``, ``popular in
        …``) and the catalog's name, category, price, URL and image. ``limit`` (10, at most
        100); ``location`` the stock location the visitor shops in (``web``); ``category``
        keeps to a category path. Products the profile bought (unless their category may
        repeat), out of stock at the location, outside the catalog or blocked are left out."""
        params = request.query_params

        async def handler(request: Request, token: AccessToken) -> Any:
            return recs.for_profile(
                runtime,
                token.workspace_id,
                profile_id,
                limit=params.get("limit"),
                location=params.get("location") or None,
                category=params.get("category") or None,
            )

        return await answer(runtime, request, handler)

    @router.get("/api/products/{product_id}/similar", summary="Products similar to a product")
    async def similar(product_id: str, request: Request) -> Response:
        """Products bought, added and viewed together with it, in stock at ``location``
        (``web``); ``limit`` (10, at most 100)."""
        params = request.query_params

        async def handler(request: Request, token: AccessToken) -> Any:
            return recs.similar(
                runtime,
                token.workspace_id,
                product_id,
                limit=params.get("limit"),
                location=params.get("location") or None,
            )

        return await answer(runtime, request, handler)

    @router.post("/api/recs/train", summary="Train the recommendation model")
    async def train(request: Request) -> Response:
        """Reads the workspace's product events, evaluates the models on a holdout, keeps the
        best as the next version and makes it active; refreshes ``recommended_items``.
        ``409 training_running`` while another training runs."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return await run_in_threadpool(
                lambda: recs.train(runtime, token.workspace_id, source="api")
            )

        return await answer(runtime, request, handler, status=201)

    @router.get("/api/recs/models", summary="The trained model versions")
    async def models(request: Request) -> Response:
        """Newest first, with the active one marked and each one's evaluation."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": await run_in_threadpool(recs.models, runtime, token.workspace_id)}

        return await answer(runtime, request, handler)

    @router.post("/api/recs/rollback", summary="Make an earlier model version active")
    async def rollback(request: Request) -> Response:
        """``{"version": "v0002"}``; without a version, the ready one before the active one."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            version = body.get("version") if isinstance(body, dict) else None
            if (
                not isinstance(body, dict)
                or set(body) - {"version"}
                or (version is not None and not isinstance(version, str))
            ):
                raise RequestError(
                    'expected {"version": "v0001"} or an empty body', code="invalid_request"
                )
            return await run_in_threadpool(
                lambda: recs.rollback(runtime, token.workspace_id, version)
            )

        return await answer(runtime, request, handler)

    @router.get("/api/recs/settings", summary="Recommendation settings")
    async def get_settings(request: Request) -> Response:
        """``weights`` per interaction kind and the decay half-life, the serving ``rules``,
        ``train_every_hours`` and the evaluation's ``holdout``, defaults filled in."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return await run_in_threadpool(recs.settings, runtime, token.workspace_id)

        return await answer(runtime, request, handler)

    @router.put("/api/recs/settings", summary="Set the recommendation settings")
    async def put_settings(request: Request) -> Response:
        """Each field optional; an error names the field."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(recs.apply_settings, runtime, token.workspace_id, body)

        return await answer(runtime, request, handler)

    return router
