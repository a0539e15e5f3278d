"""recommendations: trained model versions and per-workspace settings

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recs_models",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "version", sa.String(16), nullable=False, comment="v0001, v0002, … per workspace"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="ready | failed"),
        sa.Column(
            "kind", sa.String(16), nullable=True, comment="the model that scores known customers"
        ),
        sa.Column("trained_us", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True, comment="how long the training took"),
        sa.Column("interactions", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("users", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("items", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "evaluation", sa.Text(), nullable=True, comment="JSON: the holdout report of the choice"
        ),
        sa.Column(
            "path", sa.String(300), nullable=True, comment="the artifact, under the data directory"
        ),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(16), nullable=False, comment="cli | api | schedule"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "version"),
    )
    op.create_table(
        "recs_settings",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "document",
            sa.Text(),
            nullable=False,
            comment="JSON: weights, rules, train_every_hours",
        ),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "running_us",
            sa.BigInteger(),
            nullable=True,
            comment="a training claimed at (None: idle)",
        ),
        sa.PrimaryKeyConstraint("workspace_id"),
    )


def downgrade() -> None:
    op.drop_table("recs_settings")
    op.drop_table("recs_models")
