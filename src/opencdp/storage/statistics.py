"""Planner statistics of the tables the worker and the hot reads use as they grow (PostgreSQL).

PostgreSQL plans from statistics that ``ANALYZE`` gathers; autovacuum refreshes them only once
a minute, after 10 % of a table changed. A store filling fast (a first import, a backlog) is
read for minutes with statistics from when it was nearly empty: the dedup look-up of a batch's
message ids then scans every event of the workspace instead of probing the primary key, and
each batch costs more the larger the store grows. :func:`refresh_stale` analyzes the worker's
tables whose statistics lag behind what changed since. SQLite needs nothing: its planner uses
the indexes without statistics.
"""

from __future__ import annotations

from sqlalchemy import text

from opencdp.storage.db import Database

#: The tables whose plans the worker and the hot reads depend on (a catalog or a loyalty
#: programme loaded in bulk is read at once, on every page and at every till).
TABLES = (
    "events",
    "inbox",
    "identifiers",
    "profiles",
    "traits",
    "computed_values",
    "products",
    "inventory",
    "loyalty_members",
    "loyalty_tokens",
)
#: Analyze a table when more rows changed since its last analysis than this share of its rows
#: (and at least MIN_CHANGES).
STALE_SHARE = 0.2
MIN_CHANGES = 1_000


def refresh_stale(db: Database) -> list[str]:
    """ANALYZE the worker's tables whose statistics are stale; returns their names."""
    if db.dialect.is_sqlite:
        return []
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, n_live_tup, n_mod_since_analyze FROM pg_stat_user_tables "
                "WHERE relname = ANY(:tables)"
            ),
            {"tables": list(TABLES)},
        ).all()
        stale = [
            name
            for name, live, changed in rows
            if changed >= max(MIN_CHANGES, STALE_SHARE * (live or 0))
        ]
        for name in sorted(stale):
            conn.execute(text(f'ANALYZE "{name}"'))
        conn.commit()
    return stale
