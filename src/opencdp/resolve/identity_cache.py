"""A worker's memory of the profiles it has loaded or written, valid while nobody else wrote.

Loading the profiles a batch touches (their identifiers and traits) is most of a worker's
time, and the same people come back batch after batch. After each batch it commits, the worker
keeps the batch's profiles here (the very objects the batch left in the state it wrote) along
with the identity epoch its commit produced. The next batch may use them only if the epoch it
reads is still that one: then no other writer (a contact, an import, another worker) has
committed since, and the memory equals the database. Any other epoch, a failed batch or a batch
resolved again empties it. Nothing in this module does I/O.
"""

from __future__ import annotations

from opencdp.identity import Identifier, ProfileNode
from opencdp.profiles.traits import TraitValue

#: (workspace, collection, identifier type, identifier value) -> profile id
IndexKey = tuple[str, str, str, str]
#: (merged_into, last message id) of a profile as written
Version = tuple[str | None, str | None]


class IdentityCache:
    """Profiles by workspace and id, an index of their identifiers, and the epoch they are
    valid at. Holds at most ``max_profiles`` profiles: beyond that it starts over."""

    def __init__(self, max_profiles: int = 50_000) -> None:
        self.max_profiles = max_profiles
        self.epoch: int | None = None
        self._nodes: dict[tuple[str, str], ProfileNode] = {}
        self._traits: dict[tuple[str, str], dict[str, TraitValue]] = {}
        self._versions: dict[tuple[str, str], Version] = {}
        self._index: dict[IndexKey, str] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._nodes)

    def at(self, epoch: int) -> IdentityCache:
        """The cache for a batch read at ``epoch``: as it is when the epoch is the one it was
        filled at, else emptied (and valid at ``epoch`` from now on)."""
        if self.epoch != epoch:
            self.clear()
            self.epoch = epoch
        return self

    def clear(self) -> None:
        """Forget everything (a failed or redone batch may have changed the objects)."""
        self._nodes.clear()
        self._traits.clear()
        self._versions.clear()
        self._index.clear()
        self.epoch = None

    def lookup(self, workspace_id: str, collection: str, id_type: str, value: str) -> str | None:
        """The id of the remembered profile holding this identifier, or None."""
        found = self._index.get((workspace_id, collection, id_type, value))
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def take(
        self, workspace_id: str, profile_id: str
    ) -> tuple[ProfileNode, dict[str, TraitValue], Version] | None:
        """The remembered profile, its traits and its version (the objects themselves: a batch
        that uses them changes them, so a batch that does not commit must :meth:`clear`)."""
        key = (workspace_id, profile_id)
        node = self._nodes.get(key)
        if node is None:
            return None
        return node, self._traits.setdefault(key, {}), self._versions.get(key, (None, None))

    def remember(
        self,
        workspace_id: str,
        nodes: list[ProfileNode],
        traits: dict[str, dict[str, TraitValue]],
        absorbed: list[str],
        versions: dict[str, Version] | None = None,
    ) -> None:
        """After a commit: keep the batch's live profiles as written and drop the absorbed."""
        for pid in absorbed:
            self._nodes.pop((workspace_id, pid), None)
            self._traits.pop((workspace_id, pid), None)
            self._versions.pop((workspace_id, pid), None)
        for node in nodes:
            key = (workspace_id, node.id)
            self._nodes[key] = node
            self._traits[key] = traits.get(node.id, {})
            self._versions[key] = (versions or {}).get(node.id, (None, None))
            for ident in node.identifiers:
                self._index[_key(workspace_id, node.collection, ident)] = node.id
        if len(self._nodes) > self.max_profiles:
            epoch = self.epoch
            self.clear()
            self.epoch = epoch


def _key(workspace_id: str, collection: str, ident: Identifier) -> IndexKey:
    return (workspace_id, collection, ident.type, ident.value)
