"""Benchmark (b): events through identity resolution and profiles.

* **Worker throughput.** The server (worker off) takes ``N`` realistic events into the inbox;
  then one ``opencdp worker`` process starts and we time until ``/readyz`` shows an empty
  inbox. Events/s = N / drain time, counted from the worker's first processed batch.
* **Acknowledgement to visible profile.** ``opencdp serve`` as deployed (in-process worker on)
  takes identify events with fresh userIds at a fixed offered rate; for a sample of them a
  poller reads the Profile API until the profile answers 200. The time from the collector's
  200 to that first 200 is the latency (resolution: the poll interval).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.support.procfs import cpu_seconds
from tests.support.server import LiveServer

from bench.common import TOKEN, WRITE_KEY, PostgresCluster, basic, bench_server, percentile
from bench.loadgen import ack_to_visible, closed_loop


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def load_inbox(
    server: LiveServer,
    events: int,
    users: int,
    batch_size: int = 100,
    *,
    omnichannel: bool = False,
) -> float:
    """Put ``events`` realistic events into the inbox over HTTP; returns the seconds it took.

    By default 5,000 event templates per sending process are sent again with fresh message
    ids; ``omnichannel`` sends every event once (``users`` people split between the two
    processes, each with sessions, devices, phones, e-mails and cards: see ``EventFactory``)."""
    processes, threads = 2, 4
    per_thread = -(-events // (batch_size * processes * threads))
    start = time.monotonic() + 2.0
    specs = [
        {
            "host": "127.0.0.1",
            "port": server.port,
            "path": "/v1/batch",
            "auth": basic(WRITE_KEY),
            "threads": threads,
            "batch_size": batch_size,
            "seed": 2000 + p,
            "users": users // processes if omnichannel else users,
            "templates": -(-events // processes) if omnichannel else 5000,
            "omnichannel": omnichannel,
            "prefix": f"e2e{p}",
            "start_at": start,
            "measure_from": start,
            "measure_to": start + 3600,
            "max_batches": per_thread,
        }
        for p in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        outs = pool.map(closed_loop, specs)
    bad = {
        k: v
        for o in outs
        for k, v in o["totals"].items()
        if k.startswith("status_") and k != "status_200"
    }
    if bad:
        raise RuntimeError(f"loading the inbox failed: {bad}")
    return max(o["finished_at"] for o in outs) - start


def as_deployed(
    tmp: Path,
    url: str | None,
    events: int,
    users: int,
    *,
    workers: int = 1,
    timeout: float = 900.0,
    omnichannel: bool = False,
    console: Any,
) -> dict[str, Any]:
    """``opencdp serve`` as deployed (HTTP process + ``workers`` worker processes): send
    ``events`` realistic events of ``users`` people as fast as it acknowledges them; events/s =
    ``events`` / the time from the first request until every event is on its profile (the
    inbox is empty)."""
    server = bench_server(tmp / f"deployed-{workers}-{events}", url, workers=workers).start()
    progress: list[tuple[float, float]] = []  # (seconds since start, events processed)
    stop = threading.Event()

    def watch() -> None:  # the workers' counter, summed over processes by /metrics
        while not stop.is_set():
            text = httpx.get(f"{server.url}/metrics", timeout=30).text
            progress.append((time.monotonic() - started, _processed(text)))
            stop.wait(1.0)

    try:
        cpu0 = server.cpu_seconds()
        started = time.monotonic() + 2.0  # load_inbox's senders start 2 s from now
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        load_seconds = load_inbox(server, events, users=users, omnichannel=omnichannel)
        end = None
        while time.monotonic() < started + timeout:
            if server.readyz()["inbox_pending"] == 0:
                end = time.monotonic()
                break
            time.sleep(0.25)
        stop.set()
        watcher.join()
        cpu = server.cpu_seconds() - cpu0
        memory = server.memory()
    finally:
        stop.set()
        server.stop()
    if end is None:
        return {"events": events, "drained": False, "timeout_s": timeout, "workers": workers}
    took = end - started
    console.print(f"  {events:,} events on their profiles in {took:.1f} s ({workers} worker(s))")
    return {
        "events": events,
        "users": users,
        "workers": workers,
        "drained": True,
        "seconds": round(took, 2),
        "events_per_s": events / took,
        "acknowledged_events_per_s": events / load_seconds if load_seconds > 0 else None,
        "opencdp_cpu_cores": cpu / took,
        "memory_kib": memory,
        "rate_per_100k": _rate_per_step(progress, 100_000),
    }


def _processed(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("opencdp_events_processed_total"):
            return float(line.split()[-1])
    return 0.0


def _rate_per_step(progress: list[tuple[float, float]], step: int) -> list[float]:
    """Events/s over each successive ``step`` processed events (does the rate fall as the
    store grows?), from (seconds, processed) samples taken once a second."""
    rates: list[float] = []
    mark_t, mark_n = 0.0, 0.0
    for t, n in progress:
        if n - mark_n >= step:
            rates.append(round((n - mark_n) / (t - mark_t)))
            mark_t, mark_n = t, n
    return rates


def worker_throughput(
    tmp: Path, url: str | None, events: int, timeout: float, console: Any
) -> dict[str, Any]:
    server = bench_server(tmp / "e2e", url).start()
    try:
        load_seconds = load_inbox(server, events, users=max(100, events // 10))
        pending = server.readyz()["inbox_pending"]
        console.print(f"  loaded {pending:,} events in {load_seconds:.1f} s; starting a worker")
        worker = bench_server(tmp / "e2e", url, worker=True)
        launched = time.monotonic()
        worker.start()
        first = None
        end = None
        cpu0 = None
        deadline = launched + timeout
        while time.monotonic() < deadline:
            now_pending = server.readyz()["inbox_pending"]
            now = time.monotonic()
            if first is None and now_pending < pending:
                first, first_pending, cpu0 = now, now_pending, cpu_seconds(worker.pid)
            if now_pending == 0:
                end = now
                break
            time.sleep(1.0)  # /readyz counts the inbox: polling it often slows the worker
        memory = worker.memory()
        cpu = cpu_seconds(worker.pid) - (cpu0 or 0.0)
        worker.stop()
        if end is None or first is None:
            return {"events": pending, "drained": False, "timeout_s": timeout}
        # From the first observed progress: excludes interpreter start and migrations check.
        rate = first_pending / (end - first) if end > first else None
        return {
            "events": pending,
            "drained": True,
            "load_seconds": round(load_seconds, 2),
            "drain_seconds_from_launch": round(end - launched, 2),
            "events_per_s": rate,
            "worker_cpu_cores": cpu / (end - first) if end > first else None,
            "worker_memory_kib": memory,
            "worker_batch_size": 1000,
        }
    finally:
        server.stop()


def latency(
    tmp: Path,
    url: str | None,
    *,
    rate: float,
    duration: float,
    warmup: float,
    separate_worker: bool = False,
    visible_timeout: float = 60.0,
) -> dict[str, Any]:
    data = tmp / f"lat-{int(rate)}-{'sep' if separate_worker else 'in'}"
    server = bench_server(data, url, workers=0 if separate_worker else 1).start()
    worker = bench_server(data, url, worker=True).start() if separate_worker else None
    try:
        batch_size = 50
        start = time.monotonic() + 2.0
        spec = {
            "host": "127.0.0.1",
            "port": server.port,
            "auth": basic(WRITE_KEY),
            "read_auth": basic(TOKEN),
            "batch_size": batch_size,
            "rate": rate,
            "duration": duration,
            "send_threads": 8,
            "poll_threads": 24,
            "sample_every": 10,  # one sampled userId per 10 batches: rate/500 samples/s
            "poll_interval": 0.02,
            "visible_timeout": visible_timeout,
            "grace": 5.0,
            "seed": 99,
            "prefix": f"lat{int(start)}",
            "start_at": start,
        }
        procs = [server, worker] if worker else [server]
        cpu0 = sum(p.cpu_seconds() for p in procs)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            out = pool.apply(ack_to_visible, (spec,))
        cpu = sum(p.cpu_seconds() for p in procs) - cpu0
        after = server.readyz()
        # Bounded: an overloaded run reports its lag instead of waiting the backlog out.
        drain = _drain(server, 20.0)
        memory = server.memory()
        worker_memory = worker.memory() if worker else None
    finally:
        if worker:
            worker.stop()
        server.stop()
    measured = [lat for ack, lat in out["visible"] if ack >= start + warmup]
    acked = out["acked"].get("events", 0)
    sent_window = out["sent_done"] - start
    return {
        "config": "serve --no-worker + opencdp worker" if separate_worker else "serve",
        "offered_events_per_s": rate,
        "acked_events_per_s": acked / sent_window if sent_window > 0 else None,
        "acked_events": acked,
        "statuses": {k: v for k, v in out["acked"].items() if k.startswith("status_")},
        "batches_not_sent": out["acked"].get("batches_not_sent", 0),
        "samples": len(measured),
        "not_visible": out["timeouts"].get("not_visible", 0),
        "visible_timeout_s": visible_timeout,
        "p50_ms": _ms(percentile(measured, 50)),
        "p90_ms": _ms(percentile(measured, 90)),
        "p99_ms": _ms(percentile(measured, 99)),
        "max_ms": _ms(max(measured) if measured else None),
        "sender_lag_p99_ms": _ms(percentile(out["send_lag"], 99)),
        "poller_start_delay_p99_ms": _ms(percentile(out["poll_delay"], 99)),
        "worker_lag_at_end_s": after.get("worker_lag_seconds"),
        "inbox_pending_at_end": after.get("inbox_pending"),
        "drain_after_end_s": drain,
        "opencdp_cpu_cores": cpu / sent_window if sent_window > 0 else None,
        "server_memory_kib": memory,
        "worker_memory_kib": worker_memory,
        "duration_s": duration,
        "warmup_s": warmup,
        "batch_size": batch_size,
        "poll_interval_ms": spec["poll_interval"] * 1000,
    }


def _drain(server: LiveServer, timeout: float) -> float | None:
    took = server.wait_drained(timeout)
    return None if took is None else round(took, 2)


def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    duration: float | None,
    events: int | None,
    rate: float,
    low_rate: float,
    console: Any,
    scale_events: int = 0,
) -> dict[str, Any]:
    """As deployed end to end (60,000 events of 5,000 people by default), one worker alone
    draining a loaded inbox (diagnosis), then ack -> visible at the target rate (1,000 ev/s)
    and, in the full run, at a higher rate and with a separate ``opencdp worker``."""
    events = events or (10_000 if quick else 60_000)
    users = max(100, events // 12)
    duration = duration or (3.0 if quick else 15.0)
    warmup = 1.0 if quick else 3.0
    visible_timeout = 10.0 if quick else 30.0
    scenarios = [(low_rate, False)] if quick else [(low_rate, False), (rate, False), (rate, True)]
    results: dict[str, Any] = {"backends": {}}
    for backend in backends:
        cluster = pg if backend == "postgres" else None
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-") as tmp:
            deployed = []
            for workers in (1, 2) if backend == "postgres" else (1,):
                console.print(
                    f"[bold]e2e[/bold] on {backend}: as deployed, {events:,} events of "
                    f"{users:,} people, {workers} worker(s)"
                )
                url = cluster.new_database() if cluster else None
                deployed.append(
                    as_deployed(Path(tmp), url, events, users, workers=workers, console=console)
                )
            if scale_events:
                scale_users = max(100, scale_events // 15)
                for workers in (1, 2) if backend == "postgres" else (1,):
                    console.print(
                        f"[bold]e2e[/bold] on {backend}: at scale, {scale_events:,} events of "
                        f"{scale_users:,} people, {workers} worker(s)"
                    )
                    url = cluster.new_database() if cluster else None
                    deployed.append(
                        as_deployed(
                            Path(tmp),
                            url,
                            scale_events,
                            scale_users,
                            workers=workers,
                            timeout=1800.0,
                            omnichannel=True,
                            console=console,
                        )
                    )
            console.print(f"[bold]e2e[/bold] on {backend}: one worker alone, {events:,} events")
            url = cluster.new_database() if cluster else None
            thr = worker_throughput(Path(tmp), url, events, timeout=600.0, console=console)
            lats = []
            for offered, separate in scenarios:
                console.print(
                    f"[bold]e2e[/bold] on {backend}: ack -> visible at {offered:,.0f} events/s"
                    f" for {duration:g} s{' (separate worker)' if separate else ''}"
                )
                url = cluster.new_database() if cluster else None
                lats.append(
                    latency(
                        Path(tmp),
                        url,
                        rate=offered,
                        duration=duration,
                        warmup=warmup,
                        separate_worker=separate,
                        visible_timeout=visible_timeout,
                    )
                )
            results["backends"][backend] = {"deployed": deployed, "worker": thr, "latency": lats}
    return results
