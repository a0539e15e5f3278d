"""journeys: definitions, instances with their durable timers, per-step counts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False, comment="JSON: the journey as written"),
        sa.Column(
            "preset",
            sa.Text(),
            nullable=True,
            comment="JSON: {preset, settings} when made from one",
        ),
        sa.Column("state", sa.String(16), nullable=False, comment="active | paused"),
        sa.Column("version", sa.Integer(), nullable=False, comment="raised by every change"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "key"),
    )
    op.create_table(
        "journey_instances",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("journey_key", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(150), nullable=False, comment="'' when keyed by profile"),
        sa.Column(
            "message_id", sa.String(100), nullable=False, comment="the event that started it"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="active | completed | exited"),
        sa.Column("step", sa.String(64), nullable=True),
        sa.Column("step_since_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "wake_us",
            sa.BigInteger(),
            nullable=True,
            comment="the durable timer: due at this time",
        ),
        sa.Column("entered_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.Column("exit_reason", sa.Text(), nullable=True),
        sa.Column(
            "context", sa.Text(), nullable=False, comment="JSON: event name -> latest properties"
        ),
        sa.Column(
            "events", sa.Text(), nullable=False, comment="JSON: the events on the path taken"
        ),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index(
        "ix_journey_instances_due",
        "journey_instances",
        ["wake_us"],
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_journey_instances_profile",
        "journey_instances",
        ["workspace_id", "profile_id", "journey_key"],
    )
    op.create_index(
        "ix_journey_instances_step",
        "journey_instances",
        ["workspace_id", "journey_key", "status", "step"],
    )
    op.create_table(
        "journey_steps",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("journey_key", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column(
            "reached", sa.BigInteger(), nullable=False, comment="instances that reached the step"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "journey_key", "step"),
    )


def downgrade() -> None:
    op.drop_table("journey_steps")
    op.drop_table("journey_instances")
    op.drop_table("journeys")
