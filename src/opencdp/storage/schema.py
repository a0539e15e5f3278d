"""The relational schema of the system of record (SQLAlchemy Core).

Conventions that keep SQLite and PostgreSQL in lockstep:

* every table has ``workspace_id`` as the first column of its key;
* times are integers of microseconds since the Unix epoch, UTC (``*_us`` columns): portable,
  sortable, and free of driver timezone quirks;
* JSON documents are stored as text written by orjson.

Migrations under ``migrations/versions`` must produce exactly this metadata; a contract test
compares them on both databases. Every table is declared in ``personal_data.py`` (whether it
holds personal data and how a profile's rows are found); a contract test checks that too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

metadata = MetaData()

#: The predicates of the partial indexes, written once: a query reaches such an index only by
#: stating the same predicate with its values in the SQL (``status IN (?, ?)`` with bound
#: parameters does not let SQLite prove it, and it scans instead).
WAITING_DELIVERIES = "status IN ('pending', 'retrying')"
ACTIVE_INSTANCES = "status = 'active'"


def partial(predicate: str, table: str) -> Any:
    """``predicate`` as a WHERE condition on ``table``'s rows (what reaches its index)."""
    return text(f"{table}.{predicate}")


# Integer primary keys that autoincrement on both dialects (SQLite needs plain INTEGER for rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("identity_config", Text, nullable=True, comment="JSON overrides of identity rules"),
    Column(
        "settings",
        Text,
        nullable=True,
        comment="JSON: privacy settings (consent default, self-service traits and origins)",
    ),
)

sources = Table(
    "sources",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("write_key_hash", String(64), nullable=False, unique=True),
    Column("write_key_hint", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_us", BigInteger, nullable=False),
    Column(
        "catalog",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="a catalog source: its Product Updated events write the product catalog",
    ),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(16), nullable=False),
    Column("scope", String(32), nullable=False, comment="the role: admin | write | read | support"),
    Column("created_us", BigInteger, nullable=False),
    Column(
        "instance_admin",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="an instance administrator: every workspace, and workspaces themselves",
    ),
)

