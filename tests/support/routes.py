"""Every route of the app, flattened: FastAPI 0.16x keeps included routers lazily
(``_IncludedRouter``), so ``app.routes`` alone does not list them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def http_routes(app: FastAPI) -> list[tuple[str, str]]:
    """``(method, path template)`` of every route, HEAD left out (it answers as GET)."""
    found: set[tuple[str, str]] = set()
    stack: list[Any] = list(app.routes)
    while stack:
        route = stack.pop()
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            stack.extend(candidates())
            continue
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and isinstance(path, str):
                found.add((method, path))
    return sorted(found, key=lambda r: (r[1], r[0]))
