"""retail: catalog sources, product variants and list indexes, inventory and its history, back-in-stock
requests, the loyalty programme, members, tokens and the points ledger, campaign QR codes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(
            sa.Column(
                "catalog",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
                comment="a catalog source: its Product Updated events write the product catalog",
            )
        )
    with op.batch_alter_table("products") as batch:
        batch.add_column(
            sa.Column(
                "parent_id",
                sa.String(200),
                nullable=True,
                comment="the product a variant belongs to",
            )
        )
    op.create_index("ix_products_category", "products", ["workspace_id", "category", "id"])
    op.create_index("ix_products_brand", "products", ["workspace_id", "brand", "id"])
    op.create_index("ix_products_parent", "products", ["workspace_id", "parent_id"])
    op.create_table(
        "inventory",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "product_id", "location"),
    )
    op.create_table(
        "inventory_history",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False, comment="stock after the change"),
        sa.Column("delta", sa.Integer(), nullable=False, comment="the change (after minus before)"),
        sa.Column("channel", sa.String(16), nullable=False, comment="api | import | event"),
        sa.Column(
            "reference",
            sa.String(200),
            nullable=True,
            comment="request id, import run, message id",
        ),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inventory_history_product",
        "inventory_history",
        ["workspace_id", "product_id", "at_us"],
    )
    op.create_table(
        "stock_requests",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(100), nullable=False, comment="the request event's message id"),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(200), nullable=False),
        sa.Column(
            "location", sa.String(100), nullable=False, comment="the shopper's channel's stock"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="waiting | answered"),
        sa.Column("requested_us", sa.BigInteger(), nullable=False),
        sa.Column("answered_us", sa.BigInteger(), nullable=True),
        sa.Column(
            "answer_id", sa.String(100), nullable=True, comment="the Back In Stock event's id"
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index(
        "ix_stock_requests_product", "stock_requests", ["workspace_id", "product_id", "status"]
    )
    op.create_index("ix_stock_requests_profile", "stock_requests", ["workspace_id", "profile_id"])
    op.create_table(
        "loyalty_programmes",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column(
            "definition", sa.Text(), nullable=False, comment="JSON: the programme as written"
        ),
        sa.Column("version", sa.Integer(), nullable=False, comment="raised by every change"),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column(
            "time_checked_us",
            sa.BigInteger(),
            nullable=True,
            comment="how far the timer brought expiries, expiring points and tiers",
        ),
        sa.PrimaryKeyConstraint("workspace_id"),
    )
    op.create_table(
        "loyalty_members",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column(
            "profile_id", sa.String(64), nullable=True, comment="NULL until the worker binds it"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="active | merged"),
        sa.Column(
            "merged_into", sa.String(64), nullable=True, comment="the member that absorbed it"
        ),
        sa.Column(
            "balance", sa.BigInteger(), nullable=False, comment="the sum of the ledger's points"
        ),
        sa.Column("tier", sa.String(64), nullable=True),
        sa.Column("tier_since_us", sa.BigInteger(), nullable=True),
        sa.Column(
            "channel", sa.String(16), nullable=False, comment="online | store | event | self"
        ),
        sa.Column("store_id", sa.String(100), nullable=True),
        sa.Column("enrolled_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_loyalty_members_profile", "loyalty_members", ["workspace_id", "profile_id"])
    op.create_table(
        "loyalty_tokens",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False, comment="digital | card"),
        sa.Column("status", sa.String(8), nullable=False, comment="active | revoked"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "token"),
    )
    op.create_index("ix_loyalty_tokens_member", "loyalty_tokens", ["workspace_id", "member_id"])
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column(
            "kind",
            sa.String(8),
            nullable=False,
            comment="earn | redeem | adjust | expire | reverse",
        ),
        sa.Column("points", sa.BigInteger(), nullable=False, comment="signed"),
        sa.Column(
            "dedup_key",
            sa.String(300),
            nullable=False,
            comment="exactly once: earn:<order id>, …",
        ),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "expires_us", sa.BigInteger(), nullable=True, comment="earned points expire then"
        ),
        sa.Column("message_id", sa.String(100), nullable=True, comment="the event that caused it"),
        sa.Column(
            "actor", sa.String(200), nullable=True, comment="token id, cli:<user>, or worker"
        ),
        sa.Column("at_us", sa.BigInteger(), nullable=False, comment="the event's time"),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "dedup_key", name="uq_loyalty_ledger_dedup"),
    )
    op.create_index(
        "ix_loyalty_ledger_member", "loyalty_ledger", ["workspace_id", "member_id", "id"]
    )
    op.create_index("ix_loyalty_ledger_order", "loyalty_ledger", ["workspace_id", "order_id"])
    op.create_table(
        "qr_codes",
        sa.Column(
            "code",
            sa.String(32),
            nullable=False,
            comment="unguessable, unique on the instance",
        ),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("target", sa.Text(), nullable=False, comment="the registered URL a scan goes to"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("disabled_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_qr_codes_campaign", "qr_codes", ["workspace_id", "campaign"])


def downgrade() -> None:
    for table in (
        "qr_codes",
        "loyalty_ledger",
        "loyalty_tokens",
        "loyalty_members",
        "loyalty_programmes",
        "stock_requests",
        "inventory_history",
        "inventory",
    ):
        op.drop_table(table)
    op.drop_index("ix_products_parent", table_name="products")
    op.drop_index("ix_products_brand", table_name="products")
    op.drop_index("ix_products_category", table_name="products")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("parent_id")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("catalog")
