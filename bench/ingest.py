"""Benchmark (a): collector throughput over HTTP, beside its no-HTTP ceiling.

The server runs with the in-process worker off, so this measures the collector alone: parse,
validate and normalize, then group-commit into the inbox, answering 200 only after the commit.
Load comes from other processes. The ceiling is the same work without HTTP, in one process:

* ``collector (no HTTP)``: ``Collector.prepare`` on the same kind of request bodies, handed to
  the same group committer with as many requests in flight as the HTTP run has connections;
* ``inbox append``: only ``InboxStore.append`` of ready rows in transactions of 2,000 events
  (the database's share of the work).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from itertools import count
from pathlib import Path
from typing import Any

from tests.support.procfs import cpu_seconds
from tests.support.server import LiveServer

from bench.common import TOKEN, WRITE_KEY, PostgresCluster, basic, bench_server, percentile
from bench.events import EventFactory, batch_body, mean_event_bytes
from bench.loadgen import closed_loop


def http_ingest(
    server: LiveServer | list[LiveServer],
    *,
    processes: int,
    threads: int,
    batch_size: int,
    warmup: float,
    duration: float,
    db_pids: Callable[[], list[int]] | None = None,
) -> dict[str, Any]:
    """Saturate the server(s) with /v1/batch from ``processes`` x ``threads`` connections.

    With several servers (API processes on one database), load-generator process ``p`` sends
    to server ``p % len(servers)``, like a round-robin load balancer.
    """
    servers = server if isinstance(server, list) else [server]
    start = time.monotonic() + 2.0  # time for the spawned processes to import and build events
    specs = [
        {
            "host": "127.0.0.1",
            "port": servers[p % len(servers)].port,
            "path": "/v1/batch",
            "auth": basic(WRITE_KEY),
            "threads": threads,
            "batch_size": batch_size,
            "seed": 1000 + p,
            "prefix": f"ing{p}-{int(start * 1000)}",
            "start_at": start,
            "measure_from": start + warmup,
            "measure_to": start + warmup + duration,
        }
        for p in range(processes)
    ]
    ctx = multiprocessing.get_context("spawn")
    cpu_box: dict[str, float] = {}

    def sample_cpu() -> None:
        # Server and database CPU over exactly the measured window.
        time.sleep(max(0.0, start + warmup - time.monotonic()))
        pids = db_pids() if db_pids else []
        cpu_box["server0"] = sum(s.cpu_seconds() for s in servers)
        cpu_box["db0"] = sum(cpu_seconds(p) for p in pids)
        time.sleep(max(0.0, start + warmup + duration - time.monotonic()))
        cpu_box["server1"] = sum(s.cpu_seconds() for s in servers)
        cpu_box["db1"] = sum(cpu_seconds(p) for p in pids)

    sampler = threading.Thread(target=sample_cpu)
    sampler.start()
    with ctx.Pool(processes) as pool:
        outs = pool.map(closed_loop, specs)
    sampler.join()
    totals: dict[str, int] = {}
    latencies: list[float] = []
    for out in outs:
        for k, v in out["totals"].items():
            totals[k] = totals.get(k, 0) + v
        latencies.extend(out["latencies"])
    events = totals.get("events", 0)
    return {
        "events_per_s": events / duration,
        "requests_per_s": totals.get("status_200", 0) / duration,
        "mb_per_s": totals.get("bytes", 0) / duration / 1e6,
        "statuses": {k: v for k, v in totals.items() if k.startswith("status_")},
        "latency_p50_ms": _ms(percentile(latencies, 50)),
        "latency_p99_ms": _ms(percentile(latencies, 99)),
        "server_cpu_cores": (cpu_box["server1"] - cpu_box["server0"]) / duration,
        "db_cpu_cores": (cpu_box["db1"] - cpu_box["db0"]) / duration if db_pids else None,
        "client_cpu_seconds": sum(o["cpu_seconds"] for o in outs),
        "connections": processes * threads,
        "api_processes": len(servers),
        "batch_size": batch_size,
        "duration_s": duration,
        "warmup_s": warmup,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def prepare_and_commit(
    collector: Any,
    templates: list[dict[str, Any]],
    *,
    prefix: str,
    seconds: float,
    batch_size: int,
    threads: int,
) -> dict[str, float]:
    """What the server does per request, minus HTTP, for ``seconds``: one thread prepares
    request bodies and hands them to the group committer, keeping up to ``threads`` requests in
    flight (the HTTP run's connections), so preparing overlaps committing."""
    auth = basic(WRITE_KEY)
    ids = (f"{prefix}-{n}" for n in count())
    in_flight: deque[tuple[Future[None], int]] = deque()
    accepted = quarantined = n = 0
    prepare_s = 0.0
    started = time.monotonic()
    while time.monotonic() < started + seconds:
        body = batch_body(templates, ids, batch_size, start=n * batch_size)
        n += 1
        t0 = time.perf_counter()
        _src, events, rejected, _res = collector.prepare(
            "batch", body, authorization=auth, content_encoding=None
        )
        prepare_s += time.perf_counter() - t0
        quarantined += len(rejected)
        in_flight.append((collector.committer.submit(events, rejected), len(events)))
        while len(in_flight) >= threads or (in_flight and in_flight[0][0].done()):
            done, events_done = in_flight.popleft()
            done.result()
            accepted += events_done
    while in_flight:
        done, events_done = in_flight.popleft()
        done.result()
        accepted += events_done
    return {
        "accepted": accepted,
        "quarantined": quarantined,
        "seconds": time.monotonic() - started,
        "prepare_seconds": prepare_s,
    }


# The no-HTTP ceiling (runs in a spawned process, so it has the machine to itself) ----------------
def ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    """The collector's and the database's share of ingest, with no HTTP in between."""
    from opencdp.collect.envelope import parse_json_object, split_envelope
    from opencdp.runtime import Runtime
    from opencdp.settings import Settings

    settings = Settings(
        data_dir=Path(spec["data_dir"]),
        database_url=spec["database_url"],
        bootstrap_write_key=WRITE_KEY,
        bootstrap_token=TOKEN,
        worker_in_process=False,
    )
    runtime = Runtime(settings)
    try:
        collector = runtime.collector
        templates = EventFactory(seed=7, users=100_000).templates(1000)
        size, threads, seconds = spec["batch_size"], spec["threads"], spec["seconds"]
        out: dict[str, Any] = {}

        # 1. prepare + group commit as the server does them, minus HTTP.
        run = prepare_and_commit(
            collector, templates, prefix="ceil", seconds=seconds, batch_size=size, threads=threads
        )
        out["collector_events_per_s"] = run["accepted"] / run["seconds"]
        out["collector_commits"] = collector.committer.commits

        # 2. The inbox inserts alone, in group-commit-sized transactions of ready rows.
        source = runtime.admin.source_for_key(WRITE_KEY)
        assert source is not None
        body = batch_body(templates, (f"tpl-{n}" for n in count()), 1000, start=0)
        envelope = split_envelope("batch", parse_json_object(body))
        rows, _rejected, _result = collector.build_rows(source, envelope)
        group = spec.get("group", 2000)
        appended = n = 0
        started = time.monotonic()
        while time.monotonic() < started + seconds:
            chunk = [{**rows[i % len(rows)], "message_id": f"app-{n}-{i}"} for i in range(group)]
            n += 1
            with runtime.db.write() as conn:
                runtime.inbox.append(conn, chunk, [])
            appended += group
        out["append_events_per_s"] = appended / (time.monotonic() - started)
        out["append_group"] = group
        return out
    finally:
        runtime.close()


def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    duration: float | None,
    console: Any,
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 15.0)
    warmup = 1.0 if quick else 3.0
    processes, threads, batch_size = 2, 16, 100
    results: dict[str, Any] = {
        "mean_event_bytes": round(mean_event_bytes(EventFactory(1000, 100_000).templates(1000))),
        "backends": {},
    }
    for backend in backends:
        console.print(
            f"[bold]ingest[/bold] on {backend}: {duration:g} s after {warmup:g} s warm-up"
        )
        cluster = pg if backend == "postgres" else None
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-") as tmp:
            url = cluster.new_database() if cluster else None
            load = {
                "processes": processes,
                "threads": threads,
                "batch_size": batch_size,
                "warmup": warmup,
                "duration": duration,
                "db_pids": cluster.backend_pids if cluster else None,
            }
            # As deployed: `serve` with its default worker process beside the HTTP process.
            server = bench_server(Path(tmp) / "http", url, workers=1).start()
            try:
                r = http_ingest(server, **load)
                r["server_memory_kib"] = server.memory()
                r["inbox_pending_after"] = server.readyz()["inbox_pending"]
            finally:
                server.stop()
            # Diagnosis: the collector alone (`serve --no-worker`).
            url_off = cluster.new_database() if cluster else None
            alone = bench_server(Path(tmp) / "alone", url_off, workers=0).start()
            try:
                r["worker_off"] = http_ingest(alone, **load)
            finally:
                alone.stop()
            # `serve --processes 2` as deployed: two HTTP processes sharing the port, a worker.
            url2 = cluster.new_database() if cluster else None
            pair = bench_server(
                Path(tmp) / "http2", url2, workers=1, args=("--processes", "2")
            ).start()
            try:
                r["two_api_processes"] = http_ingest(pair, **load)
            finally:
                pair.stop()
            spec = {
                "data_dir": str(Path(tmp) / "ceiling"),
                "database_url": cluster.new_database() if cluster else None,
                "batch_size": batch_size,
                "threads": processes * threads,
                "seconds": min(duration, 10.0),
            }
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                ceil = pool.apply(ceiling, (spec,))
        r["ceiling"] = ceil
        r["ratio_to_collector_ceiling"] = r["events_per_s"] / ceil["collector_events_per_s"]
        r["ratio_to_append_ceiling"] = r["events_per_s"] / ceil["append_events_per_s"]
        results["backends"][backend] = r
    return results
