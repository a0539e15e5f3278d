"""Erasure: remove a person from every store the platform controls (invariant 7).

:func:`erase` deletes, in one transaction under the identity lock, the rows of the given
profiles and of every profile merged into them from each table of the personal-data registry,
then the rows that no column links to a profile but that hold one of the person's identifier
values. :func:`scrub_files` then rewrites the database files so that no byte of what was
deleted remains (SQLite) or the dead tuples are vacuumed (PostgreSQL).

The regulations service (``services/privacy.py``) decides who is erased and when; this module
only erases.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from opencdp.privacy.redaction import needles, redact
from opencdp.runtime import Runtime
from opencdp.services.import_runs import REPORTS_DIR
from opencdp.storage.db import Connection
from opencdp.storage.erasure import (
    ErasureStore,
    erase_profile,
    erase_unlinked,
    identifier_values,
)


def erase(
    rt: Runtime, workspace_id: str, profile_ids: Sequence[str], values: Sequence[str]
) -> dict[str, int]:
    """Delete every row of the given profiles (and the profiles merged into them) from every
    store of the personal-data registry, and rows not linked to a profile that hold any of
    ``values`` or of the profiles' own identifier values. Idempotent. Returns rows removed per
    table (redacted, for import reports)."""
    with rt.db.write() as conn:
        removed, searched = erase_in(rt, conn, workspace_id, profile_ids, values)
    files = redact_report_files(rt.settings.data_dir / REPORTS_DIR, searched)
    if files:
        removed["report_files"] += files
    return dict(sorted(removed.items()))


def erase_in(
    rt: Runtime,
    conn: Connection,
    workspace_id: str,
    profile_ids: Sequence[str],
    values: Sequence[str],
) -> tuple[Counter[str], list[str]]:
    """:func:`erase`'s deletions inside ``conn``'s transaction (the caller commits them with
    whatever else must be atomic with them); returns the rows removed per table and the values
    searched for (for :func:`redact_report_files` after the commit)."""
    # Workers that resolved a batch before this transaction resolve it again: no event lands
    # on a profile that no longer exists.
    rt.processor.lock_identity(conn)
    removed: Counter[str] = Counter()
    searched = {v for v in values if v}
    for profile_id in dict.fromkeys(profile_ids):
        searched |= identifier_values(conn, workspace_id, profile_id)
        removed += erase_profile(conn, workspace_id, profile_id)
    removed += erase_unlinked(conn, workspace_id, sorted(searched))
    return removed, sorted(searched)


def redact_report_files(directory: Path, values: Sequence[str]) -> int:
    """Replace the values in every report file under ``directory`` that quotes one (an
    invalid cell of an import); returns how many files were rewritten. A file is rewritten to
    a new file that then replaces it, so the old bytes leave the directory with its inode."""
    searched = needles(values)
    if not searched or not directory.is_dir():
        return 0
    lowered = [n.lower().encode() for n in searched]
    rewritten = 0
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if not any(n in data.lower() for n in lowered):
            continue
        text = redact(data.decode("utf-8", errors="replace"), searched)
        # HTML reports escape some characters; what still matches is cut out whole
        fresh = path.with_name(path.name + ".erasing")
        fresh.write_text(text, encoding="utf-8")
        os.replace(fresh, path)
        rewritten += 1
    return rewritten


def scrub_files(rt: Runtime) -> None:
    """Make deleted bytes unrecoverable from the data files (SQLite: vacuum, then empty the
    write-ahead log; PostgreSQL: VACUUM the tables that hold personal data)."""
    ErasureStore(rt.db).reclaim()
