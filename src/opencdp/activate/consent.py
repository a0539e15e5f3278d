"""The consent seam: every delivery passes :meth:`ConsentCheck.denied` before it is sent.

A destination declares the purposes it serves (``settings.purposes``, read with
:func:`purposes_of`); a check denies the profiles that do not consent to each of them. Until
consent is recorded per purpose (the privacy capability), :class:`AllowAll` is the check:
nothing is denied. A denied delivery is not sent and ends ``dead`` with the reason
``suppressed_by_consent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opencdp.storage.destinations import DestinationRow


class ConsentCheck(Protocol):
    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        """The profiles among ``profile_ids`` that have not consented to what
        ``destination`` serves."""
        ...


def purposes_of(destination: DestinationRow) -> list[str]:
    """The consent purposes a destination serves (none: it needs no consent)."""
    given = destination.settings.get("purposes") or []
    return [str(p) for p in given]


class AllowAll:
    """No consent records yet: every delivery may go."""

    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        return set()
