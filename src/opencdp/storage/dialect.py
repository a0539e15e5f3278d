"""Every difference between SQLite and PostgreSQL lives here.

The rest of the storage layer writes portable SQLAlchemy Core and asks this object for the few
statements that cannot be portable: insert-or-ignore, upsert, bulk writes (``executemany`` on
SQLite; ``unnest`` arrays and ``COPY`` on PostgreSQL), how a worker locks its claim, and the
locks that make transactions take turns.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select


class BulkWrite:
    r"""A statement that writes many rows, and how to bind them: :meth:`bind` gives what to
    pass to ``conn.execute``.

    SQLite runs the statement once per row (``executemany`` of an in-process library: cheap).
    PostgreSQL runs it once for all rows, with one array of values per column that the
    statement unnests, so the rows cross the network in one round trip instead of one per row
    (psycopg's ``executemany`` spends ~60 µs of Python and a round trip per row).
    """

    def __init__(
        self,
        build: Callable[[tuple[str, ...]], Any],
        *,
        by_column: bool,
        unique: tuple[str, ...] = (),
        prefix: str = "",
    ) -> None:
        self._build = build
        self._statements: dict[tuple[str, ...], Any] = {}
        self.by_column = by_column
        #: rows with the same values here are written once, the last one winning (an upsert
        #: may not touch one row twice in one statement on PostgreSQL)
        self.unique = unique
        self.prefix = prefix  # bind-parameter prefix of the per-row form

    def write(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Write ``rows`` (all with the same keys) inside ``conn``'s transaction."""
        if rows:
            conn.execute(*self.bind(rows))

    def bind(self, rows: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
        """``(statement, parameters)`` for ``rows`` (all with the same keys)."""
        if self.unique:
            rows = list({tuple(r[k] for k in self.unique): r for r in rows}.values())
        columns = tuple(rows[0])
        statement = self._statements.get(columns)
        if statement is None:
            statement = self._statements[columns] = self._build(columns)
        if self.by_column:
            return statement, {c: [r[c] for r in rows] for c in columns}
        if self.prefix:
            return statement, [{self.prefix + k: v for k, v in r.items()} for r in rows]
        return statement, list(rows)


class CopyInsert(BulkWrite):
    """PostgreSQL's ``COPY … FROM STDIN`` for plain inserts of many rows: about five times
    faster than multi-row ``INSERT … VALUES`` for rows with large text (event payloads).

    With ``ignore_conflicts`` the rows go through a temporary table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` in the rows' order, so rows whose key is taken
    are dropped (``COPY`` cannot skip conflicts itself)."""

    def __init__(self, table: Table, *, ignore_conflicts: bool = False) -> None:
        super().__init__(lambda columns: columns, by_column=False)
        self.table = table
        self.ignore_conflicts = ignore_conflicts

    def write(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        names = ", ".join(columns)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if not self.ignore_conflicts:
                _copy(cursor, self.table.name, columns, rows)
                return
            # One temporary table per session and column set, emptied at every commit.
            temp = f"_bulk_{self.table.name}_{zlib.crc32(names.encode()):08x}"
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "
                f"SELECT {names}, 0::bigint AS _ord FROM {self.table.name} WITH NO DATA"
            )
            _copy(cursor, temp, columns, rows, ordinal=True)
            cursor.execute(
                f"INSERT INTO {self.table.name} ({names}) SELECT {names} FROM {temp} "
                f"ORDER BY _ord ON CONFLICT DO NOTHING"
            )
            cursor.execute(f"DELETE FROM {temp}")  # several writes in one transaction
        finally:
            cursor.close()


def _copy(
    cursor: Any,
    target: str,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    *,
    ordinal: bool = False,
) -> None:
    """``COPY target (columns[, _ord]) FROM STDIN`` of ``rows`` (with their position)."""
    names = ", ".join((*columns, "_ord") if ordinal else columns)
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for n, row in enumerate(rows):
            values = [row[c] for c in columns]
            copy.write_row([*values, n] if ordinal else values)


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

    def upsert_add(self, table: Table, keys: Sequence[str], column: str) -> Any:
        """``INSERT … ON CONFLICT (keys) DO UPDATE SET column = column + excluded.column``:
        a counter that a new row starts and later rows add to."""
        module = sqlite if self.is_sqlite else postgresql
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={column: table.c[column] + stmt.excluded[column]}
        )

    def bulk_insert(
        self,
        table: Table,
        *,
        conflict: Sequence[str] = (),
        update: Sequence[str] = (),
    ) -> BulkWrite:
        """Insert many rows into ``table``; on a ``conflict`` key either update the ``update``
        columns from the new row or, without ``update``, keep the old row."""
        unique = tuple(conflict) if update else ()
        if self.is_sqlite:
            if conflict and update:
                stmt = self.upsert(table, conflict, update)
            else:
                stmt = self.insert_ignore(table) if conflict else table.insert()
            return BulkWrite(lambda _columns: stmt, by_column=False, unique=unique)

        def build(columns: tuple[str, ...]) -> Any:
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "
                f"SELECT * FROM {_unnest(table, columns)}"
            )
            if conflict and update:
                sets = ", ".join(f"{c} = excluded.{c}" for c in update)
                sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
            elif conflict:
                sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
            return text(sql)

        return BulkWrite(build, by_column=True, unique=unique)

    def bulk_append(self, table: Table) -> BulkWrite:
        """Insert many new rows (no conflict possible): COPY on PostgreSQL, an executemany
        (multi-row VALUES) on SQLite."""
        if self.is_sqlite:
            stmt = table.insert()
            return BulkWrite(lambda _columns: stmt, by_column=False)
        return CopyInsert(table)

    def bulk_insert_ignore(self, table: Table) -> BulkWrite:
        """Insert many rows, dropping those whose unique key is taken (the inbox's message
        ids): ``INSERT OR IGNORE``-style executemany on SQLite, COPY + INSERT … SELECT on
        PostgreSQL."""
        if self.is_sqlite:
            stmt = self.insert_ignore(table)
            return BulkWrite(lambda _columns: stmt, by_column=False)
        return CopyInsert(table, ignore_conflicts=True)

    def bulk_update(self, table: Table, keys: Sequence[str]) -> BulkWrite:
        """Set the other columns of many rows, each row found by its ``keys`` values."""

        def build_sqlite(columns: tuple[str, ...]) -> Any:
            # SQLAlchemy reserves the plain column names for the SET clause: bind ``b_…``.
            return (
                update(table)
                .where(*(table.c[k] == bindparam(f"b_{k}") for k in keys))
                .values({c: bindparam(f"b_{c}") for c in columns if c not in keys})
            )

        def build_postgresql(columns: tuple[str, ...]) -> Any:
            sets = ", ".join(f"{c} = v.{c}" for c in columns if c not in keys)
            match = " AND ".join(f"{table.name}.{k} = v.{k}" for k in keys)
            return text(
                f"UPDATE {table.name} SET {sets} FROM {_unnest(table, columns)} "
                f"AS v({', '.join(columns)}) WHERE {match}"
            )

        if self.is_sqlite:
            return BulkWrite(build_sqlite, by_column=False, unique=tuple(keys), prefix="b_")
        return BulkWrite(build_postgresql, by_column=True, unique=tuple(keys))

    def lock_claim(self, query: Select[Any]) -> Select[Any]:
        """Row locking for a worker's claim: PostgreSQL skips rows another worker holds."""
        if self.is_sqlite:
            return query  # one writer at a time: BEGIN IMMEDIATE already serializes workers
        return query.with_for_update(skip_locked=True)

    def lock_keys(self) -> Any:
        """A statement that takes the advisory locks ``:keys`` (an array of 64-bit keys) in
        array order until commit, or None on SQLite (one writer at a time anyway)."""
        if self.is_sqlite:
            return None
        return text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT k FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n) "
            "ORDER BY n) AS ordered"
        )

    def transaction_lock(self, key: int, *, shared: bool = False) -> Any:
        """A statement that makes transactions taking ``key`` run one at a time (held until
        commit; ``shared``: at the same time as other shared holders, never with an exclusive
        one), or None: SQLite write transactions already do (``BEGIN IMMEDIATE``)."""
        if self.is_sqlite:
            return None
        if shared:
            return select(func.pg_advisory_xact_lock_shared(key))
        return select(func.pg_advisory_xact_lock(key))


def _unnest(table: Table, columns: Sequence[str]) -> str:
    """``unnest(CAST(:a AS type[]), …)`` over ``columns`` of ``table`` (PostgreSQL)."""
    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    casts = [f"CAST(:{c} AS {table.c[c].type.compile(dialect=pg)}[])" for c in columns]
    return f"unnest({', '.join(casts)})"
