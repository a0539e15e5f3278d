"""Shared plumbing of the benchmarks: machine facts, server and PostgreSQL processes, /proc reads,
result files. Everything here talks to loopback only."""

from __future__ import annotations

import base64
import glob
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.pg import PostgresCluster, free_port
from tests.support.pg import binary as pg_binary

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


# /proc ----------------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in KiB (psutil is not a dependency)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
    except FileNotFoundError:
        pass
    return out


def child_pids(pid: int) -> list[int]:
    """Pids of the live direct children of ``pid`` (``serve --processes N`` forks its HTTP
    processes; the PostgreSQL postmaster its backends)."""
    out = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("PPid:"):
                        if int(line.split()[1]) == pid:
                            out.append(int(status.split("/")[2]))
                        break
        except (OSError, ValueError):
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# Processes ------------------------------------------------------------------------------------
class Server:
    """``python -m opencdp serve`` on a free loopback port with ``workers`` worker processes
    (default none), or ``opencdp worker`` alone with ``worker=True``."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        *,
        workers: int = 0,
        worker: bool = False,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker = worker
        self.workers = workers
        self.args = args
        self.env = dict(os.environ)
        self.env.update(
            OPENCDP_DATA_DIR=str(data_dir),
            OPENCDP_BOOTSTRAP_WRITE_KEY=WRITE_KEY,
            OPENCDP_BOOTSTRAP_TOKEN=TOKEN,
            OPENCDP_LOG_LEVEL="WARNING",
        )
        if database_url:
            self.env["OPENCDP_DATABASE_URL"] = database_url
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / ("worker.log" if worker else f"server-{self.port}.log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "opencdp"]
        cmd += (
            ["worker"]
            if self.worker
            else [
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ]
        )
        cmd += self.args
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        if self.worker:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()[-4000:]}")

    def readyz(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/readyz", timeout=30).json()  # type: ignore[no-any-return]

    def pids(self) -> list[int]:
        """This process and its children (the HTTP processes of ``serve --processes N``)."""
        return [self.pid, *child_pids(self.pid)]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def memory(self) -> dict[str, int]:
        """VmRSS/VmHWM of the process; with child processes, of the largest one."""
        statuses = [proc_status(p) for p in self.pids()]
        return {
            key: max((s.get(key, 0) for s in statuses), default=0) for key in ("VmRSS", "VmHWM")
        }

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_drained(server: Server, timeout: float, poll: float = 0.2) -> float | None:
    """Seconds until /readyz shows an empty inbox, or None when ``timeout`` passed first."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.readyz()["inbox_pending"] == 0:
            return time.monotonic() - start
        time.sleep(poll)
    return None


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
