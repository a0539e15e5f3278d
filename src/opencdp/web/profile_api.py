"""The Profile API in Segment's shape (segment-compat.md §2.1):
``GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/{resource}``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from opencdp.errors import NotFound, OpenCDPError, RequestError
from opencdp.identity.identifiers import normalize_email, normalize_phone
from opencdp.privacy.roles import audited_reads
from opencdp.profiles.traits import TraitValue
from opencdp.runtime import Runtime
from opencdp.storage.profiles import IdentifierRow, ProfileRow
from opencdp.timeutil import isoformat_us, parse_timestamp, to_us
from opencdp.web.auth import PROFILE_KEY, authenticate, note_profile
from opencdp.web.responses import JSON, profile_error

COLLECTIONS = ("users", "accounts")
_STATUS_CODES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found"}


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def _uncursor(text: str, valid: Callable[[Any], bool] = lambda _v: True) -> Any:
    """The value of a ``next`` cursor; ``valid`` checks its shape (a 400, never a 500)."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        value = _BAD
    if value is _BAD or not _storable_numbers(value) or not valid(value):
        raise RequestError("next is not a cursor this API returned", code="validation_error")
    return value


_BAD = object()
_INT64 = range(-(1 << 63), 1 << 63)


def _storable_numbers(value: Any) -> bool:
    """False when a forged cursor holds a number no database column can (beyond 64 bits)."""
    items = value if isinstance(value, list) else [value]
    return all(not isinstance(v, int) or v in _INT64 for v in items)


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(
            f"limit must be an integer, got {raw!r}", code="validation_error"
        ) from None
    if not 1 <= value <= maximum:
        raise RequestError(f"limit must be between 1 and {maximum}", code="validation_error")
    return value


