"""activation: configured destinations and the outbox of deliveries to them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_WAITING = "status IN ('pending', 'retrying')"


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "id", sa.String(64), nullable=False, comment="chosen by the user: the URL's last part"
        ),
        sa.Column("type", sa.String(64), nullable=False, comment="a registered destination type"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "settings", sa.Text(), nullable=False, comment="JSON, as the type's schema validated it"
        ),
        sa.Column(
            "subscriptions", sa.Text(), nullable=False, comment="JSON: [{name, condition, mapping}]"
        ),
        sa.Column("health", sa.String(16), nullable=False, comment="ok | auth_failing | gone"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "deliveries",
        sa.Column("seq", big_id, autoincrement=True, nullable=False, comment="order of enqueueing"),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "id", sa.String(64), nullable=False, comment="webhook-id: the same on every attempt"
        ),
        sa.Column("destination_id", sa.String(64), nullable=False),
        sa.Column("subscription", sa.String(200), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(100), nullable=False, comment="the event that caused it"),
        sa.Column(
            "payload", sa.Text(), nullable=False, comment="JSON: the event, mapped at send time"
        ),
        sa.Column(
            "status",
            sa.String(16),
            nullable=False,
            comment="pending | retrying | delivered | dead",
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "leased_until_us",
            sa.BigInteger(),
            nullable=True,
            comment="a dispatcher is sending it",
        ),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("delivered_us", sa.BigInteger(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True, comment="why the last attempt failed"),
        sa.Column(
            "last_request",
            sa.Text(),
            nullable=True,
            comment="JSON: what was sent (secrets masked)",
        ),
        sa.Column(
            "last_response",
            sa.Text(),
            nullable=True,
            comment="JSON: status, headers, body (cut)",
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("workspace_id", "destination_id", "id", name="uq_deliveries_id"),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_us"],
        sqlite_where=sa.text(_WAITING),
        postgresql_where=sa.text(_WAITING),
    )
    op.create_index(
        "ix_deliveries_profile",
        "deliveries",
        ["workspace_id", "destination_id", "profile_id", "seq"],
    )
    op.create_index(
        "ix_deliveries_status",
        "deliveries",
        ["workspace_id", "destination_id", "status", "seq"],
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("destinations")
