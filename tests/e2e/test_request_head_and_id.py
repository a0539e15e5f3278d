"""Through a real ``opencdp serve``: oversized request heads get 431, and every response —
errors included — carries a ``Request-Id`` (the client's own when it is safe to echo)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server (SQLite) for the module: its tests only read answers' heads, and no
    test depends on what another stored."""
    server = LiveServer(tmp_path_factory.mktemp("live"), WRITE_KEY, TOKEN).start()
    yield server
    server.stop()


def raw_request(url: str, head_bytes: int) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * head_bytes + b"\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and len(b"".join(chunks)) > 200:
                break
    return b"".join(chunks)


def test_a_100_kb_header_is_answered_431(live_server: Any) -> None:
    # Given a request whose header is 100 KB
    answer = raw_request(live_server.url, 100 * 1024)
    # Then the server answers 431 with the usual JSON error body, and keeps serving
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert b'"code":"request_header_fields_too_large"' in answer
    assert raw_request(live_server.url, 8 * 1024).startswith(b"HTTP/1.1 200 ")
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200


def test_headers_a_browser_sends_are_fine(live_server: Any) -> None:
    cookies = {"Cookie": "; ".join(f"c{i}={'x' * 100}" for i in range(100))}  # ~10 KB
    response = httpx.post(
        f"{live_server.url}/v1/track",
        json={"userId": "u-1", "event": "Clicked"},
        headers={**basic(WRITE_KEY), **cookies},
    )
    assert response.status_code == 200, response.text


PROFILE = "/v1/spaces/default/collections/users/profiles/user_id:nobody/traits"

ERRORS = [
    pytest.param("POST", "/v1/track", {}, b"{", id="tracking-400"),
    pytest.param("POST", "/v1/track", {"Authorization": "Basic eDo="}, b"{}", id="tracking-401"),
    pytest.param("GET", PROFILE, basic(TOKEN), b"", id="profile-404"),
    pytest.param("GET", PROFILE, {}, b"", id="profile-401"),
    pytest.param("GET", "/api/quarantine", {}, b"", id="api-401"),
    pytest.param("GET", "/nope", {}, b"", id="unknown-404"),
    pytest.param("GET", "/api/quarantine?x=%00", basic(TOKEN), b"", id="nul-400"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), ERRORS)
def test_error_responses_echo_the_request_id(
    live_server: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    url = f"{live_server.url}{path}"
    sent = {**headers, "Request-Id": "req-42.abc:1"}
    response = httpx.request(method, url, headers=sent, content=body or None)
    assert response.status_code >= 400
    assert response.headers["request-id"] == "req-42.abc:1"
    # Without one, or with one unsafe to echo, the server makes its own
    for unsafe in ({}, {"Request-Id": "x" * 201}, {"Request-Id": "a b<script>"}):
        response = httpx.request(method, url, headers={**headers, **unsafe}, content=body or None)
        own = response.headers["request-id"]
        assert own and own != unsafe.get("Request-Id") and len(own) <= 200


def test_success_responses_echo_the_request_id_too(live_server: Any) -> None:
    response = httpx.get(f"{live_server.url}/healthz", headers={"Request-Id": "r-1"})
    assert response.headers["request-id"] == "r-1"
