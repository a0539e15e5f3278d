"""Admission control: an overloaded server answers 429 before SDKs time out, the inbox backlog
limit is hard (also across processes), a failing disk answers 503 with Retry-After and takes
the instance out of rotation, and every /api body is bounded."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opencdp.collect.collector import inbox_row
from opencdp.collect.normalize import NormalizedEvent
from opencdp.errors import RateLimited, StorageUnavailable
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings
from tests.contract.test_storage_contract import source
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


def rows(runtime: Runtime, prefix: str, n: int) -> list[dict[str, Any]]:
    src = source(runtime)
    return [
        inbox_row(
            src,
            NormalizedEvent(f"{prefix}-{i}", "track", {"type": "track", "userId": "u"}, 1, 1),
        )
        for i in range(n)
    ]


# --- The backlog limit is hard ---------------------------------------------------------------


def test_the_backlog_limit_is_hard_when_requests_commit_together(
    tmp_path: Path, database_url: str | None
) -> None:
    # Given an inbox that may hold 50 unprocessed events, 45 of them already waiting
    runtime = Runtime(make_settings(tmp_path, database_url, max_inbox_backlog=50))
    try:
        committer = runtime.collector.committer
        committer.submit(rows(runtime, "old", 45), []).result()
        # When ten requests of 10 events arrive at once (one group-commit transaction)
        futures = [committer.submit(rows(runtime, f"r{i}", 10), []) for i in range(10)]
        outcomes = []
        for f in futures:
            try:
                f.result(timeout=30)
                outcomes.append("ok")
            except RateLimited as exc:
                outcomes.append(exc.code)
        # Then none fits (5 places are left, each request brings 10) and none is stored
        assert outcomes == ["backlog_full"] * 10
        assert runtime.inbox.pending() == 45
        # And a request that fits is still accepted, exactly up to the limit
        committer.submit(rows(runtime, "fits", 5), []).result(timeout=30)
        with pytest.raises(RateLimited):
            committer.submit(rows(runtime, "one-more", 1), []).result(timeout=30)
        assert runtime.inbox.pending() == 50
    finally:
        runtime.close()


def test_the_backlog_limit_holds_across_processes_on_postgresql(
    tmp_path: Path, pg_cluster: Any
) -> None:
    # Given two collectors (two HTTP processes) on one PostgreSQL inbox with a limit of 200
    url = pg_cluster.new_database()
    runtimes = [
        Runtime(make_settings(tmp_path / f"p{i}", url, max_inbox_backlog=200)) for i in range(2)
    ]
    try:
        # When both commit requests of 7 events as fast as they can
        def flood(index: int) -> int:
            committer = runtimes[index].collector.committer
            accepted = 0
            for n in range(40):
                try:
                    committer.submit(rows(runtimes[index], f"p{index}-{n}", 7), []).result(30)
                    accepted += 7
                except RateLimited:
                    pass
            return accepted

        with ThreadPoolExecutor(2) as pool:
            accepted = sum(pool.map(flood, range(2)))
        # Then the inbox holds exactly what was acknowledged, and never more than the limit
        pending = runtimes[0].inbox.pending()
        assert pending == accepted
        assert 200 - 7 < pending <= 200
    finally:
        for rt in runtimes:
            rt.close()


# --- Bounded latency --------------------------------------------------------------------------


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path / "srv", WRITE_KEY, TOKEN, OPENCDP_MAX_INGEST_WAIT_SECONDS="0.5"
    ).start()
    yield server
    server.stop()


def test_an_overloaded_server_answers_429_instead_of_waiting(impatient_server: LiveServer) -> None:
    db_file = impatient_server.data_dir / "opencdp.db"
    url = f"{impatient_server.url}/v1/track"

    def track(i: int) -> httpx.Response:
        body = {"userId": "u-1", "event": "Clicked", "messageId": f"m-{i}"}
        return httpx.post(url, json=body, headers=basic(WRITE_KEY), timeout=30)

    # Given a database whose write lock another program holds for two seconds
    blocker = sqlite3.connect(db_file, timeout=30, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(2.0, blocker.rollback)
    release.start()
    started = time.monotonic()
    # When eight requests arrive meanwhile, one after the other
    with ThreadPoolExecutor(8) as pool:
        futures = []
        for i in range(8):
            futures.append(pool.submit(track, i))
            time.sleep(0.05)
        responses = [f.result() for f in futures]
    release.join()
    blocker.close()
    # Then the request whose commit had begun is stored; the others were told to come back
    statuses = [r.status_code for r in responses]
    assert statuses[0] == 200
    refused = [r for r in responses if r.status_code == 429]
    assert refused, statuses
    for r in refused:
        assert r.json()["code"] == "overloaded"
        assert int(r.headers["Retry-After"]) >= 1
    assert set(statuses) <= {200, 429}
    # (well before an SDK's ~10 s timeout)
    assert time.monotonic() - started < 9
    # And what was refused was not stored: a retry of each refused request is new
    for i in range(len(responses)):
        assert track(i).status_code == 200
    impatient_server.wait_idle()
    events = httpx.get(
        f"{impatient_server.url}/v1/spaces/default/collections/users/profiles/user_id:u-1/events",
        params={"limit": 100},
        headers=basic(TOKEN),
    ).json()["data"]
    assert sorted(e["message_id"] for e in events) == [f"m-{i}" for i in range(8)]


# --- A failing disk ------------------------------------------------------------------------------


def test_failing_writes_answer_503_with_retry_after_and_unready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime(make_settings(tmp_path))
    client = TestClient(create_app(runtime, start_worker=False))
    try:
        original = runtime.inbox.append

        def disk_full(*args: Any) -> None:
            raise StorageUnavailable("database write failed: database or disk is full")

        # Given a database that cannot write (the disk is full)
        monkeypatch.setattr(runtime.inbox, "append", disk_full)
        track = {"userId": "u-1", "event": "Clicked"}
        response = client.post("/v1/track", json=track, headers=basic(WRITE_KEY))
        # Then the client is told to come back, and the instance reports it is not ready
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "disk is full" in ready.json()["error"]
        # When the disk has room again, the next write succeeds and it is ready again
        monkeypatch.setattr(runtime.inbox, "append", original)
        assert client.post("/v1/track", json=track, headers=basic(WRITE_KEY)).status_code == 200
        assert client.get("/readyz").status_code == 200
    finally:
        client.close()
        runtime.close()


# --- Bounded /api bodies ------------------------------------------------------------------------


@pytest.fixture
def small_body_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path / "srv", WRITE_KEY, TOKEN, OPENCDP_MAX_API_BODY_BYTES="10000"
    ).start()
    yield server
    server.stop()


def test_api_bodies_over_the_limit_are_413(small_body_server: LiveServer) -> None:
    base = small_body_server.url
    auth = basic(TOKEN)
    big = b'{"days": 1, "pad": "' + b"x" * 20_000 + b'"}'
    # With a Content-Length
    response = httpx.post(f"{base}/api/tracking-plans/p/dry-run", content=big, headers=auth)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")

    # Streamed (chunked, no Content-Length), far beyond the limit
    def stream() -> Iterator[bytes]:
        yield b'{"identifiers": {"email": "'
        for _ in range(1000):
            yield b"a" * 10_000
        yield b'"}}'

    response = httpx.post(f"{base}/api/contacts", content=stream(), headers=auth, timeout=30)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    # A body within the limit is served as before, and the server is fine
    small = {"identifiers": {"email": "ann@example.com"}}
    assert httpx.post(f"{base}/api/contacts", json=small, headers=auth).status_code == 201
    assert httpx.get(f"{base}/healthz").status_code == 200
