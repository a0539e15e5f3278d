"""Suppressed subjects at collection: an event of a suppressed person is refused before it is
stored anywhere (not the inbox, not the quarantine), and counted.

An event names a person by its ``userId``, ``anonymousId``, and the ``email`` and ``phone`` of
its ``traits`` or ``context.traits``; each is hashed the way a suppression is stored
(:func:`opencdp.privacy.regulations.subject_hash`) and looked up in the workspace's set of
suppressed hashes. The set is cached per workspace for :data:`TTL_SECONDS` (a suppression
made in another process takes effect within that time; the process that makes it drops its
cache at once), and a workspace without suppressions costs one set lookup per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from opencdp.clock import Clock
from opencdp.identity.identifiers import normalize_email, normalize_phone
from opencdp.privacy.regulations import hash_with, suppression_key
from opencdp.ttl_cache import TtlCache

#: seconds a workspace's suppressions are cached in a process
TTL_SECONDS = 2.0


class Suppressions:
    """The suppressed subjects of each workspace, as the collector checks them."""

    def __init__(self, load: Callable[[str], frozenset[str]], key: bytes, clock: Clock) -> None:
        self._load = load
        self._key = suppression_key(key)
        self._cache: TtlCache[str, frozenset[str]] = TtlCache(clock, TTL_SECONDS)

    def of(self, workspace_id: str) -> frozenset[str]:
        return self._cache.get(workspace_id, lambda: self._load(workspace_id))

    def invalidate(self) -> None:
        """Forget what is cached (after a suppression was added or lifted in this process)."""
        self._cache.clear()

    def is_suppressed(self, hashes: frozenset[str], message: dict[str, Any]) -> bool:
        """Whether ``message`` names a subject among ``hashes``."""
        return any(hash_with(self._key, t, v) in hashes for t, v in subjects_of(message))


def subjects_of(message: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(subject type, normalized value) of what names a person in a message."""
    for field, kind in (("userId", "USER_ID"), ("anonymousId", "ANONYMOUS_ID")):
        value = message.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            yield kind, str(value).strip()
    context = message.get("context")
    for traits in (
        message.get("traits"),
        context.get("traits") if isinstance(context, dict) else None,
    ):
        if not isinstance(traits, dict):
            continue
        email = normalize_email(traits.get("email"))
        if email:
            yield "EMAIL", email
        phone = traits.get("phone")
        normalized = normalize_phone(phone) if isinstance(phone, str) else None
        if normalized:
            yield "PHONE", normalized
