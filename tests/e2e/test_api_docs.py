"""``/docs`` works without internet: every asset the page loads comes from the server."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_docs_page_and_all_its_assets_are_served_locally(live_server: Any) -> None:
    page = httpx.get(f"{live_server.url}/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    for url in urls:
        # Nothing from another host (a CDN the machine or the browser may not reach)
        assert not re.match(r"(https?:)?//", url), url
        asset = httpx.get(f"{live_server.url}{url}")
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    js = [u for u in urls if u.endswith(".js")]
    assert js and b"SwaggerUIBundle" in httpx.get(f"{live_server.url}{js[0]}").content
