"""Erasure reaches the recommendation models: a stored version's files list the customers it
was trained on (their profile ids, their interactions, their ALS factors). After a profile is
erased, every version that still names it is rewritten without it (invariant 7: no store the
platform controls keeps the person). What the models learnt about products — popularity,
co-occurrence, the products' factors — is an aggregate over all customers and stays until
the next training, which no longer sees the person at all.
"""

from __future__ import annotations

import logging
import shutil

from opencdp.recs import artifact
from opencdp.runtime import Runtime
from opencdp.storage.recs import ModelVersion

log = logging.getLogger(__name__)


def scrub_models(rt: Runtime, workspace_id: str, versions: list[str] | None = None) -> int:
    """Rewrite each stored version of the workspace (only ``versions`` when given) whose
    customers include a profile that no longer exists; returns how many were rewritten.
    Idempotent, and safe beside a training or another process's scrub."""
    rewritten = 0
    for version in rt.recs.versions(workspace_id):
        if version.path is None or (versions is not None and version.version not in versions):
            continue
        if _scrub_version(rt, version):
            rewritten += 1
    if rewritten:
        rt.recommender.forget(workspace_id)
    return rewritten


def _scrub_version(rt: Runtime, version: ModelVersion) -> bool:
    import numpy as np

    assert version.path is not None
    directory = rt.settings.data_dir / version.path
    try:
        model = artifact.load(directory)
    except (OSError, ValueError):
        return False  # pruned meanwhile, or a layout this version does not read
    users = [str(u) for u in model.user_ids]
    present = rt.recs.existing_profiles(version.workspace_id, users)
    if len(present) == len(users):
        return False
    keep = np.fromiter((u in present for u in users), dtype=bool, count=len(users))
    stem = version.path.split("~", 1)[0]
    new_path = f"{stem}~{rt.now_us()}"
    artifact.save(model.keeping_users(keep), rt.settings.data_dir / new_path)
    moved = rt.recs.move_files(
        version.workspace_id, version.version, version.path, new_path, int(keep.sum())
    )
    # The files that are no longer recorded go: the old ones, or ours when another process
    # pruned or rewrote the version first. A server that still maps them keeps reading them
    # until its model cache looks again (seconds); no new reader can open them.
    shutil.rmtree(directory if moved else rt.settings.data_dir / new_path, ignore_errors=True)
    if moved:
        log.info(
            "recommendations %s %s: %d erased customers removed",
            version.workspace_id,
            version.version,
            len(users) - int(keep.sum()),
        )
    return moved
