"""Journeys, the use cases the API and the CLI share: apply a journey (its JSON/YAML form or
a preset), checked in full — conditions, durations, step targets, the destinations its send
steps name and their templates — before anything is stored; show it with its figures
(entered, per step, completed, exited early); pause, resume, delete; list instances; move
due timers now.
"""

from __future__ import annotations

import re
from typing import Any

from opencdp.activate.destinations import registered
from opencdp.activate.journey import Journey, JourneyError, parse_journey
from opencdp.activate.journey_presets import expand_preset
from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.storage.journeys import JourneyRow
from opencdp.timeutil import isoformat_us, to_us

KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STATES = ("active", "paused")
INSTANCE_STATUSES = ("active", "completed", "exited")


def put_journey(
    runtime: Runtime, workspace_id: str, key: str, body: Any
) -> tuple[dict[str, Any], bool]:
    """Create or replace a journey from its JSON form, or from ``{"preset": name,
    "settings": {…}}``; returns (its view, created). Instances already under way go on (a
    step the new version no longer has ends them)."""
    if not KEY.fullmatch(key):
        raise RequestError(
            f"{key!r} is not a valid journey key: up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            code="invalid_id",
        )
    if not isinstance(body, dict):
        raise JourneyError('send a JSON object: a journey, or {"preset", "settings"}')
    preset = None
    definition = dict(body)
    definition.pop("key", None)  # a journey file may carry its key
    if "preset" in definition:
        preset = {"preset": definition["preset"], "settings": definition.get("settings", {})}
        definition = expand_preset(definition)
    journey = parse_journey(key, definition)
    _check_sends(runtime, workspace_id, journey, preset is not None)
    enabled = definition.get("enabled", True)
    now = to_us(runtime.clock.now())
    created = runtime.journeys.put(
        {
            "workspace_id": workspace_id,
            "key": key,
            "definition": definition,
            "preset": preset,
            "state": "active" if enabled else "paused",
            "created_us": now,
            "updated_us": now,
        }
    )
    return get_journey(runtime, workspace_id, key), created


def _check_sends(runtime: Runtime, workspace_id: str, journey: Journey, preset: bool) -> None:
    """Every send step's destination exists in the workspace and takes its template."""
    types = registered()
    for i, step in enumerate(journey.steps):
        if step.kind != "send":
            continue
        where = "settings.destination" if preset else f"steps.{i}.send.destination"
        assert step.destination is not None
        try:
            row = runtime.destinations.get(workspace_id, step.destination)
        except NotFound:
            raise JourneyError(
                f"{where}: no destination {step.destination!r} in this workspace; "
                "create it first (PUT /api/destinations/{id})"
            ) from None
        if step.template is not None:
            kind = types.get(row.type)
            try:
                if kind is None:
                    raise ValueError(f"its type {row.type!r} is not installed")
                kind.check_template(step.template)
            except ValueError as exc:
                tw = "settings" if preset else f"steps.{i}.send.template"
                raise JourneyError(f"{tw}: destination {step.destination!r}: {exc}") from None


def get_journey(runtime: Runtime, workspace_id: str, key: str) -> dict[str, Any]:
    """The journey as written, its state and figures: entered, active, completed, exited
    (with reasons), and per step how many reached it and how many wait in it now."""
    row = runtime.journeys.get(workspace_id, key)
    return _view(row, runtime.journeys.figures(workspace_id, key))


def list_journeys(runtime: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [
        _view(row, runtime.journeys.figures(workspace_id, row.key), full=False)
        for row in runtime.journeys.of_workspace(workspace_id)
    ]


def set_state(runtime: Runtime, workspace_id: str, key: str, state: str) -> dict[str, Any]:
    """``paused``: nobody new enters (those under way go on); ``active``: entries resume
    (events while paused start nothing later)."""
    if state not in STATES:
        raise RequestError(f"state: one of {', '.join(STATES)}", code="invalid_state")
    runtime.journeys.set_state(workspace_id, key, state, to_us(runtime.clock.now()))
    return get_journey(runtime, workspace_id, key)


def delete_journey(runtime: Runtime, workspace_id: str, key: str) -> None:
    """The journey, its instances and their timers (deliveries already queued still go)."""
    runtime.journeys.delete(workspace_id, key)


def list_instances(
    runtime: Runtime,
    workspace_id: str,
    key: str,
    *,
    status: str | None = None,
    profile_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A journey's instances, the latest first: where each is, when it wakes, its path."""
    runtime.journeys.get(workspace_id, key)  # NotFound
    if status is not None and status not in INSTANCE_STATUSES:
        raise RequestError(f"status: one of {', '.join(INSTANCE_STATUSES)}", code="invalid_status")
    if not 1 <= limit <= 1000:
        raise RequestError("limit: 1 to 1000", code="invalid_limit")
    return [
        {
            "id": r["id"],
            "profile_id": r["profile_id"],
            "identifier": r["identifier"] or None,
            "status": r["status"],
            "step": r["step"],
            "entered_at": isoformat_us(r["entered_us"]),
            "wakes_at": isoformat_us(r["wake_us"]) if r["wake_us"] is not None else None,
            "ended_at": isoformat_us(r["ended_us"]) if r["ended_us"] is not None else None,
            "exit_reason": r["exit_reason"],
            "restarts": r["restarts"],
            "events": [e.get("event") for e in r["events"]],
        }
        for r in runtime.journeys.instances(
            workspace_id, key, status=status, profile_id=profile_id, limit=limit
        )
    ]


def run_due(runtime: Runtime) -> int:
    """Move every instance whose timer is due now (what the worker does every second)."""
    return runtime.journey_runner.run_until_idle()


def _view(row: JourneyRow, figures: dict[str, Any], full: bool = True) -> dict[str, Any]:
    definition = row.definition
    steps = []
    for s in definition.get("steps", []):
        kind = next((k for k in ("wait", "wait_until", "split", "send", "end") if s.get(k)), "?")
        steps.append(
            {
                "key": s.get("key"),
                "kind": kind,
                "reached": figures["reached"].get(s.get("key"), 0),
                "active": figures["in_step"].get(s.get("key"), 0),
            }
        )
    view: dict[str, Any] = {
        "key": row.key,
        "name": definition.get("name") or row.key,
        "state": row.state,
        "version": row.version,
        "preset": row.preset,
        "entered": figures["entered"],
        "active": figures["active"],
        "completed": figures["completed"],
        "exited": figures["exited"],
        "exit_reasons": figures["exit_reasons"],
        "steps": steps,
        "created_at": isoformat_us(row.created_us),
        "updated_at": isoformat_us(row.updated_us),
    }
    if full:
        view["definition"] = definition
    return view
