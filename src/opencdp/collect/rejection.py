"""Rejections and the quarantine rows that keep them (pure).

A message that cannot be used as sent becomes a :class:`Rejection` with a typed reason and a
readable detail, wherever it is refused: at collection (:mod:`opencdp.collect.normalize`), by a
tracking plan (:mod:`opencdp.collect.plan_cache`), in processing
(:mod:`opencdp.resolve.processor`), or as an import record the converter could not read
(:mod:`opencdp.services.import_runs`). :func:`quarantine_row` turns it into the row the
quarantine keeps it in, whole; :func:`rejection_fields` is what a replay that fails again
updates. :mod:`opencdp.storage.quarantine` stores and reads the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson

from opencdp.collect.envelope import clipped, without_write_keys

# Where a message was refused: the quarantine's ``stage`` column.
COLLECT: Final = "collect"
GOVERN: Final = "govern"
PROCESS: Final = "process"
IMPORT: Final = "import"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that cannot be processed as sent, with a typed reason and a readable detail."""

    reason: str
    detail: str
    raw: Any
    message_id: str | None = None
    type: str | None = None
    event: str | None = None
    # Set when a tracking plan blocked the message.
    plan_id: str | None = None
    plan_revision: int | None = None
    violations: tuple[dict[str, str], ...] = ()


def quarantine_row(
    rejection: Rejection,
    stage: str,
    now_us: int,
    *,
    workspace_id: str,
    source_id: str | None,
    import_run_id: str | None = None,
) -> dict[str, Any]:
    """The quarantine table row that keeps a rejected message whole, with its reason.

    ``stage`` is where it was refused; a rejection by a tracking plan is at :data:`GOVERN`.
    ``import_run_id`` names the import run of a record the converter refused.
    """
    raw = rejection.raw
    if isinstance(raw, dict):
        raw = without_write_keys(raw)  # a secret: never stored
    try:
        payload = orjson.dumps(raw).decode()
    except (TypeError, orjson.JSONEncodeError):
        payload = orjson.dumps(clipped(raw)).decode()
    return {
        "workspace_id": workspace_id,
        "source_id": source_id,
        # Column values must be storable on every backend (no NUL in PostgreSQL text). A
        # message without a usable id gets one here, which a replay keeps.
        "message_id": _storable(rejection.message_id) or f"q-{uuid.uuid4()}",
        **rejection_fields(rejection, stage),
        "event_type": rejection.type,
        "event_name": _storable((rejection.event or None) and rejection.event[:200]),
        "payload": payload,
        "created_us": now_us,
        "resolved_us": None,
        "resolution": None,
        "resolution_note": None,
        "import_run_id": import_run_id,
    }


def rejection_fields(rejection: Rejection, stage: str) -> dict[str, Any]:
    """The columns of a quarantine row that say why the message was refused: what a replay
    that fails again updates (``stage`` as in :func:`quarantine_row`)."""
    return {
        "stage": GOVERN if rejection.plan_id else stage,
        "reason": rejection.reason,
        "detail": _storable(rejection.detail),
        "plan_id": rejection.plan_id,
        "plan_revision": rejection.plan_revision,
        "violations": (
            orjson.dumps(list(rejection.violations)).decode() if rejection.violations else None
        ),
    }


def _storable(text: str | None) -> str | None:
    return text.replace("\x00", "\ufffd") if text else text
