"""How a journey instance moves: pure functions over an :class:`Instance`, the journey and
the time now (the injected clock's, in microseconds).

An instance is always either finished (``completed`` or ``exited``) or parked in a step that
waits (``wait``, ``wait_until``) with ``wake_us`` set: the row a scheduler picks up when that
time has come (a durable timer). Everything else — splits, sends, ``end`` — happens at once
when the instance reaches it. Three things move an instance: entering (:func:`start`), an
event of its profile (:func:`on_event`) and its timer (:func:`on_timer`). Each returns a
:class:`Progress` with the sends to enqueue and the steps reached, which the runner writes in
one transaction with the instance, so a crash repeats the whole move or none of it.

``wake_us`` is never later than the instance's expiry (``exit.after``), so an instance
forgotten in a long wait still ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opencdp.activate.journey import (
    END,
    MAX_PATH_EVENTS,
    MAX_RESTARTS,
    Journey,
    Step,
)

ACTIVE = "active"
COMPLETED = "completed"
EXITED = "exited"
#: a profile's state a split reads: ``{"traits": {…}, "audiences": {key: true}}``
Facts = Callable[[str], Mapping[str, Any]]


@dataclass
class Instance:
    """One profile's walk through one journey (one row of ``journey_instances``)."""

    workspace_id: str
    journey_key: str
    id: str
    profile_id: str
    #: the unique identifier's value ('' when the journey keys instances by profile)
    identifier: str
    #: the message id of the event that started it
    message_id: str
    entered_us: int
    expires_us: int
    status: str = ACTIVE
    step: str | None = None
    step_since_us: int = 0
    wake_us: int | None = None
    ended_us: int | None = None
    exit_reason: str | None = None
    #: event name -> the properties of the latest such event on the path taken
    context: dict[str, Any] = field(default_factory=dict)
    #: the events on the path taken, oldest first: {event, properties, timestamp, messageId}
    events: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0


@dataclass
class Send:
    """A send step reached: the runner builds the message and enqueues it."""

    instance: Instance
    step: Step
    #: what caused it: the trigger, a branch's event, or None (a timer)
    event: dict[str, Any] | None
    #: the instance's context and path as they were when the step was reached
    context: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Progress:
    sends: list[Send] = field(default_factory=list)
    #: step keys reached, in order (the per-step counts)
    reached: list[str] = field(default_factory=list)


def event_name(event: Mapping[str, Any]) -> str:
    """What the context keys an event by: a track's name, else its type."""
    name = event.get("event")
    return name if isinstance(name, str) and name else str(event.get("type") or "event")


