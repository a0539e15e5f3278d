"""Which fields of a Segment message become identifiers (segment-compat.md §2.3).

Extraction is pure and total: it never raises on odd input. A field of the wrong shape is
ignored, not an error, because the message has already been accepted and must still be placed
on a profile by whatever identifiers it does carry. Blocked values (``null``, ``0``, …) are
*not* removed here: the graph drops them and records that it did, so the drop is explainable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import phonenumbers

from opencdp.identity.rules import is_valid_type

if TYPE_CHECKING:
    from opencdp.identity.rules import IdentityConfig

#: Longer values are dropped: no real identifier is that long, and they bloat every index.
MAX_VALUE_LENGTH: Final = 500

# Device types whose ids get platform-specific identifier types (android.id, ios.idfa, …).
_PLATFORMS: Final = frozenset({"android", "ios"})
_WHITESPACE: Final = re.compile(r"\s")


@dataclass(frozen=True, order=True, slots=True)
class Identifier:
    """One external id of a profile, such as ``email:jane@example.com``."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Identifier:
        """Read ``"type:value"`` (as in the Profile API path); the type ends at the first ':'."""
        type_, sep, value = text.partition(":")
        if not sep or not type_ or not value:
            raise ValueError(f"expected 'type:value', got {text!r}")
        return cls(type_, value)


def normalize_email(s: object) -> str | None:
    """The e-mail address trimmed and lower-cased, or None if ``s`` does not look like one.

    Looking like one means: a string with exactly one ``@``, a non-empty local part, a domain
    containing a dot (not at either end) and no whitespace.
    """
    if not isinstance(s, str):
        return None
    email = s.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "@" in domain or _WHITESPACE.search(email):
        return None
    if "." not in domain or domain.startswith(".") or domain.endswith("."):
        return None
    return email


def normalize_phone(s: object, default_region: str = "US") -> str | None:
    """The phone number in E.164 (``+14155550123``), or None when it is not a valid number.

    Numbers without a ``+`` country prefix are read as numbers of ``default_region``.
    """
    if isinstance(s, bool):
        return None
    if isinstance(s, int):
        s = str(s)
    if not isinstance(s, str):
        return None
    text = s.strip()
    if not text or len(text) > 64:  # phonenumbers rejects these anyway; skip the parse
        return None
    return _phone_e164(text, default_region)


@lru_cache(maxsize=8192)
def _phone_e164(text: str, region: str) -> str | None:
    # Parsing costs tens of microseconds; the same customer's number recurs on every event.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def coerce_value(value: object) -> str | None:
    """An identifier value as a stripped string, or None when unusable.

    Numbers become strings (``42`` → ``"42"``, ``42.0`` → ``"42"``); booleans, objects and
    arrays are not identifiers; empty strings and values over 500 characters are dropped.
    """
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        return None
    if not text or len(text) > MAX_VALUE_LENGTH:
        return None
    return text


def sort_identifiers(identifiers: Iterable[Identifier], config: IdentityConfig) -> list[Identifier]:
    """Distinct identifiers, highest priority first, then by type and value (deterministic)."""
    distinct = set(identifiers)
    if len(distinct) < 2:
        return list(distinct)
    rank = config.rank
    return sorted(distinct, key=lambda i: (rank(i.type), i.type, i.value))


