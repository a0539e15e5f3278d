"""Profiles, identifiers, traits, events and links: the worker's loads and writes, and the reads
behind the Profile API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, delete, func, literal, or_, select, update

from opencdp.errors import NotFound
from opencdp.profiles.traits import TraitValue
from opencdp.storage.db import Database
from opencdp.storage.schema import (
    computed_values,
    events,
    identifiers,
    links,
    merges,
    profiles,
    traits,
)

_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class IdentifierRow:
    """An identifier as stored, with the provenance of the link that put it on its profile."""

    collection: str
    id_type: str
    id_value: str
    profile_id: str
    source_id: str | None
    message_id: str | None
    rule: str
    created_us: int
    last_seen_us: int


@dataclass(frozen=True, slots=True)
class ProfileRow:
    workspace_id: str
    id: str
    collection: str
    merged_into: str | None
    created_us: int
    updated_us: int
    first_message_id: str | None
    first_source_id: str | None
    last_message_id: str | None
    last_source_id: str | None
    merge_count: int


@dataclass(frozen=True, slots=True)
class EventRow:
    message_id: str
    profile_id: str
    source_id: str | None
    type: str
    event: str | None
    timestamp_us: int
    received_us: int
    payload: dict[str, Any]
    resolution: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class MergeRow:
    id: int
    from_profile_id: str
    into_profile_id: str
    message_id: str | None
    rule: str
    detail: dict[str, Any]
    created_us: int


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class ProfileStore:
    """All SQL about profiles. Worker methods take the caller's connection (one transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.dialect
        self._upsert_traits = dialect.bulk_insert(
            traits,
            conflict=("workspace_id", "profile_id", "key"),
            update=("value", "source_id", "message_id", "event_us"),
        )
        self._upsert_identifiers = dialect.bulk_insert(
            identifiers,
            conflict=("workspace_id", "collection", "id_type", "id_value"),
            update=("profile_id", "last_seen_us"),
        )
        # A plain append (COPY on PostgreSQL): events are checked against known message ids
        # first, and a writer that stored one of them since changed the profiles the event
        # resolves to, which the identity epoch (SQLite) or the worker's check before writing
        # (PostgreSQL) sees, so the batch is resolved again and no duplicate reaches it.
        self._insert_events = dialect.bulk_append(events)
        self._insert_links = db.dialect.insert_ignore(links)
        self._insert_profiles = dialect.bulk_append(profiles)
        self._touch_profiles = dialect.bulk_update(profiles, ("workspace_id", "id"))

    # Worker: loading state ---------------------------------------------------------------
    def known_message_ids(
        self, conn: Connection, workspace_id: str, ids: Sequence[str]
    ) -> set[str]:
        """Which of these message ids were processed already (idempotency)."""
        found: set[str] = set()
        for part in chunks(list(ids)):
            found.update(
                conn.execute(
                    select(events.c.message_id).where(
                        events.c.workspace_id == workspace_id, events.c.message_id.in_(part)
                    )
                ).scalars()
            )
        return found

    def identifier_owners(
        self, conn: Connection, workspace_id: str, collection: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The profile that holds each of these (type, value) identifiers (absent: nobody)."""
        # One ``id_type = ? AND id_value IN (...)`` per type rather than a row-value IN over the
        # pairs: PostgreSQL plans a 1,000-pair ``(a, b) IN (...)`` as 1,000 ORed index scans and
        # spends ~0.6 s planning it; a scalar IN list becomes one ``= ANY(array)`` index scan.
        by_type: dict[str, list[str]] = {}
        for id_type, value in pairs:
            by_type.setdefault(id_type, []).append(value)
        found: dict[tuple[str, str], str] = {}
        for id_type, values in sorted(by_type.items()):
            for part in chunks(values):
                for value, pid in conn.execute(
                    select(identifiers.c.id_value, identifiers.c.profile_id).where(
                        identifiers.c.workspace_id == workspace_id,
                        identifiers.c.collection == collection,
                        identifiers.c.id_type == id_type,
                        identifiers.c.id_value.in_(part),
                    )
                ):
                    found[(id_type, value)] = pid
        return found

    def lock_keys(self, conn: Connection, keys: Sequence[int]) -> None:
        """Hold these advisory locks until ``conn``'s transaction ends, taken in the order
        given (sorted: two transactions never wait for each other in a cycle); nothing on
        SQLite, where writers take turns anyway."""
        statement = self.db.dialect.lock_keys()
        if statement is not None and keys:
            conn.execute(statement, {"keys": list(keys)})

    def profile_versions(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        """(merged_into, last_message_id) of each profile: what changes whenever any writer
        changes the profile (every change touches its last message; a merge sets the first).

        On PostgreSQL the rows stay locked until ``conn``'s transaction ends, taken in id order
        (two transactions never wait for each other in a cycle over them; row locks live in the
        rows, not in the shared lock table); SQLite's writers take turns anyway."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for part in chunks(sorted(set(profile_ids))):
            query = (
                select(profiles.c.id, profiles.c.merged_into, profiles.c.last_message_id)
                .where(profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part))
                .order_by(profiles.c.id)
            )
            if not self.db.dialect.is_sqlite:
                query = query.with_for_update()
            for pid, merged_into, last in conn.execute(query):
                out[pid] = (merged_into, last)
        return out

    def load_profiles(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> tuple[list[ProfileRow], list[IdentifierRow]]:
        """The profile rows and all their identifiers."""
        ids = sorted(set(profile_ids))
        rows: list[ProfileRow] = []
        idents: list[IdentifierRow] = []
        for part in chunks(ids):
            rows.extend(
                ProfileRow(**r._asdict())
                for r in conn.execute(
                    select(profiles).where(
                        profiles.c.workspace_id == workspace_id, profiles.c.id.in_(part)
                    )
                )
            )
            idents.extend(
                _identifier(r)
                for r in conn.execute(
                    select(identifiers).where(
                        identifiers.c.workspace_id == workspace_id,
                        identifiers.c.profile_id.in_(part),
                    )
                )
            )
        return rows, idents

    def load_traits(
        self, conn: Connection, workspace_id: str, profile_ids: Iterable[str]
    ) -> dict[str, dict[str, TraitValue]]:
        out: dict[str, dict[str, TraitValue]] = {}
        for part in chunks(sorted(set(profile_ids))):
            for r in conn.execute(
                select(traits).where(
                    traits.c.workspace_id == workspace_id, traits.c.profile_id.in_(part)
                )
            ):
                out.setdefault(r.profile_id, {})[r.key] = TraitValue(
                    orjson.loads(r.value), r.source_id, r.message_id, r.event_us
                )
        return out

    def trait_values(
        self, workspace_id: str, profile_ids: Iterable[str], keys: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """Profile id → {key: value} of the traits named ``keys`` of each profile, read on the
        profile it was merged into when it was (in one statement per 2,000 profiles). A
        profile without any of them is left out."""
        wanted = sorted(set(keys))
        out: dict[str, dict[str, Any]] = {}
        if not wanted:
            return out
        live = func.coalesce(profiles.c.merged_into, profiles.c.id)
        joined = profiles.join(
            traits,
            and_(traits.c.workspace_id == profiles.c.workspace_id, traits.c.profile_id == live),
        )
        with self.db.read() as conn:
            for part in chunks(sorted(set(profile_ids))):
                query = (
                    select(profiles.c.id, traits.c.key, traits.c.value)
                    .select_from(joined)
                    .where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.id.in_(part),
                        traits.c.key.in_(wanted),
                    )
                )
                for pid, key, value in conn.execute(query):
                    out.setdefault(pid, {})[key] = orjson.loads(value)
        return out

    # Worker: writing changes -------------------------------------------------------------
    def insert_profiles(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for part in chunks(list(rows), 5000):
            self._insert_profiles.write(conn, part)

    def touch_profiles(
        self, conn: Connection, workspace_id: str, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Update updated/last-message metadata (rows: id, updated_us, last_message_id,
        last_source_id, merge_count), in one statement (PostgreSQL) or one executemany."""
        keyed = [{"workspace_id": workspace_id, **row} for row in rows]
        for part in chunks(keyed, 5000):
            self._touch_profiles.write(conn, part)

    def apply_merges(
        self,
        conn: Connection,
        workspace_id: str,
        final: dict[str, str],
        records: Sequence[dict[str, Any]],
    ) -> None:
        """Point every row of absorbed profiles at their final canonical profile."""
        if records:
            conn.execute(merges.insert(), list(records))
        for absorbed, into in final.items():
            where_ws = profiles.c.workspace_id == workspace_id
            conn.execute(
                update(profiles).where(where_ws, profiles.c.id == absorbed).values(merged_into=into)
            )
            # Profiles merged earlier into the absorbed one now point at the new canonical.
            conn.execute(
                update(profiles)
                .where(where_ws, profiles.c.merged_into == absorbed)
                .values(merged_into=into)
            )
            conn.execute(
                update(identifiers)
                .where(
                    identifiers.c.workspace_id == workspace_id, identifiers.c.profile_id == absorbed
                )
                .values(profile_id=into)
            )
            conn.execute(
                update(events)
                .where(events.c.workspace_id == workspace_id, events.c.profile_id == absorbed)
                .values(profile_id=into)
            )
            conn.execute(
                delete(traits).where(
                    traits.c.workspace_id == workspace_id, traits.c.profile_id == absorbed
                )
            )
            # The survivor's computed values are recomputed over both timelines.
            conn.execute(
                delete(computed_values).where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.profile_id == absorbed,
                )
            )
            self._repoint_links(conn, workspace_id, absorbed, into)

    def _repoint_links(self, conn: Connection, workspace_id: str, absorbed: str, into: str) -> None:
        rows = conn.execute(
            select(links).where(
                links.c.workspace_id == workspace_id,
                or_(links.c.user_profile_id == absorbed, links.c.account_profile_id == absorbed),
            )
        ).all()
        if not rows:
            return
        conn.execute(
            delete(links).where(
                links.c.workspace_id == workspace_id,
                or_(links.c.user_profile_id == absorbed, links.c.account_profile_id == absorbed),
            )
        )
        moved = []
        for r in rows:
            d = r._asdict()
            if d["user_profile_id"] == absorbed:
                d["user_profile_id"] = into
            if d["account_profile_id"] == absorbed:
                d["account_profile_id"] = into
            moved.append(d)
        conn.execute(self._insert_links, moved)

    def write_identifiers(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new identifiers; for known ones move them and refresh ``last_seen_us``."""
        for part in chunks(list(rows), 5000):
            self._upsert_identifiers.write(conn, part)

    def write_traits(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for part in chunks(list(rows), 5000):
            self._upsert_traits.write(conn, part)

    def insert_events(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for part in chunks(list(rows), 5000):
            self._insert_events.write(conn, part)

    def insert_links(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self._insert_links, list(rows))

    # Reads (Profile API, CLI) ------------------------------------------------------------
    def find(self, workspace_id: str, collection: str, id_type: str, value: str) -> str:
        """The profile id holding an identifier; raises NotFound."""
        with self.db.read() as conn:
            pid = conn.execute(
                select(identifiers.c.profile_id).where(
                    identifiers.c.workspace_id == workspace_id,
                    identifiers.c.collection == collection,
                    identifiers.c.id_type == id_type,
                    identifiers.c.id_value == value,
                )
            ).scalar()
        if pid is None:
            raise NotFound("Profile was not found.")
        return str(pid)

    def find_profile(
        self, workspace_id: str, collection: str, id_type: str, value: str
    ) -> ProfileRow:
        """The live profile holding an identifier, in one query; raises NotFound."""
        query = (
            select(profiles)
            .join(
                identifiers,
                (identifiers.c.workspace_id == profiles.c.workspace_id)
                & (identifiers.c.profile_id == profiles.c.id),
            )
            .where(
                identifiers.c.workspace_id == workspace_id,
                identifiers.c.collection == collection,
                identifiers.c.id_type == id_type,
                identifiers.c.id_value == value,
            )
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound("Profile was not found.")
        profile = ProfileRow(**row._asdict())
        if profile.merged_into is not None:  # identifiers move at merge time; be safe anyway
            return self.resolve_id(workspace_id, profile.merged_into, collection)
        return profile

    def resolve_id(
        self, workspace_id: str, profile_id: str, collection: str | None = None
    ) -> ProfileRow:
        """The live profile for an id, following merges; raises NotFound."""
        with self.db.read() as conn:
            for _ in range(1000):
                row = conn.execute(
                    select(profiles).where(
                        profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id
                    )
                ).first()
                if row is None:
                    raise NotFound("Profile was not found.")
                if row.merged_into is None:
                    profile = ProfileRow(**row._asdict())
                    if collection is not None and profile.collection != collection:
                        raise NotFound("Profile was not found.")
                    return profile
                profile_id = row.merged_into
        raise NotFound("Profile was not found.")  # pragma: no cover - a merge cycle

    def traits(self, workspace_id: str, profile_id: str) -> dict[str, TraitValue]:
        """The profile's traits, with what its computed traits and audiences computed (those
        win over a plain trait of the same key)."""
        with self.db.read() as conn:
            found = self.load_traits(conn, workspace_id, [profile_id]).get(profile_id, {})
            for key, value, computed_us in conn.execute(
                select(
                    computed_values.c.key, computed_values.c.value, computed_values.c.computed_us
                ).where(
                    computed_values.c.workspace_id == workspace_id,
                    computed_values.c.profile_id == profile_id,
                )
            ):
                found[key] = TraitValue(orjson.loads(value), None, None, computed_us)
            return found

    def identifiers(self, workspace_id: str, profile_id: str) -> list[IdentifierRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(identifiers)
                .where(
                    identifiers.c.workspace_id == workspace_id,
                    identifiers.c.profile_id == profile_id,
                )
                .order_by(identifiers.c.created_us, identifiers.c.id_type, identifiers.c.id_value)
            )
            return [_identifier(r) for r in rows]

    def merges_of(self, workspace_id: str, profile_ids: Sequence[str]) -> list[MergeRow]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(merges)
                .where(
                    merges.c.workspace_id == workspace_id,
                    or_(
                        merges.c.into_profile_id.in_(profile_ids),
                        merges.c.from_profile_id.in_(profile_ids),
                    ),
                )
                .order_by(merges.c.id)
            )
            return [
                MergeRow(
                    id=r.id,
                    from_profile_id=r.from_profile_id,
                    into_profile_id=r.into_profile_id,
                    message_id=r.message_id,
                    rule=r.rule,
                    detail=orjson.loads(r.detail),
                    created_us=r.created_us,
                )
                for r in rows
            ]

    def absorbed_ids(self, workspace_id: str, profile_id: str) -> list[str]:
        """Ids of the profiles that were merged into this one (directly or transitively)."""
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(profiles.c.id).where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.merged_into == profile_id,
                    )
                ).scalars()
            )

    def events(
        self,
        workspace_id: str,
        profile_id: str,
        *,
        start_us: int | None = None,
        end_us: int | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        limit: int = 10,
        descending: bool = True,
        after: tuple[int, str] | None = None,
    ) -> list[EventRow]:
        """A page of the profile's timeline; ``after`` is the (timestamp, message id) keyset cursor."""
        query = select(events).where(
            events.c.workspace_id == workspace_id, events.c.profile_id == profile_id
        )
        if start_us is not None:
            query = query.where(events.c.timestamp_us >= start_us)
        if end_us is not None:
            query = query.where(events.c.timestamp_us <= end_us)
        if include:
            query = query.where(events.c.event.in_(list(include)))
        if exclude:
            query = query.where(or_(events.c.event.is_(None), events.c.event.not_in(list(exclude))))
        if after is not None:
            ts, mid = after
            if descending:
                query = query.where(
                    or_(
                        events.c.timestamp_us < ts,
                        and_(events.c.timestamp_us == ts, events.c.message_id < mid),
                    )
                )
            else:
                query = query.where(
                    or_(
                        events.c.timestamp_us > ts,
                        and_(events.c.timestamp_us == ts, events.c.message_id > mid),
                    )
                )
        order = (
            (events.c.timestamp_us.desc(), events.c.message_id.desc())
            if descending
            else (events.c.timestamp_us.asc(), events.c.message_id.asc())
        )
        query = query.order_by(*order).limit(limit)
        with self.db.read() as conn:
            return [
                EventRow(
                    message_id=r.message_id,
                    profile_id=r.profile_id,
                    source_id=r.source_id,
                    type=r.type,
                    event=r.event,
                    timestamp_us=r.timestamp_us,
                    received_us=r.received_us,
                    payload=orjson.loads(r.payload),
                    resolution=orjson.loads(r.resolution) if r.resolution else None,
                )
                for r in conn.execute(query)
            ]

    def links_of(
        self, workspace_id: str, profile_id: str, collection: str, limit: int
    ) -> list[str]:
        """Profiles linked to this one (accounts of a user, users of an account)."""
        mine, other = (
            (links.c.user_profile_id, links.c.account_profile_id)
            if collection == "users"
            else (links.c.account_profile_id, links.c.user_profile_id)
        )
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(other)
                    .where(links.c.workspace_id == workspace_id, mine == profile_id)
                    .order_by(links.c.created_us)
                    .limit(limit)
                ).scalars()
            )

    def events_of_sources(
        self,
        workspace_id: str,
        source_ids: Sequence[str],
        since_us: int,
        after_message_id: str,
        limit: int,
    ) -> list[tuple[str, str, str]]:
        """A page of stored events of these sources received since ``since_us``, as (message
        id, source id, payload), after ``after_message_id`` in message-id order: keyset paging
        along the primary key, so every page is an index range scan (dry runs)."""
        query = (
            select(events.c.message_id, events.c.source_id, events.c.payload)
            .where(
                events.c.workspace_id == workspace_id,
                events.c.message_id > after_message_id,
                events.c.received_us >= since_us,
                events.c.source_id.in_(list(source_ids)),
            )
            .order_by(events.c.message_id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def count_profiles(self, workspace_id: str, collection: str = "users") -> int:

        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(profiles)
                    .where(
                        profiles.c.workspace_id == workspace_id,
                        profiles.c.collection == collection,
                        profiles.c.merged_into.is_(None),
                    )
                ).scalar_one()
            )


