"""Diagnosis, not a result: fill an inbox with realistic events (no HTTP) and drain it with one
in-process worker, to profile the worker (``py-spy record -- python bench/worker_profile.py``
or ``--pyinstrument``). The figures of record come from ``bench/run.py --only e2e``.

    .venv/bin/python bench/worker_profile.py --events 30000 [--database-url URL] [--pyinstrument]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import TOKEN, WRITE_KEY
from bench.events import EventFactory
from opencdp.collect.envelope import Envelope
from opencdp.runtime import Runtime
from opencdp.settings import Settings
from opencdp.storage.admin import DEFAULT_WORKSPACE


def fill(rt: Runtime, events: int, users: int) -> None:
    factory = EventFactory(seed=11, users=users)
    source = next(s for s in rt.admin.list_sources(DEFAULT_WORKSPACE))
    for start in range(0, events, 1000):
        batch = [factory.event(f"m{start + i}") for i in range(min(1000, events - start))]
        rows, rejected, _ = rt.collector.build_rows(source, Envelope(batch, None))
        rt.collector.commit(rows, rejected)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--database-url", default=None)
    p.add_argument("--pyinstrument", action="store_true")
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
