"""governance and historical import: tracking plans, schema settings, replayable quarantine,
products, import runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "plan_id",
                sa.String(length=64),
                nullable=True,
                comment="tracking plan that judged it",
            )
        )
        batch_op.add_column(sa.Column("plan_revision", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "violations",
                sa.Text(),
                nullable=True,
                comment="JSON: [{type, field, description}]",
            )
        )
        batch_op.add_column(
            sa.Column("replays", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("last_replay_us", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "resolved_us",
                sa.BigInteger(),
                nullable=True,
                comment="set once replayed successfully",
            )
        )
        batch_op.add_column(
            sa.Column(
                "resolution", sa.String(length=32), nullable=True, comment="replayed | duplicate"
            )
        )
    # Before 0002 a retried bad message could be quarantined twice; keep its newest row.
    op.execute(
        "DELETE FROM quarantine WHERE message_id IS NOT NULL AND id NOT IN "
        "(SELECT MAX(id) FROM quarantine WHERE message_id IS NOT NULL "
        "GROUP BY workspace_id, message_id)"
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("uq_quarantine_message", ["workspace_id", "message_id"], unique=True)

    op.create_table(
        "tracking_plans",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("rules", sa.Text(), nullable=False, comment="JSON: Segment RuleV1 objects"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "id", "revision"),
    )
    op.create_table(
        "schema_settings",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column(
            "scope",
            sa.String(length=64),
            nullable=False,
            comment="a source id, or * for the workspace",
        ),
        sa.Column("tracking_plan_id", sa.String(length=64), nullable=True),
        sa.Column("settings", sa.Text(), nullable=False, comment="JSON: enforcement settings"),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "scope"),
    )
    op.create_table(
        "products",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False, comment="product id or SKU"),
        sa.Column("sku", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("category", sa.String(length=300), nullable=True),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True, comment="stock on hand, when known"),
        sa.Column("attributes", sa.Text(), nullable=False, comment="JSON: every other column"),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_table(
        "import_runs",
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column(
            "id",
            sa.String(length=64),
            nullable=False,
            comment="digest of source, kind, mapping, file",
        ),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="running | completed"),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.Text(), nullable=True, comment="JSON: counts so far"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("import_runs")
    op.drop_table("products")
    op.drop_table("schema_settings")
    op.drop_table("tracking_plans")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("uq_quarantine_message")
        for name in (
            "resolution",
            "resolved_us",
            "last_replay_us",
            "replays",
            "violations",
            "plan_revision",
            "plan_id",
        ):
            batch_op.drop_column(name)
