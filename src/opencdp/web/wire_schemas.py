"""JSON Schemas of what the HTTP API reads and answers, for the OpenAPI document (pure data).

The routes parse their bodies by hand (to answer in Segment's error shapes), so FastAPI cannot
derive these. They state exactly what the server accepts: a document that promises less or more
than the server does fails the schemathesis run in the tests (valid data must be accepted,
invalid data refused).
"""

from __future__ import annotations

from typing import Any, Final

from opencdp.collect.normalize import MAX_EVENT_NAME, MAX_ID_LENGTH, MAX_MESSAGE_ID, MAX_TRAIT_KEY
from opencdp.identity.rules import WINDOWS
from opencdp.services.governance import MAX_DISMISS, MAX_NOTE
from opencdp.services.qr_codes import CAMPAIGN_PATTERN

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


#: Numbers: integers beyond 64 bits are read as floats; beyond a double's range is no JSON.
NUMBER: Final[Schema] = {"type": "number"}


def whole(minimum: int) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": 2**64 - 1}


#: Text PostgreSQL can store: no NUL character (refused everywhere, on every backend).
TEXT_PATTERN: Final = "^[^\\u0000]*$"
_NON_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"

# Times the collector reads (ISO-8601 within 1970..2200; the pattern allows 1971..2198, so that
# no offset moves a time it allows out of range). Days are those every year has, so that every
# string the pattern allows is a real date.
_YEAR = "(197[1-9]|19[89][0-9]|20[0-9]{2}|21[0-8][0-9]|219[0-8])"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,6})?)?"
_ZONE = "(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?"
TIMESTAMP_PATTERN: Final = f"^{_YEAR}-{_MONTH_DAY}(T{_TIME}{_ZONE})?$"

#: A time filter: ISO-8601, or a span back from now (``30m``, ``24h``, ``7d``, ``2w``), or empty.
WHEN_PATTERN: Final = f"^(|[0-9]{{1,5}}(\\.[0-9]{{1,3}})? *[mhdw]|{TIMESTAMP_PATTERN[1:-1]})$"

