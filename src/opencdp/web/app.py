"""The ASGI application: routes, CORS for the Tracking API only, errors in the documented shapes."""

from __future__ import annotations

import logging
import re
import traceback
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from opencdp.errors import OpenCDPError, loggable
from opencdp.runtime import Runtime
from opencdp.services.privacy import install as install_privacy
from opencdp.services.recs import install as install_recs_schedule
from opencdp.version import __version__
from opencdp.web.api import api_router
from opencdp.web.audit_api import audit_router
from opencdp.web.audit_trail import AuditTrail
from opencdp.web.body import BoundedBody
from opencdp.web.catalog_api import catalog_router
from opencdp.web.clv_api import clv_router
from opencdp.web.compute_api import compute_router
from opencdp.web.consent_api import consent_router
from opencdp.web.destinations_api import destinations_router
from opencdp.web.docs import install_docs
from opencdp.web.export_api import export_router
from opencdp.web.governance_api import governance_router
from opencdp.web.inputs import RefuseNul
from opencdp.web.journeys_api import journeys_router
from opencdp.web.loyalty_api import loyalty_router
from opencdp.web.openapi import install_openapi
from opencdp.web.privacy_api import privacy_router
from opencdp.web.profile_api import profile_router
from opencdp.web.qr_api import qr_router
from opencdp.web.recs_api import recs_router
from opencdp.web.request_id import RequestId, request_id
from opencdp.web.responses import (
    JSON,
    STORAGE_RETRY_AFTER,
    error,
    from_exception,
    profile_error,
)
from opencdp.web.self_api import self_router
from opencdp.web.tracking import tracking_router
from opencdp.web.workspaces_api import workspaces_router

log = logging.getLogger(__name__)


