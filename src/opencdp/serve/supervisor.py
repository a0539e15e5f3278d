"""Supervision of ``opencdp serve``'s child processes: start them, restart one that dies, stop
them in order.

The supervisor runs no OpenCDP work itself. It starts every child, then watches: a child that
exits while the supervisor is not stopping is restarted after a capped backoff; a child that
keeps dying right after its start (a broken configuration, a database that refuses it) makes the
supervisor stop everything and exit non-zero instead of restarting it forever. SIGTERM or SIGINT
stop the children in their ``stop_order`` (HTTP first, so no new events arrive; then the workers
finish their current batch), each given ``grace`` seconds before SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from opencdp.resolve.backoff import compute_backoff

log = logging.getLogger(__name__)

#: A child that exits within this many seconds of its start counts as failing to start.
QUICK_EXIT_SECONDS = 10.0
#: Quick exits in a row after which the supervisor gives up.
MAX_QUICK_EXITS = 5


@dataclass
class ChildSpec:
    """How to start one child process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    stop_order: int = 0  # lower stops first
    pass_fds: tuple[int, ...] = ()


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs children until told to stop; ``run()`` returns the exit status for the command."""

    def __init__(
        self,
        specs: list[ChildSpec],
        *,
        grace: float = 30.0,
        poll: float = 0.1,
        restart_base: float = 0.5,
        handle_signals: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.grace = grace
        self.poll = poll
        self.restart_base = restart_base
        self.handle_signals = handle_signals  # only possible in the main thread
        self.monotonic = monotonic
        self._stop = threading.Event()
        self.failed: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Start every child and supervise them until SIGTERM/SIGINT (or a child that cannot
        start); returns 0 after a clean stop, 1 when a child kept failing."""
        signals = (signal.SIGTERM, signal.SIGINT) if self.handle_signals else ()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            for child in self.children:
                self._start(child)
            while not self._stop.is_set():
                self._check()
                self._stop.wait(self.poll)
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.failed:
            log.error("%s", self.failed)
            return 1
        return 0

    def request_stop(self) -> None:
        """Stop supervising: ``run()`` stops the children in order and returns."""
        self._stop.set()

    def pids(self) -> dict[str, int]:
        """The live children's process ids by name (for status output and tests)."""
        return {
            c.spec.name: c.proc.pid
            for c in self.children
            if c.proc is not None and c.proc.poll() is None
        }

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self._stop.set()

    # -- watching ----------------------------------------------------------------------------------
    def _start(self, child: _Child) -> None:
        spec = child.spec
        child.proc = subprocess.Popen(spec.argv, env=spec.env, pass_fds=spec.pass_fds)
        child.started_at = self.monotonic()
        child.restart_at = None
        log.debug("started %s (pid %d)", spec.name, child.proc.pid)

    def _check(self) -> None:
        now = self.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at and not self._stop.is_set():
                    child.restarts += 1
                    self._start(child)
                continue
            if child.proc is None:
                continue
            status = child.proc.poll()
            if status is None:
                continue
            child.exits.append(status)
            lived = now - child.started_at
            child.quick_exits = child.quick_exits + 1 if lived < QUICK_EXIT_SECONDS else 0
            if child.quick_exits >= MAX_QUICK_EXITS:
                self.failed = (
                    f"{child.spec.name} exited {child.quick_exits} times in a row right after "
                    f"starting (last status {status}); its log above says why. Stopping."
                )
                self._stop.set()
                return
            delay = compute_backoff(max(child.quick_exits, 1), base=self.restart_base, cap=15.0)
            log.warning(
                "%s (pid %d) exited with status %d after %.1f s; restarting in %.1f s",
                child.spec.name,
                child.proc.pid,
                status,
                lived,
                delay,
            )
            child.restart_at = now + delay

    # -- stopping ----------------------------------------------------------------------------------
    def stop_all(self) -> None:
        """SIGTERM the children group by group (``stop_order``), SIGKILL what outlives ``grace``."""
        for order in sorted({c.spec.stop_order for c in self.children}):
            group = [
                c.proc
                for c in self.children
                if c.spec.stop_order == order and c.proc is not None and c.proc.poll() is None
            ]
            for proc in group:
                _signal(proc, signal.SIGTERM)
            deadline = self.monotonic() + self.grace
            for proc in group:
                try:
                    proc.wait(max(0.0, deadline - self.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning(
                        "pid %d did not stop within %.0f s: killing it", proc.pid, self.grace
                    )
                    _signal(proc, signal.SIGKILL)
                    proc.wait()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited between poll and signal
        proc.send_signal(sig)


def exit_with_parent(parent: int | None = None, interval: float = 0.5) -> None:
    """In a supervised child: SIGTERM this process when the supervisor (pid ``parent``, by
    default the parent now) is gone — killed with SIGKILL, so it could not stop its children —
    instead of running on as an orphan. Given the supervisor's pid, a child whose supervisor
    died before this call stops at the first check."""
    if parent is None:
        parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="opencdp-parent-watch", daemon=True).start()
