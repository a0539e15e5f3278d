"""Destinations and their deliveries under ``/api`` (activation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import destinations as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import Handler, answer
from opencdp.web.inputs import json_body


def destinations_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Destinations and deliveries"])

    async def run(request: Request, handler: Handler, *, status: int = 200) -> Response:
        return await answer(runtime, request, handler, status=status)

    @router.get("/destinations", summary="List destinations")
    async def list_destinations(request: Request) -> Response:
        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.list_destinations(runtime, token.workspace_id)}

        return await run(request, handler)

    @router.get("/destinations/{destination_id}", summary="A destination")
    async def get_destination(destination_id: str, request: Request) -> Response:
        """Its settings (secrets masked), subscriptions, health and delivery counts."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return service.get_destination(runtime, token.workspace_id, destination_id)

        return await run(request, handler)

    @router.put("/destinations/{destination_id}", summary="Create or change a destination")
    async def put_destination(destination_id: str, request: Request) -> Response:
        """``{"type": "webhook", "enabled": true, "settings": {…}, "subscriptions": [{"name",
        "condition" (FQL), "mapping" (Actions directives; none: the whole event)}]}``; checked
        in full before anything is stored (``400`` naming the field)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            view, _created = await run_in_threadpool(
                service.put_destination, runtime, token.workspace_id, destination_id, body
            )
            return view

        return await run(request, handler)

    @router.delete("/destinations/{destination_id}", summary="Delete a destination")
    async def delete_destination(destination_id: str, request: Request) -> Response:
        """The destination and its deliveries (waiting ones are not sent)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            service.delete_destination(runtime, token.workspace_id, destination_id)
            return {"deleted": destination_id}

        return await run(request, handler)

    @router.post("/destinations/{destination_id}/test", summary="Send a test message")
    async def test_destination(destination_id: str, request: Request) -> Response:
        """Sends one sample event now (``{"subscription", "event"}`` optional), outside the
        outbox, and answers what the receiver said."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request, default={})
            if not isinstance(body, dict):
                raise RequestError("send a JSON object", code="invalid_request")
            if not isinstance(body.get("event", {}), dict):
                raise RequestError("event: a Segment event (a JSON object)", code="invalid_request")
            if not isinstance(body.get("subscription", ""), str):
                raise RequestError("subscription: a subscription's name", code="invalid_request")
            return await run_in_threadpool(
                lambda: service.test_destination(
                    runtime,
                    token.workspace_id,
                    destination_id,
                    subscription=body.get("subscription"),
                    event=body.get("event"),
                )
            )

        return await run(request, handler)

    @router.get("/deliveries", summary="List deliveries")
    async def list_deliveries(request: Request) -> Response:
        """``?destination=&status=pending|retrying|delivered|dead|suppressed_by_consent|skipped_out_of_stock&limit=&next=``."""

        async def handler(request: Request, token: AccessToken) -> Any:
            params = request.query_params
            try:
                limit = int(params.get("limit", "100"))
            except ValueError:
                raise RequestError("limit must be a whole number", code="invalid_request") from None
            return service.list_deliveries(
                runtime,
                token.workspace_id,
                destination=params.get("destination"),
                status=params.get("status"),
                limit=limit,
                after=params.get("next"),
            )

        return await run(request, handler)

    @router.get("/deliveries/{delivery_id}", summary="A delivery")
    async def get_delivery(delivery_id: str, request: Request) -> Response:
        """With its event, the last request sent and the last answer."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return {"data": service.get_delivery(runtime, token.workspace_id, delivery_id)}

        return await run(request, handler)

    @router.post("/deliveries/replay", summary="Send deliveries again")
    async def replay(request: Request) -> Response:
        """``{"destination": ID, "status": "dead"}``: queue them again under the same ids."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return service.replay_deliveries(runtime, token.workspace_id, body)

        return await run(request, handler)

    return router
