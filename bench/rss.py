"""Benchmark (d): peak resident memory of the server and of a worker under load.

``opencdp serve`` (worker off) and one ``opencdp worker`` process run side by side; the ingest
load generator saturates the server for a while, the worker processes what it can, and then
the worker drains the rest (bounded). Peak RSS is ``VmHWM`` from ``/proc/<pid>/status``, read
just before each process stops; the RSS right after start is printed beside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PostgresCluster, bench_server
from bench.ingest import http_ingest


def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    duration: float | None,
    console: Any,
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 10.0)
    results: dict[str, Any] = {"backends": {}}
    for backend in backends:
        console.print(f"[bold]rss[/bold] on {backend}: ingest for {duration:g} s with a worker")
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-") as tmp:
            url = pg.new_database() if pg and backend == "postgres" else None
            data = Path(tmp) / "rss"
            server = bench_server(data, url).start()
            worker = bench_server(data, url, worker=True).start()
            try:
                time.sleep(3.0)  # let the worker finish starting
                idle = {"server": server.memory(), "worker": worker.memory()}
                load = http_ingest(
                    server, processes=2, threads=8, batch_size=100, warmup=1.0, duration=duration
                )
                drained = server.wait_drained(timeout=30.0 if quick else 60.0, poll=0.5)
                peak = {"server": server.memory(), "worker": worker.memory()}
            finally:
                worker.stop()
                server.stop()
        results["backends"][backend] = {
            "idle_kib": idle,
            "peak_kib": peak,
            "ingest_events_per_s": load["events_per_s"],
            "drain_seconds": drained,
            "duration_s": duration,
        }
    return results
