"""Computed traits and audiences: their definitions, and the values they computed per profile
(``computed_values``; an audience's members hold ``true``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, update

from opencdp.errors import NotFound
from opencdp.query import ast
from opencdp.storage.db import Database
from opencdp.storage.definition_sql import DefinitionCompiler, convert
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import computed_values, definitions, identifiers, profiles

#: Statuses of a definition.
COMPUTING, READY, FAILED, DISABLED = "computing", "ready", "failed", "disabled"


@dataclass(frozen=True, slots=True)
class DefinitionRow:
    """A stored definition and the state of its last computation."""

    workspace_id: str
    key: str
    kind: str  # trait | audience
    name: str
    type: str  # USERS | ACCOUNTS
    query: str
    enabled: bool
    status: str
    error: str | None
    size: int | None
    computed_us: int | None
    created_us: int
    updated_us: int


class DefinitionStore:
    """Definitions and computed values of every workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.compiler = DefinitionCompiler(db.dialect.name)
        self._upsert = db.dialect.bulk_insert(
            computed_values,
            conflict=("workspace_id", "profile_id", "key"),
            update=("value", "computed_us"),
        )

    # -- definitions ------------------------------------------------------------------------------
    def put(self, row: Mapping[str, Any]) -> None:
        """Create or replace a definition (its values stay until the next computation)."""
        with self.db.write() as conn:
            existing = conn.execute(
                select(definitions.c.created_us).where(
                    definitions.c.workspace_id == row["workspace_id"],
                    definitions.c.key == row["key"],
                )
            ).scalar_one_or_none()
            if existing is None:
                conn.execute(definitions.insert().values(**row))
            else:
                values = {
                    k: v for k, v in row.items() if k not in ("workspace_id", "key", "created_us")
                }
                conn.execute(
                    update(definitions)
                    .where(
                        definitions.c.workspace_id == row["workspace_id"],
                        definitions.c.key == row["key"],
                    )
                    .values(**values)
                )

    def get(self, workspace_id: str, key: str, kind: str | None = None) -> DefinitionRow:
        """The definition ``key``; raises NotFound (also when it is of the other kind)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(definitions).where(
                    definitions.c.workspace_id == workspace_id, definitions.c.key == key
                )
            ).one_or_none()
        if row is None or (kind is not None and row.kind != kind):
            what = {"trait": "computed trait", "audience": "audience"}.get(kind or "", "definition")
            raise NotFound(f"no {what} {key!r} in workspace {workspace_id!r}")
        return DefinitionRow(**row._mapping)

    def of_workspace(self, workspace_id: str, kind: str | None = None) -> list[DefinitionRow]:
        query = select(definitions).where(definitions.c.workspace_id == workspace_id)
        if kind is not None:
            query = query.where(definitions.c.kind == kind)
        with self.db.read() as conn:
            return [
                DefinitionRow(**r._mapping) for r in conn.execute(query.order_by(definitions.c.key))
            ]

    def delete(self, workspace_id: str, key: str) -> None:
        """Remove the definition and the values it computed."""
        with self.db.write() as conn:
            conn.execute(
                delete(computed_values).where(
                    computed_values.c.workspace_id == workspace_id, computed_values.c.key == key
                )
            )
            conn.execute(
                delete(definitions).where(
                    definitions.c.workspace_id == workspace_id, definitions.c.key == key
                )
            )

    def set_status(self, workspace_id: str, key: str, **values: Any) -> None:
        with self.db.write() as conn:
            self.set_status_in(conn, workspace_id, key, **values)

    def set_status_in(self, conn: Connection, workspace_id: str, key: str, **values: Any) -> None:
        conn.execute(
            update(definitions)
            .where(definitions.c.workspace_id == workspace_id, definitions.c.key == key)
            .values(**values)
        )

    def trait_key_seen(self, workspace_id: str, key: str) -> bool:
        """Whether any profile of the workspace has (or had computed) a trait ``key``."""
        from opencdp.storage.schema import traits

        with self.db.read() as conn:
            for table in (traits, computed_values):
                found = conn.execute(
                    select(table.c.key)
                    .where(table.c.workspace_id == workspace_id, table.c.key == key)
                    .limit(1)
                ).first()
                if found is not None:
                    return True
        return False

    # -- computing --------------------------------------------------------------------------------
    def evaluate(
        self,
        workspace_id: str,
        root: ast.Expr,
        now_us: int,
        collection: str = "users",
        *,
        computed: frozenset[str] = frozenset(),
    ) -> Iterator[tuple[str, Any]]:
        """(profile id, value) of every live profile, evaluated in one statement (raises
        :class:`~opencdp.storage.definition_sql.NotCompiled` for what SQL does not express)."""
        from opencdp.timeutil import from_us

        statement = self.compiler.profile_values(
            root,
            workspace_id=workspace_id,
            now=from_us(now_us),
            collection=collection,
            computed=computed,
        )
        with self.db.read() as conn:
            for profile_id, raw in conn.execute(statement):
                yield profile_id, convert(root, raw)

    def current(self, workspace_id: str, key: str) -> dict[str, Any]:
        """The stored values of ``key``, by profile."""
        with self.db.read() as conn:
            return {
                pid: orjson.loads(value)
                for pid, value in conn.execute(
                    select(computed_values.c.profile_id, computed_values.c.value).where(
                        computed_values.c.workspace_id == workspace_id,
                        computed_values.c.key == key,
                    )
                )
            }

    def replace_values(
        self,
        conn: Connection,
        workspace_id: str,
        key: str,
        changed: Mapping[str, Any],
        removed: Sequence[str],
        now_us: int,
    ) -> None:
        """Store the values that changed and remove those that became null (non-members)."""
        rows = [
            {
                "workspace_id": workspace_id,
                "profile_id": pid,
                "key": key,
                "value": orjson.dumps(value).decode(),
                "computed_us": now_us,
            }
            for pid, value in changed.items()
        ]
        for part in chunks(rows, 5000):
            self._upsert.write(conn, part)
        for part in chunks(sorted(removed)):
            conn.execute(
                delete(computed_values).where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.key == key,
                    computed_values.c.profile_id.in_(part),
                )
            )

    def members(
        self, workspace_id: str, key: str, limit: int, after: str | None
    ) -> list[tuple[str, list[tuple[str, str]]]]:
        """A page of an audience's members in profile-id order, each with its identifiers."""
        query = select(computed_values.c.profile_id).where(
            computed_values.c.workspace_id == workspace_id, computed_values.c.key == key
        )
        if after is not None:
            query = query.where(computed_values.c.profile_id > after)
        with self.db.read() as conn:
            ids = list(
                conn.execute(query.order_by(computed_values.c.profile_id).limit(limit)).scalars()
            )
        return self.identifiers_of(workspace_id, ids)

    def identifiers_of(
        self, workspace_id: str, profile_ids: Sequence[str]
    ) -> list[tuple[str, list[tuple[str, str]]]]:
        """Each profile with its (type, value) identifiers, in the order given."""
        found: dict[str, list[tuple[str, str]]] = {pid: [] for pid in profile_ids}
        with self.db.read() as conn:
            for part in chunks(list(profile_ids)):
                for pid, id_type, id_value in conn.execute(
                    select(identifiers.c.profile_id, identifiers.c.id_type, identifiers.c.id_value)
                    .where(
                        identifiers.c.workspace_id == workspace_id,
                        identifiers.c.profile_id.in_(part),
                    )
                    .order_by(
                        identifiers.c.profile_id, identifiers.c.id_type, identifiers.c.id_value
                    )
                ):
                    found[pid].append((id_type, id_value))
        return [(pid, found[pid]) for pid in profile_ids]

    def live_profile_ids(self, workspace_id: str, collection: str = "users") -> list[str]:
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(profiles.c.id)
                    .where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.collection == collection,
                        profiles.c.merged_into.is_(None),
                    )
                    .order_by(profiles.c.id)
                ).scalars()
            )

    def count(self, workspace_id: str, key: str) -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        computed_values.c.workspace_id == workspace_id,
                        computed_values.c.key == key,
                    )
                ).scalar_one()
            )

    def live_profiles(self, workspace_id: str, collection: str = "users") -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.collection == collection,
                        profiles.c.merged_into.is_(None),
                    )
                ).scalar_one()
            )
