"""Consent per category, the pure core: Segment's shape on events, the traits it becomes on the
profile, and the decision whether a profile may receive what a destination serves.

On an event, consent is ``context.consent.categoryPreferences = {"<category id>": true|false}``
(Segment's shape). A category id is case-sensitive, under 35 characters and does not start
with a digit. The track event :data:`CONSENT_EVENT` must carry it.

On the profile, each category is the trait ``consent.<category id>`` (``true``/``false``), set
from the event with its time, source and message id: last write wins by event time, and merges,
erasure and export treat it like any trait. Only the categories an event names are set (Segment
counts a category missing from an event as false; we do not, because a partial update — one
banner asking for one category, a self-service toggle — must not withdraw every other
category). Traits sent as ``consent.*`` in ``traits``/``context.traits`` are dropped: consent
changes only through consent preferences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: the track event Segment requires whenever preferences change
CONSENT_EVENT = "Segment Consent Preference Updated"
#: the prefix of the traits that hold consent on a profile
TRAIT_PREFIX = "consent."
#: a category id is shorter than this
MAX_CATEGORY_LENGTH = 35

# Reasons a message is quarantined for its consent (stable strings: the API filters on them).
CONSENT_PREFERENCES_MISSING = "consent_preferences_missing"
INVALID_CONSENT_PREFERENCES = "invalid_consent_preferences"


def category_problem(category: Any) -> str | None:
    """What is wrong with ``category`` as a category id, or None when it is one."""
    if not isinstance(category, str) or not category:
        return "a category id is a non-empty string"
    if len(category) >= MAX_CATEGORY_LENGTH:
        return f"category id {category[:40]!r} is not under {MAX_CATEGORY_LENGTH} characters"
    if category[0].isdigit():
        return f"category id {category!r} starts with a digit"
    if category != category.strip() or any(ord(c) < 32 or c == "\x7f" for c in category):
        return f"category id {category!r} has spaces around it or control characters"
    return None


def check_categories(categories: Iterable[Any]) -> list[str]:
    """The category ids, de-duplicated and sorted; raises ``ValueError`` naming the first that
    is not one (for settings that declare categories)."""
    out: set[str] = set()
    for category in categories:
        problem = category_problem(category)
        if problem is not None:
            raise ValueError(problem)
        out.add(category)
    return sorted(out)


def trait_key(category: str) -> str:
    """The profile trait that holds consent to ``category``."""
    return TRAIT_PREFIX + category


def is_consent_key(key: str) -> bool:
    """Whether a trait key is a consent trait (which only consent preferences may set)."""
    return key.startswith(TRAIT_PREFIX)


def category_of(key: str) -> str | None:
    """The category a consent trait key holds (``consent.marketing`` → ``marketing``), or None
    when the key is not a consent trait of a valid category id."""
    if not is_consent_key(key):
        return None
    category = key[len(TRAIT_PREFIX) :]
    return category if category_problem(category) is None else None


def preferences_problem(message: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a message cannot be accepted for its consent, as (reason, detail), or None.

    ``context.consent``, when present, must be an object; its ``categoryPreferences``, when
    present, an object of category id → boolean. :data:`CONSENT_EVENT` needs them."""
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    required = message.get("type") == "track" and message.get("event") == CONSENT_EVENT
    if consent is None:
        if required:
            return CONSENT_PREFERENCES_MISSING, _missing()
        return None
    if not isinstance(consent, dict):
        return INVALID_CONSENT_PREFERENCES, "context.consent must be a JSON object"
    preferences = consent.get("categoryPreferences")
    if preferences is None:
        return (CONSENT_PREFERENCES_MISSING, _missing()) if required else None
    if not isinstance(preferences, dict):
        return (
            INVALID_CONSENT_PREFERENCES,
            "context.consent.categoryPreferences must be an object of category id -> true|false",
        )
    for category, value in preferences.items():
        problem = category_problem(category)
        if problem is not None:
            return INVALID_CONSENT_PREFERENCES, f"context.consent.categoryPreferences: {problem}"
        if not isinstance(value, bool):
            return (
                INVALID_CONSENT_PREFERENCES,
                f"context.consent.categoryPreferences.{category} must be true or false, "
                f"not {_kind(value)}",
            )
    return None


def consent_traits(message: Mapping[str, Any]) -> dict[str, bool]:
    """The consent traits an event sets: ``consent.<category>`` for each category of its
    ``context.consent.categoryPreferences`` (none when it has none; entries that are not a
    valid category id with a boolean are left out — collection refuses such events)."""
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return {}
    return {
        trait_key(category): value
        for category, value in preferences.items()
        if isinstance(value, bool) and category_problem(category) is None
    }


def without_consent(traits: Mapping[str, Any]) -> dict[str, Any]:
    """``traits`` without the consent traits (which only consent preferences may set)."""
    return {k: v for k, v in traits.items() if not is_consent_key(k)}


def recorded(traits: Mapping[str, Any]) -> dict[str, Any]:
    """Category → value of the consent traits among a profile's ``traits``."""
    return {k[len(TRAIT_PREFIX) :]: v for k, v in traits.items() if is_consent_key(k)}


def allowed(
    categories: Iterable[str], preferences: Mapping[str, Any], *, missing_counts_as: bool
) -> bool:
    """Whether a profile with these ``preferences`` (category → recorded value) may receive
    what serves every one of ``categories``: each must be recorded ``true``, or have no record
    when the workspace counts a missing record as consent (``opt-out``). No categories: yes."""
    for category in categories:
        if category in preferences:
            if preferences[category] is not True:
                return False
        elif not missing_counts_as:
            return False
    return True


def _missing() -> str:
    return (
        f"{CONSENT_EVENT!r} needs context.consent.categoryPreferences, an object of "
        "category id -> true|false"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a number"
