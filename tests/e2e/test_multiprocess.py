"""`opencdp serve --processes N`: several HTTP processes share the port, one worker beside them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, WRITE_KEY
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


def test_two_http_processes_share_the_port_and_one_worker_resolves(
    tmp_path: Path, database_url: str | None
) -> None:
    server = LiveServer(tmp_path / "mp", WRITE_KEY, TOKEN, database_url, args=("--processes", "2"))
    server.start()
    try:
        # Given events sent over many connections (so both processes take some)
        for i in range(40):
            with httpx.Client(base_url=server.url, auth=(WRITE_KEY, "")) as client:
                r = client.post("/v1/identify", json={"userId": f"mp-{i}", "traits": {"n": i}})
                assert r.status_code == 200, r.text
        # When the worker has drained the inbox
        server.wait_idle()
        # Then every profile is readable through any process
        with httpx.Client(base_url=server.url, auth=(TOKEN, "")) as client:
            for i in (0, 17, 39):
                r = client.get(
                    f"/v1/spaces/default/collections/users/profiles/user_id:mp-{i}/traits"
                )
                assert r.status_code == 200, r.text
                assert r.json()["traits"] == {"n": i}
    finally:
        server.stop()
