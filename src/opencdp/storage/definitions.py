"""Computed traits and audiences: their definitions, and the values they computed per profile
(``computed_values``; an audience's members hold ``true``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Text, and_, cast, delete, func, not_, or_, select, update

from opencdp.errors import NotFound
from opencdp.query import ast
from opencdp.query.evaluate import (
    PAGE_EVENT,
    SCREEN_EVENT,
    EventRecord,
    ProfileData,
    event_name,
)
from opencdp.storage.db import Database
from opencdp.storage.definition_sql import DefinitionCompiler, converter
from opencdp.storage.profiles import chunks
from opencdp.storage.schema import (
    computed_values,
    definitions,
    events,
    identifiers,
    links,
    profiles,
    traits,
)
from opencdp.timeutil import from_us

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
    computed_us: int | None
    created_us: int
    updated_us: int


class DefinitionStore:
    """Definitions and computed values of every workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.compiler = DefinitionCompiler(db.dialect.name)
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._upsert = db.dialect.bulk_insert(
            computed_values,
            conflict=("workspace_id", "profile_id", "key"),
            update=("value", "computed_us"),
        )

    # -- definitions ------------------------------------------------------------------------------
    def put_system_trait(
        self, workspace_id: str, key: str, name: str, query: str, now_us: int
    ) -> None:
        """Create a computed trait a model provides (``clv('…')``, ``recommended_items()``):
        enabled, not yet computed."""
        self.put(
            {
                "workspace_id": workspace_id,
                "key": key,
                "kind": "trait",
                "name": name,
                "type": "USERS",
                "query": query,
                "enabled": True,
                "status": "computing",
                "error": None,
                "created_us": now_us,
                "updated_us": now_us,
            }
        )

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

    def computed_before(self, before_us: int) -> list[DefinitionRow]:
        """Enabled definitions of every workspace last computed before ``before_us`` (or never)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(definitions)
                .where(
                    definitions.c.enabled.is_(True),
                    (definitions.c.computed_us.is_(None)) | (definitions.c.computed_us < before_us),
                )
                .order_by(definitions.c.workspace_id, definitions.c.key)
            )
            return [DefinitionRow(**r._mapping) for r in rows]

    def of_workspace(self, workspace_id: str, kind: str | None = None) -> list[DefinitionRow]:
        query = select(definitions).where(definitions.c.workspace_id == workspace_id)
        if kind is not None:
            query = query.where(definitions.c.kind == kind)
        with self.db.read() as conn:
            return [
                DefinitionRow(**r._mapping) for r in conn.execute(query.order_by(definitions.c.key))
            ]

    def version(self, conn: Connection, workspace_id: str) -> tuple[int, int | None]:
        """What changes whenever a definition of the workspace is created, replaced or
        deleted: (how many, the latest ``updated_us``) — one index read."""
        count, latest = conn.execute(
            select(func.count(), func.max(definitions.c.updated_us)).where(
                definitions.c.workspace_id == workspace_id
            )
        ).one()
        return int(count), latest

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
        conn: Connection,
        workspace_id: str,
        root: ast.Expr,
        now_us: int,
        collection: str = "users",
        *,
        computed: frozenset[str] = frozenset(),
        only: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Profile id → value of every live profile (of ``only`` when given), evaluated in
        one statement per slice (raises :class:`~opencdp.storage.definition_sql.NotCompiled`
        for what SQL does not express)."""
        out: dict[str, Any] = {}
        conv = converter(root)
        slices: list[Sequence[str] | None] = [None] if only is None else list(chunks(sorted(only)))
        for part in slices:
            statement = self.compiler.profile_values(
                root,
                workspace_id=workspace_id,
                now=from_us(now_us),
                collection=collection,
                computed=computed,
                only=part,
            )
            out.update((pid, conv(raw)) for pid, raw in conn.execute(statement))
        return out

    def evaluate_changes(
        self,
        conn: Connection,
        workspace_id: str,
        key: str,
        root: ast.Expr,
        now_us: int,
        only: Sequence[str] | None,
        collection: str = "users",
        *,
        computed: frozenset[str] = frozenset(),
        timeless: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """For the live profiles among ``only`` (None: the whole workspace): the value of
        ``root`` (as :meth:`evaluate`) and what is stored under ``key`` (as :meth:`current`),
        read in one statement per slice, for the caller to compare. Over the whole workspace,
        profiles the database can tell are unchanged are left out of both (no value and
        nothing stored; a count equal to the stored one). ``timeless``: the value does not depend on now, so the
        statement is built once and run again for other profiles (real time runs the same
        definitions for every batch)."""
        cache_key = (key, root, workspace_id, collection, computed)
        statement = self._statements.get(cache_key) if timeless and only is not None else None
        if statement is None:
            statement = self._changes_statement(
                workspace_id, key, root, now_us, collection, computed, whole=only is None
            )
            if timeless and only is not None:
                if len(self._statements) >= 1024:
                    self._statements.clear()
                self._statements[cache_key] = statement
        conv = converter(root)
        values: dict[str, Any] = {}
        current: dict[str, Any] = {}
        runs = [{}] if only is None else [{"only": list(part)} for part in chunks(sorted(only))]
        for parameters in runs:
            for pid, raw, was in conn.execute(statement, parameters):
                values[pid] = conv(raw)
                if was is not None:
                    current[pid] = orjson.loads(was)
        return values, current

    def _changes_statement(
        self,
        workspace_id: str,
        key: str,
        root: ast.Expr,
        now_us: int,
        collection: str,
        computed: frozenset[str],
        *,
        whole: bool,
    ) -> Any:
        """``SELECT profile_id, value, stored value`` for :meth:`evaluate_changes`."""
        evaluated = self.compiler.profile_values(
            root,
            workspace_id=workspace_id,
            now=from_us(now_us),
            collection=collection,
            computed=computed,
            only=None if whole else [],
        ).subquery("evaluated")
        joined, stored = _beside_stored(evaluated, workspace_id, key)
        value, was = evaluated.c.value, stored.c.value
        unchanged = and_(value.is_(None), was.is_(None))
        if isinstance(root, ast.Aggregate) and root.reducer in ("count", "unique_count"):
            # a count is stored as its digits: equal text, equal count
            same = and_(was.is_not(None), cast(func.coalesce(value, 0), Text) == was)
            unchanged = or_(unchanged, same)
        query = select(evaluated.c.profile_id, value, was).select_from(joined)
        # Over a few profiles (real time), the filter would evaluate a correlated value
        # twice (SQLite repeats it in WHERE) for little to leave out.
        return query.where(not_(unchanged)) if whole else query

    def membership_changes(
        self,
        conn: Connection,
        workspace_id: str,
        key: str,
        root: ast.Expr,
        now_us: int,
        collection: str = "users",
        *,
        computed: frozenset[str] = frozenset(),
    ) -> tuple[list[str], list[str]]:
        """An audience over every live profile against its stored members, in one statement
        that returns only the differences: (profiles that enter, profiles that leave). Raises
        :class:`~opencdp.storage.definition_sql.NotCompiled` for what SQL does not express."""
        evaluated = self.compiler.profile_values(
            root,
            workspace_id=workspace_id,
            now=from_us(now_us),
            collection=collection,
            computed=computed,
        ).subquery("evaluated")
        joined, stored = _beside_stored(evaluated, workspace_id, key)
        member = evaluated.c.value == 1
        was = stored.c.profile_id.is_not(None)
        statement = (
            select(evaluated.c.profile_id, member.label("member"))
            .select_from(joined)
            .where(or_(and_(member, ~was), and_(~member, was)))
        )
        entered: list[str] = []
        exited: list[str] = []
        for pid, is_member in conn.execute(statement):
            (entered if is_member else exited).append(pid)
        return sorted(entered), sorted(exited)

    def current(
        self, conn: Connection, workspace_id: str, key: str, only: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The stored values of ``key``, by profile (of ``only`` when given)."""
        query = select(computed_values.c.profile_id, computed_values.c.value).where(
            computed_values.c.workspace_id == workspace_id, computed_values.c.key == key
        )
        out: dict[str, Any] = {}
        slices: list[Sequence[str] | None] = [None] if only is None else list(chunks(sorted(only)))
        for part in slices:
            q = query if part is None else query.where(computed_values.c.profile_id.in_(list(part)))
            out.update((pid, orjson.loads(value)) for pid, value in conn.execute(q))
        return out

    def profile_data(
        self,
        conn: Connection,
        workspace_id: str,
        profile_ids: Sequence[str],
        event_names: frozenset[str] | None = None,
    ) -> dict[str, ProfileData]:
        """What the reference evaluator reads of these profiles: traits (computed values
        winning) and the events ``event()`` can select (``event_names``: only those a
        definition reads), in timeline order."""
        traits_of: dict[str, dict[str, Any]] = {pid: {} for pid in profile_ids}
        events_of: dict[str, list[EventRecord]] = {pid: [] for pid in profile_ids}
        named = [] if event_names is None else [_selected_by(event_names)]
        reads_events = event_names is None or bool(event_names)
        for part in chunks(sorted(profile_ids)):
            for pid, key, value in conn.execute(
                select(traits.c.profile_id, traits.c.key, traits.c.value).where(
                    traits.c.workspace_id == workspace_id, traits.c.profile_id.in_(part)
                )
            ):
                traits_of[pid][key] = orjson.loads(value)
            for pid, key, value in conn.execute(
                select(
                    computed_values.c.profile_id, computed_values.c.key, computed_values.c.value
                ).where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.profile_id.in_(part),
                )
            ):
                traits_of[pid][key] = orjson.loads(value)
            rows = (
                conn.execute(
                    select(
                        events.c.profile_id,
                        events.c.message_id,
                        events.c.source_id,
                        events.c.timestamp_us,
                        events.c.received_us,
                        events.c.payload,
                    )
                    .where(
                        events.c.workspace_id == workspace_id,
                        events.c.profile_id.in_(part),
                        *named,
                    )
                    .order_by(events.c.timestamp_us, events.c.received_us, events.c.message_id)
                )
                if reads_events
                else ()
            )
            for row in rows:
                payload = orjson.loads(row.payload)
                name = event_name(payload)
                if name is None:
                    continue
                events_of[row.profile_id].append(
                    EventRecord(
                        name,
                        from_us(row.timestamp_us),
                        payload.get("properties") or {},
                        payload.get("context") or {},
                        row.source_id,
                        from_us(row.received_us),
                        row.message_id,
                    )
                )
        return {pid: ProfileData(traits_of[pid], events_of[pid]) for pid in profile_ids}

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

    def values_by_key(self, workspace_id: str, key: str) -> dict[str, Any]:
        """What definition ``key`` computed, by profile."""
        with self.db.read() as conn:
            return self.current(conn, workspace_id, key)

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
        with self.db.read() as conn:
            found = self.identifiers_in(conn, workspace_id, profile_ids)
        return [(pid, found[pid]) for pid in profile_ids]

    def identifiers_in(
        self, conn: Connection, workspace_id: str, profile_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str]]]:
        """Profile id → its (type, value) identifiers in ``conn``'s transaction."""
        found: dict[str, list[tuple[str, str]]] = {pid: [] for pid in profile_ids}
        for part in chunks(list(profile_ids)):
            for pid, id_type, id_value in conn.execute(
                select(identifiers.c.profile_id, identifiers.c.id_type, identifiers.c.id_value)
                .where(
                    identifiers.c.workspace_id == workspace_id,
                    identifiers.c.profile_id.in_(part),
                )
                .order_by(identifiers.c.profile_id, identifiers.c.id_type, identifiers.c.id_value)
            ):
                found[pid].append((id_type, id_value))
        return found

    def members_in(self, conn: Connection, workspace_id: str, key: str) -> list[tuple[str, int]]:
        """An audience's members with when each entered (``computed_us``), in profile order."""
        rows = conn.execute(
            select(computed_values.c.profile_id, computed_values.c.computed_us)
            .where(computed_values.c.workspace_id == workspace_id, computed_values.c.key == key)
            .order_by(computed_values.c.profile_id)
        )
        return [(pid, int(us)) for pid, us in rows]

    def live_among(
        self, conn: Connection, workspace_id: str, collection: str, profile_ids: Sequence[str]
    ) -> list[str]:
        """Those of ``profile_ids`` that are live profiles of ``collection``."""
        out: list[str] = []
        for part in chunks(sorted(profile_ids)):
            out.extend(
                conn.execute(
                    select(profiles.c.id).where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.collection == collection,
                        profiles.c.merged_into.is_(None),
                        profiles.c.id.in_(part),
                    )
                ).scalars()
            )
        return out

    def users_of(self, conn: Connection, workspace_id: str, account_id: str) -> list[str]:
        """The user profiles linked to an account (group calls)."""
        return list(
            conn.execute(
                select(links.c.user_profile_id).where(
                    links.c.workspace_id == workspace_id,
                    links.c.account_profile_id == account_id,
                )
            ).scalars()
        )

    def accounts_of(
        self, conn: Connection, workspace_id: str, profile_ids: Sequence[str]
    ) -> set[str]:
        """The accounts these user profiles are linked to (group calls)."""
        found: set[str] = set()
        for part in chunks(sorted(profile_ids)):
            found.update(
                conn.execute(
                    select(links.c.account_profile_id).where(
                        links.c.workspace_id == workspace_id,
                        links.c.user_profile_id.in_(part),
                    )
                ).scalars()
            )
        return found

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
            return self.count_in(conn, workspace_id, key)

    def count_in(self, conn: Connection, workspace_id: str, key: str) -> int:
        """How many profiles hold a value of ``key`` (an audience: its members)."""
        return int(
            conn.execute(
                select(func.count()).where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.key == key,
                )
            ).scalar_one()
        )


def _selected_by(names: frozenset[str]) -> Any:
    """The events ``event(name)`` selects for any of ``names`` (page and screen calls by their
    Segment names)."""
    kinds = [and_(events.c.type == "track", events.c.event.in_(sorted(names)))]
    if PAGE_EVENT in names:
        kinds.append(events.c.type == "page")
    if SCREEN_EVENT in names:
        kinds.append(events.c.type == "screen")
    return or_(*kinds)


def _beside_stored(evaluated: Any, workspace_id: str, key: str) -> tuple[Any, Any]:
    """Evaluated values (``profile_id``, ``value``) left-joined to what ``key`` stores for
    the same profiles → (the join, the stored rows' alias)."""
    stored = computed_values.alias("stored")
    joined = evaluated.outerjoin(
        stored,
        and_(
            stored.c.workspace_id == workspace_id,
            stored.c.key == key,
            stored.c.profile_id == evaluated.c.profile_id,
        ),
    )
    return joined, stored
