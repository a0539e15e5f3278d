"""profile ids on inbox and quarantine rows: the profile an event was stored on, so that the
registry of personal data (storage/personal_data.py) finds a person's raw messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "profile_id",
                sa.String(length=64),
                nullable=True,
                comment="the profile the event was stored on",
            )
        )
        batch_op.create_index("ix_inbox_profile", ["workspace_id", "profile_id"])
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "profile_id",
                sa.String(length=64),
                nullable=True,
                comment="the profile the message was stored on, once known",
            )
        )
        batch_op.create_index("ix_quarantine_profile", ["workspace_id", "profile_id"])


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_profile")
        batch_op.drop_column("profile_id")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_profile")
        batch_op.drop_column("profile_id")
