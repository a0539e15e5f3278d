"""Group commit with admission control: many requests share one transaction, and a request
is refused (429) rather than left waiting without bound.

Requests from many concurrent clients meet in a :class:`GroupCommitter`: one writer thread takes
everything queued, commits it in one transaction, and only then releases the waiting requests,
which answer 2xx. So an acknowledged event is always durable, and the database sees a few large
transactions instead of many small ones.

Admission (see docs/architecture.md):

* **Bounded latency.** A request that waited in the queue longer than ``max_wait`` seconds is
  answered ``429 overloaded`` with ``Retry-After`` instead of being committed late: SDKs time out
  after about 10 s and would send it again anyway. A request whose commit has begun is never
  refused, so nothing acknowledged is lost and nothing refused is stored.
* **A hard backlog.** Each commit bounds the inbox backlog from above with two index look-ups;
  from 90 % of ``backlog_limit`` it counts exactly inside its transaction (serialized across
  processes on PostgreSQL by an advisory lock) and refuses the requests that would cross the
  limit with ``429 backlog_full``. (Appends that skip the lock below 90 % cannot overshoot as
  long as the groups committed at the same moment hold less than 10 % of the limit: with the
  default 1,000,000 and groups of at most 20,000 events, five HTTP processes.)
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from opencdp.clock import Clock
from opencdp.errors import RateLimited, StorageUnavailable, loggable
from opencdp.storage.db import Database
from opencdp.storage.inbox import InboxStore

log = logging.getLogger(__name__)

#: Below this share of the backlog limit the cheap upper bound decides; above, an exact count.
EXACT_COUNT_FROM = 0.9
#: How long a failed write keeps ``/readyz`` unready when no later write succeeds.
UNREADY_AFTER_FAILURE_SECONDS = 30.0
BACKLOG_RETRY_AFTER = 5


@dataclass(eq=False)  # compared and hashed by identity
class Ticket:
    """One request's rows, waiting for the writer; ``done`` completes when they are committed
    (or raises why not)."""

    events: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    queued_at: float = 0.0
    done: Future[None] = field(default_factory=Future)


class GroupCommitter:
    """One writer thread that commits the work of many requests per transaction."""

    def __init__(
        self,
        db: Database,
        store: InboxStore,
        clock: Clock,
        *,
        max_events: int,
        max_wait: float = 0.0,
        backlog_limit: int = 0,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.max_events = max_events
        self.max_wait = max_wait
        self.backlog_limit = backlog_limit
        self._queue: queue.Queue[Ticket | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="opencdp-group-commit", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.commits = 0
        # The inbox backlog as last counted plus what was committed since (an over-estimate:
        # the workers only make it smaller), and when it was counted.
        self._backlog = 0
        self._backlog_counted = -math.inf
        self._failed_at: float | None = None
        self._failure = ""

    # Submitting ------------------------------------------------------------------------------
    def submit(self, events: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> Future[None]:
        """Queue rows; the future completes once they are committed (or refused, or failed)."""
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True
        ticket = Ticket(events, rejected, self.clock.monotonic())
        self._queue.put(ticket)
        return ticket.done

    def backlog(self, refresh_after: float = 1.0) -> int:
        """Unprocessed events in the inbox, counted at most every ``refresh_after`` seconds."""
        now = self.clock.monotonic()
        if now - self._backlog_counted > refresh_after:
            self._backlog = self.store.pending()
            self._backlog_counted = now
        return self._backlog

    @property
    def write_failing(self) -> str | None:
        """Why the last write failed, while it is recent and no write succeeded since."""
        failed = self._failed_at
        if failed is None or self.clock.monotonic() - failed > UNREADY_AFTER_FAILURE_SECONDS:
            return None
        return self._failure

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._lock:
            if not self._started:
                return
        self._queue.put(None)
        self._thread.join(timeout=30)

    # The writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group: list[Ticket] = []
            size = self._admit(first, group)
            while size < self.max_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                size += self._admit(item, group)
            if group:
                self._commit(group)

    def _admit(self, ticket: Ticket, group: list[Ticket]) -> int:
        """Add ``ticket`` to the group, or refuse it when it waited too long; its size."""
        waited = self.clock.monotonic() - ticket.queued_at
        if self.max_wait > 0 and waited > self.max_wait:
            ticket.done.set_exception(
                RateLimited(
                    f"the server is overloaded: this request waited {waited:.1f} s to be "
                    f"committed (limit {self.max_wait:g} s); retry later",
                    retry_after=max(1, math.ceil(self.max_wait)),
                    code="overloaded",
                )
            )
            return 0
        group.append(ticket)
        return len(ticket.events) + len(ticket.rejected)

    def _commit(self, group: Sequence[Ticket]) -> None:
        try:
            refused = self._write(group)
        except Exception as exc:
            self._failed(exc)
            if len(group) == 1 or isinstance(exc, StorageUnavailable):
                log.error("commit of %d requests failed: %s", len(group), loggable(exc))
                for t in group:
                    t.done.set_exception(exc)
                return
            # One request the database refuses must not fail the others that shared its
            # transaction: commit them one by one.
            log.warning(
                "group commit failed (%s); committing its %d requests one by one",
                loggable(exc),
                len(group),
            )
            for t in group:
                self._commit_alone(t)
            return
        self._failed_at = None
        for t in group:
            if t in refused:
                t.done.set_exception(refused[t])
            else:
                t.done.set_result(None)

    def _commit_alone(self, ticket: Ticket) -> None:
        try:
            refused = self._write([ticket])
        except Exception as single:
            log.error("commit of one request failed: %s", loggable(single))
            ticket.done.set_exception(single)
            return
        if ticket in refused:
            ticket.done.set_exception(refused[ticket])
        else:
            ticket.done.set_result(None)

    def _failed(self, exc: Exception) -> None:
        self._failed_at = self.clock.monotonic()
        self._failure = loggable(exc)

    def _write(self, group: Sequence[Ticket]) -> dict[Ticket, RateLimited]:
        """Commit the group in one transaction; the tickets the backlog limit refused."""
        limit = self.backlog_limit
        incoming = sum(len(t.events) for t in group)
        refused: dict[Ticket, RateLimited] = {}
        with self.db.write() as conn:
            admitted: Sequence[Ticket] = group
            if limit > 0:
                # Two index look-ups bound the backlog from above; only near the limit is it
                # counted exactly, with other processes' appends waiting (PostgreSQL).
                bound = self.store.pending_upper_bound(conn)
                if bound + incoming > limit * EXACT_COUNT_FROM:
                    self.store.serialize_appends(conn)
                    pending = self.store.count_pending(conn)
                    admitted, refused = _within_limit(group, pending, limit)
                    bound = pending
                self._backlog = bound
                self._backlog_counted = self.clock.monotonic()
            events = [row for t in admitted for row in t.events]
            rejected = [row for t in admitted for row in t.rejected]
            self.store.append(conn, events, rejected)
        self._backlog += len(events)
        self.commits += 1
        return refused


def _within_limit(
    group: Sequence[Ticket], pending: int, limit: int
) -> tuple[list[Ticket], dict[Ticket, RateLimited]]:
    """The tickets that fit under ``limit`` in order, and the refusals of the others."""
    admitted: list[Ticket] = []
    refused: dict[Ticket, RateLimited] = {}
    room = limit - pending
    for ticket in group:
        if len(ticket.events) <= room:
            admitted.append(ticket)
            room -= len(ticket.events)
        else:
            refused[ticket] = RateLimited(
                f"the inbox holds {pending} unprocessed events (limit {limit}); "
                "the workers are behind, retry later",
                retry_after=BACKLOG_RETRY_AFTER,
                code="backlog_full",
            )
    return admitted, refused
