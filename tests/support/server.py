"""A real ``opencdp serve`` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.pg import free_port


class LiveServer:
    """Starts ``python -m opencdp serve`` with bootstrap credentials; ``kill()`` is a kill -9."""

    def __init__(
        self,
        data_dir: Path,
        write_key: str,
        token: str,
        database_url: str | None = None,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.data_dir = data_dir
        self.write_key = write_key
        self.token = token
        self.database_url = database_url
        self.extra_env = env
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            OPENCDP_DATA_DIR=str(self.data_dir),
            OPENCDP_BOOTSTRAP_WRITE_KEY=self.write_key,
            OPENCDP_BOOTSTRAP_TOKEN=self.token,
            OPENCDP_IDENTITY_TRAIT_KEYS='{"loyalty_card": "loyalty_card"}',
            OPENCDP_LOG_LEVEL="WARNING",
        )
        if self.database_url:
            env["OPENCDP_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opencdp",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.args,
            ],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the children too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()}")

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until the worker process has drained the inbox."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.get(f"{self.url}/readyz", timeout=5).json()
            if body["inbox_pending"] == 0:
                return
            time.sleep(0.05)
        raise TimeoutError("the worker did not drain the inbox in time")

    def kill(self) -> None:
        """SIGKILL to the supervisor and every child at once: no shutdown hooks run
        (crash-safety tests)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
