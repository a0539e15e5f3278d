"""Diagnosis, not a result: fill an inbox with realistic events (no HTTP) and drain it with one
in-process worker, to profile the worker (``py-spy record -- python bench/worker_profile.py``
or ``--pyinstrument``). The figures of record come from ``bench/run.py --only e2e``.

    .venv/bin/python bench/worker_profile.py --events 30000 [--database-url URL] [--pyinstrument]
        [--definitions]   # with the compute benchmark's 20 real-time definitions
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import TOKEN, WRITE_KEY
from bench.definitions import REALTIME
from bench.events import EventFactory
from opencdp.collect.envelope import Envelope
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.settings import Settings
from opencdp.storage.admin import DEFAULT_WORKSPACE


def fill(rt: Runtime, events: int, users: int) -> None:
    factory = EventFactory(seed=11, users=users)
    source = next(s for s in rt.admin.list_sources(DEFAULT_WORKSPACE))
    for start in range(0, events, 1000):
        batch = [factory.event(f"m{start + i}") for i in range(min(1000, events - start))]
        rows, rejected, _ = rt.collector.build_rows(source, Envelope(batch, None))
        rt.collector.commit(rows, rejected)


SEED = {
    "type": "identify",
    "userId": "seed",
    "messageId": "seed",
    "traits": {"plan": "pro", "address": {"country": "DE"}},
}


def define(rt: Runtime) -> None:
    """The 20 real-time definitions (after one profile that makes their traits known)."""
    source = next(s for s in rt.admin.list_sources(DEFAULT_WORKSPACE))
    rt.collector.ingest_messages(source, [SEED])
    rt.processor.run_until_idle()
    for key, (kind, query) in REALTIME.items():
        body = {"name": key, "definition": {"type": "USERS", "query": query}}
        done = compute.put_definition(rt, DEFAULT_WORKSPACE, kind, key, body)  # type: ignore[arg-type]
        assert done["status"] == "ready", done


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--database-url", default=None)
    p.add_argument("--pyinstrument", action="store_true")
    p.add_argument("--definitions", action="store_true", help="20 real-time definitions on")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime(
            Settings(
                data_dir=Path(tmp),
                database_url=args.database_url,
                bootstrap_write_key=WRITE_KEY,
                bootstrap_token=TOKEN,
            )
        )
        if args.definitions:
            define(rt)
        fill(rt, args.events, args.users or max(100, args.events // 12))
        started = time.perf_counter()
        if args.pyinstrument:
            from pyinstrument import Profiler

            with Profiler() as profiler:
                done = rt.processor.run_until_idle()
            profiler.print(show_all=False)
        else:
            done = rt.processor.run_until_idle()
        took = time.perf_counter() - started
        print(f"{done} events in {took:.1f} s: {done / took:,.0f} events/s")
        rt.close()


if __name__ == "__main__":
    main()
