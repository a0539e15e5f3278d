"""Predicted customer lifetime value under ``/api/clv``: the fitted model, fit, score."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.runtime import Runtime
from opencdp.services import clv
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer
from opencdp.web.inputs import json_body


def clv_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/clv", tags=["Predicted CLV"])

    @router.get("/model", summary="The fitted CLV model")
    async def get_model(request: Request) -> Response:
        """BG/NBD (``r``, ``alpha``, ``a``, ``b``) and Gamma-Gamma (``p``, ``q``, ``v``)
        parameters with their log-likelihoods, the customers used and the holdout check."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return clv.model(runtime, token.workspace_id)

        return await answer(runtime, request, handler)

    @router.post("/fit", summary="Fit the CLV model")
    async def fit(request: Request) -> Response:
        """``{"calibration_end": "1997-09-30", "time_unit": "week"}`` (both optional: today,
        weeks): fits on the ``Order Completed`` history up to the calibration end and stores
        the model; answers it."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            return await run_in_threadpool(clv.fit_request, runtime, token.workspace_id, body)

        return await answer(runtime, request, handler)

    @router.post("/score", summary="Score every customer with the CLV model")
    async def score(request: Request) -> Response:
        """Writes ``predicted_clv_12m``, ``p_alive`` and ``predicted_orders_12m`` to every
        profile with an order (computed traits of those keys); answers how many changed."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return await run_in_threadpool(clv.score, runtime, token.workspace_id)

        return await answer(runtime, request, handler)

    return router
