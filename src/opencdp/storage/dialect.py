"""Every difference between SQLite and PostgreSQL lives here.

The rest of the storage layer writes portable SQLAlchemy Core and asks this object for the few
statements that cannot be portable: insert-or-ignore, upsert, how a worker locks its claim,
and a lock that makes transactions take turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select


@dataclass(frozen=True)
class Dialect:
    """The named differences of one database engine."""

    name: str

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    def insert_ignore(self, table: Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` for ``table``."""
        module = sqlite if self.is_sqlite else postgresql
        return module.insert(table).on_conflict_do_nothing()

    def upsert(self, table: Table, keys: Sequence[str], update: Sequence[str]) -> Any:
        """``INSERT … ON CONFLICT (keys) DO UPDATE SET col = excluded.col`` for ``update``."""
        module = sqlite if self.is_sqlite else postgresql
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )

    def lock_claim(self, query: Select[Any]) -> Select[Any]:
        """Row locking for a worker's claim: PostgreSQL skips rows another worker holds."""
        if self.is_sqlite:
            return query  # one writer at a time: BEGIN IMMEDIATE already serializes workers
        return query.with_for_update(skip_locked=True)

    def transaction_lock(self, key: int) -> Any:
        """A statement that makes transactions taking ``key`` run one at a time (held until
        commit), or None: SQLite write transactions already do (``BEGIN IMMEDIATE``)."""
        if self.is_sqlite:
            return None
        return select(func.pg_advisory_xact_lock(key))
