"""Workspaces, sources (write keys) and access tokens."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import delete, select, update

from opencdp.errors import ConfigurationError, NotFound
from opencdp.ids import hash_secret, hint, legacy_hash, new_id, new_secret, secret_matches
from opencdp.privacy.roles import ROLES
from opencdp.privacy.workspace_settings import WorkspaceSettings, parse_settings
from opencdp.storage.db import Connection, Database
from opencdp.storage.schema import access_tokens, sources, workspaces

DEFAULT_WORKSPACE = "default"
#: the source of the changes OpenCDP records itself (consent through the API, self-service
#: edits): reserved, one per workspace, exempt from tracking plans
INTERNAL_SOURCE = "opencdp"
#: a workspace id: what URLs (/v1/spaces/{id}) and every row's workspace_id carry
WORKSPACE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Workspace:
    """A hard boundary: one brand or business line."""

    id: str
    name: str
    created_us: int
    settings: WorkspaceSettings


@dataclass(frozen=True)
class Source:
    """A sender of events (a website, an app, a till system), known by its write key."""

    id: str
    workspace_id: str
    name: str
    enabled: bool
    write_key_hint: str
    created_us: int
    #: a catalog source: its ``Product Updated`` events write the product catalog
    catalog: bool = False


@dataclass(frozen=True)
class AccessToken:
    """A credential for the Profile API and OpenCDP's own APIs."""

    id: str
    workspace_id: str
    name: str
    scope: str  # the role: admin | write | read | support
    token_hint: str
    created_us: int
    instance_admin: bool = False

    @property
    def role(self) -> str:
        return self.scope


