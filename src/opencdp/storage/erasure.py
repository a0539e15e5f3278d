"""The SQL of erasure: remove one person's rows from every store the personal-data registry
lists, and the rows no column links to a profile that hold one of their identifiers.

It follows :mod:`opencdp.storage.personal_data` (a table added there is erased here without
a change), runs inside the caller's transaction, and is idempotent: erasing a person already
erased removes nothing and fails nothing.

What rows not linked to a profile are searched for, and how:

* ``inbox``, ``quarantine`` and ``deliveries`` rows without a profile, or whose profile no
  longer exists (not processed yet, rejected at collection, sent without a profile, rebuilt
  by an import revert), whose text holds one of the person's identifier values, matched
  case-insensitively as written and as JSON escapes it, are deleted;
* ``import_runs`` reports that quote one of the values have it replaced by ``[erased]`` (the
  run stays, as the record of an import).

A value the person wrote in another form than the stored identifier (a phone number with
spaces, where the identifier is E.164) is not found in those unlinked rows; see
``docs/privacy.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, exists, func, or_, select, update

from opencdp.privacy.redaction import needles, redact
from opencdp.storage.db import Database
from opencdp.storage.personal_data import REGISTRY, delete_rows, profile_family
from opencdp.storage.schema import (
    deliveries,
    identifiers,
    import_runs,
    inbox,
    metadata,
    profiles,
    quarantine,
)

# The unlinked rows searched by value: table -> the text columns searched.
_UNLINKED_ROWS = {
    inbox: ("payload",),
    quarantine: ("payload", "detail", "violations"),
    deliveries: ("payload", "last_request", "last_response"),
}


def identifier_values(conn: Connection, workspace_id: str, profile_id: str) -> set[str]:
    """Every identifier value of the profile and of the profiles merged into it."""
    family = profile_family(workspace_id, profile_id)
    rows = conn.execute(
        select(identifiers.c.id_value).where(
            identifiers.c.workspace_id == workspace_id, identifiers.c.profile_id.in_(family)
        )
    )
    return {value for (value,) in rows}


def erase_profile(conn: Connection, workspace_id: str, profile_id: str) -> Counter[str]:
    """Delete the rows of ``profile_id`` and its merged-in profiles from every table the
    registry finds by profile (``profiles`` last: the others find the family through it).
    Returns rows removed per table."""
    removed: Counter[str] = Counter()
    tables = [t for t, d in REGISTRY.items() if d.found_by_profile and t != "profiles"]
    for table in [*sorted(tables), "profiles"]:
        result = conn.execute(delete_rows(table, workspace_id, profile_id))
        if result.rowcount:
            removed[table] += result.rowcount
    return removed


def erase_unlinked(conn: Connection, workspace_id: str, values: Iterable[str]) -> Counter[str]:
    """Delete rows without a profile id that hold one of ``values``, and redact import
    reports that quote them. Returns rows removed (or redacted) per table."""
    removed: Counter[str] = Counter()
    searched = needles(values)
    if not searched:
        return removed
    for table, columns in _UNLINKED_ROWS.items():
        matches = or_(
            *(table.c[c].icontains(n, autoescape=True) for c in columns for n in searched)
        )
        orphan = or_(
            table.c.profile_id.is_(None),
            ~exists().where(profiles.c.id == table.c.profile_id),
        )
        result = conn.execute(
            delete(table).where(table.c.workspace_id == workspace_id, orphan, matches)
        )
        if result.rowcount:
            removed[str(table.name)] += result.rowcount  # a plain str: a JSON key
    reports = conn.execute(
        select(import_runs.c.id, import_runs.c.report).where(
            import_runs.c.workspace_id == workspace_id,
            or_(*(import_runs.c.report.icontains(n, autoescape=True) for n in searched)),
        )
    ).all()
    for run_id, report in reports:
        conn.execute(
            update(import_runs)
            .where(import_runs.c.workspace_id == workspace_id, import_runs.c.id == run_id)
            .values(report=redact(report, searched))
        )
        removed["import_runs"] += 1
    return removed


def count_rows(conn: Connection, workspace_id: str, profile_id: str) -> dict[str, int]:
    """Rows of the profile's family per table found by profile (what erasure would remove)."""
    out: dict[str, int] = {}
    for table, declaration in REGISTRY.items():
        if not declaration.found_by_profile:
            continue
        target = metadata.tables[table]
        family = profile_family(workspace_id, profile_id)
        condition: Any = or_(*(target.c[c].in_(family) for c in declaration.profile_columns))
        n = conn.execute(
            select(func.count())
            .select_from(target)
            .where(target.c.workspace_id == workspace_id, condition)
        ).scalar_one()
        if n:
            out[table] = int(n)
    return out


class ErasureStore:
    """Erases people inside one transaction, and makes the freed bytes unrecoverable."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def reclaim(self) -> None:
        """Rewrite the database files so that deleted rows leave no bytes behind (see
        :meth:`Database.reclaim_deleted_space`)."""
        tables = [t for t, d in REGISTRY.items() if d.holds_personal_data]
        self.db.reclaim_deleted_space(tables)
