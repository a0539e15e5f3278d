"""Campaign QR codes over HTTP (``docs/qr-codes.md``).

``GET /q/{code}`` is what a phone opens after scanning a poster: no credentials (it is
printed), a ``302`` to the code's registered URL (never to anything the request names), the
visitor's ``ajs_anonymous_id`` cookie (analytics.js's, kept when the browser has one) and a
``QR Code Scanned`` event on that visitor. An unknown or disabled code is a plain-text 404
page. The route lies outside ``/api``, so ``web/access.py``'s rules do not apply to it.

Under ``/api/qr``: the workspace's codes (read), a new code (admin) and each code's QR image
(read). A short URL is ``<public URL>/q/{code}``: the ``public_url`` setting when it is set,
else the address the request came to.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services import qr_codes as service
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, note_target
from opencdp.web.inputs import json_body

#: the cookie analytics.js keeps the visitor's anonymous id in
COOKIE = "ajs_anonymous_id"
COOKIE_MAX_AGE = 31_536_000  # a year, as analytics.js sets it
_NO_STORE = {"Cache-Control": "no-store"}


def qr_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["QR codes"])

    def base_url(request: Request) -> str:
        if runtime.settings.public_url_set:
            return runtime.settings.public_url
        return str(request.base_url).rstrip("/")

    # ``code:path`` takes every path under /q/, so that any of them that is not a code gets
    # the same plain-text page (and nothing in the path can reach the Location header).
    @router.get("/q/{code:path}", summary="Scan a campaign QR code: redirect to its target")
    async def scan(code: str, request: Request) -> Response:
        """No credentials. ``302`` to the URL registered for ``code`` (only that one), with
        ``Set-Cookie: ajs_anonymous_id`` when the browser has none; records ``QR Code
        Scanned`` with the campaign on the visitor. ``404`` text page for an unknown or
        disabled code."""
        known = service.anonymous_id_from_cookie(request.cookies.get(COOKIE))
        try:
            target, visitor, _ = await run_in_threadpool(
                service.scan,
                runtime,
                code,
                known,
                request.headers.get("user-agent"),
                request.client.host if request.client else None,
            )
        except NotFound:
            return PlainTextResponse(
                "This QR code is not known or no longer in use.\n",
                status_code=404,
                headers=_NO_STORE,
            )
        response = RedirectResponse(target, status_code=302, headers=_NO_STORE)
        if known is None:
            response.headers.append(
                "Set-Cookie",
                f"{COOKIE}={visitor}; Path=/; Max-Age={COOKIE_MAX_AGE}; SameSite=Lax",
            )
        return response

    @router.get("/api/qr", summary="The workspace's campaign QR codes")
    async def list_codes(request: Request) -> Response:
        """Newest first, each with its campaign, target and short URL (``campaign``: only
        that campaign's)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            campaign = request.query_params.get("campaign")  # NUL: refused before (400)
            found = await run_in_threadpool(service.list_qr, runtime, token.workspace_id, campaign)
            base = base_url(request)
            return {"data": [service.view(qr, base) for qr in found]}

        return await answer(runtime, request, handler)

    @router.post("/api/qr", summary="Make a campaign QR code", status_code=201)
    async def add_code(request: Request) -> Response:
        """``{"campaign": "spring-posters", "target": "https://shop.example/spring"}``:
        ``201`` with the new ``code`` and its ``short_url``. The target is an absolute
        http(s) URL without credentials; it is the only place the code ever sends to."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            if not isinstance(body, dict):
                raise RequestError('send {"campaign", "target"}', code="invalid_qr")
            unknown = sorted(set(body) - {"campaign", "target"})
            if unknown:
                raise RequestError(
                    f"unknown field {unknown[0]!r}; send campaign and target", code="invalid_qr"
                )
            code = await run_in_threadpool(
                service.add_qr,
                runtime,
                token.workspace_id,
                body.get("campaign"),
                body.get("target"),
            )
            note_target(request, code)
            qr = await run_in_threadpool(service.get_qr, runtime, token.workspace_id, code)
            return service.view(qr, base_url(request))

        return await answer(runtime, request, handler, status=201)

    for extension, media_type in (("svg", "image/svg+xml"), ("png", "image/png")):
        router.add_api_route(
            f"/api/qr/{{code}}.{extension}",
            _image_endpoint(runtime, base_url, extension, media_type),
            methods=["GET"],
            summary=f"The QR code of a code's short URL as {extension.upper()}",
        )

    return router


def _image_endpoint(runtime: Runtime, base_url: Any, extension: str, media_type: str) -> Any:
    async def image(code: str, request: Request) -> Response:
        """The QR code to print: it encodes the code's short URL."""

        async def handler(request: Request, token: AccessToken) -> Any:
            content = await run_in_threadpool(
                service.qr_image, runtime, token.workspace_id, code, base_url(request), extension
            )
            return Response(content, media_type=media_type)

        return await answer(runtime, request, handler)

    return image
