"""What undoing an import run reads and removes: the run's events, the profiles they touched
(with every profile merged into them), and those profiles' derived state.

Everything about a profile (identifiers, merges, traits, links) is derived from its events, so
removing the derived state and processing the remaining events again rebuilds the profiles as
if the run had never happened (see :mod:`opencdp.services.import_revert`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, and_, delete, func, or_, select, update

from opencdp.storage.profiles import chunks
from opencdp.storage.schema import events, identifiers, links, merges, profiles, traits


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it is processed again: what the inbox held, and the run that imported it."""

    source_id: str
    message_id: str
    received_us: int
    payload: str
    import_run_id: str | None


def tag_run_events(
    conn: Connection, workspace_id: str, run_id: str, message_ids: list[str]
) -> None:
    """Mark the events of ``message_ids`` as imported by ``run_id`` (unless a run already has
    them: a repeated import of a row keeps the run that first stored it)."""
    for part in chunks(message_ids, 500):
        conn.execute(
            update(events)
            .where(
                events.c.workspace_id == workspace_id,
                events.c.message_id.in_(part),
                events.c.import_run_id.is_(None),
            )
            .values(import_run_id=run_id)
        )


def run_event_count(conn: Connection, workspace_id: str, run_id: str) -> int:
    query = select(func.count()).where(
        events.c.workspace_id == workspace_id, events.c.import_run_id == run_id
    )
    return int(conn.execute(query).scalar_one())


def run_profiles(conn: Connection, workspace_id: str, run_id: str) -> set[str]:
    """The profiles holding the run's events."""
    return set(
        conn.execute(
            select(events.c.profile_id)
            .where(events.c.workspace_id == workspace_id, events.c.import_run_id == run_id)
            .distinct()
        ).scalars()
    )


def with_absorbed(conn: Connection, workspace_id: str, profile_ids: set[str]) -> set[str]:
    """``profile_ids`` and every profile ever merged into one of them."""
    found = set(profile_ids)
    frontier = set(found)
    while frontier:
        absorbed: set[str] = set()
        for part in chunks(sorted(frontier), 500):
            absorbed.update(
                conn.execute(
                    select(profiles.c.id).where(
                        profiles.c.workspace_id == workspace_id, profiles.c.merged_into.in_(part)
                    )
                ).scalars()
            )
        frontier = absorbed - found
        found |= absorbed
    return found


def influenced_profiles(conn: Connection, workspace_id: str, profile_ids: set[str]) -> set[str]:
    """``profile_ids`` and the profiles whose events had an identifier of them demoted (an
    identifier that, without the run, may have gone elsewhere), until nothing is added."""
    found = set(profile_ids)
    frontier = set(profile_ids)
    demoting = [
        (r.profile_id, r.resolution)
        for r in conn.execute(
            select(events.c.profile_id, events.c.resolution).where(
                events.c.workspace_id == workspace_id,
                events.c.resolution.like('%"demoted":[{%'),
            )
        )
    ]
    while frontier:
        known: set[str] = set()
        for part in chunks(sorted(frontier), 500):
            known.update(
                f"{r.id_type}:{r.id_value}"
                for r in conn.execute(
                    select(identifiers.c.id_type, identifiers.c.id_value).where(
                        identifiers.c.workspace_id == workspace_id,
                        identifiers.c.profile_id.in_(part),
                    )
                )
            )
        frontier = set()
        for profile_id, resolution in demoting:
            if profile_id in found:
                continue
            demoted = orjson.loads(resolution).get("demoted", [])
            if any(d.get("id") in known for d in demoted):
                frontier.add(profile_id)
        found |= frontier
    return found


def remaining_events(
    conn: Connection, workspace_id: str, profile_ids: set[str], run_id: str
) -> list[StoredEvent]:
    """The events of ``profile_ids`` that ``run_id`` did not import, in the order they arrived."""
    rows: list[StoredEvent] = []
    for part in chunks(sorted(profile_ids), 500):
        query = select(
            events.c.source_id,
            events.c.message_id,
            events.c.received_us,
            events.c.payload,
            events.c.import_run_id,
            events.c.timestamp_us,
        ).where(
            events.c.workspace_id == workspace_id,
            events.c.profile_id.in_(part),
            or_(events.c.import_run_id.is_(None), events.c.import_run_id != run_id),
        )
        rows.extend(
            StoredEvent(r.source_id or "", r.message_id, r.received_us, r.payload, r.import_run_id)
            for r in sorted(conn.execute(query), key=lambda r: (r.received_us, r.timestamp_us))
        )
    rows.sort(key=lambda e: e.received_us)  # stable: keeps each part's time order
    return rows


def clear_profiles(conn: Connection, workspace_id: str, profile_ids: Iterable[str]) -> None:
    """Remove the profiles with their events, identifiers, traits, merges and links."""
    for part in chunks(sorted(profile_ids), 500):
        ws = workspace_id
        conn.execute(
            delete(events).where(events.c.workspace_id == ws, events.c.profile_id.in_(part))
        )
        conn.execute(
            delete(identifiers).where(
                identifiers.c.workspace_id == ws, identifiers.c.profile_id.in_(part)
            )
        )
        conn.execute(
            delete(traits).where(traits.c.workspace_id == ws, traits.c.profile_id.in_(part))
        )
        conn.execute(
            delete(merges).where(
                merges.c.workspace_id == ws,
                or_(merges.c.from_profile_id.in_(part), merges.c.into_profile_id.in_(part)),
            )
        )
        conn.execute(
            delete(links).where(
                links.c.workspace_id == ws,
                or_(links.c.user_profile_id.in_(part), links.c.account_profile_id.in_(part)),
            )
        )
        conn.execute(
            delete(profiles).where(and_(profiles.c.workspace_id == ws, profiles.c.id.in_(part)))
        )


def restore_run_tags(conn: Connection, workspace_id: str, tags: Mapping[str, str]) -> None:
    """Give processed-again events back the import run that first stored them."""
    by_run: dict[str, list[str]] = {}
    for message_id, run_id in tags.items():
        by_run.setdefault(run_id, []).append(message_id)
    for run_id, message_ids in by_run.items():
        tag_run_events(conn, workspace_id, run_id, message_ids)
