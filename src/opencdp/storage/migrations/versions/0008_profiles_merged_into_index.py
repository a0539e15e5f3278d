"""an index of the profiles merged into another: a merge re-points the profiles merged into
the absorbed one, which scanned every profile of the store without it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 07:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_profiles_merged_into",
        "profiles",
        ["workspace_id", "merged_into"],
        sqlite_where=sa.text("merged_into IS NOT NULL"),
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_profiles_merged_into",
        table_name="profiles",
        sqlite_where=sa.text("merged_into IS NOT NULL"),
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )
