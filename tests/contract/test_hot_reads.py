"""The hot reads' connections on both backends: the thread that serves them (an event loop's)
keeps one; any other thread borrows one for the read and gives it
back, so that dozens of request threads reading now and then never hold the pool empty."""

from __future__ import annotations

import asyncio
import threading

import pytest

from opencdp.errors import StorageUnavailable
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from tests.e2e.test_audience_membership import wait_for


def held(rt: Runtime) -> int:
    return int(rt.db.engine.pool.checkedout())  # type: ignore[attr-defined]


def read(rt: Runtime) -> None:
    assert rt.catalog_reads.product(WS, "no-such-product") is None


def test_a_request_thread_gives_its_connection_back(runtime: Runtime) -> None:
    # Given more threads than the pool has connections, each reading once
    before = held(runtime)
    threads = [threading.Thread(target=read, args=(runtime,)) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    # Then every read answered and no connection stays checked out
    assert not any(t.is_alive() for t in threads)
    assert held(runtime) == before
    # and the pool still serves a write at once
    with runtime.db.read() as conn:
        assert conn is not None


def test_the_event_loops_thread_keeps_one_connection(runtime: Runtime) -> None:
    before = held(runtime)

    async def serve() -> None:
        for _ in range(5):
            read(runtime)

    during: list[int] = []

    async def serve_and_count() -> None:
        await serve()
        during.append(held(runtime))

    done = threading.Thread(target=lambda: asyncio.run(serve_and_count()))
    done.start()
    done.join(timeout=20)
    # one connection while the loop's thread lives, kept from request to request
    assert during == [before + 1]
    # and given back when the thread ends
    assert held(runtime) == before


def test_a_serving_thread_keeps_one_connection_until_close(runtime: Runtime) -> None:
    before = held(runtime)
    release = threading.Event()
    reading = threading.Event()

    async def serve_then_wait() -> None:
        for _ in range(5):
            read(runtime)
        reading.set()
        release.wait(20)

    t = threading.Thread(target=lambda: asyncio.run(serve_then_wait()))
    t.start()
    assert reading.wait(20)
    assert held(runtime) == before + 1  # one, for all its reads
    runtime.hot_reads.close()  # shutdown gives it back
    assert held(runtime) == before
    release.set()
    t.join(timeout=20)
    assert held(runtime) == before


def test_a_database_that_cannot_answer_is_storage_unavailable(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(runtime.db.engine, "raw_connection", down)
    with pytest.raises(StorageUnavailable):  # a 503 with Retry-After, not a 500
        read(runtime)


def test_a_catalog_loaded_in_bulk_gets_fresh_planner_statistics(runtime: Runtime) -> None:
    from opencdp.services import catalog
    from opencdp.storage.statistics import refresh_stale

    # Given a catalog just loaded in bulk
    for start in (0, 1000):
        batch = [{"id": f"P-{n:05d}", "name": f"Product {n}"} for n in range(start, start + 1000)]
        catalog.put_products_batch(runtime, WS, {"products": batch})
    # Then a check of the worker's (every few seconds: PostgreSQL reports a backend's row
    # counts when it goes idle) analyzes it; SQLite plans without statistics
    if runtime.db.dialect.is_sqlite:
        assert refresh_stale(runtime.db) == []
        return
    assert wait_for(lambda: "products" in refresh_stale(runtime.db), timeout=20)
    assert "products" not in refresh_stale(runtime.db)  # and not again until it changes
