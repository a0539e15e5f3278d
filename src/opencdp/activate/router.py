"""Routing: which destinations an event goes to, decided inside the transaction that stored
it, so that the deliveries are in the outbox exactly when the event is on its profile
(invariant 1: no crash can keep one without the other).

A destination's enabled subscriptions each test the event with their FQL condition; every
match is a delivery (Segment's rule: each matching subscription sends its own). The payload
is the event as stored; the subscription's mapping shapes it at send time, so a fixed mapping
applies to replayed dead letters too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.activate.fql import Condition, parse_condition
from opencdp.activate.signing import webhook_id
from opencdp.resolve.batch import BatchChanges, StoredEvent
from opencdp.storage.db import Connection
from opencdp.storage.outbox import PENDING
from opencdp.timeutil import to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.metrics import Metrics
    from opencdp.storage.destinations import DestinationStore
    from opencdp.storage.outbox import OutboxStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """One enabled subscription of one enabled destination."""

    destination_id: str
    subscription: str
    condition: Condition


class Router:
    """The processor's batch listener for activation (after compute's, in the same
    transaction), and where compute's membership events are routed too."""

    def __init__(
        self,
        destinations: DestinationStore,
        outbox: OutboxStore,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.destinations = destinations
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self._routes: dict[str, tuple[tuple[int, int | None], list[Route]]] = {}

    def routes_in(self, conn: Connection, workspace_id: str) -> list[Route]:
        """The workspace's routes as ``conn``'s transaction sees its destinations (read
        again only when one was created, changed or deleted)."""
        version = self.destinations.version(conn, workspace_id)
        cached = self._routes.get(workspace_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        routes: list[Route] = []
        if version[0]:
            for d in self.destinations.of_workspace_in(conn, workspace_id):
                if not d.enabled:
                    continue
                for s in d.subscriptions:
                    if not s.get("enabled", True):
                        continue
                    try:
                        condition = parse_condition(s.get("condition") or "all")
                    except Exception as exc:  # validated when stored; a newer parser may differ
                        log.warning("destination %s, %s: %s", d.id, s.get("name"), exc)
                        continue
                    routes.append(Route(d.id, str(s["name"]), condition))
        self._routes[workspace_id] = (version, routes)
        return routes

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        """Route the events a processed batch stored."""
        self.route(conn, changes.workspace_id, changes.stored)

    def route(self, conn: Connection, workspace_id: str, events: Sequence[StoredEvent]) -> int:
        """Enqueue a delivery for every event and matching subscription; returns how many."""
        if not events:
            return 0
        routes = self.routes_in(conn, workspace_id)
        if not routes:
            return 0
        now = to_us(self.clock.now())
        rows: list[dict[str, Any]] = []
        for ev in events:
            event = orjson.loads(ev.payload)
            for r in routes:
                if not r.condition.matches(event):
                    continue
                rows.append(
                    {
                        "workspace_id": workspace_id,
                        "id": webhook_id(r.destination_id, r.subscription, ev.message_id),
                        "destination_id": r.destination_id,
                        "subscription": r.subscription,
                        "profile_id": ev.profile_id,
                        "message_id": ev.message_id,
                        "payload": ev.payload,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_us": now,
                        "created_us": now,
                        "updated_us": now,
                    }
                )
        if rows:
            self.outbox.enqueue(conn, rows)
            if self.metrics is not None:
                self.metrics.add("opencdp_deliveries_enqueued_total", len(rows))
        return len(rows)
