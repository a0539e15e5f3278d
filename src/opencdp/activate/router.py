"""Routing: which destinations an event goes to, decided inside the transaction that stored
it, so that the deliveries are in the outbox exactly when the event is on its profile
(invariant 1: no crash can keep one without the other).

A destination's enabled subscriptions each test the event with their FQL condition; every
match is a delivery (Segment's rule: each matching subscription sends its own). The payload
is the event as stored; the subscription's mapping shapes it at send time, so a fixed mapping
applies to replayed dead letters too.

A subscription to an audience (``"audience": key``) instead receives Segment's audience
messages (:mod:`.audience_sync`) built from the membership events compute stores, with the
profile's identifiers read in the same transaction; when it starts, the audience's current
members are sent as entries (:meth:`Router.backfill`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.activate.audience_sync import audience_messages, membership_of
from opencdp.activate.fql import Condition, parse_condition
from opencdp.activate.signing import webhook_id
from opencdp.resolve.batch import BatchChanges, StoredEvent
from opencdp.storage.db import Connection
from opencdp.storage.outbox import PENDING
from opencdp.timeutil import isoformat_us, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.metrics import Metrics
    from opencdp.storage.definitions import DefinitionStore
    from opencdp.storage.destinations import DestinationStore
    from opencdp.storage.outbox import OutboxStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """One enabled subscription of one enabled destination: chosen by an FQL ``condition``, or
    an ``audience``'s membership messages (``identify`` and/or ``track``)."""

    destination_id: str
    subscription: str
    condition: Condition | None
    audience: str | None = None
    identify: bool = True
    track: bool = True
    per_identifier: bool = False


