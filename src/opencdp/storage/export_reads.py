"""Reading everything of one person for a data-subject export: the rows of every table the
personal-data registry finds by profile, in one read transaction, one query per table."""

from __future__ import annotations

from typing import Any

from opencdp.storage.db import Database
from opencdp.storage.personal_data import REGISTRY, select_rows


def rows_of_person(
    db: Database, workspace_id: str, profile_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Table -> the profile's rows (and those of profiles merged into it), as dicts; every
    table the registry finds by profile is present, empty when it holds nothing of them."""
    out: dict[str, list[dict[str, Any]]] = {}
    with db.read() as conn:
        for table, declaration in sorted(REGISTRY.items()):
            if declaration.found_by_profile:
                rows = conn.execute(select_rows(table, workspace_id, profile_id))
                # plain str keys: SQLAlchemy names are a str subclass JSON encoders refuse
                out[table] = [{str(k): v for k, v in r._mapping.items()} for r in rows]
    return out