class _Found:
    """Collects identifiers, applying the per-type normalisation and the value rules."""

    __slots__ = ("ids", "region")

    def __init__(self, region: str) -> None:
        self.ids: set[Identifier] = set()
        self.region = region

    def add(self, type_: str, raw: object) -> None:
        if raw is None:  # the common case: the field is simply absent
            return
        value: str | None
        if type_ == "email":
            value = normalize_email(raw)
        elif type_ == "phone":
            value = normalize_phone(raw, self.region)
        else:
            value = coerce_value(raw)
        if value is not None and len(value) <= MAX_VALUE_LENGTH:
            self.ids.add(Identifier(type_, value))

    def add_external_ids(self, context: Mapping[str, Any], collection: str) -> None:
        external = context.get("externalIds")
        if not isinstance(external, list):
            return
        for entry in external:
            # Malformed entries are skipped one by one: a bad entry must not hide good ones.
            if not isinstance(entry, Mapping):
                continue
            coll = entry.get("collection")
            type_ = entry.get("type")
            if not isinstance(coll, str) or coll.strip().lower() != collection:
                continue
            if not isinstance(type_, str):
                continue
            type_ = type_.strip().lower()
            if not is_valid_type(type_) or type_ == "previous_id":
                continue
            self.add(type_, entry.get("id"))


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def extract_user_identifiers(
    message: Mapping[str, Any], config: IdentityConfig
) -> list[Identifier]:
    """The identifiers a message carries for the ``users`` collection, highest priority first.

    Reads ``userId``, ``anonymousId``, ``email``/``phone`` from the traits, ``context.traits``
    and ``properties``, device ids, push tokens and advertising ids (the latter only when ad
    tracking is enabled), the Google Analytics client id, ``context.externalIds`` of the
    ``users`` collection and the configured ``trait_keys``. Group calls' top-level traits
    describe the account, not the user, so they are not read. An alias message's
    ``previousId`` is returned as ``previous_id``; the graph decides which type it is.
    """
    found = _Found(config.default_phone_region)
    msg_type = message.get("type")
    context = _mapping(message.get("context")) or {}

    user_id = coerce_value(message.get("userId"))
    if user_id is not None:
        found.add("user_id", user_id)
    found.add("anonymous_id", message.get("anonymousId"))

    sources = [
        d
        for d in (
            None if msg_type == "group" else _mapping(message.get("traits")),
            _mapping(context.get("traits")),
            _mapping(message.get("properties")),
        )
        if d is not None
    ]
    for source in sources:
        found.add("email", source.get("email"))
        found.add("phone", source.get("phone"))

    device = _mapping(context.get("device"))
    if device is not None:
        _add_device(found, device)

    for integrations in (
        _mapping(context.get("integrations")),
        _mapping(message.get("integrations")),
    ):
        ga = _mapping(integrations.get("Google Analytics")) if integrations else None
        if ga is not None:
            found.add("ga_client_id", ga.get("clientId"))

    found.add_external_ids(context, "users")

    if config.trait_keys and sources:
        for keys, type_ in _trait_key_lookups(tuple(config.trait_keys.items())):
            for source in sources:
                for key in keys:
                    found.add(type_, source.get(key))

    if msg_type == "alias":
        previous = coerce_value(message.get("previousId"))
        # alias(userId=x, previousId=x) links nothing; don't invent an anonymous_id for it.
        if previous is not None and previous != user_id:
            found.add("previous_id", previous)

    return sort_identifiers(found.ids, config)


def _add_device(found: _Found, device: Mapping[str, Any]) -> None:
    raw_type = device.get("type")
    platform = raw_type.strip().lower() if isinstance(raw_type, str) else None
    if platform not in _PLATFORMS:
        # Only android and ios have Segment identifier types; other devices still have an id.
        found.add("device_id", device.get("id"))
        return
    found.add(f"{platform}.id", device.get("id"))
    if device.get("adTrackingEnabled") is True:
        found.add(f"{platform}.idfa", device.get("advertisingId"))
    found.add(f"{platform}.push_token", device.get("token"))


def extract_group_identifiers(
    message: Mapping[str, Any], config: IdentityConfig
) -> list[Identifier]:
    """The identifiers a message carries for the ``accounts`` collection, highest priority first.

    ``group_id`` is the ``groupId`` of a group call, or ``context.groupId`` on other calls;
    ``context.externalIds`` entries of the ``accounts`` collection are added.
    """
    found = _Found(config.default_phone_region)
    context = _mapping(message.get("context")) or {}
    if message.get("type") == "group":
        found.add("group_id", message.get("groupId"))
    else:
        found.add("group_id", context.get("groupId"))
    found.add_external_ids(context, "accounts")
    return sort_identifiers(found.ids, config)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


@lru_cache(maxsize=256)
def _trait_key_lookups(
    trait_keys: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, ...], str], ...]:
    # Clients spell the same trait memberNumber or member_number; try the configured spelling
    # first and then both conventions. Computed once per configuration.
    lookups = []
    for key, type_ in trait_keys:
        variants = tuple(dict.fromkeys((key, _snake(key), _camel(_snake(key)))))
        lookups.append((variants, type_))
    return tuple(lookups)


#: Extractor per collection, for callers that hold the collection name as data.
EXTRACTORS: Final[Mapping[str, Callable[[Mapping[str, Any], IdentityConfig], list[Identifier]]]] = (
    MappingProxyType({"users": extract_user_identifiers, "accounts": extract_group_identifiers})
)
