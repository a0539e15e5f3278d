"""import provenance: events and quarantine rows name their import run, runs keep their mapping
(for `import revert` and re-converting quarantined rows); quarantine dismissal notes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "import_run_id",
                sa.String(length=64),
                nullable=True,
                comment="the import run that stored it",
            )
        )
        batch_op.create_index("ix_events_import_run", ["workspace_id", "import_run_id"])
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.alter_column(
            "resolution",
            existing_type=sa.String(length=32),
            existing_nullable=True,
            comment="replayed | duplicate | imported | dismissed",
            existing_comment="replayed | duplicate",
        )
        batch_op.add_column(
            sa.Column(
                "resolution_note", sa.Text(), nullable=True, comment="why an operator dismissed it"
            )
        )
        batch_op.add_column(
            sa.Column(
                "import_run_id",
                sa.String(length=64),
                nullable=True,
                comment="the import run of an invalid_row",
            )
        )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mapping", sa.Text(), nullable=True, comment="JSON: the mapping the run used")
        )
        batch_op.add_column(
            sa.Column(
                "reverted_us",
                sa.BigInteger(),
                nullable=True,
                comment="when `import revert` undid it",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_column("reverted_us")
        batch_op.drop_column("mapping")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_column("import_run_id")
        batch_op.drop_column("resolution_note")
        batch_op.alter_column(
            "resolution",
            existing_type=sa.String(length=32),
            existing_nullable=True,
            comment="replayed | duplicate",
            existing_comment="replayed | duplicate | imported | dismissed",
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_import_run")
        batch_op.drop_column("import_run_id")
