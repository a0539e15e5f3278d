"""predicted CLV: the BG/NBD and Gamma-Gamma model fitted for each workspace (parameters and
fit statistics only; the per-profile predictions are computed values)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clv_models",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("time_unit", sa.String(8), nullable=False, comment="day | week"),
        sa.Column("calibration_end", sa.String(10), nullable=False, comment="ISO date, included"),
        sa.Column(
            "model",
            sa.Text(),
            nullable=False,
            comment="JSON: BG/NBD and Gamma-Gamma parameters, log-likelihoods, customers, holdout",
        ),
        sa.Column("fitted_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id"),
    )


def downgrade() -> None:
    op.drop_table("clv_models")
