"""computed traits and audiences: their definitions in Segment's query language, and the
values they computed per profile (audiences: their members)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "key",
            sa.String(300),
            nullable=False,
            comment="the trait key (audiences: a boolean trait)",
        ),
        sa.Column("kind", sa.String(16), nullable=False, comment="trait | audience"),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("type", sa.String(16), nullable=False, comment="USERS | ACCOUNTS"),
        sa.Column("query", sa.Text(), nullable=False, comment="Segment's query language"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "status", sa.String(16), nullable=False, comment="computing | ready | failed | disabled"
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("computed_us", sa.BigInteger(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "key"),
    )
    op.create_table(
        "computed_values",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=False, comment="a definition's key"),
        sa.Column("value", sa.Text(), nullable=False, comment="JSON; audiences: true for members"),
        sa.Column("computed_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "profile_id", "key"),
    )
    op.create_index(
        "ix_computed_values_key", "computed_values", ["workspace_id", "key", "profile_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_computed_values_key", table_name="computed_values")
    op.drop_table("computed_values")
    op.drop_table("definitions")
