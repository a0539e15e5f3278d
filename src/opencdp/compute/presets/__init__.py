"""Definition sets that ship with OpenCDP (``opencdp traits apply --preset retail``): YAML files
beside this module, each with ``traits:`` and ``audiences:`` in the format of
``opencdp traits apply FILE``."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from opencdp.errors import RequestError


def names() -> list[str]:
    """The presets there are."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".yaml")
    )


def load(name: str) -> Any:
    """The document of preset ``name`` (a RequestError naming the presets if there is none)."""
    if name not in names():
        raise RequestError(
            f"there is no preset {name!r}; presets: {', '.join(names())}", code="unknown_preset"
        )
    return yaml.safe_load(resources.files(__name__).joinpath(f"{name}.yaml").read_text("utf-8"))
