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
    return _lifetimes_file("CDNOW_master.txt")


def cdnow_sample_path() -> Path:
    """Where CDNOW_sample.txt is: the 1/10 cohort (2,357 customers) the BTYD papers fit, one
    line per order: master id, sample id, yyyymmdd, CDs, dollar value (no header)."""
    return _lifetimes_file("CDNOW_sample.txt")


def _lifetimes_file(name: str) -> Path:
    try:
        spec = importlib.util.find_spec("lifetimes")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location, "datasets", name)
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"The real data ({name} from the 'lifetimes' package) is not installed: " + INSTALL_HINT
    )
