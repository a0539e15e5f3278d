"""The Segment HTTP Tracking API: ``POST /v1/{identify,track,page,screen,group,alias,batch,import}``
and the analytics.js short paths ``/v1/{i,t,p,s,g,a,b}``; ``/v1/m`` (telemetry) is accepted and
ignored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from opencdp.collect.envelope import ROUTES
from opencdp.errors import OpenCDPError, PayloadTooLarge
from opencdp.govern import REASONS as GOVERN_REASONS
from opencdp.runtime import Runtime
from opencdp.web.responses import JSON, error, from_exception


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body; raises :class:`PayloadTooLarge` when it cannot fit ``max_bytes``.

    The limit applies after decompression (in the collector); a compressed body is never much
    larger than what it inflates to, so past twice the limit it cannot be valid. Such a body is
    read to its end but not kept: the client still gets a clean 400 (not a reset connection,
    which SDKs would retry) and the server never buffers more than that of it.
    """
    limit = 2 * max_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    if size > limit:
        raise PayloadTooLarge(
            f"request body is {size} bytes; the limit is {max_bytes} bytes",
            code="payload_too_large",
        )
    return b"".join(chunks)


def tracking_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["Tracking API"])
    collector = runtime.collector

    async def handle(route: str, request: Request) -> Response:
        try:
            raw = await read_body(request, runtime.settings.max_batch_bytes)
            _source, events, rejected, result = collector.prepare(
                route,
                raw,
                authorization=request.headers.get("authorization"),
                content_encoding=request.headers.get("content-encoding"),
            )
            await collector.commit_async(events, rejected)
        except OpenCDPError as exc:
            return from_exception(exc)
        runtime.metrics.add("opencdp_events_accepted_total", result.accepted)
        runtime.metrics.add("opencdp_events_suppressed_total", result.suppressed)
        runtime.metrics.quarantined(result.reasons)
        # A malformed single event is answered 400 with its reason. An event a tracking plan
        # blocks was well-formed: 200, as Segment Protocols does (the body still counts it).
        single = ROUTES[route] is not None
        if single and result.quarantined and result.errors[0]["code"] not in GOVERN_REASONS:
            # One event that could not be used: tell the sender why (it is kept in quarantine).
            first = result.errors[0]
            return error(400, first["code"], first["message"] + " (kept in quarantine)")
        return JSON(result.body())

    def endpoint_for(route: str) -> Callable[[Request], Awaitable[Response]]:
        # The route is bound in a closure, not a default argument: FastAPI would expose a
        # default argument as a query parameter (``?_route=…`` could change the route).
        async def endpoint(request: Request) -> Response:
            return await handle(route, request)

        return endpoint

    for route in ROUTES:
        router.add_api_route(
            f"/v1/{route}",
            endpoint_for(route),
            methods=["POST"],
            name=f"tracking_{route}",
            summary=f"Segment Tracking API: {route}",
            include_in_schema=len(route) > 1,
        )

    @router.post("/v1/m", include_in_schema=False)
    async def metrics_sink() -> Response:
        return JSON({"success": True})

    return router
