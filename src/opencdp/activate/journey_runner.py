"""Journeys at run time: the processor's batch listener that starts and moves instances
inside the transaction that stored their events, and the scheduler of their durable timers.

Both work set-based: one read of the batch's profiles' active instances, one of their
history (for the re-entry rules), one of their traits and audiences when a split or a send
needs them; then the pure moves of :mod:`.journey_engine`; then one write of the instances,
the per-step counts and the deliveries. The deliveries go into the outbox in the same
transaction (invariant 1), under ids derived from the instance and the step, so a move done
again after a crash enqueues nothing twice.

Events older than a trigger's ``max_event_age`` (their own timestamp) start nothing:
imported history, or a phone's week-old offline queue, does not send today's e-mails.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from opencdp.activate.audience_sync import membership_of
from opencdp.activate.journey import MAX_INSTANCES, Journey, Trigger, parse_journey
from opencdp.activate.journey_engine import (
    ACTIVE,
    Instance,
    Progress,
    Send,
    on_event,
    on_timer,
    start,
    value_at,
)
from opencdp.activate.signing import webhook_id
from opencdp.resolve.batch import BatchChanges, StoredEvent
from opencdp.storage.db import Connection
from opencdp.storage.outbox import PENDING
from opencdp.timeutil import isoformat_us, parse_timestamp, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.metrics import Metrics
    from opencdp.storage.db import Database
    from opencdp.storage.definitions import DefinitionStore
    from opencdp.storage.destinations import DestinationStore
    from opencdp.storage.journeys import JourneyRow, JourneyStore
    from opencdp.storage.outbox import OutboxStore

log = logging.getLogger(__name__)

#: timers moved per transaction
DUE_BATCH = 500
#: the subscription name journey deliveries carry: ``journey:<key>:<step>``
SUBSCRIPTION_PREFIX = "journey:"


def subscription_of(journey_key: str, step_key: str) -> str:
    return f"{SUBSCRIPTION_PREFIX}{journey_key}:{step_key}"


@dataclass(frozen=True)
class Live:
    """A stored journey as the runner uses it."""

    journey: Journey
    active: bool
    version: int


@dataclass
class _Moves:
    """What one pass decided, written together at its end."""

    workspace_id: str
    created: dict[str, Instance] = field(default_factory=dict)
    changed: dict[str, Instance] = field(default_factory=dict)
    reached: dict[tuple[str, str], int] = field(default_factory=dict)
    progress: list[tuple[Live, Progress]] = field(default_factory=list)

    def add(self, live: Live, instance: Instance, progress: Progress, new: bool) -> None:
        (self.created if new else self.changed)[instance.id] = instance
        if new:
            self.changed.pop(instance.id, None)
        for step in progress.reached:
            k = (live.journey.key, step)
            self.reached[k] = self.reached.get(k, 0) + 1
        if progress.sends:
            self.progress.append((live, progress))


class JourneyRunner:
    def __init__(
        self,
        db: Database,
        store: JourneyStore,
        outbox: OutboxStore,
        destinations: DestinationStore,
        definitions: DefinitionStore,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.outbox = outbox
        self.destinations = destinations
        self.definitions = definitions
        self.clock = clock
        self.metrics = metrics
        self._live: dict[str, tuple[tuple[int, int, int | None], dict[str, Live]]] = {}
        #: per thread: the batch under way and the membership events it emitted
        self._local = threading.local()

    # -- the journeys -----------------------------------------------------------------------------
    def journeys_in(self, conn: Connection, workspace_id: str) -> dict[str, Live]:
        """The workspace's journeys, compiled (again only when one changed)."""
        version = self.store.version(conn, workspace_id)
        cached = self._live.get(workspace_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        live: dict[str, Live] = {}
        if version[0]:
            for row in self.store.of_workspace_in(conn, workspace_id):
                compiled = _compile(row)
                if compiled is not None:
                    live[row.key] = Live(compiled, row.state == "active", row.version)
        self._live[workspace_id] = (version, live)
        return live

    def sends_to(
        self, workspace_id: str, destination_id: str
    ) -> tuple[Any, dict[str, dict[str, Any]]]:
        """The journeys' send steps addressed to a destination, as the dispatcher reads them:
        (a version, {subscription: {"mapping", "template"}}). Read at send time, so a fixed
        template applies to retries and replays too."""
        with self.db.read() as conn:
            live = self.journeys_in(conn, workspace_id)
            version = self._live[workspace_id][0]
        sends: dict[str, dict[str, Any]] = {}
        for lv in live.values():
            for step in lv.journey.steps:
                if step.kind == "send" and step.destination == destination_id:
                    sends[subscription_of(lv.journey.key, step.key)] = {
                        "mapping": step.mapping,
                        "template": step.template,
                    }
        return version, sends

    # -- events -----------------------------------------------------------------------------------
    def begin(self, conn: Connection) -> None:
        """A processed batch starts (before compute): membership events compute emits in
        ``conn``'s transaction wait for :meth:`changed`, which offers them after the batch's
        own events — so an instance an audience entry starts does not see the events that
        caused the entry, and the batch takes its journey locks in one place."""
        self._local.batch = (conn, [])

    def changed(self, conn: Connection, changes: BatchChanges) -> None:
        """The processor's batch listener: the batch's events start and move instances,
        then the membership changes compute made of them."""
        batch = getattr(self._local, "batch", None)
        self._local.batch = None
        waiting = batch[1] if batch is not None and batch[0] is conn else []
        if not changes.stored and not waiting:
            return
        live = self.journeys_in(conn, changes.workspace_id)
        if not live:
            return
        if changes.merged:
            self.store.follow_merges(conn, changes.workspace_id, changes.merged_into)
        if changes.stored:
            self.offer(conn, changes.workspace_id, changes.stored, live, created=changes.created)
        for workspace_id, events in waiting:
            self.offer(
                conn, workspace_id, events, self.journeys_in(conn, workspace_id), memberships=True
            )

    def memberships(
        self, conn: Connection, workspace_id: str, events: Sequence[StoredEvent]
    ) -> int:
        """Compute's membership events: audience triggers start instances; they move
        waiting ones like any event. Inside a processed batch they wait for
        :meth:`changed`; otherwise (a scheduled or requested recompute) they go now.
        Returns how many instances started or moved now."""
        if not events:
            return 0
        batch = getattr(self._local, "batch", None)
        if batch is not None and batch[0] is conn:
            batch[1].append((workspace_id, list(events)))
            return 0
        live = self.journeys_in(conn, workspace_id)
        if not live:
            return 0
        return self.offer(conn, workspace_id, events, live, memberships=True)

    def offer(
        self,
        conn: Connection,
        workspace_id: str,
        events: Sequence[StoredEvent],
        live: Mapping[str, Live],
        *,
        created: frozenset[str] = frozenset(),
        memberships: bool = False,
    ) -> int:
        """Offer ``events`` (in order) to their profiles' active instances, then to the
        triggers of the active journeys; returns how many instances started or moved."""
        now = to_us(self.clock.now())
        parsed = [(ev, orjson.loads(ev.payload)) for ev in events]
        # events that can start an instance (fired, recent, of a new profile where asked):
        # only their profiles' history and traits are read for entering
        entering = [
            (ev, e)
            for ev, e in parsed
            if any(
                _qualifies(t, e, ev.profile_id, created, now, memberships)
                for lv in live.values()
                if lv.active
                for t in lv.journey.triggers
            )
        ]
        active = self.store.active_of(conn, workspace_id, {ev.profile_id for ev in events})
        if not active and not entering:
            return 0
        by_profile: dict[str, list[Instance]] = {}
        for row in active:
            if row["journey_key"] in live:
                by_profile.setdefault(row["profile_id"], []).append(_from_row(row))
        history = (
            self.store.history_of(conn, workspace_id, {ev.profile_id for ev, _e in entering})
            if entering
            else {}
        )
        facts = self._facts(conn, workspace_id, live, by_profile, entering)
        moves = _Moves(workspace_id)
        for ev, e in parsed:
            pid = ev.profile_id
            for inst in by_profile.get(pid, ()):
                lv = live[inst.journey_key]
                if inst.status == ACTIVE and inst.wake_us is not None and inst.wake_us <= now:
                    # its timer is due and the scheduler has not come by yet: what was due
                    # happens first (an order after the wait ran out does not cancel the mail)
                    due = on_timer(lv.journey, inst, now, facts)
                    moves.add(lv, inst, due, inst.id in moves.created)
                progress = on_event(lv.journey, inst, e, now, facts)
                if progress is not None:
                    moves.add(lv, inst, progress, inst.id in moves.created)
            for lv in live.values():
                if not lv.active:
                    continue
                trigger = next(
                    (
                        t
                        for t in lv.journey.triggers
                        if _qualifies(t, e, pid, created, now, memberships)
                    ),
                    None,
                )
                if trigger is None:
                    continue
                entered = self._enter(lv, trigger, ev, e, by_profile, history, now)
                if entered is None:
                    continue
                by_profile.setdefault(pid, []).append(entered)
                moves.add(lv, entered, start(lv.journey, entered, e, now, facts), True)
        return self._write(conn, moves, facts, now)

    def _enter(
        self,
        lv: Live,
        trigger: Trigger,
        ev: StoredEvent,
        event: Mapping[str, Any],
        by_profile: Mapping[str, list[Instance]],
        history: Mapping[tuple[str, str], tuple[int, int | None]],
        now: int,
    ) -> Instance | None:
        """A new instance, or None when the re-entry rules (or a running instance for the
        same identifier) keep the profile out."""
        j = lv.journey
        pid = ev.profile_id
        ident = ""
        if trigger.unique_identifier is not None:
            ident = (value_at(event, trigger.unique_identifier) or "")[:150]
        mine = [i for i in by_profile.get(pid, ()) if i.journey_key == j.key]
        running = [i for i in mine if i.status == ACTIVE]
        if any(i.identifier == ident or "" in (i.identifier, ident) for i in running):
            return None  # the event went to that instance (a restart branch, say)
        ever, last_ended = history.get((j.key, pid), (0, None))
        ever += sum(1 for i in mine)  # instances this pass started
        ended = [i.ended_us for i in mine if i.ended_us is not None]
        if ended:
            last_ended = max([*ended, last_ended or 0])
        if j.reentry == "once" and ever:
            return None
        if isinstance(j.reentry, timedelta):
            if running:
                return None
            if last_ended is not None and now - last_ended < _us(j.reentry):
                return None
        if len(running) >= MAX_INSTANCES:
            return None
        seed = f"{ev.message_id}\x1f{j.key}\x1f{pid}\x1f{ident}\x1f{lv.version}"
        return Instance(
            workspace_id="",  # set by _write
            journey_key=j.key,
            id="ji_" + hashlib.sha256(seed.encode()).hexdigest()[:29],
            profile_id=pid,
            identifier=ident,
            message_id=ev.message_id,
            entered_us=now,
            expires_us=now + _us(j.lifetime),
            step_since_us=now,
        )

    # -- timers -----------------------------------------------------------------------------------
    def run_due(self, limit: int = DUE_BATCH) -> int:
        """Move the instances whose timer is due by the clock (at most ``limit``, in one
        transaction); returns how many. A crash before commit leaves them due."""
        now = to_us(self.clock.now())
        with self.db.write() as conn:
            rows = self.store.due(conn, now, limit)
            if not rows:
                return 0
            by_workspace: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_workspace.setdefault(row["workspace_id"], []).append(row)
            moved = 0
            for workspace_id, due in by_workspace.items():
                live = self.journeys_in(conn, workspace_id)
                instances = [_from_row(r) for r in due]
                by_profile: dict[str, list[Instance]] = {}
                for inst in instances:
                    by_profile.setdefault(inst.profile_id, []).append(inst)
                facts = self._facts(conn, workspace_id, live, by_profile, [])
                moves = _Moves(workspace_id)
                for inst in instances:
                    lv = live.get(inst.journey_key)
                    if lv is None or inst.step not in lv.journey._index:
                        # its journey was replaced without this step: it cannot go on
                        inst.status, inst.wake_us, inst.ended_us = "exited", None, now
                        inst.exit_reason = "journey changed"
                        moves.changed[inst.id] = inst
                        continue
                    moves.add(lv, inst, on_timer(lv.journey, inst, now, facts), False)
                moved += self._write(conn, moves, facts, now)
            return moved

    def run_until_idle(self, limit: int = DUE_BATCH) -> int:
        """Move every due instance (tests; ``opencdp journey tick``)."""
        total = 0
        while n := self.run_due(limit):
            total += n
        return total

    # -- writing ----------------------------------------------------------------------------------
    def _facts(
        self,
        conn: Connection,
        workspace_id: str,
        live: Mapping[str, Live],
        by_profile: Mapping[str, list[Instance]],
        entering: Sequence[tuple[StoredEvent, Any]],
    ) -> _Facts:
        pids = set(by_profile) | {ev.profile_id for ev, _e in entering}
        if not pids or not any(lv.journey.uses_profile() for lv in live.values()):
            return _Facts({})
        return _Facts(self.store.facts_in(conn, workspace_id, pids))

    def _write(self, conn: Connection, moves: _Moves, facts: _Facts, now: int) -> int:
        ws = moves.workspace_id
        for inst in moves.created.values():
            inst.workspace_id = ws
        self.store.save(
            conn,
            [_to_row(i, now) for i in moves.created.values()],
            [_to_row(i, now) for i in moves.changed.values()],
        )
        self.store.count_reached(conn, ws, moves.reached)
        if moves.progress:
            self._send(conn, ws, moves.progress, facts, now)
        if self.metrics is not None and moves.created:
            self.metrics.add("opencdp_journey_entries_total", len(moves.created))
        return len(moves.created) + len(moves.changed)

    def _send(
        self,
        conn: Connection,
        workspace_id: str,
        progress: list[tuple[Live, Progress]],
        facts: _Facts,
        now: int,
    ) -> None:
        enabled = {d.id for d in self.destinations.of_workspace_in(conn, workspace_id) if d.enabled}
        sends = [(lv, s) for lv, p in progress for s in p.sends]
        pids = sorted({s.instance.profile_id for _lv, s in sends})
        known = self.definitions.identifiers_in(conn, workspace_id, pids)
        rows: list[dict[str, Any]] = []
        for lv, s in sends:
            dest = s.step.destination
            if dest not in enabled:
                log.warning(
                    "journey %s, step %s: destination %r is missing or switched off; not sent",
                    lv.journey.key,
                    s.step.key,
                    dest,
                )
                if self.metrics is not None:
                    self.metrics.add("opencdp_journey_sends_skipped_total", 1)
                continue
            message = journey_message(
                workspace_id,
                lv,
                s,
                facts(s.instance.profile_id),
                known.get(s.instance.profile_id, []),
                now,
            )
            subscription = subscription_of(lv.journey.key, s.step.key)
            assert dest is not None
            rows.append(
                {
                    "workspace_id": workspace_id,
                    "id": webhook_id(dest, subscription, message["messageId"]),
                    "destination_id": dest,
                    "subscription": subscription,
                    "profile_id": s.instance.profile_id,
                    "message_id": message["messageId"],
                    "payload": orjson.dumps(message).decode(),
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
                self.metrics.add("opencdp_journey_sends_total", len(rows))


class BatchStart:
    """The first of the processor's batch listeners: tells the runner a batch begins."""

    def __init__(self, runner: JourneyRunner) -> None:
        self.runner = runner

    def changed(self, conn: Connection, _changes: BatchChanges) -> None:
        self.runner.begin(conn)


def journey_message(
    workspace_id: str,
    lv: Live,
    send: Send,
    profile: Mapping[str, Any],
    identifiers: Sequence[tuple[str, str]],
    now: int,
) -> dict[str, Any]:
    """The track message a send step delivers (Segment's journey-step shape): the profile's
    current traits in ``context.traits`` (an e-mail destination finds the address there), the
    path's events in ``properties.journey_context`` / ``journey_events``."""
    instance, step = send.instance, send.step.key
    ids: dict[str, str] = {}
    for kind, value in identifiers:
        ids.setdefault(kind, value)
    j = lv.journey
    message: dict[str, Any] = {
        "type": "track",
        "event": send.step.event_name or step,
        "messageId": f"journey-{instance.id}-{step}",
        "timestamp": isoformat_us(now),
        "context": {
            "traits": dict(profile.get("traits") or {}),
            "personas": {
                "computation_class": "journey_step",
                "computation_id": f"{j.key}__{step}",
                "computation_key": j.key,
                "space_id": workspace_id,
            },
        },
        "properties": {
            "journey_context": send.context,
            "journey_events": send.events,
            "journey_metadata": {
                "journey_id": j.key,
                "journey_name": j.name,
                "epoch_id": lv.version,
                "instance_id": instance.id,
                "step": step,
                "profile_id": instance.profile_id,
            },
        },
    }
    if "user_id" in ids:
        message["userId"] = ids["user_id"]
    if "anonymous_id" in ids:
        message["anonymousId"] = ids["anonymous_id"]
    return message


class _Facts:
    """Profile -> traits and audiences, read once per pass (empty when nothing needs them)."""

    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.known = known

    def __call__(self, profile_id: str) -> Mapping[str, Any]:
        return self.known.get(profile_id) or {"traits": {}, "audiences": {}}


def _fires(trigger: Trigger, event: Mapping[str, Any], memberships: bool) -> bool:
    if trigger.audience is not None:
        if not memberships:
            return False
        m = membership_of(dict(event))
        return m is not None and m == (trigger.audience, True)
    return trigger.condition is not None and trigger.condition.matches(event)


def _qualifies(
    trigger: Trigger,
    event: Mapping[str, Any],
    profile_id: str,
    created: frozenset[str],
    now: int,
    memberships: bool,
) -> bool:
    """Whether ``trigger`` starts an instance with this event: it fires, the event is recent
    enough, and the profile is new when the trigger asks for new profiles."""
    return (
        _fires(trigger, event, memberships)
        and (profile_id in created or not trigger.new_profile)
        and _fresh(trigger, event, now)
    )


def _fresh(trigger: Trigger, event: Mapping[str, Any], now: int) -> bool:
    """Whether the event is recent enough to start an instance."""
    stamp = event.get("timestamp") or event.get("receivedAt")
    try:
        at = to_us(parse_timestamp(stamp))
    except (TypeError, ValueError):
        return True
    return now - at <= _us(trigger.max_event_age)


def _us(d: timedelta) -> int:
    return int(d.total_seconds() * 1_000_000)


def _compile(row: JourneyRow) -> Journey | None:
    try:
        return parse_journey(row.key, row.definition)
    except Exception as exc:  # validated when stored; a newer parser may differ
        log.warning("journey %s cannot be used: %s", row.key, exc)
        return None


def _from_row(row: Mapping[str, Any]) -> Instance:
    return Instance(
        workspace_id=row["workspace_id"],
        journey_key=row["journey_key"],
        id=row["id"],
        profile_id=row["profile_id"],
        identifier=row["identifier"],
        message_id=row["message_id"],
        entered_us=row["entered_us"],
        expires_us=row["expires_us"],
        status=row["status"],
        step=row["step"],
        step_since_us=row["step_since_us"],
        wake_us=row["wake_us"],
        ended_us=row["ended_us"],
        exit_reason=row["exit_reason"],
        context=row["context"],
        events=row["events"],
        restarts=row["restarts"],
    )


def _to_row(i: Instance, now: int) -> dict[str, Any]:
    return {
        "workspace_id": i.workspace_id,
        "id": i.id,
        "journey_key": i.journey_key,
        "profile_id": i.profile_id,
        "identifier": i.identifier,
        "message_id": i.message_id,
        "status": i.status,
        "step": i.step,
        "step_since_us": i.step_since_us,
        "wake_us": i.wake_us,
        "entered_us": i.entered_us,
        "expires_us": i.expires_us,
        "ended_us": i.ended_us,
        "exit_reason": i.exit_reason,
        "context": i.context,
        "events": i.events,
        "restarts": i.restarts,
        "updated_us": now,
    }
