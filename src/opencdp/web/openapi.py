"""The OpenAPI document: request bodies, query parameters, answers and credentials of every route.

FastAPI derives paths from the routes; what the routes read by hand (bodies, query parameters)
and the answers they really give (400/401/403/404/413/429/503, never 422) are described here,
once per operation, keyed by method and path. ``tests/e2e/test_openapi_contract.py`` checks
that every route is described and runs schemathesis over the result against a live server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from opencdp.collect.envelope import ROUTES
from opencdp.privacy.regulations import STATUSES, TYPES
from opencdp.web.catalog_schemas import (
    LEVEL,
    LEVELS_BATCH,
    PRODUCT,
    PRODUCT_PAGE,
    PRODUCT_VIEW,
    PRODUCTS_BATCH,
)
from opencdp.web.wire_schemas import (
    BATCH,
    CLV_FIT,
    COMPONENTS,
    CONSENT,
    DEFINITION,
    DEFINITION_PREVIEW,
    DELIVERIES_REPLAY,
    DESTINATION,
    DESTINATION_TEST,
    DISMISS,
    DRY_RUN,
    IDENTITY_RULES,
    JOURNEY,
    LOYALTY_ADJUSTMENT,
    LOYALTY_CARD_NEW,
    LOYALTY_MEMBER_NEW,
    LOYALTY_PROGRAMME,
    LOYALTY_REDEMPTION,
    PLAN_ID_PATTERN,
    QR_NEW,
    RECS_ROLLBACK,
    RECS_SETTINGS,
    REGULATION,
    REPLAY,
    SCHEMA_SETTINGS,
    SOURCE_NEW,
    TEXT_PATTERN,
    TIMESTAMP_PATTERN,
    TOKEN_NEW,
    TRACKING_PLAN,
    WHEN_PATTERN,
    WORKSPACE_NEW,
    WORKSPACE_SETTINGS,
    Schema,
    ref,
    tracking_message,
)

SECURITY_SCHEMES: Final[dict[str, Schema]] = {
    "WriteKey": {
        "type": "http",
        "scheme": "basic",
        "description": "A source's write key as the Basic auth username (Segment's form).",
    },
    "AccessToken": {
        "type": "http",
        "scheme": "basic",
        "description": "An access token as the Basic auth username (curl -u TOKEN:).",
    },
    "Bearer": {"type": "http", "scheme": "bearer", "description": "An access token."},
    "SelfServiceLink": {
        "type": "http",
        "scheme": "bearer",
        "description": "A customer's self-service link token (POST …/self-service-link).",
    },
}
_TOKEN: Final[list[dict[str, list[str]]]] = [{"AccessToken": []}, {"Bearer": []}]
_DESCRIPTIONS: Final = {
    200: "OK",
    201: "Created",
    400: "The request is not valid; the body says what to fix",
    401: "No or an unknown credential",
    403: "The credential may not do this",
    404: "Not found",
    409: "The id is taken",
    413: "The request body is larger than the limit",
    429: "Too many requests, or the server is overloaded: retry after Retry-After seconds",
    503: "The database cannot write now: retry after Retry-After seconds",
}


@dataclass(frozen=True)
class Param:
    """A query parameter a route reads by hand."""

    name: str
    schema: Schema
    description: str = ""

    def to_dict(self) -> Schema:
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "schema": self.schema,
            "description": self.description,
        }


@dataclass(frozen=True)
class Doc:
    """What one operation reads and answers beyond what FastAPI sees."""

    errors: tuple[int, ...]
    body: Schema | None = None
    body_required: bool = True
    query: tuple[Param, ...] = ()
    ok: Schema = field(default_factory=lambda: {"type": "object"})
    created: bool = False
    security: list[dict[str, list[str]]] | None = None
    error_schema: str = "Error"
    media_type: str = "application/json"
    #: answers 302 to a URL (with ``Set-Cookie``) instead of a body
    redirect: bool = False
    #: the errors' media type (a page for people rather than ``{code, message}``)
    error_media_type: str = "application/json"
    #: answers carry an ETag; If-None-Match with the current one answers 304 without a body
    etag: bool = False


def _list_of(values: tuple[str, ...]) -> str:
    """A pattern for a comma-separated list of ``values`` (or nothing)."""
    one = "(" + "|".join(values) + ")"
    return f"^({one}(,{one})*)?$"


def _text(description: str = "", **extra: Any) -> Param:
    return Param(
        extra.pop("name"), {"type": "string", "pattern": TEXT_PATTERN, **extra}, description
    )


def _limit(default: int, maximum: int) -> Param:
    return Param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        f"Page size, 1 to {maximum}.",
    )


_RECS_LOCATION = Param(
    "location",
    {"type": "string", "maxLength": 100, "pattern": TEXT_PATTERN},
    "The stock location the visitor shops in (web when absent).",
)

_CURSOR = Param(
    "next",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
    "The `cursor.next` of the previous page (opaque).",
)
_CSV = {"type": "string", "pattern": TEXT_PATTERN}
_TIME = {
    "type": "string",
    "pattern": f"^(|[0-9]{{1,15}}|{TIMESTAMP_PATTERN[1:-1]})$",
    "description": "ISO-8601 (UTC without an offset) or milliseconds since the epoch.",
}
_WHEN = {
    "type": "string",
    "pattern": WHEN_PATTERN,
    "description": "ISO-8601 time, or a span back from now such as 24h or 7d.",
}
_QUARANTINE_FILTERS = (
    _text(name="source", description="Source name or id."),
    _text(name="reason", description="Why events were quarantined, e.g. invalid_row."),
    _text(name="event", description="Event name."),
    _text(name="type", description="Message type."),
    Param("since", _WHEN),
    Param("until", _WHEN),
    Param("status", {"type": "string", "enum": ["open", "resolved", "all"], "default": "open"}),
)
_TRACKING_ERRORS = (400, 401, 429, 503)
_PROFILE = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"
_PROFILE_ERRORS = (400, 401, 404)


def _tracking_docs() -> dict[tuple[str, str], Doc]:
    docs = {}
    for route, kind in ROUTES.items():
        if len(route) == 1:
            continue  # analytics.js short paths: not in the document
        body = BATCH if kind is None else tracking_message(kind)
        docs[("post", f"/v1/{route}")] = Doc(
            _TRACKING_ERRORS, body=body, ok=ref("IngestResult"), security=[{"WriteKey": []}]
        )
    return docs


def _definition_docs(path: str) -> dict[tuple[str, str], Doc]:
    """Computed traits and audiences: list, one, create or replace, delete."""
    return {
        ("get", f"/api/{path}"): Doc((401,)),
        ("get", f"/api/{path}/{{key}}"): Doc((401, 404)),
        ("put", f"/api/{path}/{{key}}"): Doc((400, 401, 403, 413), body=DEFINITION),
        ("delete", f"/api/{path}/{{key}}"): Doc((401, 403, 404)),
    }


OPERATIONS: Final[dict[tuple[str, str], Doc]] = {
    **_tracking_docs(),
    ("get", f"{_PROFILE}/traits"): Doc(
        _PROFILE_ERRORS,
        query=(
            Param("include", _CSV, "Comma-separated trait names."),
            Param("class", _CSV, "Only `audience` memberships or `computed_trait` values."),
            Param("verbose", {"type": "boolean"}, "Each trait with its source and time."),
            _limit(10, 200),
            _CURSOR,
        ),
        error_schema="ProfileError",
    ),
    ("get", f"{_PROFILE}/external_ids"): Doc(
        _PROFILE_ERRORS,
        query=(
            Param("include", _CSV, "Comma-separated identifier types."),
            _limit(25, 100),
            _CURSOR,
        ),
        error_schema="ProfileError",
    ),
    ("get", f"{_PROFILE}/events"): Doc(
        _PROFILE_ERRORS,
        query=(
            Param("start", ref("Timestamp"), "Events at or after this time."),
            Param("end", ref("Timestamp"), "Events before this time."),
            Param("include", _CSV, "Comma-separated event names."),
            Param("exclude", _CSV, "Comma-separated event names."),
            Param("sort", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}),
            _limit(10, 100),
            _CURSOR,
        ),
        error_schema="ProfileError",
    ),
    ("get", f"{_PROFILE}/metadata"): Doc(_PROFILE_ERRORS, error_schema="ProfileError"),
    ("get", f"{_PROFILE}/links"): Doc(
        _PROFILE_ERRORS, query=(_limit(20, 20),), error_schema="ProfileError"
    ),
    ("post", "/api/contacts"): Doc((400, 401, 403, 413), created=True),
    ("get", "/api/profiles/{profile_id}/identity"): Doc((401, 404)),
    ("get", "/api/profiles/{profile_id}/consent"): Doc((400, 401, 403, 404)),
    ("put", "/api/profiles/{profile_id}/consent"): Doc((400, 401, 403, 404, 413), body=CONSENT),
    ("get", "/api/workspaces/{workspace_id}/identity-rules"): Doc((401,)),
    ("put", "/api/workspaces/{workspace_id}/identity-rules"): Doc(
        (400, 401, 403, 413), body=IDENTITY_RULES
    ),
    **_definition_docs("computed-traits"),
    **_definition_docs("audiences"),
    ("post", "/api/audiences/preview"): Doc((400, 401, 413), body=DEFINITION_PREVIEW),
    ("post", "/api/audiences/{key}/recompute"): Doc((400, 401, 403, 404)),
    ("get", "/api/audiences/{key}/members"): Doc(
        (400, 401, 404),
        query=(
            _limit(100, 1000),
            _CURSOR,
            Param("format", {"type": "string", "enum": ["json", "csv"]}, "CSV or JSON pages."),
        ),
    ),
    ("get", "/api/clv/model"): Doc((401, 404)),
    ("post", "/api/clv/fit"): Doc((400, 401, 403, 413), body=CLV_FIT, body_required=False),
    ("post", "/api/clv/score"): Doc((400, 401, 403, 404)),
    ("get", "/api/destinations"): Doc((401,)),
    ("get", "/api/destinations/{destination_id}"): Doc((401, 404)),
    ("put", "/api/destinations/{destination_id}"): Doc((400, 401, 403, 413), body=DESTINATION),
    ("delete", "/api/destinations/{destination_id}"): Doc((401, 403, 404)),
    ("post", "/api/destinations/{destination_id}/test"): Doc(
        (400, 401, 403, 404, 413), body=DESTINATION_TEST, body_required=False
    ),
    ("get", "/api/deliveries"): Doc(
        (400, 401),
        query=(
            _text("Only this destination's.", name="destination"),
            Param(
                "status",
                {
                    "type": "string",
                    "enum": [
                        "pending",
                        "retrying",
                        "delivered",
                        "dead",
                        "suppressed_by_consent",
                        "skipped_out_of_stock",
                    ],
                },
            ),
            _limit(100, 1000),
            Param(
                "next",
                {"type": "string", "pattern": "^[0-9]{0,18}$"},
                "The `cursor.next` of the previous page.",
            ),
        ),
    ),
    ("get", "/api/deliveries/{delivery_id}"): Doc((401, 404)),
    ("post", "/api/deliveries/replay"): Doc((400, 401, 403, 404, 413), body=DELIVERIES_REPLAY),
    ("post", "/api/regulations"): Doc((400, 401, 403, 413), body=REGULATION),
    ("get", "/api/regulations"): Doc(
        (400, 401, 403),
        query=(
            Param("status", {"type": "string", "pattern": _list_of(STATUSES)}, "Comma-separated."),
            Param(
                "regulationTypes",
                {"type": "string", "pattern": _list_of(tuple(TYPES))},
                "Comma-separated.",
            ),
            Param("pagination.count", {"type": "integer", "minimum": 1, "maximum": 200}),
            Param(
                "pagination.cursor",
                {"type": "string", "pattern": "^(MA==|[0-9]{1,18}\\.reg_[0-9A-Za-z]{1,40})?$"},
                "The `pagination.next` of the previous page.",
            ),
        ),
    ),
    ("get", "/api/regulations/{regulation_id}"): Doc((401, 403, 404)),
    ("get", "/api/suppressions"): Doc((401, 403)),
    ("post", "/api/profiles/{profile_id}/self-service-link"): Doc(
        (400, 401, 403, 404, 413),
        body={
            "type": "object",
            "properties": {"ttl": {"type": "integer", "minimum": 60, "maximum": 7776000}},
            "additionalProperties": False,
        },
        body_required=False,
        created=True,
    ),
    **{
        key: Doc(errors, body=body, security=[{"SelfServiceLink": []}])
        for key, errors, body in (
            (("get", "/api/self/profile"), (401, 429), None),
            (
                ("patch", "/api/self/profile"),
                (400, 401, 413, 429),
                {"type": "object", "properties": {"traits": {"type": "object"}}},
            ),
            (("put", "/api/self/consent"), (400, 401, 413, 429), CONSENT),
            (("post", "/api/self/export"), (401, 429), None),
            (("post", "/api/self/deletion"), (401, 429), None),
        )
    },
    ("post", "/api/self/loyalty"): Doc(
        (401, 404, 409, 429), security=[{"SelfServiceLink": []}], created=True
    ),
    **{
        ("get", f"/api/self/loyalty/card.{ext}"): Doc(
            (401, 404, 429),
            security=[{"SelfServiceLink": []}],
            media_type=media,
            ok={"type": "string", **({"format": "binary"} if ext == "png" else {})},
        )
        for ext, media in (("svg", "image/svg+xml"), ("png", "image/png"))
    },
    ("get", "/api/profiles/{profile_id}/export"): Doc(
        (400, 401, 403, 404),
        query=(Param("format", {"type": "string", "enum": ["json", "zip"]}, "zip: a ZIP"),),
    ),
    ("get", "/api/journeys"): Doc((401,)),
    ("get", "/api/journeys/{key}"): Doc((401, 404)),
    ("put", "/api/journeys/{key}"): Doc((400, 401, 403, 413), body=JOURNEY),
    ("delete", "/api/journeys/{key}"): Doc((401, 403, 404)),
    ("post", "/api/journeys/{key}/pause"): Doc((401, 403, 404)),
    ("post", "/api/journeys/{key}/resume"): Doc((401, 403, 404)),
    ("get", "/api/journeys/{key}/instances"): Doc(
        (400, 401, 404),
        query=(
            Param("status", {"type": "string", "enum": ["active", "completed", "exited"]}),
            _text("Only this profile's.", name="profile"),
            _limit(100, 1000),
        ),
    ),
    ("get", "/api/tracking-plans"): Doc((401,)),
    ("get", "/api/tracking-plans/{plan_id}"): Doc(
        (400, 401, 404),
        query=(
            Param(
                "revision",
                {"type": "integer", "minimum": 1, "maximum": 2**30},
                "An earlier revision.",
            ),
        ),
    ),
    ("put", "/api/tracking-plans/{plan_id}"): Doc((400, 401, 403, 413), body=TRACKING_PLAN),
    ("delete", "/api/tracking-plans/{plan_id}"): Doc((401, 403, 404)),
    ("post", "/api/tracking-plans/{plan_id}/dry-run"): Doc(
        (400, 401, 404, 413), body=DRY_RUN, body_required=False
    ),
    ("get", "/api/sources/{source}/schema-settings"): Doc((401, 404)),
    ("put", "/api/sources/{source}/schema-settings"): Doc(
        (400, 401, 403, 404, 413), body=SCHEMA_SETTINGS
    ),
    ("get", "/api/workspaces/{workspace_id}/schema-settings"): Doc((401,)),
    ("put", "/api/workspaces/{workspace_id}/schema-settings"): Doc(
        (400, 401, 403, 404, 413), body=SCHEMA_SETTINGS
    ),
    ("get", "/api/quarantine"): Doc(
        (400, 401, 404),
        query=(
            *_QUARANTINE_FILTERS,
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
            Param(
                "before",
                {"type": "integer", "minimum": 1, "maximum": 2**62},
                "The previous page's next_before.",
            ),
        ),
    ),
    ("get", "/api/quarantine/stats"): Doc(
        (400, 401, 404),
        query=(
            *_QUARANTINE_FILTERS,
            Param("bucket", {"type": "string", "enum": ["hour", "day"], "default": "day"}),
        ),
    ),
    ("get", "/api/quarantine/{row_id}"): Doc((400, 401, 404)),
    ("post", "/api/quarantine/replay"): Doc(
        (400, 401, 403, 404, 413), body=REPLAY, body_required=False
    ),
    ("post", "/api/quarantine/dismiss"): Doc((400, 401, 403, 413), body=DISMISS),
    ("post", "/api/workspaces"): Doc((400, 401, 403, 409, 413), body=WORKSPACE_NEW, created=True),
    ("get", "/api/workspaces"): Doc((401, 403)),
    ("get", "/api/workspaces/{workspace_id}"): Doc((401, 403, 404)),
    ("put", "/api/workspaces/{workspace_id}/settings"): Doc(
        (400, 401, 403, 404, 413), body=WORKSPACE_SETTINGS
    ),
    ("get", "/api/sources"): Doc((401, 403)),
    ("post", "/api/sources"): Doc((400, 401, 403, 404, 413), body=SOURCE_NEW, created=True),
    ("get", "/api/tokens"): Doc((401, 403)),
    ("post", "/api/tokens"): Doc((400, 401, 403, 404, 413), body=TOKEN_NEW, created=True),
    ("post", "/api/tokens/{token_id}/rotate"): Doc((401, 403, 404)),
    ("delete", "/api/tokens/{token_id}"): Doc((401, 403, 404)),
    ("get", "/api/audit"): Doc(
        (400, 401, 403),
        query=(
            Param("since", _TIME, "From this time on."),
            Param("until", _TIME, "Before this time."),
            _text(
                "An action (destination.put) or a prefix ending at a dot (destination).",
                name="action",
            ),
            _text("Who: a token's `id (name)` or `cli:<os user>`.", name="actor"),
            _text("Entries about this profile.", name="profile_id"),
            _limit(100, 1000),
            Param(
                "next",
                {"type": "string", "pattern": "^[0-9]*$"},
                "The `next` of the previous page.",
            ),
        ),
    ),
    ("get", "/api/loyalty/programme"): Doc((401, 403, 404)),
    ("put", "/api/loyalty/programme"): Doc((400, 401, 403, 413), body=LOYALTY_PROGRAMME),
    ("post", "/api/loyalty/members"): Doc(
        (400, 401, 403, 404, 409, 413), body=LOYALTY_MEMBER_NEW, created=True
    ),
    ("get", "/api/loyalty/members/{member_id}"): Doc((401, 403, 404)),
    ("get", "/api/loyalty/members/{member_id}/card.svg"): Doc(
        (401, 403, 404), media_type="image/svg+xml", ok={"type": "string"}
    ),
    ("get", "/api/loyalty/members/{member_id}/card.png"): Doc(
        (401, 403, 404), media_type="image/png", ok={"type": "string", "format": "binary"}
    ),
    ("post", "/api/loyalty/members/{member_id}/rotate-token"): Doc((401, 403, 404)),
    ("post", "/api/loyalty/members/{member_id}/cards"): Doc(
        (400, 401, 403, 404, 409, 413), body=LOYALTY_CARD_NEW, created=True
    ),
    ("delete", "/api/loyalty/members/{member_id}/cards/{card_number}"): Doc((401, 403, 404)),
    ("post", "/api/loyalty/members/{member_id}/redemptions"): Doc(
        (400, 401, 403, 404, 409, 413), body=LOYALTY_REDEMPTION, created=True
    ),
    ("post", "/api/loyalty/members/{member_id}/adjustments"): Doc(
        (400, 401, 403, 404, 409, 413), body=LOYALTY_ADJUSTMENT, created=True
    ),
    ("get", "/api/loyalty/members/{member_id}/ledger"): Doc(
        (400, 401, 403, 404),
        query=(
            _limit(100, 500),
            Param(
                "before",
                {"type": "integer", "minimum": 1, "maximum": 2**62},
                "The `next` of the previous page: entries older than this id.",
            ),
        ),
    ),
    ("get", "/api/loyalty/tokens/{token}"): Doc((401, 403, 404)),
    ("get", "/q/{code}"): Doc((404,), security=[], redirect=True, error_media_type="text/plain"),
    ("get", "/api/qr"): Doc(
        (400, 401, 403),
        query=(_text("Only this campaign's codes.", name="campaign"),),
    ),
    ("post", "/api/qr"): Doc((400, 401, 403, 404, 413), body=QR_NEW, created=True),
    ("get", "/api/qr/{code}.svg"): Doc(
        (401, 403, 404), media_type="image/svg+xml", ok={"type": "string"}
    ),
    ("get", "/api/qr/{code}.png"): Doc(
        (401, 403, 404), media_type="image/png", ok={"type": "string", "format": "binary"}
    ),
    ("put", "/api/products/{product_id}"): Doc((400, 401, 403, 413), body=PRODUCT, ok=PRODUCT_VIEW),
    ("post", "/api/products:batch"): Doc((400, 401, 403, 413), body=PRODUCTS_BATCH),
    ("get", "/api/products/{product_id}"): Doc((401, 403, 404), ok=PRODUCT_VIEW, etag=True),
    ("get", "/api/products/{product_id}/similar"): Doc(
        (400, 401, 403, 404), query=(_limit(10, 100), _RECS_LOCATION)
    ),
    ("get", "/api/profiles/{profile_id}/recommendations"): Doc(
        (400, 401, 403, 404),
        query=(
            _limit(10, 100),
            _RECS_LOCATION,
            Param(
                "category",
                {"type": "string", "maxLength": 300, "pattern": TEXT_PATTERN},
                "Only this category path and its sub-categories.",
            ),
        ),
    ),
    ("post", "/api/recs/train"): Doc((400, 401, 403, 409), created=True),
    ("get", "/api/recs/models"): Doc((401, 403)),
    ("post", "/api/recs/rollback"): Doc(
        (400, 401, 403, 404, 413), body=RECS_ROLLBACK, body_required=False
    ),
    ("get", "/api/recs/settings"): Doc((401, 403)),
    ("put", "/api/recs/settings"): Doc((400, 401, 403, 413), body=RECS_SETTINGS),
    ("get", "/api/products"): Doc(
        (400, 401, 403),
        query=(
            Param(
                "category",
                {"type": "string", "maxLength": 300, "pattern": TEXT_PATTERN},
                "A category path or its start: Women finds Women > Shoes.",
            ),
            _text("The brand, exactly.", name="brand"),
            _text("A part of the name, brand or id (any case).", name="q"),
            Param(
                "in_stock",
                {"type": "string", "enum": ["true", "false"]},
                "Some location holds some (true) or none does (false).",
            ),
            _limit(50, 500),
            Param(
                "next",
                {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
                "The `next` of the previous page (opaque).",
            ),
        ),
        ok=PRODUCT_PAGE,
        etag=True,
    ),
    ("put", "/api/inventory/{product_id}"): Doc((400, 401, 403, 404, 413), body=LEVEL),
    ("post", "/api/inventory:batch"): Doc((400, 401, 403, 413), body=LEVELS_BATCH),
    ("get", "/api/inventory/{product_id}/history"): Doc(
        (400, 401, 403, 404), query=(_limit(100, 1000),)
    ),
    ("get", "/healthz"): Doc((), security=[]),
    ("get", "/readyz"): Doc((503,), security=[]),
    ("get", "/metrics"): Doc((), security=[], media_type="text/plain", ok={"type": "string"}),
}


def _apply(operation: dict[str, Any], doc: Doc) -> None:
    operation["security"] = _TOKEN if doc.security is None else doc.security
    for param in operation.get("parameters", []):
        schema = param.get("schema", {})
        if param["in"] == "path" and schema.get("type") == "string":
            schema["pattern"] = TEXT_PATTERN
            if param["name"] == "collection":
                schema["enum"] = ["users", "accounts"]
            elif param["name"] == "external_id":
                param["schema"] = ref("ExternalId")
            elif param["name"] == "plan_id":
                schema["pattern"] = PLAN_ID_PATTERN
    if doc.body is not None:
        operation["requestBody"] = {
            "required": doc.body_required,
            "content": {"application/json": {"schema": doc.body}},
        }
    if doc.query:
        known = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        operation.setdefault("parameters", []).extend(
            p.to_dict() for p in doc.query if p.name not in known
        )
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if doc.redirect:
        responses.pop("200", None)
        responses["302"] = {
            "description": "Found: the registered URL, in Location",
            "headers": {
                "Location": {"required": True, "schema": {"type": "string"}},
                "Set-Cookie": {"required": False, "schema": {"type": "string"}},
            },
        }
    else:
        ok = responses.setdefault("200", {"description": "OK"})
        ok["content"] = {doc.media_type: {"schema": doc.ok}}
        if doc.etag:
            _etag(operation, ok, responses)
    if doc.created:
        responses["201"] = {
            "description": _DESCRIPTIONS[201],
            "content": {"application/json": {"schema": doc.ok}},
        }
    for status in doc.errors:
        schema = (
            ref(doc.error_schema)
            if doc.error_media_type == "application/json"
            else {"type": "string"}
        )
        answer: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {doc.error_media_type: {"schema": schema}},
        }
        if status in (429, 503):
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = answer


def _etag(operation: dict[str, Any], ok: dict[str, Any], responses: dict[str, Any]) -> None:
    """The If-None-Match header an operation reads, the ETag it answers, and its 304."""
    operation.setdefault("parameters", []).append(
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "An ETag of an earlier answer: 304 while it is current.",
        }
    )
    ok["headers"] = {"ETag": {"schema": {"type": "string"}}}
    responses["304"] = {
        "description": "Not modified: the If-None-Match ETag is current (no body)",
        "headers": {"ETag": {"schema": {"type": "string"}}},
    }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every operation described (see :data:`OPERATIONS`)."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            doc = OPERATIONS.get((method, path))
            if doc is None:
                raise KeyError(f"{method.upper()} {path} is not described in web/openapi.py")
            _apply(operation, doc)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(COMPONENTS)
    components["securitySchemes"] = SECURITY_SCHEMES
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`openapi_document` at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
