"""Bring a database to the newest schema with Alembic (both dialects, same revisions)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from opencdp.storage.db import Database

_SCRIPTS = Path(__file__).parent / "migrations"
_PG_LOCK = 7_447_001  # advisory lock id: two processes starting together migrate one at a time


def alembic_config() -> Config:
    """An Alembic config that points at OpenCDP's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return cfg


def upgrade(db: Database) -> None:
    """Apply every migration the database does not have yet."""
    cfg = alembic_config()
    with db.engine.connect() as conn:
        if not db.dialect.is_sqlite:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if not db.dialect.is_sqlite:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                conn.commit()


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of OpenCDP."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
