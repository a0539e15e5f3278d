"""The audit log: append-only records of who did what (``audit_log``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from opencdp.storage.db import Database
from opencdp.storage.schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    """One recorded action. ``target`` names the object (a destination id, a route), never a
    value a customer gave; ``profile_id`` is the only trace of a person."""

    workspace_id: str
    at_us: int
    actor: str
    role: str
    channel: str
    action: str
    target: str | None = None
    profile_id: str | None = None
    request_id: str | None = None
    status: int | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditStore:
    """Appends to and reads the audit log. There is no update and no delete."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, entries: Sequence[AuditEntry]) -> None:
        rows = [{k: v for k, v in e.to_dict().items() if k != "id"} for e in entries]
        if not rows:
            return
        for row in rows:  # bounded like the columns, so that no entry is ever refused
            row["actor"] = row["actor"][:200]
            row["action"] = row["action"][:100]
            if row["target"] is not None:
                row["target"] = row["target"][:300]
            if row["request_id"] is not None:  # a client's Request-Id may be up to 200 long
                row["request_id"] = row["request_id"][:64]
        with self.db.write() as conn:
            conn.execute(audit_log.insert(), rows)

    def query(
        self,
        workspace_id: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        profile_id: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries of the workspace, oldest first. ``action`` matches exactly or as a prefix
        ending at a dot (``destination`` finds ``destination.put`` and ``destination.delete``)."""
        query = select(audit_log).where(audit_log.c.workspace_id == workspace_id)
        if since_us is not None:
            query = query.where(audit_log.c.at_us >= since_us)
        if until_us is not None:
            query = query.where(audit_log.c.at_us < until_us)
        if action:
            prefix = action.rstrip(".") + "."
            query = query.where(
                (audit_log.c.action == action)
                | (audit_log.c.action.startswith(prefix, autoescape=True))
            )
        if actor:
            query = query.where(audit_log.c.actor == actor)
        if profile_id:
            query = query.where(audit_log.c.profile_id == profile_id)
        if after_id is not None:
            query = query.where(audit_log.c.id > after_id)
        query = query.order_by(audit_log.c.id).limit(limit)
        with self.db.read() as conn:
            return [AuditEntry(**r._asdict()) for r in conn.execute(query)]
