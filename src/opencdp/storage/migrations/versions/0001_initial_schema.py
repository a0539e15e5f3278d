"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 02:07:06.135664
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "access_tokens",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_hint", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "events",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "resolution",
            sa.Text(),
            nullable=True,
            comment="JSON: how identity resolution placed it",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "message_id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_profile_ts", ["workspace_id", "profile_id", "timestamp_us"], unique=False
        )

    op.create_table(
        "identifiers",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("collection", sa.String(length=16), nullable=False),
        sa.Column("id_type", sa.String(length=64), nullable=False),
        sa.Column("id_value", sa.String(length=500), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column(
            "message_id", sa.String(length=100), nullable=True, comment="event that linked it"
        ),
        sa.Column("rule", sa.String(length=64), nullable=False, comment="rule that linked it"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "collection", "id_type", "id_value"),
    )
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.create_index("ix_identifiers_profile", ["profile_id"], unique=False)

    op.create_table(
        "inbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("processed_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("workspace_id", "message_id", name="uq_inbox_message"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_pending",
            ["seq"],
            unique=False,
            sqlite_where=sa.text("processed_us IS NULL"),
            postgresql_where=sa.text("processed_us IS NULL"),
        )
        batch_op.create_index("ix_inbox_received", ["received_us"], unique=False)

    op.create_table(
        "links",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("user_profile_id", sa.String(length=64), nullable=False),
        sa.Column("account_profile_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "user_profile_id", "account_profile_id"),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_links_account", ["workspace_id", "account_profile_id"], unique=False
        )

    op.create_table(
        "merges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("from_profile_id", sa.String(length=64), nullable=False),
        sa.Column("into_profile_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column(
            "detail", sa.Text(), nullable=False, comment="JSON: the identifiers that bridged them"
        ),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("merges", schema=None) as batch_op:
        batch_op.create_index("ix_merges_from", ["workspace_id", "from_profile_id"], unique=False)
        batch_op.create_index("ix_merges_into", ["workspace_id", "into_profile_id"], unique=False)

    op.create_table(
        "profiles",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("collection", sa.String(length=16), nullable=False, comment="users | accounts"),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("first_message_id", sa.String(length=100), nullable=True),
        sa.Column("first_source_id", sa.String(length=64), nullable=True),
        sa.Column("last_message_id", sa.String(length=100), nullable=True),
        sa.Column("last_source_id", sa.String(length=64), nullable=True),
        sa.Column("merge_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_ws", ["workspace_id", "collection"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False, comment="collect | process"),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=True),
        sa.Column("event_name", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quarantine_ws_created", ["workspace_id", "created_us"], unique=False
        )
        batch_op.create_index("ix_quarantine_ws_reason", ["workspace_id", "reason"], unique=False)

    op.create_table(
        "sources",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("write_key_hash", sa.String(length=64), nullable=False),
        sa.Column("write_key_hint", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("write_key_hash"),
    )
    op.create_table(
        "traits",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("event_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "profile_id", "key"),
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "identity_config", sa.Text(), nullable=True, comment="JSON overrides of identity rules"
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:

    op.drop_table("workspaces")
    op.drop_table("traits")
    op.drop_table("sources")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_ws_reason")
        batch_op.drop_index("ix_quarantine_ws_created")

    op.drop_table("quarantine")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_ws")

    op.drop_table("profiles")
    with op.batch_alter_table("merges", schema=None) as batch_op:
        batch_op.drop_index("ix_merges_into")
        batch_op.drop_index("ix_merges_from")

    op.drop_table("merges")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_account")

    op.drop_table("links")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_received")
        batch_op.drop_index(
            "ix_inbox_pending",
            sqlite_where=sa.text("processed_us IS NULL"),
            postgresql_where=sa.text("processed_us IS NULL"),
        )

    op.drop_table("inbox")
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.drop_index("ix_identifiers_profile")

    op.drop_table("identifiers")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_profile_ts")

    op.drop_table("events")
    op.drop_table("access_tokens")
