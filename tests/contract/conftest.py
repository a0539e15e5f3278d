"""What the activation contract tests share: a runtime on each backend under a frozen clock
(set to now: receivers check that a webhook's timestamp is recent), and the HTTP app on it
without a worker (the tests run the processor, the timers and the dispatcher themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import make_settings


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def rt(tmp_path: Path, database_url: str | None, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(tmp_path, database_url), clock)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, start_worker=False)) as c:
        yield c
