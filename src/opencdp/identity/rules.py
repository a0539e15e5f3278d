"""Identity resolution settings: blocked values, per-type limits, priority and graph caps.

An :class:`IdentityConfig` is immutable and hashable, so it can be shared between threads and
used as a cache key. Per-workspace overrides are stored as JSON and turned back into a config
with :meth:`IdentityConfig.from_dict`, which validates every field and says what to fix.

The defaults follow Segment's identity resolution settings (segment-compat.md §2.2): ``user_id``
1 value ever, ``anonymous_id`` 5 weekly, ``email`` 5 annually, every other type 5 ever; blocked
placeholder values such as ``null``, ``anonymous`` and ``0``; priority ``user_id`` > ``email`` >
other types alphabetically; at most 100 merges and 1000 identifiers per profile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import phonenumbers
import re2

from opencdp.errors import ConfigurationError

if TYPE_CHECKING:  # identifiers.py imports this module; only the type is needed here
    from opencdp.identity.identifiers import Identifier

_DAY_US: Final = 86_400 * 1_000_000

#: Window name -> length in microseconds (``None``: the value counts forever).
WINDOWS: Final[Mapping[str, int | None]] = MappingProxyType(
    {
        "ever": None,
        "daily": _DAY_US,
        "weekly": 7 * _DAY_US,
        "monthly": 30 * _DAY_US,  # a fixed 30 days: limits must not depend on the calendar
        "annually": 365 * _DAY_US,
    }
)

# Identifier types become half of "type:value" in the Profile API path, so they must not contain
# ':' or characters that need URL-encoding. Segment requires them lower-case.
_TYPE_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")


def is_valid_type(type_: str) -> bool:
    """True when ``type_`` can be used as an identifier type (lower-case, no ':' or spaces)."""
    return _TYPE_RE.fullmatch(type_) is not None


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``max_values`` distinct values of one identifier type per profile.

    A value counts against the limit while it was last seen less than one ``window`` before the
    event being resolved (or after it: events arrive out of order); with ``window="ever"``
    every value counts.
    """

    max_values: int
    window: str = "ever"

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_values, bool)
            or not isinstance(self.max_values, int)
            or self.max_values < 1
        ):
            raise ConfigurationError(
                f"identity limit max_values must be a whole number >= 1, got {self.max_values!r}"
            )
        if self.window not in WINDOWS:
            raise ConfigurationError(
                f"identity limit window {self.window!r} is unknown; use one of {', '.join(WINDOWS)}"
            )

    @property
    def window_us(self) -> int | None:
        """The window length in microseconds, ``None`` for ``ever``."""
        return WINDOWS[self.window]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, the inverse of :meth:`from_dict`."""
        return {"max_values": self.max_values, "window": self.window}

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "limit") -> Limit:
        """Parse ``{"max_values": int, "window": str}``; raise ConfigurationError if malformed."""
        if not isinstance(d, Mapping):
            raise ConfigurationError(
                f"{where} must be an object like "
                f'{{"max_values": 5, "window": "weekly"}}, got {type(d).__name__}'
            )
        unknown = set(d) - {"max_values", "window"}
        if unknown:
            raise ConfigurationError(
                f"{where} has unknown keys {sorted(unknown)}; only max_values and window are allowed"
            )
        if "max_values" not in d:
            raise ConfigurationError(f"{where} needs max_values (a whole number >= 1)")
        window = d.get("window", "ever")
        if not isinstance(window, str):
            raise ConfigurationError(
                f"{where}.window must be a string, one of {', '.join(WINDOWS)}"
            )
        try:
            return cls(d["max_values"], window)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc.message}") from None


DEFAULT_BLOCKED_EXACT: Final = frozenset(
    {"-1", "null", "anonymous", "undefined", "none", "nil", "void", "abc123", "test", "0"}
)
DEFAULT_BLOCKED_PATTERNS: Final = (r"^[0-]*$",)
#: Limits every config has unless it overrides them (see :class:`IdentityConfig`).
DEFAULT_LIMITS: Final[Mapping[str, Limit]] = MappingProxyType(
    {
        "user_id": Limit(1, "ever"),
        "anonymous_id": Limit(5, "weekly"),
        "email": Limit(5, "annually"),
    }
)
DEFAULT_PRIORITY: Final = ("user_id", "email")


#: How many identifier values' blocked verdicts a config remembers (then it starts afresh).
_BLOCKED_MEMO = 200_000


@dataclass(frozen=True)
class IdentityConfig:
    """How identity resolution treats identifiers (one per workspace and collection).

    * ``blocked_exact`` values (compared case-insensitively) and values matching any of
      ``blocked_patterns`` (RE2 syntax, searched anywhere in the value) are never used as identifiers.
    * ``limits`` are per-type overrides on top of :data:`DEFAULT_LIMITS`: types you do not
      mention keep their default, types in neither use ``default_limit``. (Filling in defaults
      keeps a partial override from silently lifting the ``user_id`` limit of 1.)
    * ``priority`` lists the most important types first; unlisted types rank after them,
      alphabetically. When a limit would be exceeded the lowest-ranked identifier of the event is
      demoted.
    * ``max_merges`` and ``max_identifiers`` cap a profile; past them nothing more is merged or
      added, but events still resolve to the profile.
    * ``trait_keys`` maps a trait/property key (e.g. ``member_number``) to an identifier type.
    * ``default_phone_region`` is the region used to read phone numbers without a ``+`` prefix.
    """

    blocked_exact: frozenset[str] = DEFAULT_BLOCKED_EXACT
    blocked_patterns: tuple[str, ...] = DEFAULT_BLOCKED_PATTERNS
    limits: Mapping[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    default_limit: Limit = Limit(5, "ever")
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    max_merges: int = 100
    max_identifiers: int = 1000
    trait_keys: Mapping[str, str] = field(default_factory=dict)
    default_phone_region: str = "US"
    # Derived once here so that the per-event checks are dict/set lookups and precompiled regexes.
    _compiled: tuple[Any, ...] = field(init=False, repr=False, compare=False)
    _ranks: Mapping[str, int] = field(init=False, repr=False, compare=False)
    #: is_blocked's answers for values seen lately (the pattern search is the costly part)
    _blocked: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen; this is construction
        set_(self, "blocked_exact", frozenset(str(v).strip().lower() for v in self.blocked_exact))
        set_(self, "blocked_patterns", tuple(self.blocked_patterns))
        set_(self, "priority", tuple(self.priority))
        set_(self, "limits", MappingProxyType({**DEFAULT_LIMITS, **self.limits}))
        set_(self, "trait_keys", MappingProxyType(dict(self.trait_keys)))
        self._validate()
        set_(self, "_compiled", _compile(self.blocked_patterns))
        set_(self, "_ranks", MappingProxyType({t: i for i, t in enumerate(self.priority)}))
        set_(self, "_blocked", {})

    def __hash__(self) -> int:
        return hash(
            (
                self.blocked_exact,
                self.blocked_patterns,
                tuple(sorted(self.limits.items())),
                self.default_limit,
                self.priority,
                self.max_merges,
                self.max_identifiers,
                tuple(sorted(self.trait_keys.items())),
                self.default_phone_region,
            )
        )

    def _validate(self) -> None:
        for type_, limit in self.limits.items():
            if not isinstance(type_, str) or not is_valid_type(type_):
                raise ConfigurationError(
                    f"limits: {type_!r} is not a valid identifier type "
                    "(lower-case letters, digits, '_', '.', '-'; at most 64 characters)"
                )
            if not isinstance(limit, Limit):
                raise ConfigurationError(f"limits[{type_!r}] must be a Limit, got {limit!r}")
        if not isinstance(self.default_limit, Limit):
            raise ConfigurationError(f"default_limit must be a Limit, got {self.default_limit!r}")
        for type_ in self.priority:
            if not isinstance(type_, str) or not is_valid_type(type_):
                raise ConfigurationError(f"priority: {type_!r} is not a valid identifier type")
        if len(set(self.priority)) != len(self.priority):
            raise ConfigurationError("priority lists a type twice; list each type once")
        for name, minimum in (("max_merges", 0), ("max_identifiers", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(
                    f"{name} must be a whole number >= {minimum}, got {value!r}"
                )
        for key, type_ in self.trait_keys.items():
            if not isinstance(key, str) or not key:
                raise ConfigurationError(f"trait_keys: {key!r} is not a trait key (a string)")
            if not isinstance(type_, str) or not is_valid_type(type_) or type_ == "previous_id":
                raise ConfigurationError(
                    f"trait_keys[{key!r}] = {type_!r} is not a valid identifier type "
                    "(lower-case letters, digits, '_', '.', '-'; not previous_id)"
                )
        if self.default_phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigurationError(
                f"default_phone_region {self.default_phone_region!r} is not a region code; "
                "use an upper-case ISO 3166 code such as 'US' or 'DE'"
            )

    # -- the per-event checks -------------------------------------------------------------------

    def is_blocked(self, identifier: Identifier) -> bool:
        """True when the identifier's value is a placeholder that must not link profiles."""
        value = identifier.value
        known = self._blocked.get(value)
        if known is not None:
            return known
        blocked = value.lower() in self.blocked_exact or any(
            pattern.search(value) for pattern in self._compiled
        )
        if len(self._blocked) >= _BLOCKED_MEMO:
            self._blocked.clear()
        self._blocked[value] = blocked
        return blocked

    def limit_for(self, type_: str) -> Limit:
        """The limit that applies to identifier type ``type_``."""
        return self.limits.get(type_, self.default_limit)

    def rank(self, type_: str) -> tuple[int, str]:
        """Sort key of an identifier type: lower sorts first and means higher priority."""
        index = self._ranks.get(type_)
        if index is None:
            return (len(self.priority), type_)
        return (index, "")

    # -- JSON -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A complete JSON-friendly description; ``from_dict(c.to_dict()) == c``."""
        return {
            "blocked_exact": sorted(self.blocked_exact),
            "blocked_patterns": list(self.blocked_patterns),
            "limits": {t: lim.to_dict() for t, lim in sorted(self.limits.items())},
            "default_limit": self.default_limit.to_dict(),
            "priority": list(self.priority),
            "max_merges": self.max_merges,
            "max_identifiers": self.max_identifiers,
            "trait_keys": dict(sorted(self.trait_keys.items())),
            "default_phone_region": self.default_phone_region,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base: IdentityConfig | None = None) -> IdentityConfig:
        """``base`` (default: the built-in defaults) with the settings in ``d`` applied.

        Every key present in ``d`` replaces that setting, except ``limits``, which is applied
        type by type on top of ``base.limits``. Raises ConfigurationError naming the bad field.
        """
        if base is None:
            base = cls()
        if not isinstance(d, Mapping):
            raise ConfigurationError(
                f"identity settings must be a JSON object, got {type(d).__name__}"
            )
        allowed = set(_FIELDS)
        unknown = sorted(str(k) for k in d if k not in allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown identity settings {unknown}; expected some of {sorted(allowed)}"
            )
        kwargs: dict[str, Any] = {name: getattr(base, name) for name in _FIELDS}
        if "blocked_exact" in d:
            kwargs["blocked_exact"] = frozenset(_str_list(d["blocked_exact"], "blocked_exact"))
        if "blocked_patterns" in d:
            kwargs["blocked_patterns"] = tuple(_str_list(d["blocked_patterns"], "blocked_patterns"))
        if "limits" in d:
            raw = d["limits"]
            if not isinstance(raw, Mapping):
                raise ConfigurationError(
                    'limits must be an object of type -> {"max_values": n, "window": w}'
                )
            limits = dict(base.limits)
            for type_, spec in raw.items():
                limits[type_] = Limit.from_dict(spec, where=f"limits[{type_!r}]")
            kwargs["limits"] = limits
        if "default_limit" in d:
            kwargs["default_limit"] = Limit.from_dict(d["default_limit"], where="default_limit")
        if "priority" in d:
            kwargs["priority"] = tuple(_str_list(d["priority"], "priority"))
        for name in ("max_merges", "max_identifiers"):
            if name in d:
                kwargs[name] = d[name]
        if "trait_keys" in d:
            raw = d["trait_keys"]
            if not isinstance(raw, Mapping):
                raise ConfigurationError(
                    "trait_keys must be an object of trait key -> identifier type, e.g. "
                    '{"member_number": "member_number"}'
                )
            kwargs["trait_keys"] = dict(raw)
        if "default_phone_region" in d:
            region = d["default_phone_region"]
            if not isinstance(region, str):
                raise ConfigurationError("default_phone_region must be a string such as 'US'")
            kwargs["default_phone_region"] = region
        return cls(**kwargs)

    @classmethod
    def accounts_default(cls) -> IdentityConfig:
        """Defaults for the ``accounts`` collection: one ``group_id`` per account, ranked first."""
        return cls(priority=("group_id",), limits={"group_id": Limit(1, "ever")})


