"""``opencdp import revert RUN``: undo an import run, so that a wrong import can be redone.

The run's events are removed, and every profile they touched (with the profiles merged into it)
is rebuilt from its remaining events, through the same identity resolution and trait merging as
live traffic, in one transaction. Profiles, identifiers and traits that only the run brought
disappear; merges that only the run's events bridged are undone; what other events said stays.
The run is marked ``reverted``, so importing the file again (with a fixed mapping, or the same
one) stores its rows anew.
"""

from __future__ import annotations

from typing import Any

from opencdp.errors import ConfigurationError
from opencdp.runtime import Runtime
from opencdp.storage import rebuild
from opencdp.storage.import_runs import REVERTED, ImportRun, ImportRunStore
from opencdp.storage.inbox import InboxRow


def revert_run(runtime: Runtime, workspace_id: str, run_id: str) -> dict[str, Any]:
    """Undo ``run_id``; answers how many events were removed and profiles rebuilt."""
    runs = ImportRunStore(runtime.db)
    run = find_run(runs, workspace_id, run_id)
    if run.status == REVERTED:
        raise ConfigurationError(
            f"run {run.id} ({run.file_name}) is already reverted; import the file again to "
            "store it anew"
        )
    with runtime.db.write() as conn:
        # Before reading what to rebuild: no worker may change those profiles meanwhile.
        runtime.processor.lock_identity(conn)
        removed = rebuild.run_event_count(conn, workspace_id, run.id)
        touched = touched_profiles(conn, workspace_id, run.id)
        remaining = rebuild.remaining_events(conn, workspace_id, touched, run.id)
        rebuild.clear_profiles(conn, workspace_id, touched)
        rows = [
            InboxRow(0, workspace_id, e.source_id, e.message_id, e.received_us, e.payload)
            for e in remaining
        ]
        failed = runtime.processor.process_again(conn, rows)
        rebuild.restore_run_tags(
            conn,
            workspace_id,
            {e.message_id: e.import_run_id for e in remaining if e.import_run_id},
        )
        runs.mark_reverted(conn, workspace_id, run.id, runtime.now_us())
    return {
        "run": run.id,
        "file": run.file_name,
        "events_removed": removed,
        "profiles_rebuilt": len(touched),
        "events_processed_again": len(rows),
        "quarantined": failed,
    }


def touched_profiles(conn: Any, workspace_id: str, run_id: str) -> set[str]:
    """The profiles to rebuild: those holding the run's events, the profiles merged into them,
    and those whose events had one of their identifiers demoted (it may belong elsewhere
    without the run), until the set stops growing."""
    found = rebuild.with_absorbed(
        conn, workspace_id, rebuild.run_profiles(conn, workspace_id, run_id)
    )
    while True:
        grown = rebuild.with_absorbed(
            conn, workspace_id, rebuild.influenced_profiles(conn, workspace_id, found)
        )
        if grown == found:
            return found
        found = grown


def find_run(runs: ImportRunStore, workspace_id: str, run_id: str) -> ImportRun:
    """The run named by its id or an unambiguous prefix of it."""
    run = runs.get(workspace_id, run_id)
    if run is not None:
        return run
    matches = [r for r in runs.list(workspace_id, limit=10_000) if r.id.startswith(run_id)]
    if len(matches) == 1 and run_id:
        return matches[0]
    raise ConfigurationError(
        f"no import run {run_id!r} in workspace {workspace_id!r}"
        + (" (the prefix is ambiguous)" if len(matches) > 1 else "")
        + "; `opencdp import runs` lists them"
    )


def replaceable_runs(runtime: Runtime, workspace_id: str, kind: str, file_name: str) -> list[str]:
    """Earlier runs of the same kind and file name that are not reverted (for ``--replace``)."""
    runs = ImportRunStore(runtime.db).list(workspace_id, limit=10_000)
    return [
        r.id for r in runs if r.kind == kind and r.file_name == file_name and r.status != REVERTED
    ]
