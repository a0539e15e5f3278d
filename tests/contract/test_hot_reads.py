"""The hot reads' connections on both backends: the threads that serve them (an event loop's,
a dedicated read thread) keep one each; any other thread borrows one for the read and gives it
back, so that dozens of request threads reading now and then never hold the pool empty."""

from __future__ import annotations

import asyncio
import threading

from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS


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

    done = threading.Thread(target=lambda: asyncio.run(serve()))
    done.start()
    done.join(timeout=20)
    # one connection, kept for the next request (and given back at close)
    assert held(runtime) == before + 1
    runtime.hot_reads.close()
    assert held(runtime) == before


def test_a_dedicated_read_thread_keeps_one_connection(runtime: Runtime) -> None:
    before = held(runtime)

    def reader() -> None:
        runtime.hot_reads.keep_connection_in_this_thread()
        for _ in range(5):
            read(runtime)

    t = threading.Thread(target=reader)
    t.start()
    t.join(timeout=20)
    assert held(runtime) == before + 1
    runtime.hot_reads.close()
    assert held(runtime) == before