class AdminStore:
    """Creates and finds workspaces, sources and tokens."""

    def __init__(self, db: Database, key: bytes) -> None:
        self.db = db
        self.key = key  # the server's secret key: write keys and tokens are stored as HMACs

    def _hash(self, secret: str) -> str:
        return hash_secret(secret, self.key)

    def ensure_workspace(self, workspace_id: str, name: str, now_us: int) -> None:
        """Create the workspace if it does not exist."""
        with self.db.write() as conn:
            conn.execute(
                self.db.dialect.insert_ignore(workspaces).values(
                    id=workspace_id, name=name, created_us=now_us
                )
            )

    def add_workspace(self, workspace_id: str, name: str, now_us: int) -> Workspace:
        """Create a workspace; raises ConfigurationError for a bad or taken id."""
        if not WORKSPACE_ID.fullmatch(workspace_id or ""):
            raise ConfigurationError(
                f"workspace id {workspace_id!r} must be 1-64 lowercase letters, digits, '-' or '_' "
                "starting with a letter or digit (it appears in URLs)"
            )
        if not name.strip():
            raise ConfigurationError("a workspace needs a name, e.g. 'B2C shop'")
        with self.db.write() as conn:
            found = conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id))
            if found.first() is not None:
                raise ConfigurationError(f"workspace {workspace_id!r} already exists")
            conn.execute(
                workspaces.insert().values(id=workspace_id, name=name.strip(), created_us=now_us)
            )
        return Workspace(workspace_id, name.strip(), now_us, WorkspaceSettings())

    def list_workspaces(self) -> list[Workspace]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(workspaces).order_by(workspaces.c.created_us, workspaces.c.id)
            )
            return [_workspace(r._asdict()) for r in rows]

    def get_workspace(self, workspace_id: str) -> Workspace:
        """The workspace; raises NotFound."""
        with self.db.read() as conn:
            row = conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
        if row is None:
            raise NotFound(f"workspace {workspace_id!r} does not exist")
        return _workspace(row._asdict())

    def workspace_settings(self, workspace_id: str) -> WorkspaceSettings:
        """The workspace's privacy settings (defaults for an unknown workspace)."""
        with self.db.read() as conn:
            value = conn.execute(
                select(workspaces.c.settings).where(workspaces.c.id == workspace_id)
            ).scalar()
        return parse_settings(orjson.loads(value)) if value else WorkspaceSettings()

    def set_workspace_settings(self, workspace_id: str, settings: WorkspaceSettings) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                workspaces.update()
                .where(workspaces.c.id == workspace_id)
                .values(settings=orjson.dumps(settings.to_dict()).decode())
            )
            if result.rowcount == 0:
                raise NotFound(f"workspace {workspace_id!r} does not exist")

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
        self,
        workspace_id: str,
        name: str,
        now_us: int,
        write_key: str | None = None,
        *,
        internal: bool = False,
        catalog: bool = False,
    ) -> tuple[Source, str]:
        """Create a source; returns it with its write key (shown once, stored hashed)."""
        if not name.strip():
            raise ConfigurationError("a source needs a name, e.g. 'web-shop'")
        if name.strip() == INTERNAL_SOURCE and not internal:
            raise ConfigurationError(
                f"the source name {INTERNAL_SOURCE!r} is reserved for OpenCDP's own changes"
            )
        key = write_key or new_secret()
        row = {
            "id": new_id("src"),
            "workspace_id": workspace_id,
            "name": name.strip(),
            "write_key_hash": self._hash(key),
            "write_key_hint": hint(key),
            "enabled": True,
            "created_us": now_us,
            "catalog": catalog,
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
        row = self._by_secret(sources, sources.c.write_key_hash, write_key)
        return _source(row) if row is not None else None

    def _by_secret(self, table: Any, column: Any, secret: str) -> dict[str, Any] | None:
        """The row whose keyed hash of ``secret`` is stored in ``column``; a row that still
        holds the unkeyed hash of earlier versions is found too and upgraded in place."""
        digest = self._hash(secret)
        with self.db.read() as conn:
            row = conn.execute(select(table).where(column == digest)).first()
        if row is not None and secret_matches(secret, getattr(row, column.name), self.key):
            return row._asdict()
        legacy = legacy_hash(secret)
        with self.db.read() as conn:
            row = conn.execute(select(table).where(column == legacy)).first()
        if row is None or not hmac.compare_digest(getattr(row, column.name), legacy):
            return None
        with self.db.write() as conn:
            conn.execute(update(table).where(column == legacy).values({column.name: digest}))
        return {**row._asdict(), column.name: digest}

    def source_by_id(self, source_id: str) -> Source | None:
        """The source with this id (in any workspace), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        return _source(row._asdict()) if row is not None else None

    def internal_source_in(self, conn: Connection, workspace_id: str, now_us: int) -> Source:
        """The workspace's internal source (OpenCDP's own events), made in ``conn``'s
        transaction when it does not exist yet (its write key is random and never shown)."""
        row = conn.execute(
            select(sources).where(
                sources.c.workspace_id == workspace_id, sources.c.name == INTERNAL_SOURCE
            )
        ).first()
        if row is not None:
            return _source(row._asdict())
        key = new_secret()
        values = {
            "id": new_id("src"),
            "workspace_id": workspace_id,
            "name": INTERNAL_SOURCE,
            "write_key_hash": self._hash(key),
            "write_key_hint": hint(key),
            "enabled": True,
            "created_us": now_us,
        }
        conn.execute(sources.insert().values(**values))
        return _source(values)

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
        *,
        instance_admin: bool = False,
    ) -> tuple[AccessToken, str]:
        """Create an access token with role ``scope``; returns it with its secret (shown once,
        stored hashed). ``instance_admin``: an administrator of every workspace."""
        if scope not in ROLES:
            raise ConfigurationError(f"role must be one of {', '.join(ROLES)}, not {scope!r}")
        if instance_admin and scope != "admin":
            raise ConfigurationError("an instance administrator has the admin role")
        secret = token or new_secret()
        row = {
            "id": new_id("tok"),
            "workspace_id": workspace_id,
            "name": name.strip() or "token",
            "token_hash": self._hash(secret),
            "token_hint": hint(secret),
            "scope": scope,
            "created_us": now_us,
            "instance_admin": instance_admin,
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
        """The token with this secret, created if missing as an instance administrator (for
        bootstrap settings: the first credential of an installation)."""
        found = self.token_for_secret(token)
        if found is not None and not found.instance_admin:
            # made by a version before instance administrators: the bootstrap credential is
            # the installation's, so it becomes one
            with self.db.write() as conn:
                conn.execute(
                    update(access_tokens)
                    .where(access_tokens.c.id == found.id)
                    .values(instance_admin=True, scope="admin")
                )
            return replace(found, instance_admin=True, scope="admin")
        if found is not None:
            return found
        return self.add_token(
            workspace_id, name, now_us, "admin", token=token, instance_admin=True
        )[0]

    def token_for_secret(self, secret: str) -> AccessToken | None:
        row = self._by_secret(access_tokens, access_tokens.c.token_hash, secret)
        return _token(row) if row is not None else None

    def revoke_token(self, workspace_id: str | None, name_or_id: str) -> AccessToken:
        """Delete a token (by id or name): it stops working at once in this process and within
        the token cache's 10 s in running servers."""
        token = self._find_token(workspace_id, name_or_id)
        with self.db.write() as conn:
            conn.execute(delete(access_tokens).where(access_tokens.c.id == token.id))
        return token

    def rotate_token(self, workspace_id: str | None, name_or_id: str) -> tuple[AccessToken, str]:
        """A new secret for a token (same id, name and scope); the old secret stops working."""
        token = self._find_token(workspace_id, name_or_id)
        secret = new_secret()
        values = {"token_hash": self._hash(secret), "token_hint": hint(secret)}
        with self.db.write() as conn:
            conn.execute(update(access_tokens).where(access_tokens.c.id == token.id).values(values))
        return replace(token, token_hint=values["token_hint"]), secret

    def _find_token(self, workspace_id: str | None, name_or_id: str) -> AccessToken:
        found = [t for t in self.list_tokens(workspace_id) if name_or_id in (t.id, t.name)]
        if not found:
            raise NotFound(f"no token {name_or_id!r}; `opencdp token list` shows them")
        if len(found) > 1:
            raise ConfigurationError(
                f"{len(found)} tokens are named {name_or_id!r}; give the id instead"
            )
        return found[0]

    # Source credentials ----------------------------------------------------------------
    def set_source_enabled(self, workspace_id: str, name_or_id: str, enabled: bool) -> Source:
        """Enable or disable a source: a disabled source's write key gets 401."""
        source = self._require_source(workspace_id, name_or_id)
        with self.db.write() as conn:
            conn.execute(update(sources).where(sources.c.id == source.id).values(enabled=enabled))
        return replace(source, enabled=enabled)

    def rotate_write_key(self, workspace_id: str, name_or_id: str) -> tuple[Source, str]:
        """A new write key for a source; the old one stops working."""
        source = self._require_source(workspace_id, name_or_id)
        key = new_secret()
        values = {"write_key_hash": self._hash(key), "write_key_hint": hint(key)}
        with self.db.write() as conn:
            conn.execute(update(sources).where(sources.c.id == source.id).values(values))
        return replace(source, write_key_hint=values["write_key_hint"]), key

    def _require_source(self, workspace_id: str, name_or_id: str) -> Source:
        source = self.find_source(workspace_id, name_or_id)
        if source is None:
            raise NotFound(
                f"no source {name_or_id!r} in workspace {workspace_id!r}; "
                "`opencdp source list` shows them"
            )
        return source

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
        catalog=bool(row.get("catalog", False)),
    )


def _token(row: dict[str, Any]) -> AccessToken:
    return AccessToken(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        scope=row["scope"],
        token_hint=row["token_hint"],
        created_us=row["created_us"],
        instance_admin=bool(row.get("instance_admin")),
    )


def _workspace(row: dict[str, Any]) -> Workspace:
    raw = orjson.loads(row["settings"]) if row.get("settings") else None
    return Workspace(row["id"], row["name"], row["created_us"], parse_settings(raw))
