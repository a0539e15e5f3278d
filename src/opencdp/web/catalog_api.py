"""The headless catalog and inventory API under ``/api``: products (one, in bulk), the reads
the shop and the app call on every page (``ETag`` and ``If-None-Match``), stock levels (one,
in bulk) and their history.

``GET /api/products/{product_id}`` is the hot path: like the Profile API's traits it answers
in the event loop from one statement on a per-thread connection (``runtime.catalog_reads``),
rendered by orjson, with no store or thread hand-off per request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.catalog.etag import etag_matches
from opencdp.errors import OpenCDPError
from opencdp.runtime import Runtime
from opencdp.services import catalog as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, authenticate
from opencdp.web.inputs import json_body
from opencdp.web.request_id import REQUEST_ID_KEY
from opencdp.web.responses import JSON, from_exception


def _reference(request: Request) -> str | None:
    """What the stock history records as the write's reference: the request's id."""
    rid = request.scope.get(REQUEST_ID_KEY)
    return f"request:{rid}" if rid else None


def _tagged(body: Any, etag: str, request: Request) -> Response:
    """``304`` without a body when ``If-None-Match`` names the current ETag, else the body."""
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return JSON(body, headers={"ETag": etag})


def catalog_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Catalog and inventory"])

    # -- products -----------------------------------------------------------------------------
    @router.put("/products/{product_id}", summary="Create or replace a product")
    async def put_product(product_id: str, request: Request) -> Response:
        """``id`` (SKU), ``name``, ``brand``, ``category`` (``"Women > Shoes"`` or a list),
        ``price``, ``currency``, ``url``, ``image_url``, ``parent_id`` (a variant's parent);
        every other field is an attribute. Answers the product as ``GET`` does (its stock
        stays as it is)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                service.put_product, runtime, token.workspace_id, product_id, body
            )

        return await answer(runtime, request, handler)

    @router.post("/products:batch", summary="Create or replace up to 1,000 products")
    async def put_products(request: Request) -> Response:
        """``{"products": [...]}``, each as ``PUT /api/products/{id}`` takes it with its
        ``id``: all written, or none when one is invalid (each named by its index)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                service.put_products_batch, runtime, token.workspace_id, body
            )

        return await answer(runtime, request, handler)

    @router.get("/products/{product_id}", summary="A product with its stock per location")
    async def get_product(product_id: str, request: Request) -> Response:
        """The product, its ``stock`` per location, ``in_stock``, its ``variants`` when it is
        a parent. ``ETag``; ``If-None-Match`` with the current one answers ``304``."""
        try:
            token = authenticate(runtime, request)
            view, etag = service.get_product(runtime, token.workspace_id, product_id)
        except OpenCDPError as exc:
            return from_exception(exc)
        return _tagged(view, etag, request)

    @router.get("/products", summary="List products")
    async def list_products(request: Request) -> Response:
        """Products in id order, ``{"data": [...], "next": cursor | null}``: ``category`` a
        path prefix (``Women`` finds ``Women > Shoes``), ``brand``, ``q`` (a part of the name,
        brand or id, any case), ``in_stock``, ``limit`` (50, at most 500), ``next``."""
        params = request.query_params

        async def handler(request: Request, token: AccessToken) -> Any:
            body, etag = await run_in_threadpool(
                lambda: service.list_products(
                    runtime,
                    token.workspace_id,
                    category=params.get("category"),
                    brand=params.get("brand"),
                    q=params.get("q"),
                    in_stock=params.get("in_stock"),
                    limit=params.get("limit"),
                    next_cursor=params.get("next"),
                )
            )
            return _tagged(body, etag, request)

        return await answer(runtime, request, handler)

    # -- inventory ----------------------------------------------------------------------------
    @router.put("/inventory/{product_id}", summary="Set a product's stock at one location")
    async def put_level(product_id: str, request: Request) -> Response:
        """``{"location", "quantity"}`` (``web`` for the web warehouse, a store's id);
        answers the level. A product not in the catalog is refused (``404``). Stock that
        comes back (0 → above 0) answers back-in-stock requests in the same transaction."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                service.set_inventory,
                runtime,
                token.workspace_id,
                product_id,
                body,
                _reference(request),
            )

        return await answer(runtime, request, handler)

    @router.post("/inventory:batch", summary="Set up to 1,000 stock levels")
    async def put_levels(request: Request) -> Response:
        """``{"levels": [{"product_id", "location", "quantity"}]}``: all written, or none
        when one is invalid or names a product not in the catalog (each named by its
        index). Answers how many were given, changed and restocked."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                service.set_inventory_batch, runtime, token.workspace_id, body, _reference(request)
            )

        return await answer(runtime, request, handler)

    @router.get("/inventory/{product_id}/history", summary="A product's stock changes")
    async def history(product_id: str, request: Request) -> Response:
        """Newest first: location, quantity after, delta, channel (``api``, ``import``,
        ``event``), reference and time; ``limit`` (100, at most 1,000)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return await run_in_threadpool(
                service.inventory_history,
                runtime,
                token.workspace_id,
                product_id,
                request.query_params.get("limit"),
            )

        return await answer(runtime, request, handler)

    return router