def _csv(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _page_url(request: Request, next_cursor: str | None) -> str:
    params = dict(request.query_params)
    if next_cursor:
        params["next"] = next_cursor
    query = urlencode(params)
    return f"{request.url.path}?{query}" if query else request.url.path


def external_id_json(row: IdentifierRow) -> dict[str, Any]:
    return {
        "source_id": row.source_id,
        "collection": row.collection,
        "id": row.id_value,
        "type": row.id_type,
        "created_at": isoformat_us(row.created_us),
        "encoding": "none",
        "first_message_id": row.message_id,
    }


def profile_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["Profile API"])
    store = runtime.profiles

    reads = runtime.profile_reads

    def parse_external_id(collection: str, external_id: str) -> tuple[str, str] | None:
        """(type, value) of ``type:value``, normalized like identity resolution stores it;
        None for a bare profile id."""
        if collection not in COLLECTIONS:
            raise NotFound(f"collection must be users or accounts, not {collection!r}")
        if ":" not in external_id:
            return None
        id_type, _, value = external_id.partition(":")
        id_type = id_type.strip().lower()
        if not value:
            raise RequestError(
                "external id must look like type:value, e.g. user_id:u123", code="validation_error"
            )
        if id_type == "email":
            value = normalize_email(value) or value.strip().lower()
        elif id_type == "phone":
            value = normalize_phone(value, runtime.settings.default_phone_region) or value
        return id_type, value

    def locate(space: str, collection: str, external_id: str) -> ProfileRow:
        parsed = parse_external_id(collection, external_id)
        if parsed is None:
            return store.resolve_id(space, external_id, collection)
        return store.find_profile(space, collection, *parsed)

    def trait_values(space: str, collection: str, external_id: str) -> dict[str, TraitValue]:
        """The traits of the profile an external id names: the hot path, one statement."""
        parsed = parse_external_id(collection, external_id)
        found = reads.profile_traits(space, collection, *parsed) if parsed else None
        if found is not None and found.merged_into is None:
            return found.traits
        if parsed is not None and found is None:
            raise NotFound("Profile was not found.")
        profile = locate(space, collection, external_id)  # a bare id, or a merge to follow
        return store.traits(profile.workspace_id, profile.id)

    def profile_failure(exc: OpenCDPError) -> Response:
        code = (
            exc.code
            if exc.code in _STATUS_CODES.values() or exc.code == "validation_error"
            else _STATUS_CODES.get(exc.status, exc.code)
        )
        return profile_error(exc.status, code, exc.message)

    def endpoint_for(
        body: Callable[[str, str, str, Request], dict[str, Any]],
    ) -> Callable[..., Any]:
        """The route: authenticate for the space, answer ``body``, errors in the Profile API's
        shape (Request-Id is set on every response by web/request_id.py)."""

        async def endpoint(
            space: str, collection: str, external_id: str, request: Request
        ) -> Response:
            try:
                token = authenticate(runtime, request, space)
                answer = body(space, collection, external_id, request)
                if audited_reads(token.role) and PROFILE_KEY not in request.scope:
                    # a support read is audited with the profile it read (the traits hot path
                    # does not look the profile up, so look it up for these tokens only)
                    note_profile(request, locate(space, collection, external_id).id)
                return JSON(answer)
            except OpenCDPError as exc:
                return profile_failure(exc)

        return endpoint

    def guarded(handler: Callable[[Request, ProfileRow], dict[str, Any]]) -> Callable[..., Any]:
        """A resource of the located profile."""

        def located(space: str, collection: str, external_id: str, request: Request) -> Any:
            profile = locate(space, collection, external_id)
            note_profile(request, profile.id)
            return handler(request, profile)

        return endpoint_for(located)

    # Traits, the hot path: located and read in one statement (trait_values).
    traits_endpoint = endpoint_for(
        lambda space, collection, external_id, request: traits_page(
            request, space, trait_values(space, collection, external_id)
        )
    )

    def traits_page(request: Request, space: str, values: dict[str, TraitValue]) -> dict[str, Any]:
        wanted = request.query_params.get("class")
        if wanted is not None:  # Segment's ?class=audience|computed_trait: those keys only
            kind = {"audience": "audience", "computed_trait": "trait"}.get(wanted)
            if kind is None:
                raise RequestError(
                    f"class is audience or computed_trait, not {wanted!r}", code="invalid_request"
                )
            defined = {row.key for row in runtime.compute.definitions.of_workspace(space, kind)}
            values = {k: v for k, v in values.items() if k in defined}
        include = _csv(request, "include")
        keys = sorted(k for k in values if include is None or k in include)
        limit = _limit(request, 10, 200)
        after = request.query_params.get("next")
        if after:
            start = _uncursor(after, lambda v: isinstance(v, str))
            keys = [k for k in keys if k > start]
        page, more = keys[:limit], len(keys) > limit
        if _flag(request, "verbose"):
            out: dict[str, Any] = {
                k: {
                    "value": values[k].value,
                    "source_id": values[k].source_id,
                    "message_id": values[k].message_id,
                    "updated_at": isoformat_us(values[k].event_us),
                }
                for k in page
            }
        else:
            out = {k: values[k].value for k in page}
        nxt = _cursor(page[-1]) if more else None
        return {
            "traits": out,
            "cursor": {
                "url": _page_url(request, None),
                "has_more": more,
                "next": nxt,
                "limit": limit,
            },
        }

    def external_ids(request: Request, profile: ProfileRow) -> dict[str, Any]:
        rows = store.identifiers(profile.workspace_id, profile.id)
        include = _csv(request, "include")
        if include:
            rows = [r for r in rows if r.id_type in include]
        limit = _limit(request, 25, 100)
        offset = (
            _uncursor(
                request.query_params["next"],
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            )
            if request.query_params.get("next")
            else 0
        )
        page = rows[offset : offset + limit]
        more = len(rows) > offset + limit
        return {
            "data": [external_id_json(r) for r in page],
            "cursor": {
                "url": _page_url(request, None),
                "has_more": more,
                "next": _cursor(offset + limit) if more else None,
            },
        }

    def events_(request: Request, profile: ProfileRow) -> dict[str, Any]:
        def when(name: str) -> int | None:
            raw = request.query_params.get(name)
            if not raw:
                return None
            try:
                return to_us(parse_timestamp(raw))
            except ValueError:
                raise RequestError(
                    f"{name} must be an ISO-8601 time, got {raw!r}", code="validation_error"
                ) from None

        sort = request.query_params.get("sort", "desc").lower()
        if sort not in ("asc", "desc"):
            raise RequestError("sort must be asc or desc", code="validation_error")
        limit = _limit(request, 10, 100)
        after = None
        if request.query_params.get("next"):
            ts, mid = _uncursor(
                request.query_params["next"],
                lambda v: (
                    isinstance(v, list)
                    and len(v) == 2
                    and isinstance(v[0], int)
                    and not isinstance(v[0], bool)
                    and isinstance(v[1], str)
                ),
            )
            after = (ts, mid)
        rows = store.events(
            profile.workspace_id,
            profile.id,
            start_us=when("start"),
            end_us=when("end"),
            include=_csv(request, "include"),
            exclude=_csv(request, "exclude"),
            limit=limit + 1,
            descending=sort == "desc",
            after=after,
        )
        page, more = rows[:limit], len(rows) > limit
        ids = [
            {"collection": r.collection, "type": r.id_type, "id": r.id_value, "encoding": "none"}
            for r in store.identifiers(profile.workspace_id, profile.id)[:20]
        ]
        data = []
        for r in page:
            p = r.payload
            data.append(
                {
                    "external_ids": ids,
                    "context": p.get("context", {}),
                    "type": r.type,
                    "message_id": r.message_id,
                    "source_id": r.source_id,
                    "timestamp": p.get("timestamp"),
                    "received_at": p.get("receivedAt"),
                    "properties": p.get("properties", {}),
                    "traits": p.get("traits"),
                    "event": r.event,
                    "name": p.get("name"),
                    "related": {profile.collection: profile.id},
                }
            )
        nxt = _cursor([page[-1].timestamp_us, page[-1].message_id]) if more else None
        return {
            "data": data,
            "cursor": {"url": _page_url(request, None), "has_more": more, "next": nxt},
        }

    def metadata(request: Request, profile: ProfileRow) -> dict[str, Any]:
        return {
            "metadata": {
                "created_at": isoformat_us(profile.created_us),
                "updated_at": isoformat_us(profile.updated_us),
                "expires_at": None,
                "first_message_id": profile.first_message_id,
                "first_source_id": profile.first_source_id,
                "last_message_id": profile.last_message_id,
                "last_source_id": profile.last_source_id,
            }
        }

    def links_(request: Request, profile: ProfileRow) -> dict[str, Any]:
        limit = _limit(request, 20, 20)
        other = "accounts" if profile.collection == "users" else "users"
        data = [
            {
                "to_collection": other,
                "external_ids": [
                    external_id_json(r) for r in store.identifiers(profile.workspace_id, pid)
                ],
            }
            for pid in store.links_of(profile.workspace_id, profile.id, profile.collection, limit)
        ]
        return {"data": data}

    base = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"
    router.add_api_route(
        f"{base}/traits",
        traits_endpoint,
        methods=["GET"],
        name="profile_traits",
        summary="Profile traits",
    )
    for name, handler in (
        ("external_ids", external_ids),
        ("events", events_),
        ("metadata", metadata),
        ("links", links_),
    ):
        router.add_api_route(
            f"{base}/{name}",
            guarded(handler),
            methods=["GET"],
            name=f"profile_{name}",
            summary=f"Profile {name}",
        )
    return router
