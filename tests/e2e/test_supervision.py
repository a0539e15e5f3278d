"""`opencdp serve` as deployed: HTTP and worker processes side by side, supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, WRITE_KEY
from tests.support.pg import free_port
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


def children(pid: int) -> dict[str, int]:
    """The live children of ``pid`` by role (``http``/``worker``) as their command line says."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) != pid or state == "Z" or b"opencdp.serve.child" not in cmdline:
            continue
        role = next(a for a in cmdline if a in (b"http", b"worker")).decode()
        found[f"{role}-{len([k for k in found if k.startswith(role)]) + 1}"] = int(entry.name)
    return found


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def identify(server: LiveServer, user: str) -> None:
    r = httpx.post(
        f"{server.url}/v1/identify", auth=(WRITE_KEY, ""), json={"userId": user, "traits": {}}
    )
    assert r.status_code == 200, r.text


def visible(server: LiveServer, user: str) -> bool:
    r = httpx.get(
        f"{server.url}/v1/spaces/default/collections/users/profiles/user_id:{user}/traits",
        auth=(TOKEN, ""),
    )
    return r.status_code == 200


def test_serve_runs_http_and_worker_processes_and_restarts_a_crashed_worker(
    tmp_path: Path, database_url: str | None
) -> None:
    server = LiveServer(tmp_path / "sv", WRITE_KEY, TOKEN, database_url).start()
    try:
        assert server.proc is not None
        # Given serve as deployed: one HTTP process and one worker process beside it
        wait_for(lambda: set(children(server.proc.pid)) == {"http-1", "worker-1"})
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["worker_running"] is True and ready["worker_processes"] == 1
        identify(server, "before-crash")
        wait_for(lambda: visible(server, "before-crash"))
        # When the worker process is killed
        first = children(server.proc.pid)["worker-1"]
        os.kill(first, signal.SIGKILL)
        # Then events acknowledged afterwards are still resolved: a new worker took over
        identify(server, "after-crash")
        wait_for(lambda: visible(server, "after-crash"))
        assert children(server.proc.pid)["worker-1"] != first
    finally:
        server.stop()


def test_sigterm_stops_every_process_cleanly(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "term", WRITE_KEY, TOKEN, args=("--processes", "2")).start()
    assert server.proc is not None
    wait_for(lambda: len(children(server.proc.pid)) == 3)
    kids = list(children(server.proc.pid).values())
    identify(server, "drained")
    # When the supervisor gets SIGTERM
    server.proc.send_signal(signal.SIGTERM)
    # Then it exits 0 and takes its children with it
    assert server.proc.wait(60) == 0
    for pid in kids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "orphans", WRITE_KEY, TOKEN).start()
    assert server.proc is not None
    wait_for(lambda: len(children(server.proc.pid)) == 2)
    kids = list(children(server.proc.pid).values())
    # When only the supervisor is killed (its children cannot be told)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    # Then the children notice and stop on their own instead of running on as orphans
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in kids), timeout=30)


def test_several_workers_on_sqlite_are_refused_with_advice(tmp_path: Path) -> None:
    env = {**os.environ, "OPENCDP_DATA_DIR": str(tmp_path / "two")}
    env.pop("OPENCDP_DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "opencdp", "serve", "--port", str(free_port()), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "SQLite has a single writer" in run.stderr and "PostgreSQL" in run.stderr
