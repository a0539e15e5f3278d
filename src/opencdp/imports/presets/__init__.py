"""Packaged import mappings, usable by name (``--mapping cdnow``), and the ``cdnow`` file name.

The same files are in ``examples/mappings/`` with their comments; a test keeps them equal.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from opencdp.errors import ConfigurationError
from opencdp.imports.mapping import ImportMapping, compile_mapping, load_mapping, parse_mapping

#: Preset name -> file in this package.
PRESETS: dict[str, str] = {
    "cdnow": "cdnow-orders.yaml",
    "magento2-customers": "magento2-customers.yaml",
    "magento2-orders": "magento2-orders.yaml",
    "magento2-order-items": "magento2-order-items.yaml",
}


def preset_text(name: str) -> str:
    """The YAML text of a preset."""
    return resources.files(__name__).joinpath(PRESETS[name]).read_text(encoding="utf-8")


def resolve_mapping(value: str | None, kind: str) -> ImportMapping:
    """A mapping from a file path or a preset name; events without a mapping pass through
    (rows are Segment messages already)."""
    if value is None:
        if kind == "events":
            return compile_mapping({"kind": "events"}, name="segment-passthrough")
        raise ConfigurationError(
            f"importing {kind} needs --mapping FILE.yaml (or a preset: {', '.join(PRESETS)}); "
            "see docs/import.md and examples/mappings/"
        )
    if value in PRESETS and not Path(value).exists():
        return parse_mapping(preset_text(value), kind=kind, name=PRESETS[value])
    if not Path(value).exists():
        raise ConfigurationError(
            f"no mapping file and no preset named {value!r}; the presets are: "
            f"{', '.join(PRESETS)} (or give the path of a YAML mapping, see docs/import.md)",
            code="invalid_mapping",
        )
    return load_mapping(value, kind=kind)


def resolve_file(value: str) -> Path:
    """A file argument as a path; ``cdnow`` is CDNOW_master.txt of the installed ``lifetimes``."""
    if value == "cdnow" and not Path(value).exists():
        from opencdp.datasets import cdnow_path

        return cdnow_path()
    return Path(value)
