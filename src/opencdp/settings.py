"""Typed settings.

Precedence, highest first: explicit keyword arguments (the CLI passes its flags this way) >
environment (``OPENCDP_…``, nested with ``__``) > the TOML file named by ``OPENCDP_CONFIG_FILE``
(or ``opencdp.toml`` in the working directory) > defaults. Every field carries a description; a
test checks that each one appears in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(
        env_prefix="OPENCDP_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path(".opencdp"),
        description="Directory for the embedded SQLite database and other local state.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the system of record, e.g. postgresql+psycopg://user@host/db. "
            "Empty: SQLite in WAL mode at DATA_DIR/opencdp.db."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Interface `opencdp serve` binds to.")
    port: int = Field(default=8000, description="TCP port `opencdp serve` listens on.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description=(
            "The address customers reach this server at (https://cdp.shop.example): the base "
            "of the short links of campaign QR codes (`/q/{code}`). When not set, the HTTP API "
            "uses the address each request came to and the CLI this default."
        ),
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Server secret under which write keys and tokens are stored (HMAC-SHA256). Empty: "
            "DATA_DIR/secret.key, created on first use. Set the same value on every machine "
            "that shares one PostgreSQL database."
        ),
    )
    bootstrap_write_key: SecretStr | None = Field(
        default=None,
        description="If set, a source with this write key is created in the default workspace at start.",
    )
    bootstrap_token: SecretStr | None = Field(
        default=None,
        description="If set, an admin access token with this value is created in the default workspace at start.",
    )
    max_event_bytes: int = Field(
        default=32 * 1024, description="Largest accepted single event, in bytes (Segment: 32 KB)."
    )
    max_batch_bytes: int = Field(
        default=500 * 1024,
        description="Largest accepted request body after decompression (Segment: 500 KB; RudderStack clients: 4 MB).",
    )
    max_batch_events: int = Field(default=2500, description="Most events accepted in one batch.")
    dedup_window_days: float = Field(
        default=7.0,
        description="How long message ids are remembered in the inbox to drop retried duplicates.",
    )
    rate_limit_per_source: float = Field(
        default=0.0,
        description="Events per second accepted per source before answering 429; 0 turns it off.",
    )
    rate_limit_burst: float = Field(
        default=0.0,
        description="Burst size of the per-source rate limit; 0 means one second's worth of events.",
    )
    self_service_rate_per_minute: float = Field(
        default=60.0,
        description="Requests per minute the self-service profile accepts per link and per "
        "client address before answering 429.",
    )
    max_inbox_backlog: int = Field(
        default=1_000_000,
        description=(
            "Unprocessed events the inbox may hold; a request that would exceed it is answered "
            "429 backlog_full (a hard limit, counted exactly near it); 0 turns it off."
        ),
    )
    max_api_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        description="Largest request body of the /api routes (plans, dry runs, contacts); larger ones get 413.",
    )
    max_ingest_wait_seconds: float = Field(
        default=5.0,
        description=(
            "Longest a Tracking API request waits for its commit before it is answered 429 "
            "overloaded with Retry-After (SDKs time out after about 10 s); 0 turns it off."
        ),
    )
    workers: int = Field(
        default=1,
        ge=0,
        description=(
            "Worker processes `opencdp serve` runs beside its HTTP processes (0: none, e.g. "
            "when workers run elsewhere). More than one needs PostgreSQL."
        ),
    )
    worker_in_process: bool = Field(
        default=True,
        description=(
            "Run a worker thread inside the ASGI app when it is embedded in another server "
            "(`opencdp serve` runs worker processes instead: see `workers`)."
        ),
    )
    worker_batch_size: int = Field(
        default=1000, description="Events a worker claims and processes per micro-batch."
    )
    worker_cache_profiles: int = Field(
        default=50_000,
        ge=0,
        description=(
            "Profiles a worker keeps in memory between batches instead of reloading them "
            "(roughly 2 KB each); 0 turns the memory off."
        ),
    )
    compute_refresh_seconds: float = Field(
        default=3_600.0,
        gt=0,
        description=(
            "How long a computed trait or audience whose value time alone can change (a window "
            "such as within(7 days), a session, within_last) may go without a batch "
            "re-evaluation; the worker re-evaluates it when this has passed since its last "
            "computation, also right after a restart."
        ),
    )
    worker_poll_interval: float = Field(
        default=0.05, description="Seconds an idle worker waits before looking for new events."
    )
    dispatcher_in_worker: bool = Field(
        default=True,
        description=(
            "Whether the (first) worker process also sends the outbox; false when dispatchers "
            "run on their own (`opencdp dispatcher`)."
        ),
    )
    dispatcher_process: bool = Field(
        default=False,
        description=(
            "Whether `opencdp serve` runs the dispatcher as a process of its own beside the "
            "workers, instead of a thread in the first worker."
        ),
    )
    dispatcher_poll_interval: float = Field(
        default=0.1,
        description="Seconds an idle dispatcher waits before looking for due deliveries.",
    )
    dispatcher_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long a dispatcher holds the deliveries it is sending; if it dies, another "
            "sends them again after this (under the same ids)."
        ),
    )
    dispatcher_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description=(
            "Destinations the dispatcher sends to at the same time (each on a thread; a "
            "destination's own `concurrency` above 1 adds threads of its own)."
        ),
    )
    group_commit_max_events: int = Field(
        default=20_000,
        description="Most events the collector commits in one group-commit transaction.",
    )
    quarantine_resolved_retention_days: float = Field(
        default=30.0,
        description=(
            "How long quarantined events that a replay resolved (replayed, duplicate, forwarded) "
            "are kept for the record; 0 keeps them forever. Open events are never pruned."
        ),
    )
    governance_refresh_seconds: float = Field(
        default=5.0,
        description=(
            "How long a process keeps a source's tracking plan and enforcement settings cached; "
            "a plan applied elsewhere takes effect within this time."
        ),
    )
    default_phone_region: str = Field(
        default="US",
        description="ISO country used to read phone numbers written without a country code.",
    )
    identity_trait_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra identifiers read from traits/properties: trait key -> identifier type, "
            'e.g. {"loyalty_card": "loyalty_card", "magento_customer_id": "magento_id"}.'
        ),
    )
    recs_train_every_hours: float = Field(
        default=24.0,
        ge=0,
        description=(
            "How often the worker trains each workspace's recommendations (when it has product "
            "events); 0 turns the schedule off. A workspace's settings can say otherwise."
        ),
    )
    recs_model_ttl: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Seconds a server process keeps a workspace's active recommendation version before "
            "looking again (a training or a rollback reaches every process within this)."
        ),
    )
    recs_catalog_ttl: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a server process serves recommendations from its snapshot of the catalog "
            "and stock levels before reading them again."
        ),
    )
    log_level: str = Field(default="INFO", description="Log level of server and worker.")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("an absolute http(s) URL such as https://cdp.shop.example")
        return value.rstrip("/")

    @property
    def public_url_set(self) -> bool:
        """Whether ``public_url`` was configured (else it is the default)."""
        return "public_url" in self.model_fields_set

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("OPENCDP_CONFIG_FILE", "opencdp.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file),
        )

    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, or SQLite under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opencdp.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Build settings; ``overrides`` (e.g. CLI flags) win over everything else. ``None`` is ignored."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