class Router:
    """The processor's batch listener for activation (after compute's, in the same
    transaction), and where compute's membership events are routed too."""

    def __init__(
        self,
        destinations: DestinationStore,
        outbox: OutboxStore,
        definitions: DefinitionStore,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.destinations = destinations
        self.outbox = outbox
        self.definitions = definitions
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
                if d.enabled:
                    routes.extend(r for s in d.subscriptions if (r := _route(d.id, s)))
        self._routes[workspace_id] = (version, routes)
        return routes

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        """Route the events a processed batch stored (what senders sent: never audience
        messages, which only compute's membership changes make — a tracked "Audience
        Entered" from a browser must not reach an ad tool's list)."""
        self.route(conn, changes.workspace_id, changes.stored, memberships=False)

    def route_memberships(
        self, conn: Connection, workspace_id: str, events: Sequence[StoredEvent]
    ) -> int:
        """Route the membership events compute stored (audience subscriptions included)."""
        return self.route(conn, workspace_id, events, memberships=True)

    def route(
        self,
        conn: Connection,
        workspace_id: str,
        events: Sequence[StoredEvent],
        *,
        memberships: bool = False,
    ) -> int:
        """Enqueue a delivery for every event and matching subscription (``memberships``:
        the events are compute's, and audience subscriptions get their messages); returns
        how many."""
        if not events:
            return 0
        routes = self.routes_in(conn, workspace_id)
        if not routes:
            return 0
        chosen = [r for r in routes if r.condition is not None]
        audiences = [r for r in routes if r.audience is not None] if memberships else []
        now = to_us(self.clock.now())
        rows: list[dict[str, Any]] = []
        changes: list[tuple[Route, StoredEvent, bool, str]] = []
        for ev in events:
            event = orjson.loads(ev.payload)
            for r in chosen:
                if r.condition is not None and _matches(r, event):
                    rows.append(
                        _row(workspace_id, r, ev.message_id, ev.profile_id, ev.payload, now)
                    )
            membership = membership_of(event) if audiences else None
            if membership is not None:
                for r in audiences:
                    if r.audience == membership[0]:
                        changes.append((r, ev, membership[1], str(event.get("timestamp"))))
        if changes:
            ids = sorted({ev.profile_id for _r, ev, _e, _t in changes})
            known = self.definitions.identifiers_in(conn, workspace_id, ids)
            for r, ev, entered, stamp in changes:
                rows.extend(
                    self._messages(
                        workspace_id,
                        r,
                        ev.profile_id,
                        known[ev.profile_id],
                        entered,
                        ev.message_id,
                        stamp,
                        now,
                    )
                )
        self._enqueue(conn, rows)
        return len(rows)

    def backfill(
        self, conn: Connection, workspace_id: str, destination_id: str, subscription: Any
    ) -> int:
        """A new audience subscription: every current member of its audience, as an entry."""
        r = _route(destination_id, subscription)
        if r is None or r.audience is None:
            return 0
        members = self.definitions.members_in(conn, workspace_id, r.audience)
        known = self.definitions.identifiers_in(conn, workspace_id, [m for m, _us in members])
        now = to_us(self.clock.now())
        rows: list[dict[str, Any]] = []
        for pid, since in members:
            # the same membership gives the same id: backfilling again sends nothing new
            base = (
                "backfill-"
                + hashlib.sha1(
                    f"{r.audience}\x1f{pid}\x1f{since}".encode(), usedforsecurity=False
                ).hexdigest()
            )
            rows.extend(
                self._messages(
                    workspace_id, r, pid, known[pid], True, base, isoformat_us(since), now
                )
            )
        self._enqueue(conn, rows)
        return len(rows)

    def _messages(
        self,
        workspace_id: str,
        r: Route,
        profile_id: str,
        identifiers: Sequence[tuple[str, str]],
        entered: bool,
        message_id: str,
        stamp: str,
        now: int,
    ) -> list[dict[str, Any]]:
        assert r.audience is not None
        messages = audience_messages(
            workspace_id=workspace_id,
            destination_id=r.destination_id,
            key=r.audience,
            entered=entered,
            profile_id=profile_id,
            identifiers=identifiers,
            message_id=message_id,
            timestamp=stamp,
            identify=r.identify,
            track=r.track,
            per_identifier=r.per_identifier,
        )
        return [
            _row(workspace_id, r, mid, profile_id, orjson.dumps(payload).decode(), now)
            for mid, payload in messages
        ]

    def _enqueue(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.outbox.enqueue(conn, rows)
            if self.metrics is not None:
                self.metrics.add("opencdp_deliveries_enqueued_total", len(rows))


def _route(destination_id: str, s: Any) -> Route | None:
    """A stored subscription as a route (None: switched off, or its condition no longer
    parses — it was validated when stored; a newer parser may differ)."""
    if not s.get("enabled", True):
        return None
    name = str(s["name"])
    if s.get("audience"):
        return Route(
            destination_id,
            name,
            None,
            str(s["audience"]),
            bool(s.get("identify", True)),
            bool(s.get("track", True)),
            bool(s.get("per_identifier", False)),
        )
    try:
        condition = parse_condition(s.get("condition") or "all")
    except Exception as exc:
        log.warning("destination %s, %s: %s", destination_id, name, exc)
        return None
    return Route(destination_id, name, condition)


def _matches(r: Route, event: Any) -> bool:
    """The route's condition on the event; an unexpected failure withholds it (fails
    closed)."""
    try:
        return r.condition is not None and r.condition.matches(event)
    except Exception as exc:  # pragma: no cover - matches() is built never to raise
        log.warning(
            "destination %s, %s: condition_error: %s", r.destination_id, r.subscription, exc
        )
        return False


def _row(
    workspace_id: str, r: Route, message_id: str, profile_id: str, payload: str, now: int
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "id": webhook_id(r.destination_id, r.subscription, message_id),
        "destination_id": r.destination_id,
        "subscription": r.subscription,
        "profile_id": profile_id,
        "message_id": message_id,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_us": now,
        "created_us": now,
        "updated_us": now,
    }