COMPONENTS: Final[dict[str, Schema]] = {
    "JsonValue": {
        "description": "Any JSON value without a NUL character (U+0000) in its strings or keys.",
        "anyOf": [
            {"type": "string", "pattern": TEXT_PATTERN},
            NUMBER,
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": ref("JsonValue")},
            ref("JsonObject"),
        ],
    },
    "JsonObject": {
        "type": "object",
        "propertyNames": {"pattern": TEXT_PATTERN},
        "additionalProperties": ref("JsonValue"),
    },
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "Stable, machine-readable."},
            "message": {"type": "string", "description": "What is wrong and what to do."},
        },
    },
    "ProfileError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": ref("Error")},
        "description": "The Profile API's error shape (Segment's).",
    },
    "ExternalId": {
        "type": "string",
        "pattern": "^([^\\u0000:]+|[^\\u0000:]*:[^\\u0000]+)$",
        "description": "type:value (user_id:u123, email:ann@example.com) or a profile id.",
    },
    "Identifier": {
        "description": "A user or anonymous id: a non-blank string (trimmed) or a number.",
        "anyOf": [
            {"type": "string", "pattern": _NON_BLANK, "maxLength": MAX_ID_LENGTH},
            NUMBER,
        ],
    },
    "Timestamp": {
        "type": "string",
        "pattern": TIMESTAMP_PATTERN,
        "description": "ISO-8601 time between 1970 and 2200; without an offset it is UTC.",
        "example": "2026-12-03T10:15:00.123Z",
    },
    "IngestResult": {
        "type": "object",
        "required": ["success", "accepted", "quarantined"],
        "properties": {
            "success": {"type": "boolean"},
            "accepted": {"type": "integer", "description": "Events stored for processing."},
            "quarantined": {"type": "integer", "description": "Events kept in quarantine."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
}


def tracking_message(kind: str) -> Schema:
    """A message sent to ``/v1/{kind}`` (the path implies its type)."""
    absent_or_id = {
        "anyOf": [ref("Identifier"), {"type": "null"}, {"type": "string", "pattern": "^\\s*$"}],
        "description": "null or a blank string count as absent.",
    }
    properties: dict[str, Schema] = {
        "userId": absent_or_id,
        "anonymousId": absent_or_id,
        "messageId": nullable(
            {
                "anyOf": [
                    {"type": "string", "pattern": TEXT_PATTERN, "maxLength": MAX_MESSAGE_ID},
                    NUMBER,
                ],
                "description": "Deduplicates retries; generated when missing.",
            }
        ),
        "timestamp": nullable(ref("Timestamp")),
        "originalTimestamp": nullable(ref("Timestamp")),
        "sentAt": nullable(ref("Timestamp")),
        "context": nullable(ref("JsonObject")),
        "integrations": nullable(ref("JsonObject")),
        "writeKey": {
            **ref("JsonValue"),
            "description": "The write key, when not sent as the Basic auth user.",
        },
        "type": {**ref("JsonValue"), "description": "Ignored: the path says the type."},
    }
    required: list[str] = []
    name = {"type": "string", "pattern": TEXT_PATTERN, "maxLength": MAX_EVENT_NAME}
    traits = {
        "type": "object",
        "propertyNames": {"pattern": TEXT_PATTERN, "maxLength": MAX_TRAIT_KEY},
        "additionalProperties": ref("JsonValue"),
    }
    if kind == "track":
        properties["event"] = {**name, "pattern": _NON_BLANK}
        properties["properties"] = nullable(ref("JsonObject"))
        required.append("event")
    elif kind in ("page", "screen"):
        properties["name"] = nullable(name)
        properties["category"] = nullable({"type": "string", "pattern": TEXT_PATTERN})
        properties["properties"] = nullable(ref("JsonObject"))
    elif kind in ("identify", "group"):
        properties["traits"] = nullable(traits)
    if kind == "group":
        properties["groupId"] = ref("Identifier")
        required.append("groupId")
    if kind == "alias":
        properties["previousId"] = ref("Identifier")
        properties["userId"] = ref("Identifier")
        required += ["previousId", "userId"]
    identity: Schema = (
        {}
        if kind == "alias"
        else {
            "anyOf": [
                {"required": ["userId"], "properties": {"userId": ref("Identifier")}},
                {"required": ["anonymousId"], "properties": {"anonymousId": ref("Identifier")}},
            ]
        }
    )
    return {
        "type": "object",
        "title": f"{kind.capitalize()}Message",
        "description": "A Segment message. Every message needs a userId or an anonymousId.",
        "properties": properties,
        "required": required,
        "propertyNames": {"pattern": TEXT_PATTERN},
        "additionalProperties": ref("JsonValue"),
        **identity,
    }


BATCH: Final[Schema] = {
    "type": "object",
    "title": "Batch",
    "required": ["batch"],
    "properties": {
        "batch": {
            "type": "array",
            "description": (
                "Messages, each with its `type`. A message that cannot be used is quarantined on "
                "its own with its reason in `errors`; the others are stored."
            ),
            "items": {},
        },
        "context": {"description": "Merged under each message's own; ignored unless an object."},
        "integrations": {"description": "As context."},
        "sentAt": {"description": "For clock-skew correction; ignored when unreadable."},
        "writeKey": {"description": "The write key, when not sent as the Basic auth user."},
    },
    "additionalProperties": True,
}


# -- OpenCDP's own documents under /api ----------------------------------------------------------
# Their structure is stated exactly; what they embed (a JSON Schema, RE2 patterns, identifier
# type names, e-mail addresses) is checked beyond what a schema can state, and answered with a
# 400 that names the place.


def _strict(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def _settings_section(names: tuple[str, ...], actions: tuple[str, ...]) -> Schema:
    properties: dict[str, Schema] = {name: {"type": "boolean"} for name in names}
    properties["commonEventOnViolations"] = {"type": "string", "enum": list(actions)}
    return _strict(properties)


_SOURCE_ID = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
ENFORCEMENT_SETTINGS: Final[Schema] = _strict(
    {
        "track": nullable(
            _settings_section(
                (
                    "allowUnplannedEvents",
                    "allowUnplannedEventProperties",
                    "allowEventOnViolations",
                    "allowPropertiesOnViolations",
                ),
                ("ALLOW", "BLOCK", "OMIT_PROPERTIES"),
            )
        ),
        **{
            section: nullable(
                _settings_section(
                    ("allowUnplannedTraits", "allowTraitsOnViolations"),
                    ("ALLOW", "BLOCK", "OMIT_TRAITS"),
                )
            )
            for section in ("identify", "group")
        },
        "forwardingBlockedEventsTo": nullable(_SOURCE_ID),
        "forwardingViolationsTo": nullable(_SOURCE_ID),
    }
)
SCHEMA_SETTINGS: Final[Schema] = _strict(
    {
        "trackingPlanId": nullable({"type": "string", "pattern": TEXT_PATTERN}),
        "settings": nullable(ENFORCEMENT_SETTINGS),
    }
)
PLAN_ID_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_RULE: Final[Schema] = {
    "type": "object",
    "description": "Segment's RuleV1: TRACK rules are keyed by event name; others have no key.",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "enum": ["TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON"],
        },
        "key": {"type": "string", "pattern": _NON_BLANK, "maxLength": 200},
        "version": whole(1),
        "jsonSchema": nullable({"type": "object", "description": "JSON Schema draft-07."}),
    },
}
TRACKING_PLAN: Final[Schema] = {
    "type": "object",
    "properties": {
        "id": nullable({"type": "string", "pattern": PLAN_ID_PATTERN}),
        "name": nullable({"type": "string", "maxLength": 200, "pattern": TEXT_PATTERN}),
        "description": nullable({"type": "string", "pattern": TEXT_PATTERN}),
        "rules": {
            "anyOf": [
                {"type": "array", "items": _RULE},
                {"type": "object", "description": "The legacy Config API shape."},
            ]
        },
        "revision": {"description": "Ignored (the server numbers revisions)."},
        "scopes": {"description": "Ignored."},
        "created_revision": {"description": "Ignored."},
    },
    "additionalProperties": False,
}
DRY_RUN: Final[Schema] = {
    "type": "object",
    "properties": {
        "days": {"type": "number", "exclusiveMinimum": 0, "maximum": 3650},
        "plan": nullable(TRACKING_PLAN),
        "sources": nullable({"type": "array", "items": {"type": "string"}}),
        "settings": nullable(ENFORCEMENT_SETTINGS),
    },
}
_LIMIT: Final[Schema] = _strict(
    {
        "max_values": whole(1),
        "window": {"type": "string", "enum": list(WINDOWS)},
    },
    required=("max_values",),
)
_STRINGS = {"type": "array", "items": {"type": "string", "pattern": TEXT_PATTERN}}
IDENTITY_RULES: Final[Schema] = _strict(
    {
        "blocked_exact": _STRINGS,
        "blocked_patterns": {**_STRINGS, "maxItems": 100, "description": "RE2 syntax."},
        "limits": {"type": "object", "additionalProperties": _LIMIT},
        "default_limit": _LIMIT,
        "priority": _STRINGS,
        "max_merges": whole(0),
        "max_identifiers": whole(1),
        "trait_keys": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": TEXT_PATTERN},
        },
        "default_phone_region": {"type": "string", "pattern": TEXT_PATTERN},
    }
)
_FILTER_TEXT = nullable({"type": "string", "pattern": TEXT_PATTERN})
REPLAY: Final[Schema] = _strict(
    {
        **{name: _FILTER_TEXT for name in ("source", "source_id", "reason", "event", "type")},
        **{
            name: nullable({"type": "string", "pattern": WHEN_PATTERN})
            for name in ("since", "until")
        },
        "ids": nullable(
            {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
        ),
        "limit": nullable({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
        "dry_run": nullable({"type": "boolean"}),
    }
)

DISMISS: Final[Schema] = _strict(
    {
        "ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_DISMISS,
            "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        },
        "reason": {"type": "string", "pattern": _NON_BLANK, "maxLength": MAX_NOTE},
    },
    required=("ids", "reason"),
)

#: A computed trait or audience: Segment's query language in ``definition.query``.
DEFINITION: Final[Schema] = _strict(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": TEXT_PATTERN},
        "definition": _strict(
            {
                "type": {"type": "string", "enum": ["USERS", "ACCOUNTS"]},
                "query": {
                    "type": "string",
                    "maxLength": 20_000,
                    "pattern": TEXT_PATTERN,
                    "description": "Segment's query language, e.g. "
                    "event('Order Completed').within(30 days).count() >= 1",
                },
            },
            required=("query",),
        ),
        "enabled": {"type": "boolean"},
    },
    required=("definition",),
)
#: What ``POST /api/clv/fit`` reads (both optional: today, weeks).
CLV_FIT: Final[Schema] = _strict(
    {
        "calibration_end": {
            "type": "string",
            "format": "date",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": "Fit on orders up to this date, included; later orders are the "
            "holdout the fit is checked against.",
        },
        "time_unit": {"type": "string", "enum": ["day", "week"]},
    }
)
#: What ``POST /api/audiences/preview`` reads: a definition only.
DEFINITION_PREVIEW: Final[Schema] = _strict(
    {"definition": DEFINITION["properties"]["definition"]}, required=("definition",)
)

#: What ``PUT /api/destinations/{id}`` reads (the settings are the type's: checked by it).
DESTINATION: Final[Schema] = _strict(
    {
        "type": {
            "type": "string",
            "pattern": "^[a-z][a-z0-9_-]{0,63}$",
            "description": "A registered destination type: webhook, segment, smtp, file …",
        },
        "enabled": {"type": "boolean"},
        "settings": {
            "type": "object",
            "description": "The type's settings (docs/activation.md); secrets shown as ********",
        },
        "subscriptions": {
            "type": "array",
            "maxItems": 50,
            "items": _strict(
                {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": TEXT_PATTERN,
                    },
                    "condition": {
                        "type": "string",
                        "maxLength": 20_000,
                        "pattern": TEXT_PATTERN,
                        "description": 'Segment FQL, e.g. type = "track" and event = "Order '
                        'Completed" (default: all)',
                    },
                    "mapping": {"description": "Segment Actions mapping directives"},
                    "template": {
                        "type": "object",
                        "description": "smtp: this subscription's own subject, text, html, …",
                    },
                    "enabled": {"type": "boolean"},
                    "audience": {
                        "type": "string",
                        "pattern": TEXT_PATTERN,
                        "description": "An audience's key: its entries and exits instead of a "
                        "condition",
                    },
                    "identify": {"type": "boolean"},
                    "track": {"type": "boolean"},
                    "per_identifier": {
                        "type": "boolean",
                        "description": "Audience messages once per e-mail address",
                    },
                },
                required=("name",),
            ),
        },
    },
    required=("type",),
)
#: What ``POST /api/destinations/{id}/test`` reads (both optional).
DESTINATION_TEST: Final[Schema] = _strict(
    {
        "subscription": {"type": "string", "pattern": TEXT_PATTERN},
        "event": {"type": "object", "description": "A Segment event (default: a sample order)"},
    }
)
#: What ``PUT /api/profiles/{profile_id}/consent`` reads (category ids are checked by the
#: service, naming the one that is wrong).
CONSENT: Final[Schema] = _strict(
    {
        "categoryPreferences": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "boolean"},
            "description": "Category id -> true|false; only the categories given change.",
        }
    },
    required=("categoryPreferences",),
)
#: What ``PUT /api/journeys/{key}`` reads: a journey's JSON form, or a preset (the steps and
#: conditions are checked by the journey parser, naming the field).
JOURNEY: Final[Schema] = _strict(
    {
        "preset": {"type": "string", "enum": ["abandoned-cart", "welcome", "back-in-stock"]},
        "settings": {
            "type": "object",
            "description": 'A preset\'s settings: {"destination": ID, "wait": "1 hour", '
            '"subject", "event_name"}',
        },
        "key": {"type": "string", "pattern": TEXT_PATTERN},
        "name": {"type": "string", "maxLength": 200, "pattern": TEXT_PATTERN},
        "description": {"type": "string", "pattern": TEXT_PATTERN},
        "enabled": {"type": "boolean"},
        "entry": {
            "description": "{event: FQL} or {audience: key}, with unique_identifier, "
            "new_profile, max_event_age; or a list of them",
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
        },
        "reentry": {
            "description": 'every_time, once, or {"after": "30 days"}',
            "oneOf": [
                {"type": "string", "enum": ["every_time", "once"]},
                {"type": "object"},
            ],
        },
        "exit": {"type": "object", "description": '{"after": "30 days", "rules": [...]}'},
        "steps": {
            "type": "array",
            "maxItems": 50,
            "items": {"type": "object"},
            "description": "wait, wait_until, split, send or end, each with a key",
        },
    }
)
#: What ``POST /api/deliveries/replay`` reads.
DELIVERIES_REPLAY: Final[Schema] = _strict(
    {
        "destination": {"type": "string", "pattern": TEXT_PATTERN},
        "status": {
            "type": "string",
            "enum": ["dead", "delivered", "retrying", "suppressed_by_consent"],
        },
        "ids": {"type": "array", "items": {"type": "string", "pattern": TEXT_PATTERN}},
    }
)

