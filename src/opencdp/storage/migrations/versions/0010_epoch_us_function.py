"""opencdp_epoch_us(text): a timestamp string as microseconds since the epoch, or NULL — the
query language's timestamp comparators in SQL (PostgreSQL; SQLite registers the same function
from Python on every connection)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The pattern of opencdp.query.values.TIMESTAMP_TEXT when this migration was written; a
# contract test holds the two equal on both backends.
_PATTERN = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"([Zz]|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?\s*$"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION opencdp_epoch_us(value text) RETURNS bigint
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
            text_value text := btrim(value);
        BEGIN
            IF value IS NULL OR value !~ '{_PATTERN}' THEN
                RETURN NULL;
            END IF;
            IF text_value ~ '([Zz]|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$'
               AND text_value ~ '[T ][0-9]{{2}}:' THEN
                RETURN floor(extract(epoch FROM text_value::timestamptz) * 1000000);
            END IF;
            RETURN floor(extract(epoch FROM (text_value::timestamp AT TIME ZONE 'UTC')) * 1000000);
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS opencdp_epoch_us(text)")
