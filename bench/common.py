"""Shared plumbing of the benchmarks: machine facts, server and PostgreSQL processes, result
files. Everything here talks to loopback only. Servers are the test suite's
:class:`tests.support.server.LiveServer`; /proc reads are in tests/support/procfs.py."""

from __future__ import annotations

import base64
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
from tests.support.pg import PostgresCluster
from tests.support.pg import binary as pg_binary
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WRITE_KEY = "bench-write-key"
TOKEN = "bench-access-token"


def basic(secret: str) -> str:
    """``Authorization`` header value with ``secret`` as the Basic username (Segment's form)."""
    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


# Machine facts ---------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    """CPU, memory, OS and Python facts to print beside every result."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": _sqlite_version(),
        "postgres": _pg_version(),
        "git": _git_revision(),
    }


def _git_revision() -> str | None:
    """The commit the benchmarked code is at, with ``-dirty`` for uncommitted changes."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _pg_version() -> str | None:
    binary = pg_binary("postgres")
    if not binary:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"\d+(\.\d+)+", out.stdout)
    return found.group(0) if found else None


# Processes ------------------------------------------------------------------------------------
def bench_server(
    data_dir: Path,
    database_url: str | None = None,
    *,
    workers: int = 0,
    worker: bool = False,
    dispatcher: bool = False,
    args: tuple[str, ...] = (),
    **env: str,
) -> LiveServer:
    """The shared live-server helper as the benchmarks start it: ``opencdp serve`` with
    ``workers`` worker processes (default none: ``--workers 0``), or ``opencdp worker`` alone
    with ``worker=True``; the bench credentials, no extra identity trait keys, 120 s to become
    ready, 30 s after SIGTERM before the kill."""
    return LiveServer(
        data_dir,
        WRITE_KEY,
        TOKEN,
        database_url,
        args,
        workers=None if worker or dispatcher else workers,
        worker=worker,
        dispatcher=dispatcher,
        identity_trait_keys=None,
        ready_timeout=120.0,
        stop_timeout=30.0,
        **env,
    )


# PostgreSQL -----------------------------------------------------------------------------------
#: A throwaway cluster with PostgreSQL's default durability (fsync on). Unlike the test suite's
#: cluster (fsync off), a benchmark must pay for durable commits, or the comparison with SQLite
#: (``synchronous=FULL``) would flatter PostgreSQL.
DURABLE = ("max_connections=200", "shared_buffers=512MB", "max_wal_size=4GB")


def durable_cluster() -> PostgresCluster:
    """A benchmark PostgreSQL cluster (see :data:`DURABLE`)."""
    return PostgresCluster(DURABLE, prefix="opencdp-bench-pg-")


# Results --------------------------------------------------------------------------------------
def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's result as JSON under bench/results/ and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def open_loop_summary(
    outs: list[dict[str, Any]], rate: float, start: float, cpu_seconds: float
) -> dict[str, Any]:
    """Latency figures of open-loop load-generator results (``loadgen._open_loop``): offered
    and achieved rate, statuses, percentiles from the scheduled time and of service alone, and
    the server's CPU cores over the run."""
    elapsed = max(o["finished_at"] for o in outs) - start
    latencies = [x for o in outs for x in o["latencies"]]
    service = [x for o in outs for x in o["service"]]
    statuses: dict[str, int] = {}
    for o in outs:
        for k, v in o["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    not_sent = statuses.pop("-2", 0)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "offered_requests_per_s": rate,
        "achieved_requests_per_s": len(latencies) / elapsed if elapsed > 0 else None,
        "requests": len(latencies),
        "not_sent": not_sent,
        "statuses": statuses,
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies) if latencies else None),
        "service_p50_ms": ms(percentile(service, 50)),
        "service_p99_ms": ms(percentile(service, 99)),
        "server_cpu_cores": cpu_seconds / elapsed if elapsed > 0 else None,
    }