#: ``POST /api/workspaces``
WORKSPACE_NEW: Final[Schema] = _strict(
    {
        "id": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
            "description": "Lowercase letters, digits, '-' and '_' (it appears in URLs).",
        },
        "name": {"type": "string", "maxLength": 200, "pattern": _NON_BLANK},
    },
    required=("id", "name"),
)
#: ``PUT /api/workspaces/{workspace_id}/settings``: the fields to change
WORKSPACE_SETTINGS: Final[Schema] = _strict(
    {
        "consent_default": {"type": "string", "enum": ["opt-in", "opt-out"]},
        "self_service_traits": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN},
        },
        "self_service_origins": {
            "type": "array",
            "items": {
                "type": "string",
                "pattern": "^(\\*|https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?"
                "(:[0-9]{1,5})?)$",
            },
        },
        "self_service_link_ttl": {"type": "integer", "minimum": 60, "maximum": 90 * 24 * 3600},
    }
)
#: ``POST /api/sources``
SOURCE_NEW: Final[Schema] = _strict(
    {
        "name": {
            "type": "string",
            "maxLength": 200,
            "pattern": _NON_BLANK,
            "not": {"const": "opencdp"},
            "description": "Any name but opencdp (reserved for OpenCDP's own changes).",
        },
        "catalog": {
            "type": "boolean",
            "description": "A catalog source: its Product Updated events write the catalog.",
        },
    },
    required=("name",),
)
#: ``POST /api/tokens``
TOKEN_NEW: Final[Schema] = _strict(
    {
        "name": {"type": "string", "maxLength": 200, "pattern": _NON_BLANK},
        "role": {"type": "string", "enum": ["admin", "write", "read", "support"]},
        "instance_admin": {
            "type": "boolean",
            "description": "An administrator of every workspace (only an instance "
            "administrator creates one; its role is admin).",
        },
    },
    required=("name",),
)
# an instance administrator's role is admin
TOKEN_NEW["if"] = {
    "properties": {"instance_admin": {"const": True}},
    "required": ["instance_admin"],
}
TOKEN_NEW["then"] = {"properties": {"role": {"const": "admin"}}}

