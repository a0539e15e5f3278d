"""identity epoch: a counter every identity writer advances, so that a worker can resolve a
batch outside the write lock and write it only if nobody changed identity state meanwhile

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_epoch",
        sa.Column(
            "scope", sa.String(length=16), nullable=False, comment="'all': one counter for now"
        ),
        sa.Column(
            "epoch",
            sa.BigInteger(),
            nullable=False,
            comment="advanced by every transaction that changes profiles, identifiers or traits",
        ),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.execute("INSERT INTO identity_epoch (scope, epoch) VALUES ('all', 0)")


def downgrade() -> None:
    op.drop_table("identity_epoch")
