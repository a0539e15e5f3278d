"""The identity epoch: optimistic concurrency for identity writers.

Every transaction that changes profiles, identifiers, traits or processed events advances one
counter (:meth:`IdentityEpoch.advance`) while it holds the identity lock. A worker can then
read and resolve a batch *outside* the write lock (remembering the epoch it read with) and
write the result in a short transaction that first checks the epoch is unchanged
(:meth:`IdentityEpoch.advance_from`). If another writer came in between, the check fails and
the worker resolves the batch again under the lock.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from opencdp.storage.schema import identity_epoch

_SCOPE = "all"


class IdentityEpoch:
    """Reads and advances the identity epoch inside the caller's transaction."""

    def read(self, conn: Connection) -> int:
        """The epoch as ``conn``'s transaction sees it."""
        value = conn.execute(
            select(identity_epoch.c.epoch).where(identity_epoch.c.scope == _SCOPE)
        ).scalar_one()
        return int(value)

    def advance(self, conn: Connection) -> None:
        """Advance the epoch (an identity writer that holds the lock)."""
        conn.execute(
            update(identity_epoch)
            .where(identity_epoch.c.scope == _SCOPE)
            .values(epoch=identity_epoch.c.epoch + 1)
        )

    def advance_from(self, conn: Connection, seen: int) -> bool:
        """Advance the epoch if it still is ``seen``; False when another writer advanced it
        since (what was read with ``seen`` may be stale)."""
        result = conn.execute(
            update(identity_epoch)
            .where(identity_epoch.c.scope == _SCOPE, identity_epoch.c.epoch == seen)
            .values(epoch=identity_epoch.c.epoch + 1)
        )
        return result.rowcount == 1
