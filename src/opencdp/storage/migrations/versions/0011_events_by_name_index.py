"""an index of the events by name: a computed trait or audience reads one kind of event
(``event('Order Completed')``) over the whole workspace; without it each statement walked
every event of the workspace and looked each row up to test its name. With the profile and
the time in it, counts, windows and first/last times are answered from the index alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_name",
        "events",
        ["workspace_id", "type", "event", "profile_id", "timestamp_us"],
    )


def downgrade() -> None:
    op.drop_index("ix_events_name", table_name="events")
