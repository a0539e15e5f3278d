"""Rows as plain data."""

from __future__ import annotations

from typing import Any


def plain(row: Any) -> dict[str, Any]:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's are ``quoted_name``, which
    orjson refuses as keys)."""
    return {str(k): v for k, v in row._mapping.items()}
