"""A trained model on disk: one directory per version, the arrays as ``.npy`` files (opened
memory-mapped, so that the server's processes share one copy in the page cache) and
``meta.json`` for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from opencdp.recs.model import TrainedModel

#: The artifact layout's version, in meta.json: a server refuses a layout it does not know.
FORMAT = 1
_DENSE = ("user_ids", "item_ids", "item_categories", "popularity", "user_factors", "item_factors")
_SPARSE = ("neighbours", "history", "purchases")


def save(model: TrainedModel, directory: Path) -> None:
    """Write ``model`` into ``directory`` (created; written under a temporary name first and
    renamed, so a reader never sees half an artifact)."""
    import numpy as np

    directory = Path(directory)
    staging = directory.with_name(directory.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    for name in _DENSE:
        value = getattr(model, name)
        if value is not None:
            np.save(staging / f"{name}.npy", np.asarray(value), allow_pickle=False)
    for name in _SPARSE:
        matrix = getattr(model, name).tocsr()
        for part in ("data", "indices", "indptr"):
            np.save(staging / f"{name}.{part}.npy", getattr(matrix, part), allow_pickle=False)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "kind": model.kind,
        "trained_us": model.trained_us,
        "shape": [len(model.user_ids), len(model.item_ids)],
        "evaluation": model.evaluation,
        "params": model.params,
    }
    (staging / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    staging.rename(directory)


def load(directory: Path) -> TrainedModel:
    """The model saved in ``directory``; ValueError when it is not a model this version reads."""
    import numpy as np
    import scipy.sparse as sp

    directory = Path(directory)
    try:
        meta = orjson.loads((directory / "meta.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ValueError(f"no readable model in {directory.name}: {error}") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"model {directory.name} has format {meta.get('format')!r}, not {FORMAT}")
    users, items = meta["shape"]
    arrays: dict[str, Any] = {}
    for name in _DENSE:
        path = directory / f"{name}.npy"
        arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False) if path.exists() else None
    shapes = {"neighbours": (items, items), "history": (users, items), "purchases": (users, items)}
    for name in _SPARSE:
        parts = [
            np.load(directory / f"{name}.{part}.npy", mmap_mode="r", allow_pickle=False)
            for part in ("data", "indices", "indptr")
        ]
        arrays[name] = sp.csr_matrix(tuple(parts), shape=shapes[name], copy=False)
    return TrainedModel(
        kind=meta["kind"],
        trained_us=meta["trained_us"],
        evaluation=meta.get("evaluation", {}),
        params=meta.get("params", {}),
        **arrays,
    )
