"""What real time re-evaluates (pure apart from one read): which profiles of a micro-batch a
definition must be evaluated for, and the order definitions are evaluated in (each after what
it reads). Used by :meth:`opencdp.compute.engine.ComputeEngine.changed`."""

from __future__ import annotations

from collections.abc import Mapping

from opencdp.query.parser import Definition
from opencdp.resolve.batch import BatchChanges
from opencdp.storage.db import Connection
from opencdp.storage.definitions import DefinitionStore


class Reach:
    """Which profiles of a batch a definition must be evaluated for (see ``changed``)."""

    def __init__(self, changes: BatchChanges) -> None:
        self.changes = changes
        self.by_event: dict[str, set[str]] = {}
        for pid, names in changes.events_of.items():
            for name in names:
                self.by_event.setdefault(name, set()).add(pid)
        self.by_trait: dict[str, set[str]] = {}
        for pid, keys in changes.traits_of.items():
            for key in keys:
                self.by_trait.setdefault(key, set()).add(pid)
        self.merged = set(changes.merged_into & changes.profiles)
        self.linked: set[str] | None = None
        self.linked_from: set[str] = set()

    def moved(self, key: str, profile_id: str) -> None:
        """The value of computed key ``key`` changed for ``profile_id``."""
        self.by_trait.setdefault(key, set()).add(profile_id)

    def profiles_reading(self, definition: Definition) -> set[str]:
        """The batch's profiles whose events or traits ``definition`` reads, and survivors."""
        out = set(self.merged)
        for name in definition.events:
            out |= self.by_event.get(name, set())
        for key in definition.traits:
            out |= self.by_trait.get(key, set())
        return out & self.changes.profiles

    def accounts_of(
        self, conn: Connection, definitions: DefinitionStore, profile_ids: set[str]
    ) -> set[str]:
        """The accounts the users among ``profile_ids`` are linked to (read once a batch)."""
        if self.linked is None:
            self.linked = definitions.accounts_of(
                conn, self.changes.workspace_id, sorted(self.changes.profiles)
            )
            self.linked_from = set(self.changes.profiles)
        if profile_ids <= self.linked_from:
            return set(self.linked)  # a superset: values() keeps the live accounts it is given
        return definitions.accounts_of(conn, self.changes.workspace_id, sorted(profile_ids))

    def batch_wide(self, definition: Definition) -> set[str]:
        """Every profile of the batch when it has an event or trait ``definition`` reads
        anywhere (or a merge), else those it created (accounts: their users' events are not
        tracked per account)."""
        affected = (
            self.changes.merged
            or bool(definition.events & self.by_event.keys())
            or bool(definition.traits & self.by_trait.keys())
        )
        return set(self.changes.profiles if affected else self.changes.created)


def dependency_order(reads: Mapping[str, frozenset[str]]) -> list[str]:
    """Keys each after the keys among them that it reads (``reads``: key → trait keys it
    reads). Cycles are refused when defining, so a leftover one is simply broken here."""
    ordered: list[str] = []
    placed: set[str] = set()

    def place(key: str, trail: frozenset[str]) -> None:
        if key in placed or key in trail:
            return
        for dep in sorted(reads[key] & reads.keys()):
            place(dep, trail | {key})
        placed.add(key)
        ordered.append(key)

    for key in sorted(reads):
        place(key, frozenset())
    return ordered
