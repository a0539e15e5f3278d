"""Workspaces, sources (write keys) and access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select

from opencdp.errors import ConfigurationError, NotFound
from opencdp.ids import hash_secret, hint, new_id, new_secret, secret_matches
from opencdp.storage.db import Database
from opencdp.storage.schema import access_tokens, sources, workspaces

DEFAULT_WORKSPACE = "default"
TOKEN_SCOPES = ("admin", "read")


@dataclass(frozen=True)
class Source:
    """A sender of events (a website, an app, a till system), known by its write key."""

    id: str
    workspace_id: str
    name: str
    enabled: bool
    write_key_hint: str
    created_us: int


@dataclass(frozen=True)
class AccessToken:
    """A credential for the Profile API and OpenCDP's own APIs."""

    id: str
    workspace_id: str
    name: str
    scope: str
    token_hint: str
    created_us: int


class AdminStore:
    """Creates and finds workspaces, sources and tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_workspace(self, workspace_id: str, name: str, now_us: int) -> None:
        """Create the workspace if it does not exist."""
        with self.db.write() as conn:
            conn.execute(
                self.db.dialect.insert_ignore(workspaces).values(
                    id=workspace_id, name=name, created_us=now_us
                )
            )

    def workspace_exists(self, workspace_id: str) -> bool:
        with self.db.read() as conn:
            row = conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id))
            return row.first() is not None

    def identity_config(self, workspace_id: str) -> dict[str, Any] | None:
        """The workspace's stored identity-rule overrides (JSON), if any."""
        with self.db.read() as conn:
            value = conn.execute(
                select(workspaces.c.identity_config).where(workspaces.c.id == workspace_id)
            ).scalar()
        return orjson.loads(value) if value else None

    def set_identity_config(self, workspace_id: str, config: dict[str, Any] | None) -> None:
        """Store identity-rule overrides for a workspace (None resets to defaults)."""
        with self.db.write() as conn:
            result = conn.execute(
                workspaces.update()
                .where(workspaces.c.id == workspace_id)
                .values(identity_config=orjson.dumps(config).decode() if config else None)
            )
            if result.rowcount == 0:
                raise NotFound(f"workspace {workspace_id!r} does not exist")

    # Sources ---------------------------------------------------------------------------
    def add_source(
        self, workspace_id: str, name: str, now_us: int, write_key: str | None = None
    ) -> tuple[Source, str]:
        """Create a source; returns it with its write key (shown once, stored hashed)."""
        if not name.strip():
            raise ConfigurationError("a source needs a name, e.g. 'web-shop'")
        key = write_key or new_secret()
        row = {
            "id": new_id("src"),
            "workspace_id": workspace_id,
            "name": name.strip(),
            "write_key_hash": hash_secret(key),
            "write_key_hint": hint(key),
            "enabled": True,
            "created_us": now_us,
        }
        with self.db.write() as conn:
            self._require_workspace(conn, workspace_id)
            existing = conn.execute(
                select(sources.c.id).where(sources.c.write_key_hash == row["write_key_hash"])
            ).first()
            if existing is not None:
                raise ConfigurationError("that write key is already in use by another source")
            conn.execute(sources.insert().values(**row))
        return _source(row), key

    def ensure_source_with_key(
        self, workspace_id: str, name: str, write_key: str, now_us: int
    ) -> Source:
        """The source with this write key, created if missing (for bootstrap settings)."""
        found = self.source_for_key(write_key)
        if found is not None:
            return found
        return self.add_source(workspace_id, name, now_us, write_key=write_key)[0]

    def source_for_key(self, write_key: str) -> Source | None:
        """The source a write key belongs to, or None."""
        digest = hash_secret(write_key)
        with self.db.read() as conn:
            row = conn.execute(select(sources).where(sources.c.write_key_hash == digest)).first()
        if row is None or not secret_matches(write_key, row.write_key_hash):
            return None
        return _source(row._asdict())

    def source_by_id(self, source_id: str) -> Source | None:
        """The source with this id (in any workspace), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        return _source(row._asdict()) if row is not None else None

    def find_source(self, workspace_id: str, name_or_id: str) -> Source | None:
        """A source of the workspace named or identified by ``name_or_id``."""
        for source in self.list_sources(workspace_id):
            if name_or_id in (source.id, source.name):
                return source
        return None

    def list_sources(self, workspace_id: str | None = None) -> list[Source]:
        query = select(sources).order_by(sources.c.created_us, sources.c.id)
        if workspace_id is not None:
            query = query.where(sources.c.workspace_id == workspace_id)
        with self.db.read() as conn:
            return [_source(r._asdict()) for r in conn.execute(query)]

    # Tokens ----------------------------------------------------------------------------
    def add_token(
        self,
        workspace_id: str,
        name: str,
        now_us: int,
        scope: str = "admin",
        token: str | None = None,
    ) -> tuple[AccessToken, str]:
        """Create an access token; returns it with its secret (shown once, stored hashed)."""
        if scope not in TOKEN_SCOPES:
            raise ConfigurationError(f"scope must be one of {', '.join(TOKEN_SCOPES)}")
        secret = token or new_secret()
        row = {
            "id": new_id("tok"),
            "workspace_id": workspace_id,
            "name": name.strip() or "token",
            "token_hash": hash_secret(secret),
            "token_hint": hint(secret),
            "scope": scope,
            "created_us": now_us,
        }
        with self.db.write() as conn:
            self._require_workspace(conn, workspace_id)
            existing = conn.execute(
                select(access_tokens.c.id).where(access_tokens.c.token_hash == row["token_hash"])
            ).first()
            if existing is not None:
                raise ConfigurationError("that token is already in use")
            conn.execute(access_tokens.insert().values(**row))
        return _token(row), secret

    def ensure_token(self, workspace_id: str, name: str, token: str, now_us: int) -> AccessToken:
        """The token with this secret, created as admin if missing (for bootstrap settings)."""
        found = self.token_for_secret(token)
        if found is not None:
            return found
        return self.add_token(workspace_id, name, now_us, "admin", token=token)[0]

    def token_for_secret(self, secret: str) -> AccessToken | None:
        digest = hash_secret(secret)
        with self.db.read() as conn:
            row = conn.execute(
                select(access_tokens).where(access_tokens.c.token_hash == digest)
            ).first()
        if row is None or not secret_matches(secret, row.token_hash):
            return None
        return _token(row._asdict())

    def list_tokens(self, workspace_id: str | None = None) -> list[AccessToken]:
        query = select(access_tokens).order_by(access_tokens.c.created_us, access_tokens.c.id)
        if workspace_id is not None:
            query = query.where(access_tokens.c.workspace_id == workspace_id)
        with self.db.read() as conn:
            return [_token(r._asdict()) for r in conn.execute(query)]

    def _require_workspace(self, conn: Any, workspace_id: str) -> None:
        found = conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id)).first()
        if found is None:
            raise NotFound(f"workspace {workspace_id!r} does not exist")


def _source(row: dict[str, Any]) -> Source:
    return Source(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        enabled=bool(row["enabled"]),
        write_key_hint=row["write_key_hint"],
        created_us=row["created_us"],
    )


def _token(row: dict[str, Any]) -> AccessToken:
    return AccessToken(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        scope=row["scope"],
        token_hint=row["token_hint"],
        created_us=row["created_us"],
    )
