"""deliveries.status holds suppressed_by_consent (21 characters): widened to 32

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_WAITING = "status IN ('pending', 'retrying')"
_OLD = "pending | retrying | delivered | dead"
_NEW = "pending | retrying | delivered | dead | suppressed_by_consent"


def _alter(length: int, comment: str, before: int, previous: str) -> None:
    # SQLite rebuilds the table (batch mode); the partial index is dropped and made again
    # around it so that its predicate survives on every version.
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column(
            "status",
            existing_type=sa.String(before),
            type_=sa.String(length),
            existing_nullable=False,
            comment=comment,
            existing_comment=previous,
        )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_us"],
        sqlite_where=sa.text(_WAITING),
        postgresql_where=sa.text(_WAITING),
    )


def upgrade() -> None:
    _alter(32, _NEW, 16, _OLD)


def downgrade() -> None:
    _alter(16, _OLD, 32, _NEW)
