"""The ingest service: from one request's bytes to committed inbox rows (an adapter).

Requests are decoded, authenticated, limited and validated here; their rows are committed by
the :class:`~opencdp.collect.commit.GroupCommitter`, which answers only once they are durable
and refuses what would wait too long or overflow the inbox.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from opencdp.clock import Clock
from opencdp.collect.commit import BACKLOG_RETRY_AFTER, GroupCommitter
from opencdp.collect.envelope import (
    Envelope,
    decompress,
    find_write_key,
    parse_json_object,
    split_envelope,
)
from opencdp.collect.normalize import BATCH_LIMIT_EXCEEDED, NormalizedEvent, normalize
from opencdp.collect.partition import partition_of
from opencdp.collect.plan_cache import Governance, PlanCache
from opencdp.collect.ratelimit import RateLimiter, retry_after_seconds
from opencdp.collect.rejection import COLLECT, Rejection, quarantine_row
from opencdp.collect.suppression import Suppressions
from opencdp.errors import AuthenticationError, RateLimited
from opencdp.settings import Settings
from opencdp.storage.admin import AdminStore, Source
from opencdp.storage.db import Database
from opencdp.storage.inbox import InboxStore
from opencdp.timeutil import to_us
from opencdp.ttl_cache import TtlCache

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What happened to the messages of one request."""

    accepted: int = 0
    quarantined: int = 0
    #: events of suppressed persons: refused, never stored (answered as accepted, as Segment)
    suppressed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined per reason

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "success": True,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
        }
        if self.suppressed:
            out["suppressed"] = self.suppressed
        if self.errors:
            out["errors"] = self.errors
        return out