# The durable queue. Rows stay after processing for the dedup window, so a retried messageId
# hits the unique key and is dropped; ``processed_us`` marks them done.
inbox = Table(
    "inbox",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("processed_us", BigInteger, nullable=True),
    Column("profile_id", String(64), nullable=True, comment="the profile the event was stored on"),
    Column(
        "partition",
        SmallInteger,
        nullable=False,
        server_default=text("0"),
        comment="hash of the first identifier: which worker slot processes it, in order",
    ),
    UniqueConstraint("workspace_id", "message_id", name="uq_inbox_message"),
    Index(
        "ix_inbox_pending",
        "seq",
        sqlite_where=text("processed_us IS NULL"),
        postgresql_where=text("processed_us IS NULL"),
    ),
    Index(
        "ix_inbox_pending_partition",
        "partition",
        "seq",
        sqlite_where=text("processed_us IS NULL"),
        postgresql_where=text("processed_us IS NULL"),
    ),
    Index("ix_inbox_received", "received_us"),
    Index("ix_inbox_profile", "workspace_id", "profile_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("source_id", String(64), nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("stage", String(16), nullable=False, comment="collect | process"),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("event_type", String(32), nullable=True),
    Column("event_name", String(200), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("plan_id", String(64), nullable=True, comment="tracking plan that judged it"),
    Column("plan_revision", Integer, nullable=True),
    Column("violations", Text, nullable=True, comment="JSON: [{type, field, description}]"),
    Column("replays", Integer, nullable=False, server_default=text("0")),
    Column("last_replay_us", BigInteger, nullable=True),
    Column("resolved_us", BigInteger, nullable=True, comment="set once replayed successfully"),
    Column(
        "resolution",
        String(32),
        nullable=True,
        comment="replayed | duplicate | imported | dismissed",
    ),
    Column("resolution_note", Text, nullable=True, comment="why an operator dismissed it"),
    Column("import_run_id", String(64), nullable=True, comment="the import run of an invalid_row"),
    Column(
        "profile_id",
        String(64),
        nullable=True,
        comment="the profile the message was stored on, once known",
    ),
    Index("ix_quarantine_ws_created", "workspace_id", "created_us"),
    Index("ix_quarantine_ws_reason", "workspace_id", "reason"),
    Index("ix_quarantine_profile", "workspace_id", "profile_id"),
    # One row per message: a retried or re-imported bad message updates its row.
    Index("uq_quarantine_message", "workspace_id", "message_id", unique=True),
)

profiles = Table(
    "profiles",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("id", String(64), primary_key=True),
    Column("collection", String(16), nullable=False, comment="users | accounts"),
    Column("merged_into", String(64), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("first_message_id", String(100), nullable=True),
    Column("first_source_id", String(64), nullable=True),
    Column("last_message_id", String(100), nullable=True),
    Column("last_source_id", String(64), nullable=True),
    Column("merge_count", Integer, nullable=False, server_default=text("0")),
    Index("ix_profiles_ws", "workspace_id", "collection"),
    Index(
        "ix_profiles_merged_into",
        "workspace_id",
        "merged_into",
        sqlite_where=text("merged_into IS NOT NULL"),
        postgresql_where=text("merged_into IS NOT NULL"),
    ),
)

identifiers = Table(
    "identifiers",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("collection", String(16), primary_key=True),
    Column("id_type", String(64), primary_key=True),
    Column("id_value", String(500), primary_key=True),
    Column("profile_id", String(64), nullable=False),
    Column("source_id", String(64), nullable=True),
    Column("message_id", String(100), nullable=True, comment="event that linked it"),
    Column("rule", String(64), nullable=False, comment="rule that linked it"),
    Column("created_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    Index("ix_identifiers_profile", "profile_id"),
)

merges = Table(
    "merges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("from_profile_id", String(64), nullable=False),
    Column("into_profile_id", String(64), nullable=False),
    Column("message_id", String(100), nullable=True),
    Column("rule", String(64), nullable=False),
    Column("detail", Text, nullable=False, comment="JSON: the identifiers that bridged them"),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_merges_into", "workspace_id", "into_profile_id"),
    Index("ix_merges_from", "workspace_id", "from_profile_id"),
)

traits = Table(
    "traits",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("profile_id", String(64), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("value", Text, nullable=False),
    Column("source_id", String(64), nullable=True),
    Column("message_id", String(100), nullable=True),
    Column("event_us", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("message_id", String(100), primary_key=True),
    Column("profile_id", String(64), nullable=False),
    Column("source_id", String(64), nullable=True),
    Column("type", String(16), nullable=False),
    Column("event", String(200), nullable=True),
    Column("timestamp_us", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Column("resolution", Text, nullable=True, comment="JSON: how identity resolution placed it"),
    Column("import_run_id", String(64), nullable=True, comment="the import run that stored it"),
    Index("ix_events_profile_ts", "workspace_id", "profile_id", "timestamp_us"),
    Index("ix_events_import_run", "workspace_id", "import_run_id"),
)

links = Table(
    "links",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("user_profile_id", String(64), primary_key=True),
    Column("account_profile_id", String(64), primary_key=True),
    Column("message_id", String(100), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_links_account", "workspace_id", "account_profile_id"),
)


tracking_plans = Table(
    "tracking_plans",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("rules", Text, nullable=False, comment="JSON: Segment RuleV1 objects"),
    Column("created_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger, nullable=True),
)

schema_settings = Table(
    "schema_settings",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True, comment="a source id, or * for the workspace"),
    Column("tracking_plan_id", String(64), nullable=True),
    Column("settings", Text, nullable=False, comment="JSON: enforcement settings"),
    Column("updated_us", BigInteger, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(200), primary_key=True, comment="product id or SKU"),
    Column("sku", String(200), nullable=True),
    Column("name", String(500), nullable=True),
    Column("category", String(300), nullable=True),
    Column("brand", String(200), nullable=True),
    Column("price", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("url", Text, nullable=True),
    Column("image_url", Text, nullable=True),
    Column("quantity", Integer, nullable=True, comment="stock on hand, when known"),
    Column("attributes", Text, nullable=False, comment="JSON: every other column"),
    Column("source_id", String(64), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("parent_id", String(200), nullable=True, comment="the product a variant belongs to"),
    Index("ix_products_category", "workspace_id", "category", "id"),
    Index("ix_products_brand", "workspace_id", "brand", "id"),
    Index("ix_products_parent", "workspace_id", "parent_id"),
)

# Stock on hand per product and location (``web`` for the web warehouse, a store's id).
inventory = Table(
    "inventory",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("product_id", String(200), primary_key=True),
    Column("location", String(100), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# Every change of stock, append-only.
inventory_history = Table(
    "inventory_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("product_id", String(200), nullable=False),
    Column("location", String(100), nullable=False),
    Column("quantity", Integer, nullable=False, comment="stock after the change"),
    Column("delta", Integer, nullable=False, comment="the change (after minus before)"),
    Column("channel", String(16), nullable=False, comment="api | import | event"),
    Column("reference", String(200), nullable=True, comment="request id, import run, message id"),
    Column("at_us", BigInteger, nullable=False),
    Index("ix_inventory_history_product", "workspace_id", "product_id", "at_us"),
)

# Back-in-stock requests: one row per request event; answered once when stock returns.
stock_requests = Table(
    "stock_requests",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(100), primary_key=True, comment="the request event's message id"),
    Column("profile_id", String(64), nullable=False),
    Column("product_id", String(200), nullable=False),
    Column("location", String(100), nullable=False, comment="the shopper's channel's stock"),
    Column("status", String(16), nullable=False, comment="waiting | answered"),
    Column("requested_us", BigInteger, nullable=False),
    Column("answered_us", BigInteger, nullable=True),
    Column("answer_id", String(100), nullable=True, comment="the Back In Stock event's id"),
    Index("ix_stock_requests_product", "workspace_id", "product_id", "status"),
    Index("ix_stock_requests_profile", "workspace_id", "profile_id"),
)

# A loyalty programme per workspace: the definition as applied (file or API).
loyalty_programmes = Table(
    "loyalty_programmes",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("definition", Text, nullable=False, comment="JSON: the programme as written"),
    Column("version", Integer, nullable=False, comment="raised by every change"),
    Column("updated_us", BigInteger, nullable=False),
    Column(
        "time_checked_us",
        BigInteger,
        nullable=True,
        comment="how far the timer brought expiries, expiring points and tiers",
    ),
)

loyalty_members = Table(
    "loyalty_members",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("profile_id", String(64), nullable=True, comment="NULL until the worker binds it"),
    Column("status", String(16), nullable=False, comment="active | merged"),
    Column("merged_into", String(64), nullable=True, comment="the member that absorbed it"),
    Column("balance", BigInteger, nullable=False, comment="the sum of the ledger's points"),
    Column("tier", String(64), nullable=True),
    Column("tier_since_us", BigInteger, nullable=True),
    Column("channel", String(16), nullable=False, comment="online | store | event | self"),
    Column("store_id", String(100), nullable=True),
    Column("enrolled_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_loyalty_members_profile", "workspace_id", "profile_id"),
)

# Member tokens (shown as barcodes) and physical card numbers, looked up by the till.
loyalty_tokens = Table(
    "loyalty_tokens",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("token", String(64), primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("profile_id", String(64), nullable=True),
    Column("kind", String(8), nullable=False, comment="digital | card"),
    Column("status", String(8), nullable=False, comment="active | revoked"),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Index("ix_loyalty_tokens_member", "workspace_id", "member_id"),
)

# The points ledger: append-only; a member's balance is the sum of its points.
loyalty_ledger = Table(
    "loyalty_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("profile_id", String(64), nullable=True),
    Column("kind", String(8), nullable=False, comment="earn | redeem | adjust | expire | reverse"),
    Column("points", BigInteger, nullable=False, comment="signed"),
    Column("dedup_key", String(300), nullable=False, comment="exactly once: earn:<order id>, …"),
    Column("order_id", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("expires_us", BigInteger, nullable=True, comment="earned points expire then"),
    Column("message_id", String(100), nullable=True, comment="the event that caused it"),
    Column("actor", String(200), nullable=True, comment="token id, cli:<user>, or worker"),
    Column("at_us", BigInteger, nullable=False, comment="the event's time"),
    Column("recorded_us", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "dedup_key", name="uq_loyalty_ledger_dedup"),
    Index("ix_loyalty_ledger_member", "workspace_id", "member_id", "id"),
    Index("ix_loyalty_ledger_order", "workspace_id", "order_id"),
)

# Campaign QR codes: /q/{code} redirects to the registered target only.
qr_codes = Table(
    "qr_codes",
    metadata,
    Column("code", String(32), primary_key=True, comment="unguessable, unique on the instance"),
    Column("workspace_id", String(64), nullable=False),
    Column("campaign", String(200), nullable=False),
    Column("target", Text, nullable=False, comment="the registered URL a scan goes to"),
    Column("created_us", BigInteger, nullable=False),
    Column("disabled_us", BigInteger, nullable=True),
    Index("ix_qr_codes_campaign", "workspace_id", "campaign"),
)

# Recommendation models: one row per trained version; the arrays are files under the data
# directory (``path``); exactly one version per workspace is active once one is ready.
recs_models = Table(
    "recs_models",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("version", String(16), primary_key=True, comment="v0001, v0002, … per workspace"),
    Column("status", String(16), nullable=False, comment="ready | failed"),
    Column("kind", String(16), nullable=True, comment="the model that scores known customers"),
    Column("trained_us", BigInteger, nullable=False),
    Column("seconds", Float, nullable=True, comment="how long the training took"),
    Column("interactions", BigInteger, nullable=False, server_default=text("0")),
    Column("users", BigInteger, nullable=False, server_default=text("0")),
    Column("items", BigInteger, nullable=False, server_default=text("0")),
    Column("evaluation", Text, nullable=True, comment="JSON: the holdout report of the choice"),
    Column("path", String(300), nullable=True, comment="the artifact, under the data directory"),
    Column("active", Boolean, nullable=False, server_default=false()),
    Column("source", String(16), nullable=False, comment="cli | api | schedule"),
    Column("error", Text, nullable=True),
)

# Per-workspace recommendation settings: weights, serving rules, the training schedule, and
# the claim that keeps two processes from training one workspace at once.
recs_settings = Table(
    "recs_settings",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("document", Text, nullable=False, comment="JSON: weights, rules, train_every_hours"),
    Column("updated_us", BigInteger, nullable=False),
    Column("running_us", BigInteger, nullable=True, comment="a training claimed at (None: idle)"),
)

import_runs = Table(
    "import_runs",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True, comment="digest of source, kind, mapping, file"),
    Column("source_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("file_name", String(500), nullable=False),
    Column("rows_done", BigInteger, nullable=False, server_default=text("0")),
    Column("status", String(16), nullable=False, comment="running | completed"),
    Column("started_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("report", Text, nullable=True, comment="JSON: counts so far"),
    Column("mapping", Text, nullable=True, comment="JSON: the mapping the run used"),
    Column("reverted_us", BigInteger, nullable=True, comment="when `import revert` undid it"),
)

identity_epoch = Table(
    "identity_epoch",
    metadata,
    Column("scope", String(16), primary_key=True, comment="'all': one counter for now"),
    Column(
        "epoch",
        BigInteger,
        nullable=False,
        comment="advanced by every transaction that changes profiles, identifiers or traits",
    ),
)

definitions = Table(
    "definitions",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column(
        "key", String(300), primary_key=True, comment="the trait key (audiences: a boolean trait)"
    ),
    Column("kind", String(16), nullable=False, comment="trait | audience"),
    Column("name", String(300), nullable=False),
    Column("type", String(16), nullable=False, comment="USERS | ACCOUNTS"),
    Column("query", Text, nullable=False, comment="Segment's query language"),
    Column("enabled", Boolean, nullable=False),
    Column("status", String(16), nullable=False, comment="computing | ready | failed | disabled"),
    Column("error", Text, nullable=True),
    Column("computed_us", BigInteger, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

computed_values = Table(
    "computed_values",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("profile_id", String(64), primary_key=True),
    Column("key", String(300), primary_key=True, comment="a definition's key"),
    Column("value", Text, nullable=False, comment="JSON; audiences: true for members"),
    Column("computed_us", BigInteger, nullable=False),
    Index("ix_computed_values_key", "workspace_id", "key", "profile_id"),
)

clv_models = Table(
    "clv_models",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("time_unit", String(8), nullable=False, comment="day | week"),
    Column("calibration_end", String(10), nullable=False, comment="ISO date, included"),
    Column(
        "model",
        Text,
        nullable=False,
        comment="JSON: BG/NBD and Gamma-Gamma parameters, log-likelihoods, customers, holdout",
    ),
    Column("fitted_us", BigInteger, nullable=False),
)

destinations = Table(
    "destinations",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True, comment="chosen by the user: the URL's last part"),
    Column("type", String(64), nullable=False, comment="a registered destination type"),
    Column("enabled", Boolean, nullable=False),
    Column("settings", Text, nullable=False, comment="JSON, as the type's schema validated it"),
    Column("subscriptions", Text, nullable=False, comment="JSON: [{name, condition, mapping}]"),
    Column("health", String(16), nullable=False, comment="ok | auth_failing | gone"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True, comment="order of enqueueing"),
    Column("workspace_id", String(64), nullable=False),
    Column("id", String(64), nullable=False, comment="webhook-id: the same on every attempt"),
    Column("destination_id", String(64), nullable=False),
    Column("subscription", String(200), nullable=False),
    Column("profile_id", String(64), nullable=True),
    Column("message_id", String(100), nullable=False, comment="the event that caused it"),
    Column("payload", Text, nullable=False, comment="JSON: the event, mapped at send time"),
    Column(
        "status",
        String(32),
        nullable=False,
        comment="pending | retrying | delivered | dead | suppressed_by_consent",
    ),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("leased_until_us", BigInteger, nullable=True, comment="a dispatcher is sending it"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("delivered_us", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True, comment="why the last attempt failed"),
    Column("last_request", Text, nullable=True, comment="JSON: what was sent (secrets masked)"),
    Column("last_response", Text, nullable=True, comment="JSON: status, headers, body (cut)"),
    UniqueConstraint("workspace_id", "destination_id", "id", name="uq_deliveries_id"),
    # what a dispatcher claims: waiting deliveries, in order
    Index(
        "ix_deliveries_due",
        "next_attempt_us",
        sqlite_where=text(WAITING_DELIVERIES),
        postgresql_where=text(WAITING_DELIVERIES),
    ),
    # in order per destination and profile; listing by destination and status
    Index("ix_deliveries_profile", "workspace_id", "destination_id", "profile_id", "seq"),
    Index("ix_deliveries_status", "workspace_id", "destination_id", "status", "seq"),
)

journeys = Table(
    "journeys",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("definition", Text, nullable=False, comment="JSON: the journey as written"),
    Column("preset", Text, nullable=True, comment="JSON: {preset, settings} when made from one"),
    Column("state", String(16), nullable=False, comment="active | paused"),
    Column("version", Integer, nullable=False, comment="raised by every change"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

journey_instances = Table(
    "journey_instances",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("journey_key", String(64), nullable=False),
    Column("profile_id", String(64), nullable=False),
    Column("identifier", String(150), nullable=False, comment="'' when keyed by profile"),
    Column("message_id", String(100), nullable=False, comment="the event that started it"),
    Column("status", String(16), nullable=False, comment="active | completed | exited"),
    Column("step", String(64), nullable=True),
    Column("step_since_us", BigInteger, nullable=False),
    Column("wake_us", BigInteger, nullable=True, comment="the durable timer: due at this time"),
    Column("entered_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger, nullable=True),
    Column("exit_reason", Text, nullable=True),
    Column("context", Text, nullable=False, comment="JSON: event name -> latest properties"),
    Column("events", Text, nullable=False, comment="JSON: the events on the path taken"),
    Column("restarts", Integer, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    # the timers a scheduler picks up
    Index(
        "ix_journey_instances_due",
        "wake_us",
        sqlite_where=text(ACTIVE_INSTANCES),
        postgresql_where=text(ACTIVE_INSTANCES),
    ),
    Index("ix_journey_instances_profile", "workspace_id", "profile_id", "journey_key"),
    Index("ix_journey_instances_step", "workspace_id", "journey_key", "status", "step"),
)

journey_steps = Table(
    "journey_steps",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("journey_key", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("reached", BigInteger, nullable=False, comment="instances that reached the step"),
)

# Privacy requests in the shape of Segment's regulations (engage-compat.md §5.2).
regulations = Table(
    "regulations",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("regulation_type", String(40), nullable=False, comment="DELETE_ONLY, SUPPRESS_ONLY, …"),
    Column("subject_type", String(20), nullable=False, comment="USER_ID, EMAIL, PHONE, …"),
    Column(
        "subjects",
        Text,
        nullable=False,
        comment="JSON: the subject ids; replaced by keyed hashes once a deletion finishes",
    ),
    Column("status", String(20), nullable=False, comment="INITIALIZED | RUNNING | FINISHED | …"),
    Column("progress", Text, nullable=False, comment="JSON: steps done, counts per store"),
    Column("error", Text, nullable=True),
    Column("requested_by", String(64), nullable=True, comment="token id, or cli:<user>"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Index("ix_regulations_status", "status", "created_us"),
)

# Suppressed subjects: the collector refuses their events. Kept as keyed hashes, so that a
# suppressed-and-deleted person leaves no identifier behind.
suppressions = Table(
    "suppressions",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column(
        "subject_hash",
        String(64),
        primary_key=True,
        comment="HMAC of the subject type and its normalized value under the server key",
    ),
    Column("subject_type", String(20), nullable=False),
    Column(
        "subject_id",
        String(500),
        nullable=True,
        comment="the value, kept only while nothing of the person was deleted (SUPPRESS_ONLY)",
    ),
    Column("regulation_id", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

# Who did what: every write through the API or the CLI, every privacy request, every profile
# read by a support token. Append-only; holds no personal data beyond a profile id.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False, comment="token id and name, or cli:<os user>"),
    Column("role", String(32), nullable=False),
    Column("channel", String(8), nullable=False, comment="api | cli | self"),
    Column("action", String(100), nullable=False, comment="e.g. destination.put, profile.read"),
    Column("target", String(300), nullable=True, comment="the object's key (never a value)"),
    Column("profile_id", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("status", Integer, nullable=True, comment="the HTTP status answered"),
    Index("ix_audit_ws_at", "workspace_id", "at_us"),
    Index("ix_audit_ws_action", "workspace_id", "action", "at_us"),
)
