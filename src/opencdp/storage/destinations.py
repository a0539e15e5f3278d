"""Configured destinations of every workspace (SQL only; the types live in ``activate``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, update

from opencdp.errors import NotFound
from opencdp.storage.db import Database
from opencdp.storage.schema import deliveries, destinations


@dataclass(frozen=True)
class DestinationRow:
    workspace_id: str
    id: str
    type: str
    enabled: bool
    settings: dict[str, Any]
    subscriptions: list[dict[str, Any]]
    health: str
    created_us: int
    updated_us: int


def _row(r: Any) -> DestinationRow:
    m = dict(r._mapping)
    m["settings"] = orjson.loads(m["settings"])
    m["subscriptions"] = orjson.loads(m["subscriptions"])
    return DestinationRow(**m)


class DestinationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, row: Mapping[str, Any]) -> bool:
        """Create or replace a destination (``settings`` and ``subscriptions`` as Python
        values); True when it was created."""
        values = {
            **row,
            "settings": orjson.dumps(row["settings"]).decode(),
            "subscriptions": orjson.dumps(row["subscriptions"]).decode(),
        }
        with self.db.write() as conn:
            created = conn.execute(
                select(destinations.c.created_us).where(
                    destinations.c.workspace_id == row["workspace_id"],
                    destinations.c.id == row["id"],
                )
            ).scalar_one_or_none()
            if created is None:
                conn.execute(destinations.insert().values(**values))
                return True
            kept = {
                k: v for k, v in values.items() if k not in ("workspace_id", "id", "created_us")
            }
            conn.execute(
                update(destinations)
                .where(
                    destinations.c.workspace_id == row["workspace_id"],
                    destinations.c.id == row["id"],
                )
                .values(**kept)
            )
            return False

    def get(self, workspace_id: str, destination_id: str) -> DestinationRow:
        """The destination; raises NotFound."""
        with self.db.read() as conn:
            found = conn.execute(
                select(destinations).where(
                    destinations.c.workspace_id == workspace_id,
                    destinations.c.id == destination_id,
                )
            ).one_or_none()
        if found is None:
            raise NotFound(f"no destination {destination_id!r} in workspace {workspace_id!r}")
        return _row(found)

    def of_workspace(self, workspace_id: str) -> list[DestinationRow]:
        with self.db.read() as conn:
            return self.of_workspace_in(conn, workspace_id)

    def of_workspace_in(self, conn: Connection, workspace_id: str) -> list[DestinationRow]:
        rows = conn.execute(
            select(destinations)
            .where(destinations.c.workspace_id == workspace_id)
            .order_by(destinations.c.id)
        )
        return [_row(r) for r in rows]

    def all_enabled(self) -> list[DestinationRow]:
        """The enabled destinations of every workspace (what a dispatcher sends to)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(destinations)
                .where(destinations.c.enabled.is_(True))
                .order_by(destinations.c.workspace_id, destinations.c.id)
            )
            return [_row(r) for r in rows]

    def version(self, conn: Connection, workspace_id: str) -> tuple[int, int | None]:
        """What changes whenever a destination of the workspace is created, replaced or
        deleted: (how many, the latest ``updated_us``)."""
        count, latest = conn.execute(
            select(func.count(), func.max(destinations.c.updated_us)).where(
                destinations.c.workspace_id == workspace_id
            )
        ).one()
        return int(count), latest

    def delete(self, workspace_id: str, destination_id: str) -> None:
        """Remove the destination and its deliveries (raises NotFound)."""
        with self.db.write() as conn:
            gone = conn.execute(
                delete(destinations).where(
                    destinations.c.workspace_id == workspace_id,
                    destinations.c.id == destination_id,
                )
            ).rowcount
            if not gone:
                raise NotFound(f"no destination {destination_id!r} in workspace {workspace_id!r}")
            conn.execute(
                delete(deliveries).where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.destination_id == destination_id,
                )
            )

    def set_state(self, workspace_id: str, destination_id: str, now_us: int, **values: Any) -> None:
        """Change ``enabled`` or ``health`` (the dispatcher: a 410 disables, a 401 flags)."""
        with self.db.write() as conn:
            conn.execute(
                update(destinations)
                .where(
                    destinations.c.workspace_id == workspace_id,
                    destinations.c.id == destination_id,
                )
                .values(updated_us=now_us, **values)
            )
