"""A real ``opencdp serve`` (or ``opencdp worker``) process on a free loopback port.

The one way the end-to-end tests (tests/e2e/, tests/conftest.py) and the benchmarks (bench/,
through :func:`bench.common.bench_server`) start a server as a subprocess on a real socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.pg import free_port
from tests.support.procfs import child_pids, cpu_seconds, proc_status

#: ``OPENCDP_IDENTITY_TRAIT_KEYS`` of the test suite's servers (the same extra identifier as
#: ``make_settings`` in tests/conftest.py).
LOYALTY_CARD = '{"loyalty_card": "loyalty_card"}'


class LiveServer:
    """``python -m opencdp serve`` with bootstrap credentials on a free loopback port, in its own
    process group: ``kill()`` is a kill -9 of the supervisor and every child at once.

    ``workers`` passes ``--workers N`` (0 is ``--no-worker``); None leaves serve's default (the
    workers setting, 1). ``args`` are further serve arguments (``("--processes", "2")``),
    ``env`` further environment (``OPENCDP_...="..."``). ``identity_trait_keys`` is the JSON of
    ``OPENCDP_IDENTITY_TRAIT_KEYS``; None leaves it unset. ``worker=True`` runs
    ``opencdp worker`` alone instead (no port is listened on; ``start()`` does not wait), and
    ``dispatcher=True`` ``opencdp dispatcher``.
    """

    def __init__(
        self,
        data_dir: Path,
        write_key: str,
        token: str,
        database_url: str | None = None,
        args: tuple[str, ...] = (),
        *,
        workers: int | None = None,
        worker: bool = False,
        dispatcher: bool = False,
        identity_trait_keys: str | None = LOYALTY_CARD,
        ready_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        **env: str,
    ) -> None:
        if worker and workers is not None:
            raise ValueError("workers is a serve option: opencdp worker is one worker process")
        self.data_dir = data_dir
        self.write_key = write_key
        self.token = token
        self.database_url = database_url
        self.args = args
        self.workers = workers
        self.dispatcher = dispatcher
        self.worker = worker or dispatcher  # a process without a port: start() does not wait
        self.identity_trait_keys = identity_trait_keys
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        role = "dispatcher" if dispatcher else "worker" if worker else f"server-{self.port}"
        self.log = data_dir / f"{role}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "opencdp"]
        if self.dispatcher:
            cmd.append("dispatcher")
        elif self.worker:
            cmd.append("worker")
        else:
            cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
            if self.workers is not None:
                cmd += ["--workers", str(self.workers)]
        return [*cmd, *self.args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            OPENCDP_DATA_DIR=str(self.data_dir),
            OPENCDP_BOOTSTRAP_WRITE_KEY=self.write_key,
            OPENCDP_BOOTSTRAP_TOKEN=self.token,
            OPENCDP_LOG_LEVEL="WARNING",
            # trainings only when a test asks (the schedule's own tests run it in process)
            OPENCDP_RECS_TRAIN_EVERY_HOURS="0",
        )
        if self.identity_trait_keys is not None:
            env["OPENCDP_IDENTITY_TRAIT_KEYS"] = self.identity_trait_keys
        if self.database_url:
            env["OPENCDP_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float | None = None) -> LiveServer:
        """Start the process; for serve, wait until ``/readyz`` answers 200 (``timeout``
        seconds, default ``ready_timeout``), else stop it and raise with its log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the children too
            )
        if self.worker:
            return self
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()}")

    def readyz(self, timeout: float = 30.0) -> dict[str, Any]:
        return httpx.get(f"{self.url}/readyz", timeout=timeout).json()  # type: ignore[no-any-return]

    def wait_drained(
        self, timeout: float, poll: float = 0.2, request_timeout: float = 30.0
    ) -> float | None:
        """Seconds until ``/readyz`` shows an empty inbox, or None when ``timeout`` passed
        first."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.readyz(request_timeout)["inbox_pending"] == 0:
                return time.monotonic() - start
            time.sleep(poll)
        return None

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until the worker process has drained the inbox."""
        if self.wait_drained(timeout, poll=0.05, request_timeout=5) is None:
            raise TimeoutError("the worker did not drain the inbox in time")

    def pids(self) -> list[int]:
        """The supervisor and its children (the HTTP and worker processes of ``serve``)."""
        return [self.pid, *child_pids(self.pid)]

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the supervisor and its live children."""
        return sum(cpu_seconds(p) for p in self.pids())

    def memory(self) -> dict[str, int]:
        """VmRSS/VmHWM in KiB of the process; with child processes, of the largest one."""
        statuses = [proc_status(p) for p in self.pids()]
        return {
            key: max((s.get(key, 0) for s in statuses), default=0) for key in ("VmRSS", "VmHWM")
        }

    def kill(self) -> None:
        """SIGKILL to the supervisor and every child at once: no shutdown hooks run
        (crash-safety tests)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM to the supervisor (it stops its children), then ``kill()`` after
        ``stop_timeout`` seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
