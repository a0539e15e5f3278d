"""privacy and access: roles and instance administrators, workspace settings, regulations,
suppressions, the audit log

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(
            sa.Column(
                "settings",
                sa.Text(),
                nullable=True,
                comment="JSON: privacy settings (consent default, self-service traits and origins)",
            )
        )
    with op.batch_alter_table("access_tokens") as batch:
        batch.alter_column(
            "scope",
            existing_type=sa.String(32),
            existing_nullable=False,
            comment="the role: admin | write | read | support",
        )
        batch.add_column(
            sa.Column(
                "instance_admin",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
                comment="an instance administrator: every workspace, and workspaces themselves",
            )
        )
    op.create_table(
        "regulations",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column(
            "regulation_type",
            sa.String(40),
            nullable=False,
            comment="DELETE_ONLY, SUPPRESS_ONLY, …",
        ),
        sa.Column(
            "subject_type", sa.String(20), nullable=False, comment="USER_ID, EMAIL, PHONE, …"
        ),
        sa.Column(
            "subjects",
            sa.Text(),
            nullable=False,
            comment="JSON: the subject ids; replaced by keyed hashes once a deletion finishes",
        ),
        sa.Column(
            "status",
            sa.String(20),
            nullable=False,
            comment="INITIALIZED | RUNNING | FINISHED | …",
        ),
        sa.Column(
            "progress", sa.Text(), nullable=False, comment="JSON: steps done, counts per store"
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=True, comment="token id, or cli:<user>"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_regulations_status", "regulations", ["status", "created_us"])
    op.create_table(
        "suppressions",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "subject_hash",
            sa.String(64),
            nullable=False,
            comment="HMAC of the subject type and its normalized value under the server key",
        ),
        sa.Column("subject_type", sa.String(20), nullable=False),
        sa.Column(
            "subject_id",
            sa.String(500),
            nullable=True,
            comment="the value, kept only while nothing of the person was deleted (SUPPRESS_ONLY)",
        ),
        sa.Column("regulation_id", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "subject_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "actor",
            sa.String(200),
            nullable=False,
            comment="token id and name, or cli:<os user>",
        ),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False, comment="api | cli | self"),
        sa.Column(
            "action",
            sa.String(100),
            nullable=False,
            comment="e.g. destination.put, profile.read",
        ),
        sa.Column(
            "target", sa.String(300), nullable=True, comment="the object's key (never a value)"
        ),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True, comment="the HTTP status answered"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_ws_at", "audit_log", ["workspace_id", "at_us"])
    op.create_index("ix_audit_ws_action", "audit_log", ["workspace_id", "action", "at_us"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("suppressions")
    op.drop_table("regulations")
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("instance_admin")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("settings")
