"""Each process's loaded models: the active version of a workspace is looked up at most every
few seconds, and its artifact (memory-mapped: the processes share the page cache) loaded when
the version changed — a training or a rollback reaches every server within that time."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from opencdp.clock import Clock
from opencdp.recs import artifact
from opencdp.recs.model import TrainedModel
from opencdp.storage.recs import ModelVersion, RecsStore
from opencdp.ttl_cache import RefreshingCache


@dataclass(frozen=True)
class Loaded:
    version: ModelVersion
    model: TrainedModel


class ModelCache:
    def __init__(self, store: RecsStore, data_dir: Path, clock: Clock, ttl: float) -> None:
        self.store = store
        self.data_dir = data_dir
        #: the active version, read again in the background after ``ttl`` (never on a request)
        self._active: RefreshingCache[str, ModelVersion | None] = RefreshingCache(clock, ttl)
        self._loaded: dict[str, Loaded] = {}
        self._lock = threading.Lock()

    def get(self, workspace_id: str) -> Loaded | None:
        """The workspace's active model, or None when it has none (or its files are gone)."""
        version = self._active.get(workspace_id, lambda: self.store.active(workspace_id))
        if version is None or version.path is None:
            return None
        loaded = self._loaded.get(workspace_id)
        if loaded is not None and _same(loaded.version, version):
            return loaded
        with self._lock:
            loaded = self._loaded.get(workspace_id)
            if loaded is None or not _same(loaded.version, version):
                try:
                    model = artifact.load(self.data_dir / version.path)
                except (OSError, ValueError):
                    return None
                loaded = Loaded(version, model)
                self._loaded[workspace_id] = loaded
            return loaded

    def forget(self, workspace_id: str) -> None:
        """This process trained or rolled back: look the version up again at once."""
        self._active.forget(workspace_id)


def _same(loaded: ModelVersion, active: ModelVersion) -> bool:
    """The loaded files are the active version's (an erasure rewrites a version's files under
    a new path)."""
    return loaded.version == active.version and loaded.path == active.path


def relative_path(workspace_id: str, version: str) -> str:
    """Where a version's artifact lives under the data directory."""
    return str(Path("recs") / workspace_id / version)
