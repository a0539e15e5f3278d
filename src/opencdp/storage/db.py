"""Engine construction and the one thin place that executes SQL.

SQLite runs in WAL mode with ``synchronous=FULL`` so that an acknowledged commit survives a
crash of the process or the machine; writes use ``BEGIN IMMEDIATE`` so that concurrent writers
queue on the lock instead of failing half-way. PostgreSQL needs nothing special.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from opencdp.errors import ConfigurationError, StorageUnavailable
from opencdp.storage.definition_sql import SQLITE_AGGREGATES, SQLITE_FUNCTIONS
from opencdp.storage.dialect import Dialect

#: ``Connection`` is re-exported for the type annotations of callers that hold a transaction
#: (they never build SQL with it: that stays in this package).
__all__ = ["Connection", "Database"]


class Database:
    """An engine plus its dialect; ``write()`` and ``read()`` open transactions."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            path = parsed.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                url,
                # Parameters hold personal data (e-mails, payloads): never in errors or logs.
                hide_parameters=True,
                connect_args={"timeout": 60, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            _configure_sqlite(self.engine)
        elif backend == "postgresql":
            try:
                self.engine = create_engine(
                    url,
                    pool_size=pool_size,
                    max_overflow=pool_size,
                    pool_pre_ping=True,
                    hide_parameters=True,  # parameters hold personal data: never logged
                )
                # Batch plain executemany INSERTs into multi-row VALUES pages (SQLAlchemy's
                # "insertmanyvalues"). SQLAlchemy does not do this for ON CONFLICT statements,
                # which still go row by row through psycopg (see docs/benchmarks.md).
                self.engine.dialect.use_insertmanyvalues_wo_returning = True
            except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
                raise ConfigurationError(
                    "PostgreSQL needs the psycopg driver: pip install 'opencdp[postgres]'"
                ) from exc
        else:
            raise ConfigurationError(
                f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://…"
            )
        self.dialect = Dialect(backend)
        # SQLite has one writer. Inside a process, writers queue on this lock and are handed it
        # the moment it is free, instead of polling SQLite's busy handler (which sleeps up to
        # 100 ms between tries); across processes, BEGIN IMMEDIATE and busy_timeout still rule.
        self._write_lock: threading.Lock | None = threading.Lock() if backend == "sqlite" else None

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success.

        ``durable=False`` lets SQLite skip the fsync at commit (``synchronous=NORMAL``): the
        commit is still atomic and survives a crash of the process, but a power loss may undo
        it. Only for work that can be derived again from durable data (the worker's output,
        whose inbox rows are committed durably and re-processed if their marks are lost).
        """
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.connect().execution_options(opencdp_write=True) as conn:
                relaxed = not durable and self.dialect.is_sqlite
                if relaxed:
                    _raw(conn).execute("PRAGMA synchronous=NORMAL")
                try:
                    with conn.begin():
                        yield conn
                finally:
                    if relaxed:
                        _raw(conn).execute("PRAGMA synchronous=FULL")
        except OperationalError as exc:
            raise StorageUnavailable(f"database write failed: {exc.orig}") from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both databases)."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise StorageUnavailable(f"database read failed: {exc.orig}") from exc

    def refresh_statistics(self, tables: tuple[str, ...]) -> None:
        """Let PostgreSQL's planner see what a bulk write added (``ANALYZE``) instead of
        waiting for autovacuum: a query right after an import otherwise plans for tables of
        one row (nested loops; CLV's order history took 117 s on CDNOW instead of 2.4 s).
        SQLite's planner does not need it."""
        if self.dialect.is_sqlite:
            return
        with self.write() as conn:
            conn.exec_driver_sql("ANALYZE " + ", ".join(tables))

    def reclaim_deleted_space(self, tables: list[str]) -> None:
        """Make the bytes of deleted rows unrecoverable from the database's files.

        SQLite (every connection runs with ``secure_delete``, which zeroes what a delete
        frees): ``VACUUM`` rewrites the file from the live rows only, then a ``TRUNCATE``
        checkpoint empties the write-ahead log, whose old frames still hold page images. Writers
        wait meanwhile (about a second per 100 MB). PostgreSQL: ``VACUUM`` of ``tables`` removes
        the dead tuples from the tables and their indexes; the freed space is reused, not
        zeroed (see docs/privacy.md).
        """
        if self.dialect.is_sqlite:
            lock = self._write_lock
            assert lock is not None
            with lock, self.engine.connect() as conn:
                raw = _raw(conn)
                raw.execute("VACUUM")
                for _attempt in range(50):
                    busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        break
                    time.sleep(0.1)  # a reader in another process still holds old frames
                else:
                    raise StorageUnavailable(
                        "the write-ahead log could not be emptied: a reader kept it busy; "
                        "run the erasure's scrub again"
                    )
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.exec_driver_sql(f'VACUUM "{table}"')

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def check_connection(self) -> None:
        """Connect once; a database that cannot be reached raises ConfigurationError saying
        what is wrong and what to do (instead of a driver traceback)."""
        try:
            with self.engine.connect():
                pass
        except (OperationalError, InterfaceError) as exc:
            raise ConfigurationError(_connection_advice(make_url(self.url), exc)) from None

    def describe(self) -> str:
        """The URL with any password hidden, for logs and status output."""
        return make_url(self.url).render_as_string(hide_password=True)


def _raw(conn: Connection) -> Any:
    """The driver's own connection (for pragmas that must run outside a transaction)."""
    return conn.connection.driver_connection


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-32768")
        # Deleted content is overwritten with zeros, not left in free space (invariant 7:
        # an erased person leaves no bytes behind, including copies that updates freed).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        # The reference rules of computed traits that SQLite has no SQL for (definition_sql).
        for name, (arity, function) in SQLITE_FUNCTIONS.items():
            dbapi_connection.create_function(name, arity, function, deterministic=True)
        for name, (arity, aggregate) in SQLITE_AGGREGATES.items():
            dbapi_connection.create_aggregate(name, arity, aggregate)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("opencdp_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _connection_advice(url: URL, exc: Exception) -> str:
    """What a failed connection means for the user, in one message."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else repr(exc)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        return (
            f"cannot open the SQLite database {url.database}: {reason}. Check that "
            "OPENCDP_DATA_DIR is a writable directory with free space."
        )
    host, port, name, user = url.host or "localhost", url.port or 5432, url.database, url.username
    lowered = reason.lower()
    if "does not exist" in lowered and "database" in lowered:
        user_flag = f" -U {user}" if user else ""
        return (
            f"the PostgreSQL database {name!r} does not exist on {host}:{port}. Create it once "
            f"with `createdb -h {host} -p {port}{user_flag} {name}` (see docs/configuration.md), "
            "then start OpenCDP again: it creates its tables itself."
        )
    if "password authentication failed" in lowered or "authentication" in lowered:
        return (
            f"PostgreSQL at {host}:{port} refused user {user!r}: check the user and password in "
            f"OPENCDP_DATABASE_URL ({shown})."
        )
    if "connection refused" in lowered or "could not connect" in lowered or "timeout" in lowered:
        return (
            f"no PostgreSQL server answers at {host}:{port} ({reason}). Start the server, or "
            f"check the host and port in OPENCDP_DATABASE_URL ({shown})."
        )
    return f"cannot connect to {shown}: {reason}. Check OPENCDP_DATABASE_URL."