#: ``POST /api/regulations``: Segment's Public API regulation request
REGULATION: Final[Schema] = _strict(
    {
        "regulationType": {
            "type": "string",
            "enum": [
                "SUPPRESS_ONLY",
                "UNSUPPRESS",
                "DELETE_INTERNAL",
                "SUPPRESS_WITH_DELETE_INTERNAL",
                "DELETE_ONLY",
                "SUPPRESS_WITH_DELETE",
            ],
        },
        "subjectType": {
            "type": "string",
            "enum": ["USER_ID", "EMAIL", "PHONE", "ANONYMOUS_ID", "PROFILE_ID"],
        },
        "subjectIds": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5000,
            "items": {"type": "string", "maxLength": 500, "pattern": _NON_BLANK},
        },
    },
    required=("regulationType", "subjectType", "subjectIds"),
)

# -- loyalty ------------------------------------------------------------------------------------
_DURATION_PATTERN: Final = (
    "^[0-9]{1,6}(\\.[0-9]{1,3})? ?(second|seconds|minute|minutes|hour|hours|day|days|week|weeks)$"
)
LOYALTY_PROGRAMME: Final[Schema] = _strict(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN},
        "currency": {"type": ["string", "null"], "pattern": "^[A-Z]{3}$"},
        "points_per_unit": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
        "rounding": {"type": "string", "enum": ["floor", "round", "ceil"]},
        "multipliers": _strict(
            {
                "categories": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
                },
                "products": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
                },
            }
        ),
        "bonuses": _strict(
            {
                "first_order": {"type": "integer", "minimum": 0, "maximum": 1000000},
                "birthday_month": {"type": "number", "minimum": 1, "maximum": 100},
            }
        ),
        "tiers": {
            "type": "array",
            "maxItems": 20,
            "description": "Thresholds rising strictly from 0; each name once.",
            "items": _strict(
                {
                    "name": {"type": "string", "minLength": 1, "maxLength": 64},
                    "threshold": {"type": "integer", "minimum": 0},
                },
                ("name", "threshold"),
            ),
        },
        "qualification_period": {"type": "string", "pattern": _DURATION_PATTERN},
        "expiry": {"type": ["string", "null"], "pattern": _DURATION_PATTERN},
    },
    ("name",),
)
_ID_TEXT: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": TEXT_PATTERN,
}
_CARD_NUMBER: Final[Schema] = {"type": "string", "pattern": "^[A-Za-z0-9_\\-]{4,64}$"}
LOYALTY_MEMBER_NEW: Final[Schema] = _strict(
    {
        "user_id": _ID_TEXT,
        "anonymous_id": _ID_TEXT,
        "email": _ID_TEXT,
        "phone": _ID_TEXT,
        "profile_id": _ID_TEXT,
        "card_number": _CARD_NUMBER,
        "channel": {"type": "string", "enum": ["online", "store"]},
        "store_id": _ID_TEXT,
        "traits": {"type": "object", "maxProperties": 50},
    }
)
_POINTS: Final[Schema] = {"type": "integer", "minimum": -10000000, "maximum": 10000000}
_REFERENCE: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
}
LOYALTY_CARD_NEW: Final[Schema] = _strict(
    {"card_number": _CARD_NUMBER},
    ("card_number",),
)
LOYALTY_REDEMPTION: Final[Schema] = _strict(
    {
        "points": {"type": "integer", "minimum": 1, "maximum": 10000000},
        "reference": _REFERENCE,
        "reason": {"type": "string", "maxLength": 500, "pattern": TEXT_PATTERN},
    },
    ("points", "reference"),
)
LOYALTY_ADJUSTMENT: Final[Schema] = _strict(
    {
        "points": {**_POINTS, "not": {"const": 0}},
        "reason": {**_REFERENCE, "maxLength": 500},
        "reference": _REFERENCE,
    },
    ("points", "reason"),
)
QR_NEW: Final[Schema] = _strict(
    {
        "campaign": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": CAMPAIGN_PATTERN,  # the service's own check
        },
        # An absolute http(s) URL; what a pattern cannot say (a valid host and port, no
        # credentials) is checked by the service with a 400 naming it.
        "target": {
            "type": "string",
            "minLength": 8,
            "maxLength": 2000,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s\\u0000-\\u001f\\u007f\\\\@/?#]+"
            "([/?#][^\\s\\u0000-\\u001f\\u007f\\\\]*)?$",
        },
    },
    ("campaign", "target"),
)

