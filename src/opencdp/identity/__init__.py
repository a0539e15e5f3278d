"""Identity resolution: which identifiers a message carries and which profile it belongs to.

Pure core (no database, no web): :mod:`.identifiers` extracts and normalises identifiers,
:mod:`.rules` holds the per-workspace settings, :mod:`.graph` applies Segment's flat matching
to an in-memory slice of the identity graph that the worker loads and persists.
"""

from opencdp.identity.graph import (
    PREVIOUS_ID,
    REASON_MAX_IDENTIFIERS,
    REASON_MAX_MERGES,
    RULE_ALIAS,
    RULE_CO_OCCURRENCE,
    Added,
    Demotion,
    IdentityGraph,
    IdInfo,
    Merge,
    ProfileNode,
    Resolution,
    limit_reason,
)
from opencdp.identity.identifiers import (
    EXTRACTORS,
    MAX_VALUE_LENGTH,
    Identifier,
    coerce_value,
    extract_group_identifiers,
    extract_user_identifiers,
    normalize_email,
    normalize_phone,
    sort_identifiers,
)
from opencdp.identity.rules import (
    DEFAULT_BLOCKED_EXACT,
    DEFAULT_BLOCKED_PATTERNS,
    DEFAULT_LIMITS,
    DEFAULT_PRIORITY,
    WINDOWS,
    IdentityConfig,
    Limit,
    is_valid_type,
)

__all__ = [
    "DEFAULT_BLOCKED_EXACT",
    "DEFAULT_BLOCKED_PATTERNS",
    "DEFAULT_LIMITS",
    "DEFAULT_PRIORITY",
    "EXTRACTORS",
    "MAX_VALUE_LENGTH",
    "PREVIOUS_ID",
    "REASON_MAX_IDENTIFIERS",
    "REASON_MAX_MERGES",
    "RULE_ALIAS",
    "RULE_CO_OCCURRENCE",
    "WINDOWS",
    "Added",
    "Demotion",
    "IdInfo",
    "Identifier",
    "IdentityConfig",
    "IdentityGraph",
    "Limit",
    "Merge",
    "ProfileNode",
    "Resolution",
    "coerce_value",
    "extract_group_identifiers",
    "extract_user_identifiers",
    "is_valid_type",
    "limit_reason",
    "normalize_email",
    "normalize_phone",
    "sort_identifiers",
]
