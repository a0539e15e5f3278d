"""``/docs``: Swagger UI served from an installed package, so it works without internet.

FastAPI's default page loads Swagger UI from a CDN and is blank on a machine (or a browser)
that cannot reach it. The assets of the ``swagger-ui-py`` package (Swagger UI 5, which reads
OpenAPI 3.1) are served under ``/docs-assets`` instead.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def install_docs(app: FastAPI, path: str = "/docs") -> None:
    """Serve Swagger UI at ``path`` from local assets (create the app with docs_url=None)."""
    static = resources.files("swagger_ui") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    redirect = f"{path}/oauth2-redirect"

    @app.get(path, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            oauth2_redirect_url=redirect,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