class TrackingCORS:
    """CORS for the browser-facing Tracking API (``/v1/…``) only; the Profile API gets none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origin_regex=r".*",
            allow_methods=["POST", "OPTIONS"],
            allow_headers=["*"],
            allow_credentials=True,
            max_age=900,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/v1/") and not path.startswith("/v1/spaces/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(
    runtime: Runtime, *, start_worker: bool | None = None, workers_beside: int = 0
) -> FastAPI:
    """The HTTP app over ``runtime``; runs the in-process worker unless told otherwise.

    ``workers_beside`` is how many worker processes ``opencdp serve`` runs next to this one
    (reported by ``/readyz``).
    """
    run_worker = runtime.settings.worker_in_process if start_worker is None else start_worker
    install_privacy(runtime)  # privacy requests move with the worker's timers
    if run_worker:
        install_recs_schedule(runtime)  # scheduled recommendation trainings too

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if run_worker:
            runtime.worker.start()
            if runtime.settings.dispatcher_in_worker:
                runtime.dispatcher.start()
        try:
            yield
        finally:
            if run_worker:
                runtime.dispatcher.stop()
                runtime.worker.stop()
            runtime.collector.close()

    app = FastAPI(
        title="OpenCDP",
        version=__version__,
        summary="Segment-compatible customer data platform",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,  # ReDoc would load from a CDN
    )
    install_docs(app)
    app.state.runtime = runtime

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: f"no such endpoint: {request.method} {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(exc.status_code, str(exc.detail))
        headers = getattr(exc, "headers", None)
        allowed = allowed_methods(app, request.url.path) if exc.status_code == 405 else None
        if allowed:
            # Each method is its own route: Starlette's Allow names only the first that matched.
            headers = {"Allow": ", ".join(allowed)}
        if request.url.path.startswith("/v1/spaces/"):
            response = profile_error(exc.status_code, code, message)
            response.headers.update(headers or {})
            return response
        return error(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Clients retry 5xx; the body still has a code so that no SDK mistakes it for success.
        # The log names the route's template, not its path (a path can hold an e-mail), and the
        # error's first line only (database errors carry row values on later lines).
        route = getattr(request.scope.get("route"), "path", "?")
        stack = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unhandled error on %s %s: %s\n%s", request.method, route, loggable(exc), stack)
        if isinstance(exc, OpenCDPError):
            response = from_exception(exc)
            status, code, message = exc.status, exc.code, exc.message
        else:
            status, code, message = 500, "internal_error", "the server failed; retry later"
            response = error(status, code, message)
        if request.url.path.startswith("/v1/spaces/"):
            response = profile_error(status, code, message)
        # Unhandled errors are answered outside the middleware stack: set the id here.
        response.headers["Request-Id"] = request_id(request.scope["headers"]).decode()
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message = str(exc.errors()[:3])
        if request.url.path.startswith("/v1/spaces/"):
            return profile_error(400, "validation_error", message)
        return error(400, "invalid_request", message)

    # The routers the shop, the app and the till call on every page and scan come first: a
    # request is matched against the routes in order, and at a thousand requests a second the
    # hundred routes of the administration would otherwise cost a quarter of a core.
    app.include_router(tracking_router(runtime))
    app.include_router(profile_router(runtime))
    app.include_router(catalog_router(runtime))
    app.include_router(loyalty_router(runtime))
    app.include_router(recs_router(runtime))
    app.include_router(api_router(runtime))
    app.include_router(governance_router(runtime))
    app.include_router(compute_router(runtime))
    app.include_router(clv_router(runtime))
    app.include_router(destinations_router(runtime))
    app.include_router(journeys_router(runtime))
    app.include_router(privacy_router(runtime))
    app.include_router(export_router(runtime))
    app.include_router(self_router(runtime))
    app.include_router(workspaces_router(runtime))
    app.include_router(audit_router(runtime))
    app.include_router(consent_router(runtime))
    app.include_router(qr_router(runtime))

    @app.get("/healthz", tags=["Operations"])
    async def healthz() -> Response:
        return JSON({"status": "ok"})

    @app.get("/readyz", tags=["Operations"])
    async def readyz() -> Response:
        try:
            pending = runtime.inbox.pending()
            oldest = runtime.inbox.oldest_pending_received_us()
        except Exception as exc:
            return JSON({"status": "unavailable", "error": loggable(exc)}, status_code=503)
        failing = runtime.collector.committer.write_failing
        if failing is not None:
            # Reads work but writes fail (a full disk): take this instance out of rotation.
            return JSON(
                {"status": "unavailable", "error": f"the last inbox write failed: {failing}"},
                status_code=503,
                headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
            )
        lag = max(0.0, (runtime.now_us() - oldest) / 1e6) if oldest is not None else 0.0
        runtime.metrics.inbox_pending.set(pending)
        runtime.metrics.worker_lag.set(lag)
        return JSON(
            {
                "status": "ready",
                "database": runtime.db.dialect.name,
                "inbox_pending": pending,
                "worker_lag_seconds": round(lag, 3),
                "worker_running": bool(run_worker) or workers_beside > 0,
                "worker_processes": workers_beside,
            }
        )

    @app.get("/metrics", tags=["Operations"], response_class=Response)
    async def metrics() -> Response:
        try:  # the outbox per destination, read now (one grouped query, off the event loop)
            backlog = await run_in_threadpool(runtime.outbox.backlog)
        except Exception as exc:  # the database is away: the counters still answer
            log.warning("metrics: the outbox could not be read: %s", loggable(exc))
            backlog = []
        return Response(
            runtime.metrics.render(backlog, runtime.now_us()),
            media_type="text/plain; version=0.0.4",
        )

    install_openapi(app)
    app.add_middleware(AuditTrail, runtime=runtime)
    app.add_middleware(TrackingCORS)
    app.add_middleware(BoundedBody, max_bytes=runtime.settings.max_api_body_bytes)
    app.add_middleware(RefuseNul)
    app.add_middleware(RequestId)
    return app


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for ``path`` (and HEAD with GET)."""
    paths = app.openapi().get("paths", {})
    if path in paths:  # a literal path wins over templates (/api/quarantine/replay)
        matching = [paths[path]]
    else:
        matching = [
            operations
            for template, operations in paths.items()
            if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path)
        ]
    methods = {method.upper() for operations in matching for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def create_app_from_environment() -> FastAPI:
    """An app over a runtime built from the environment (for ``opencdp serve --processes N``)."""
    from opencdp.settings import Settings

    return create_app(Runtime(Settings()))