class Collector:
    """Validates requests of the Tracking API and lands their events in the inbox."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        admin: AdminStore,
        inbox: InboxStore,
        governance: PlanCache | None = None,
        suppressions: Suppressions | None = None,
    ) -> None:
        self.db = db
        #: suppressed persons per workspace (None: nothing is suppressed, e.g. in unit tests)
        self.suppressions = suppressions
        self.governance = governance
        self.settings = settings
        self.clock = clock
        self.admin = admin
        self.inbox = inbox
        self.committer = GroupCommitter(
            db,
            inbox,
            clock,
            max_events=settings.group_commit_max_events,
            max_wait=settings.max_ingest_wait_seconds,
            backlog_limit=settings.max_inbox_backlog,
        )
        self.rate_limiter = RateLimiter(settings.rate_limit_per_source, settings.rate_limit_burst)
        # Sources by write key, cached briefly: a change is noticed within 10 seconds.
        self._sources: TtlCache[str, Source | None] = TtlCache(clock, 10.0)

    # The request path --------------------------------------------------------------------
    def prepare(
        self,
        route: str,
        raw_body: bytes,
        *,
        authorization: str | None,
        content_encoding: str | None,
    ) -> tuple[Source, list[dict[str, Any]], list[dict[str, Any]], IngestResult]:
        """Everything up to the commit: decode, authenticate, limit, validate, build rows.

        Raises a :class:`~opencdp.errors.RequestError` for envelope problems (the request is
        rejected whole); returns the rows to commit otherwise.
        """
        body = decompress(raw_body, content_encoding, self.settings.max_batch_bytes)
        doc = parse_json_object(body)
        key = find_write_key(authorization, doc)
        source = self._source(key)
        envelope = split_envelope(route, doc)
        self._check_limits(source, len(envelope.messages))
        return (source, *self.build_rows(source, envelope))

    def build_rows(
        self, source: Source, envelope: Envelope
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], IngestResult]:
        """Normalize every message of an envelope and enforce the source's tracking plan.

        Returns inbox rows, quarantine rows (each with its typed reason) and the request's
        result. Events forwarded to another source (violations, blocked events) are among the
        inbox rows, under that source.
        """
        now = self.clock.now()
        now_us = to_us(now)
        limit = self.settings.max_batch_events
        result = IngestResult()
        events: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        gov = self.governance_for(source)
        suppressed = self.suppressions.of(source.workspace_id) if self.suppressions else None
        for index, raw in enumerate(envelope.messages):
            outcome: NormalizedEvent | Rejection | None
            if index >= limit:
                outcome = Rejection(
                    BATCH_LIMIT_EXCEEDED,
                    f"a batch may carry at most {limit} events; this one is number {index + 1}",
                    raw,
                )
            else:
                outcome = self.judge(source, raw, envelope, now, events, gov)
            if suppressed and self._suppressed(suppressed, _message_of(outcome, raw)):
                result.suppressed += 1  # a suppressed person's: refused, nothing of it kept
                continue
            if outcome is None:
                result.accepted += 1  # blocked, and forwarded to another source: not lost
            elif isinstance(outcome, NormalizedEvent):
                events.append(inbox_row(source, outcome))
                result.accepted += 1
            else:
                if not outcome.plan_id:  # refused at collection, not by a plan
                    outcome = replace(outcome, raw=with_envelope(outcome.raw, envelope))
                rejected.append(
                    quarantine_row(
                        outcome,
                        COLLECT,
                        now_us,
                        workspace_id=source.workspace_id,
                        source_id=source.id,
                    )
                )
                result.quarantined += 1
                result.reasons[outcome.reason] = result.reasons.get(outcome.reason, 0) + 1
                if len(result.errors) < 20:
                    result.errors.append(
                        {"index": index, "code": outcome.reason, "message": outcome.detail}
                    )
        return events, rejected, result

    def _suppressed(self, hashes: frozenset[str], payload: dict[str, Any]) -> bool:
        assert self.suppressions is not None
        return self.suppressions.is_suppressed(hashes, payload)

    def governance_for(self, source: Source) -> Governance | None:
        """The plan and settings enforced on ``source`` (None: nothing is enforced)."""
        return self.governance.for_source(source) if self.governance else None

    def judge(
        self,
        source: Source,
        raw: Any,
        envelope: Envelope,
        received_at: datetime,
        forwards: list[dict[str, Any]],
        gov: Governance | None,
    ) -> NormalizedEvent | Rejection | None:
        """Normalize one message and enforce the source's plan (``gov``, from
        :meth:`governance_for`) on it.

        Inbox rows for events forwarded to other sources are appended to ``forwards``. None
        means the event was blocked and forwarded (so it is neither accepted nor quarantined).
        """
        outcome = normalize(
            raw, envelope, received_at=received_at, max_event_bytes=self.settings.max_event_bytes
        )
        if not isinstance(outcome, NormalizedEvent) or gov is None or self.governance is None:
            return outcome
        judgement = self.governance.judge(source, outcome, gov)
        for target, message in judgement.forwards:
            forwarded = normalize(
                message, _NO_ENVELOPE, received_at=received_at, max_event_bytes=1 << 30
            )
            if isinstance(forwarded, NormalizedEvent):
                forwards.append(inbox_row(target, forwarded))
        return judgement.outcome

    async def commit_async(
        self, events: list[dict[str, Any]], rejected: list[dict[str, Any]]
    ) -> None:
        """Wait, without blocking the event loop, until the rows are committed."""
        if events or rejected:
            await asyncio.wrap_future(self.committer.submit(events, rejected))

    def commit(self, events: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> None:
        """Blocking variant of :meth:`commit_async` (CLI, demo loader, tests)."""
        if events or rejected:
            self.committer.submit(events, rejected).result()

    def ingest_messages(self, source: Source, messages: list[Any]) -> IngestResult:
        """Validate and commit messages given as Python objects (bulk loads, tests)."""
        events, rejected, result = self.build_rows(
            source, Envelope(messages=messages, implied_type=None)
        )
        self.commit(events, rejected)
        return result

    def close(self) -> None:
        self.committer.close()

    # Helpers ---------------------------------------------------------------------------
    def _source(self, write_key: str) -> Source:
        source = self._sources.get(write_key, lambda: self.admin.source_for_key(write_key))
        if source is None:
            raise AuthenticationError(
                "unknown write key: check the key, or create a source with `opencdp source add`",
                code="invalid_write_key",
            )
        if not source.enabled:
            raise AuthenticationError(f"source {source.name!r} is disabled", code="source_disabled")
        return source

    def _check_limits(self, source: Source, n: int) -> None:
        wait = self.rate_limiter.try_acquire(source.id, n, self.clock.monotonic())
        if wait > 0:
            raise RateLimited(
                f"source {source.name!r} is over its rate limit of "
                f"{self.settings.rate_limit_per_source:g} events/s; retry later",
                retry_after=retry_after_seconds(wait),
            )
        # A cheap early refusal; the committer enforces the limit exactly near it.
        limit = self.settings.max_inbox_backlog
        if limit > 0 and (backlog := self.committer.backlog()) >= limit:
            raise RateLimited(
                f"the inbox holds {backlog} unprocessed events (limit {limit}); "
                "the workers are behind, retry later",
                retry_after=BACKLOG_RETRY_AFTER,
                code="backlog_full",
            )


_NO_ENVELOPE = Envelope(messages=[], implied_type=None)


def _message_of(outcome: NormalizedEvent | Rejection | None, raw: Any) -> dict[str, Any]:
    """The message to check for suppressed persons: the normalized one, else the raw one (an
    invalid event of a suppressed person is refused too, not quarantined)."""
    if isinstance(outcome, NormalizedEvent):
        return outcome.payload
    return raw if isinstance(raw, dict) else {}


def with_envelope(raw: Any, envelope: Envelope) -> Any:
    """A message as sent plus what its request implied (the route's type, the batch's
    ``context``, ``integrations`` and ``sentAt``), so that a replay sees the same message."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    if envelope.implied_type:  # the route decides the type, as in normalize
        out["type"] = envelope.implied_type
    for name in ("context", "integrations"):
        batch = getattr(envelope, name)
        if batch:
            own = out.get(name)
            out[name] = {**batch, **own} if isinstance(own, dict) else (own or dict(batch))
    if envelope.sent_at is not None and out.get("sentAt") is None:
        out["sentAt"] = envelope.sent_at
    return out


def inbox_row(source: Source, event: NormalizedEvent) -> dict[str, Any]:
    """The inbox table row of a normalized event."""
    return {
        "workspace_id": source.workspace_id,
        "source_id": source.id,
        "message_id": event.message_id,
        "received_us": event.received_us,
        "payload": orjson.dumps(event.payload).decode(),
        "partition": partition_of(event.payload),
    }