_FIELDS: Final = (
    "blocked_exact",
    "blocked_patterns",
    "limits",
    "default_limit",
    "priority",
    "max_merges",
    "max_identifiers",
    "trait_keys",
    "default_phone_region",
)


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{name} must be a list of strings")
    return list(value)


#: Bounds on user-supplied patterns (an admin's typo must not cost the process its memory).
MAX_PATTERNS: Final = 100
MAX_PATTERN_LENGTH: Final = 1000
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is raised to the caller; nothing on stderr
_RE2_OPTIONS.max_mem = 8 << 20


@lru_cache(maxsize=256)
def _compile(patterns: tuple[str, ...]) -> tuple[Any, ...]:
    """Patterns compiled with RE2: matching is linear in the value, so no pattern an admin
    writes (``^(a+)+$``) can freeze the process on a crafted identifier (ReDoS). RE2 has no
    backreferences or lookarounds; a pattern using them is refused with the reason."""
    if len(patterns) > MAX_PATTERNS:
        raise ConfigurationError(f"blocked_patterns: at most {MAX_PATTERNS} patterns")
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
            raise ConfigurationError(
                f"blocked_patterns: each pattern must be a string of at most "
                f"{MAX_PATTERN_LENGTH} characters"
            )
        try:
            compiled.append(re2.compile(pattern, _RE2_OPTIONS))
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            raise ConfigurationError(
                f"blocked_patterns: {pattern!r} is not a valid regular expression ({reason}); "
                "patterns use RE2 syntax, which has no backreferences or lookarounds"
            ) from None
    return tuple(compiled)
