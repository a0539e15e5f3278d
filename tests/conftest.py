"""Shared fixtures: settings over a temp data dir, a runtime per storage backend, a live server."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.settings import Settings
from tests.support.mail import MailServer

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WRITE_KEY = "test-write-key"
TOKEN = "test-access-token"
BACKENDS = ["sqlite", "postgres"]


def basic(secret: str) -> dict[str, str]:
    """An Authorization header with ``secret`` as the Basic username."""
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    from tests.support.pg import PostgresCluster

    try:
        cluster = PostgresCluster()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if CI:
            raise
        pytest.skip(f"PostgreSQL could not start: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """A fresh database of each backend (None = embedded SQLite under the data dir)."""
    if request.param == "sqlite":
        return None
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()  # type: ignore[attr-defined, no-any-return]


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "bootstrap_write_key": WRITE_KEY,
        "bootstrap_token": TOKEN,
        "identity_trait_keys": {"loyalty_card": "loyalty_card"},
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def runtime(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    """A runtime on each storage backend (the real clock)."""
    rt = Runtime(make_settings(tmp_path, database_url))
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path))
    yield rt
    rt.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[object]:
    """A real server process (SQLite) on a free loopback port, with the in-process worker."""
    from tests.support.server import LiveServer

    server = LiveServer(tmp_path / "live", WRITE_KEY, TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def live_server_any(tmp_path: Path, database_url: str | None) -> Iterator[object]:
    """A real server process on each storage backend."""
    from tests.support.server import LiveServer

    server = LiveServer(tmp_path / "live", WRITE_KEY, TOKEN, database_url).start()
    yield server
    server.stop()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A real SMTP server on loopback that keeps what it receives."""
    with MailServer() as server:
        yield server