_WEIGHT: Final[Schema] = {"type": "number", "minimum": 0, "maximum": 1_000_000}
_PRODUCT_IDS: Final[Schema] = {
    "type": "array",
    "maxItems": 1000,
    "items": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": "\\S"},
}
#: ``PUT /api/recs/settings``: every field optional.
RECS_SETTINGS: Final[Schema] = _strict(
    {
        "weights": _strict(
            {
                "purchase": _WEIGHT,
                "cart": _WEIGHT,
                "view": _WEIGHT,
                "half_life_days": _WEIGHT,
            }
        ),
        "rules": _strict(
            {
                "exclude_bought": {"type": "boolean"},
                "repeatable_categories": _PRODUCT_IDS,
                "max_per_category": {"type": ["integer", "null"], "minimum": 1},
                "pinned": _PRODUCT_IDS,
                "blocked": _PRODUCT_IDS,
                "trait_items": {"type": "integer", "minimum": 1, "maximum": 50},
            }
        ),
        "train_every_hours": {"type": "number", "minimum": 0, "maximum": 8760},
        "holdout": {
            "type": "string",
            "pattern": "^(last-basket|days:[1-9][0-9]{0,3}|last:[1-9][0-9]{0,3})$",
            "description": "last-basket, days:N or last:N (N at most 3650).",
        },
    }
)
#: ``POST /api/recs/rollback``: the version, or nothing (the one before the active one).
RECS_ROLLBACK: Final[Schema] = _strict(
    {"version": {"type": "string", "pattern": "^v[0-9]{4,8}$", "maxLength": 9}}
)
