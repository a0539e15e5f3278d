"""Hot reads: the few statements that every page of a shop or every scan at a till runs, at a
thousand a second — a profile's traits, a product, a member token.

Each is compiled once and run on a driver connection that an event loop's thread (the thread
that serves the requests) keeps for itself: no pool checkout, no ``BEGIN``/``COMMIT`` round
trips, no SQLAlchemy statement building per request. Any other thread borrows a connection
from the pool for the one read and gives it back. A single statement reads a consistent
snapshot on both databases (SQLite: its implicit read transaction; PostgreSQL: autocommit
``READ COMMITTED``), and on SQLite in WAL mode it never waits for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opencdp.errors import StorageUnavailable
from opencdp.storage.db import Database


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for the database, with how it binds its parameters."""

    sql: str
    #: qmark (SQLite) binds by position, pyformat (psycopg) by name
    positional: bool
    order: tuple[str, ...]
    #: the values the statement itself binds (constants such as ``status = 'active'``)
    constants: Mapping[str, Any]


class _Kept:
    """A thread's own connection, held by the thread's local storage."""

    __slots__ = ("__weakref__", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw


class HotReads:
    """Runs prepared statements on the serving thread's own driver connection, or on one
    borrowed from the pool."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = threading.local()
        self._held: list[Any] = []
        self._lock = threading.Lock()

    def prepare(self, statement: Any, params: Sequence[str]) -> Prepared:
        """Compile ``statement`` whose bind parameters are named ``params``."""
        compiled = statement.compile(dialect=self.db.engine.dialect)
        positional = compiled.positiontup is not None and bool(compiled.positional)
        constants = {k: v for k, v in compiled.params.items() if k not in params}
        return Prepared(str(compiled), positional, tuple(compiled.positiontup or params), constants)

    def rows(self, prepared: Prepared, values: Mapping[str, Any]) -> list[Any]:
        """The rows of ``prepared`` with ``values``; raises StorageUnavailable when the
        database cannot answer."""
        given = {**prepared.constants, **values}
        params: Any = tuple(given[k] for k in prepared.order) if prepared.positional else given
        try:
            kept = self._kept()
            raw = kept if kept is not None else self.db.engine.raw_connection()
        except Exception as exc:  # the database is down, or the pool had none to give
            raise StorageUnavailable(f"database read failed: {exc}") from exc
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(prepared.sql, params)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except Exception as exc:
            # A connection the server dropped (restart, failover) is not used again: the
            # next call opens a new one.
            if kept is not None:
                self._forget(raw)
            else:
                with contextlib.suppress(Exception):
                    raw.invalidate()
            raise StorageUnavailable(f"database read failed: {exc}") from exc
        finally:
            if kept is None:
                with contextlib.suppress(Exception):  # back to the pool
                    raw.close()

    def _kept(self) -> Any:
        """This thread's own connection, made on first use; None for a thread that only
        borrows one per read. An event loop's thread keeps one: it serves the hot reads. Any
        other thread (a request's thread pool, of which there may be dozens) borrows from the
        pool and gives it back, so that the pool is never held empty by threads that read
        once in a while."""
        holder = getattr(self._local, "connection", None)
        if holder is not None:
            return holder.raw
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        # Checked out of the engine's pool for good (returned by close()); the pool's
        # connect hooks have run, so SQLite is in WAL mode with pysqlite's autocommit.
        raw = self.db.engine.raw_connection()
        driver: Any = raw.driver_connection
        if not self.db.dialect.is_sqlite:
            driver.autocommit = True  # one statement, no idle-in-transaction session
        holder = _Kept(raw)
        # A thread that ends (one whose event loop stopped, a test client's) drops its
        # thread-local holder: the connection goes back to the pool then, not at close().
        weakref.finalize(holder, self._release, raw)
        self._local.connection = holder
        with self._lock:
            self._held.append(raw)
        return raw

    def _release(self, raw: Any) -> None:
        with self._lock:
            if raw not in self._held:
                return  # forgotten (invalidated) or closed already
            self._held.remove(raw)
        self._give_back(raw)

    def _give_back(self, raw: Any) -> None:
        with contextlib.suppress(Exception):  # a connection going away: nothing left to do
            if not self.db.dialect.is_sqlite:
                raw.driver_connection.autocommit = False  # as the pool hands them out
            raw.close()

    def _forget(self, raw: Any) -> None:
        with self._lock:  # first: the holder's finalizer then leaves the connection alone
            if raw in self._held:
                self._held.remove(raw)
        self._local.connection = None
        with contextlib.suppress(Exception):
            raw.invalidate()

    def close(self) -> None:
        """Give every held connection back (at shutdown)."""
        with self._lock:
            held, self._held = self._held, []
        for raw in held:
            self._give_back(raw)
        self._local = threading.local()
