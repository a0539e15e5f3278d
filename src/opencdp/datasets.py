"""Real datasets that ship inside installed Python packages and load offline (see
``docs/import.md``): found here for the import presets and the demo alike."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from opencdp.errors import ConfigurationError

#: What to run when a dataset's package is missing.
INSTALL_HINT = (
    "run `make install`, or `pip install --no-deps lifetimes==0.11.3` in the same environment"
)


def cdnow_path() -> Path:
    """Where CDNOW_master.txt is, inside the installed ``lifetimes`` package.

    Finds the package without importing it (its code needs an old pandas). Raises
    :class:`~opencdp.errors.ConfigurationError` saying how to install it when it is missing.
    """
    try:
        spec = importlib.util.find_spec("lifetimes")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location, "datasets", "CDNOW_master.txt")
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        "The demo's real data (CDNOW_master.txt from the 'lifetimes' package) is not installed: "
        + INSTALL_HINT
    )
