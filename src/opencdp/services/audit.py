"""Reading the audit log (``GET /api/audit``, ``opencdp audit``) and writing it from the CLI.

The log is append-only: nothing here, in the store or in the API changes or deletes an entry.
An entry names who (a token's id and name, or ``cli:<os user>``), what (the action of
``web/access.py``: ``destination.put``, ``profile.read.traits`` …), when, the workspace, the
request id, the object's key and the answer — and of a person only the profile id.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping
from typing import Any

from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.storage.audit import AuditEntry
from opencdp.timeutil import isoformat_us, parse_timestamp, to_us

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": isoformat_us(entry.at_us),
        "workspace_id": entry.workspace_id,
        "actor": entry.actor,
        "role": entry.role,
        "channel": entry.channel,
        "action": entry.action,
        "target": entry.target,
        "profile_id": entry.profile_id,
        "request_id": entry.request_id,
        "status": entry.status,
    }


def parse_time(value: str, name: str) -> int:
    """``value`` (ISO-8601, UTC when it has no offset; or milliseconds since the epoch) in
    microseconds; 400 naming ``name`` otherwise."""
    text = value.strip()
    if text.isdigit() and len(text) <= 15:
        return int(text) * 1000
    try:
        return to_us(parse_timestamp(text))
    except (ValueError, IndexError, OverflowError):
        raise RequestError(
            f"{name}={value!r} is not a time: send ISO-8601 (2026-01-31T12:00:00Z) or "
            "milliseconds since the epoch",
            code="invalid_time",
        ) from None


def query(runtime: Runtime, workspace_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of the workspace's audit log, oldest first: ``{"data": [...], "next": cursor
    or null}``. Filters: ``since``/``until`` (ISO-8601 or epoch ms; ``until`` exclusive),
    ``action`` (exact, or a prefix ending at a dot: ``destination``), ``actor`` (exact),
    ``profile_id``; ``limit`` (1-1000, default 100) and ``next`` (the cursor of the previous
    page)."""
    known = {"since", "until", "action", "actor", "profile_id", "limit", "next"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise RequestError(
            f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}",
            code="invalid_request",
        )
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    limit = _whole(params.get("limit"), "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit must be from 1 to {MAX_LIMIT}", code="invalid_limit")
    after = _whole(params.get("next"), "next", None) if params.get("next") else None
    if after is not None and after >= 2**62:
        raise RequestError("next is not a cursor this API gave", code="invalid_next")
    entries = runtime.audit.query(
        workspace_id,
        since_us=since,
        until_us=until,
        action=params.get("action") or None,
        actor=params.get("actor") or None,
        profile_id=params.get("profile_id") or None,
        after_id=after,
        limit=limit,
    )
    cursor = str(entries[-1].id) if len(entries) == limit else None
    return {"data": [entry_view(e) for e in entries], "next": cursor}


def _whole(value: str | None, name: str, default: int | None) -> Any:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise RequestError(f"{name} must be a whole number, not {value!r}", code=f"invalid_{name}")
    return int(value)


# -- the CLI's entries ----------------------------------------------------------------------------


def cli_actor() -> str:
    """How the audit log names a person at the command line: ``cli:<os user>``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd)
        user = "unknown"
    return f"cli:{user}"


def record_cli(
    runtime: Runtime,
    workspace_id: str,
    action: str,
    target: str | None,
    *,
    status: int,
    request_id: str | None = None,
    profile_id: str | None = None,
) -> None:
    """Append one CLI command to the audit log. ``status`` is the command's exit status (0:
    done); ``target`` names the object (an id or key), never a customer's value."""
    runtime.audit.record(
        [
            AuditEntry(
                workspace_id=workspace_id[:64],  # as the column: a bad id is still recorded
                at_us=runtime.now_us(),
                actor=cli_actor(),
                role="operator",
                channel="cli",
                action=action,
                target=target,
                profile_id=profile_id,
                request_id=request_id or f"cli-{uuid.uuid4()}",
                status=status,
            )
        ]
    )
