"""The Profile API's hot read: an identifier's live profile and its traits, in one statement.

``GET …/profiles/{type}:{value}/traits`` is what web shops and apps call on every page. It
runs as one SQL statement (identifier → profile → traits), compiled once, as a hot read
(:mod:`opencdp.storage.hot_reads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, literal_column, null, select, union_all

from opencdp.profiles.traits import TraitValue
from opencdp.storage.db import Database
from opencdp.storage.hot_reads import HotReads
from opencdp.storage.schema import computed_values, identifiers, profiles, traits


@dataclass(frozen=True, slots=True)
class ProfileTraits:
    """A located profile (``merged_into`` set when the identifier still points at an absorbed
    one, which the caller resolves the slow way) and its traits."""

    workspace_id: str
    profile_id: str
    merged_into: str | None
    traits: dict[str, TraitValue]


def profile_traits_query() -> Any:
    """The statement: one row per trait (or one row with NULL trait columns when the profile
    has none) of the profile that holds identifier (workspace, collection, type, value), then
    one row per value its computed traits and audiences computed (``origin`` 1: these win
    over a plain trait of the same key)."""
    holder = identifiers.join(
        profiles,
        (profiles.c.workspace_id == identifiers.c.workspace_id)
        & (profiles.c.id == identifiers.c.profile_id),
    )
    where = (
        identifiers.c.workspace_id == bindparam("workspace_id"),
        identifiers.c.collection == bindparam("collection"),
        identifiers.c.id_type == bindparam("id_type"),
        identifiers.c.id_value == bindparam("id_value"),
    )
    plain = (
        select(
            profiles.c.id,
            profiles.c.merged_into,
            traits.c.key,
            traits.c.value,
            traits.c.source_id,
            traits.c.message_id,
            traits.c.event_us,
            literal_column("0").label("origin"),
        )
        .select_from(
            holder.outerjoin(
                traits,
                (traits.c.workspace_id == profiles.c.workspace_id)
                & (traits.c.profile_id == profiles.c.id),
            )
        )
        .where(*where)
    )
    computed = (
        select(
            profiles.c.id,
            profiles.c.merged_into,
            computed_values.c.key,
            computed_values.c.value,
            null().label("source_id"),
            null().label("message_id"),
            computed_values.c.computed_us,
            literal_column("1").label("origin"),
        )
        .select_from(
            holder.join(
                computed_values,
                (computed_values.c.workspace_id == profiles.c.workspace_id)
                & (computed_values.c.profile_id == profiles.c.id),
            )
        )
        .where(*where)
    )
    return union_all(plain, computed)


class ProfileReads:
    """Runs :func:`profile_traits_query` as a hot read (:mod:`opencdp.storage.hot_reads`)."""

    _PARAMS = ("workspace_id", "collection", "id_type", "id_value")

    def __init__(self, db: Database, hot: HotReads | None = None) -> None:
        self.db = db
        self.hot = hot or HotReads(db)
        self._traits = self.hot.prepare(profile_traits_query(), self._PARAMS)

    def profile_traits(
        self, workspace_id: str, collection: str, id_type: str, id_value: str
    ) -> ProfileTraits | None:
        """The profile holding the identifier and its traits; None when no profile holds it."""
        rows = self.hot.rows(
            self._traits,
            {
                "workspace_id": workspace_id,
                "collection": collection,
                "id_type": id_type,
                "id_value": id_value,
            },
        )
        if not rows:
            return None
        found: dict[str, TraitValue] = {}
        for _pid, _merged, key, value, source_id, message_id, event_us, _origin in sorted(
            rows, key=lambda r: r[7]
        ):
            if key is not None:
                found[key] = TraitValue(orjson.loads(value), source_id, message_id, event_us)
        return ProfileTraits(workspace_id, rows[0][0], rows[0][1], found)

    def close(self) -> None:
        """Give every held connection back (at shutdown)."""
        self.hot.close()
