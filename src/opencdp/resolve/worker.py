"""The worker loop: process the inbox continuously, back off on database errors, prune the dedup
window now and then. Runs as a thread inside ``opencdp serve`` or as ``opencdp worker``."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from opencdp.collect.partition import slot_partitions
from opencdp.errors import is_retryable
from opencdp.resolve.backoff import compute_backoff

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.resolve.processor import Processor
    from opencdp.storage.inbox import InboxStore
    from opencdp.storage.quarantine import QuarantineStore

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 60.0
#: How often the worker looks for scheduled work that is due.
SCHEDULED_EVERY_SECONDS = 30.0
#: How often the worker looks for durable timers (journey waits) that are due.
TIMERS_EVERY_SECONDS = 1.0


class Worker:
    """A background thread around :class:`~opencdp.resolve.processor.Processor`."""

    def __init__(
        self,
        processor: Processor,
        *,
        inbox: InboxStore,
        quarantine: QuarantineStore,
        clock: Clock,
        poll_interval: float,
        dedup_window_days: float,
        quarantine_retention_days: float,
        scheduled: Callable[[], int] | None = None,
        timers: Callable[[], int] | None = None,
    ) -> None:
        self.processor = processor
        self.inbox = inbox
        self.quarantine = quarantine
        self.clock = clock
        self.poll_interval = poll_interval
        self.dedup_window_days = dedup_window_days
        self.quarantine_retention_days = quarantine_retention_days
        #: durable scheduled work run now and then (re-evaluating windows as time passes)
        self.scheduled = scheduled
        self._last_scheduled = -1e18
        #: durable timers moved when due by the clock (journey waits)
        self.timers = timers
        self._last_timers = -1e18
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = -1e18
        self.failures = 0

    def start(self) -> None:
        """Start processing in a background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="opencdp-worker", daemon=True)
        self._thread.start()

    def take_slot(self, slot: int, slots: int) -> None:
        """Process only the inbox partitions of worker ``slot`` of ``slots`` (0-based), each
        in arrival order; the other slots' workers process the rest."""
        self.processor.partitions = slot_partitions(slot, slots)
        if slot != 0:
            self.scheduled = None  # the first slot's worker runs the scheduled work
            self.timers = None

    def request_stop(self) -> None:
        """Ask ``run()`` to return after the batch under way (safe from a signal handler)."""
        self._stop.set()

    def run_until_terminated(self) -> None:
        """``run()`` in this (main) thread until SIGTERM or Ctrl-C, finishing the batch under
        way: what ``opencdp worker`` and ``serve``'s worker processes do."""
        previous = signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        try:
            self.run()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the current batch and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Process until stopped (blocks; ``opencdp worker`` runs this in the main thread)."""
        attempt = 0
        while not self._stop.is_set():
            try:
                n = self.processor.run_once()
                attempt = 0
                self._maybe_prune()
                self.run_scheduled()
                n += self.run_timers()
            except Exception as exc:
                self.failures += 1
                attempt += 1
                delay = compute_backoff(attempt, base=0.2, cap=30.0)
                level = logging.WARNING if is_retryable(exc) else logging.ERROR
                log.log(
                    level,
                    "worker batch failed (attempt %d), retrying in %.1fs: %s",
                    attempt,
                    delay,
                    exc,
                )
                self._stop.wait(delay)
                continue
            if n == 0:
                self._stop.wait(self.poll_interval)

    def run_scheduled(self, force: bool = False) -> int:
        """Run the scheduled work if it is due (every SCHEDULED_EVERY_SECONDS); returns what it
        reported (definitions re-evaluated)."""
        now = self.clock.monotonic()
        if self.scheduled is None or (
            not force and now - self._last_scheduled < SCHEDULED_EVERY_SECONDS
        ):
            return 0
        self._last_scheduled = now
        done = self.scheduled()
        if done:
            log.info("re-evaluated %d time-dependent definitions", done)
        return done

    def run_timers(self, force: bool = False) -> int:
        """Move what the durable timers hold that is due (every TIMERS_EVERY_SECONDS, one
        transaction of at most a few hundred); returns how many moved."""
        now = self.clock.monotonic()
        if self.timers is None or (not force and now - self._last_timers < TIMERS_EVERY_SECONDS):
            return 0
        self._last_timers = now
        return self.timers()

    def _maybe_prune(self) -> None:
        now = self.clock.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        window_us = int(self.dedup_window_days * 86_400 * 1_000_000)
        pruned = self.inbox.prune(self.processor.now_us() - window_us)
        if pruned:
            log.info("pruned %d processed inbox rows older than the dedup window", pruned)
        keep_days = self.quarantine_retention_days
        if keep_days > 0:
            cutoff = self.processor.now_us() - int(keep_days * 86_400 * 1_000_000)
            gone = self.quarantine.prune_resolved(cutoff)
            if gone:
                log.info("pruned %d resolved quarantine rows older than %g days", gone, keep_days)
