"""inbox partitions: each event's partition (a hash of its first identifier), so that several
workers process disjoint partitions of the inbox, each partition in arrival order

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "partition",
                sa.SmallInteger(),
                nullable=False,
                server_default=sa.text("0"),
                comment="hash of the first identifier: which worker slot processes it, in order",
            )
        )
        batch_op.create_index(
            "ix_inbox_pending_partition",
            ["partition", "seq"],
            unique=False,
            sqlite_where=sa.text("processed_us IS NULL"),
            postgresql_where=sa.text("processed_us IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_inbox_pending_partition",
            sqlite_where=sa.text("processed_us IS NULL"),
            postgresql_where=sa.text("processed_us IS NULL"),
        )
        batch_op.drop_column("partition")