def _identifier(r: Any) -> IdentifierRow:
    return IdentifierRow(
        collection=r.collection,
        id_type=r.id_type,
        id_value=r.id_value,
        profile_id=r.profile_id,
        source_id=r.source_id,
        message_id=r.message_id,
        rule=r.rule,
        created_us=r.created_us,
        last_seen_us=r.last_seen_us,
    )


#: which identifier addresses a message to a profile, best first
_ADDRESS_ORDER = ("user_id", "anonymous_id", "email", "phone")


def addresses(
    conn: Connection, workspace_id: str, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Profile id → the identifying part of a message that resolves to it: its user id,
    else an anonymous id, else an e-mail or phone as traits (profiles without any of
    these are left out)."""
    rank = case(
        *((identifiers.c.id_type == t, literal(i)) for i, t in enumerate(_ADDRESS_ORDER)),
        else_=literal(len(_ADDRESS_ORDER)),
    )
    best: dict[str, tuple[int, str, str]] = {}
    for part in chunks(sorted(set(profile_ids))):
        rows = conn.execute(
            select(
                identifiers.c.profile_id, identifiers.c.id_type, identifiers.c.id_value, rank
            ).where(
                identifiers.c.workspace_id == workspace_id,
                identifiers.c.collection == "users",
                identifiers.c.profile_id.in_(part),
                identifiers.c.id_type.in_(_ADDRESS_ORDER),
            )
        )
        for pid, kind, value, order in rows:
            candidate = (int(order), kind, value)
            if pid not in best or candidate < best[pid]:
                best[pid] = candidate
    out: dict[str, dict[str, Any]] = {}
    for pid, (_order, kind, value) in best.items():
        if kind == "user_id":
            out[pid] = {"userId": value}
        elif kind == "anonymous_id":
            out[pid] = {"anonymousId": value}
        else:
            out[pid] = {"traits": {kind: value}, "context": {"traits": {kind: value}}}
    return out