def value_at(event: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    """The scalar at ``path`` as text (None: missing, null, or not a scalar)."""
    node: Any = event
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if node is None or isinstance(node, (dict, list)):
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def identifier_of(journey: Journey, event: Mapping[str, Any]) -> str | None:
    """The event's unique identifier under the journey's triggers' paths (the first found)."""
    for t in journey.triggers:
        if t.unique_identifier is not None:
            value = value_at(event, t.unique_identifier)
            if value is not None:
                return value
    return None


def identifier_matches(instance: Instance, value: str | None) -> bool:
    """A rule with ``match_identifier`` applies when the event carries no identifier (an order
    without a cart id ends every cart), the instance has none, or both are the same."""
    return value is None or instance.identifier == "" or value == instance.identifier


def start(
    journey: Journey, instance: Instance, event: Mapping[str, Any] | None, now_us: int, facts: Facts
) -> Progress:
    """Walk a new instance from the first step until it waits or ends."""
    progress = Progress()
    if event is not None:
        _remember(instance, event)
    _go(journey, instance, journey.first, now_us, facts, dict(event or {}), progress)
    return progress


def on_event(
    journey: Journey, instance: Instance, event: Mapping[str, Any], now_us: int, facts: Facts
) -> Progress | None:
    """An event of the instance's profile: an exit rule ends it (even mid-wait); else a
    waiting step's first matching branch moves it on (or restarts the wait). None: the event
    changes nothing."""
    if instance.status != ACTIVE or instance.step is None:
        return None
    ident = identifier_of(journey, event)
    for rule in journey.exit_rules:
        if rule.condition.matches(event) and (
            not rule.match_identifier or identifier_matches(instance, ident)
        ):
            _finish(instance, EXITED, now_us, f"exit: {rule.name}")
            return Progress()
    step = journey.step(instance.step)
    if step.kind != "wait_until":
        return None
    for branch in step.branches:
        if not branch.condition.matches(event):
            continue
        if branch.match_identifier and not identifier_matches(instance, ident):
            continue
        progress = Progress()
        if branch.restart:
            if instance.restarts >= MAX_RESTARTS:
                return None  # restarted enough: the wait runs out as it is
            _remember(instance, event)
            instance.restarts += 1
            _park(instance, step, now_us)
            return progress
        _remember(instance, event)
        nxt = branch.next or journey.following(step.key) or END
        _go(journey, instance, nxt, now_us, facts, dict(event), progress)
        return progress
    return None


def on_timer(journey: Journey, instance: Instance, now_us: int, facts: Facts) -> Progress:
    """The instance's timer is due: its expiry ends it; a wait's or a timeout's end moves it
    to the next step."""
    progress = Progress()
    if instance.status != ACTIVE:
        return progress
    if instance.wake_us is not None and now_us < instance.wake_us:
        return progress  # not due (another scheduler moved it already)
    # The move happens when it was due: after downtime or a clock jump the next wait counts
    # from then, so a drip of waits catches up instead of shifting by the time lost — and
    # a wait that ended before the expiry moves on, however late its timer runs.
    at = instance.wake_us if instance.wake_us is not None else now_us
    if at >= instance.expires_us or instance.step is None:
        _finish(instance, EXITED, now_us, "expired")
        return progress
    step = journey.step(instance.step)
    if step.kind == "wait_until":
        nxt = step.on_timeout or step.next or journey.following(step.key) or END
    else:
        nxt = step.next or journey.following(step.key) or END
    _go(journey, instance, nxt, at, facts, None, progress)
    return progress


def _go(
    journey: Journey,
    instance: Instance,
    key: str,
    now_us: int,
    facts: Facts,
    event: dict[str, Any] | None,
    progress: Progress,
) -> None:
    # Steps only point forward, so this ends after at most len(steps) moves.
    current: str | None = key
    while current is not None and current != END:
        step = journey.step(current)
        progress.reached.append(step.key)
        instance.step = step.key
        instance.step_since_us = now_us
        if step.kind in ("wait", "wait_until"):
            _park(instance, step, now_us)
            return
        if step.kind == "end":
            break
        if step.kind == "send":
            progress.sends.append(
                Send(instance, step, event, dict(instance.context), list(instance.events))
            )
            current = step.next or journey.following(step.key)
        elif step.kind == "split":
            assert step.condition is not None
            doc = {**facts(instance.profile_id), "journey_context": instance.context}
            doc["event"] = event or {}
            if step.condition.matches(doc):
                current = step.then or step.next or journey.following(step.key)
            else:
                current = step.otherwise or step.next or journey.following(step.key)
    _finish(instance, COMPLETED, now_us, None)


def _park(instance: Instance, step: Step, now_us: int) -> None:
    assert step.duration is not None
    wake = now_us + int(step.duration.total_seconds() * 1_000_000)
    instance.wake_us = min(wake, instance.expires_us)


def _finish(instance: Instance, status: str, now_us: int, reason: str | None) -> None:
    instance.status = status
    instance.wake_us = None
    instance.ended_us = now_us
    instance.exit_reason = reason


def _remember(instance: Instance, event: Mapping[str, Any]) -> None:
    name = event_name(event)
    props = event.get("properties")
    props = dict(props) if isinstance(props, Mapping) else {}
    if event.get("type") == "identify":
        traits = event.get("traits")
        props = dict(traits) if isinstance(traits, Mapping) else {}
    instance.context[name] = props
    instance.events.append(
        {
            "event": name,
            "properties": props,
            "timestamp": event.get("timestamp"),
            "messageId": event.get("messageId"),
        }
    )
    del instance.events[:-MAX_PATH_EVENTS]
