"""The consent check: every delivery passes :meth:`ConsentCheck.denied` before it is sent.

A destination declares the consent categories it serves (``settings.consent_categories``;
``settings.purposes``, the earlier name, counts too), read with :func:`purposes_of`. The
runtime's check, :class:`ProfileConsent`, denies the profiles whose consent traits
(``consent.<category>``, :mod:`opencdp.privacy.consent`) do not give every one of them; a
category without a record follows the workspace's ``consent_default``. A destination that
declares none receives everything (as Segment's unmapped destinations). A denied delivery is
not sent and ends ``suppressed_by_consent``, without an attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from opencdp.privacy.consent import allowed, recorded, trait_key
from opencdp.storage.destinations import DestinationRow

if TYPE_CHECKING:
    from opencdp.privacy.workspace_settings import WorkspaceSettings
    from opencdp.storage.profiles import ProfileStore


class ConsentCheck(Protocol):
    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        """The profiles among ``profile_ids`` that have not consented to what
        ``destination`` serves."""
        ...


def purposes_of(destination: DestinationRow) -> list[str]:
    """The consent categories a destination serves (none: it needs no consent):
    ``consent_categories`` and, from before that name, ``purposes``."""
    given = [
        *(destination.settings.get("consent_categories") or []),
        *(destination.settings.get("purposes") or []),
    ]
    return sorted({str(p) for p in given})


class AllowAll:
    """Denies nothing (a dispatcher built without a check)."""

    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        return set()


class ProfileConsent:
    """Consent as recorded on the profiles: one read of the categories' traits for the whole
    share of deliveries, and the workspace's default for a category without a record."""

    def __init__(
        self, profiles: ProfileStore, settings: Callable[[str], WorkspaceSettings]
    ) -> None:
        self.profiles = profiles
        self.settings = settings

    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        categories = purposes_of(destination)
        if not categories or not profile_ids:
            return set()
        missing = self.settings(workspace_id).consent_missing_counts_as()
        found = self.profiles.trait_values(
            workspace_id, profile_ids, [trait_key(c) for c in categories]
        )
        return {
            pid
            for pid in profile_ids
            if not allowed(categories, recorded(found.get(pid, {})), missing_counts_as=missing)
        }
