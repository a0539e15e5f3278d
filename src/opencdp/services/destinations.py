"""Destinations and their deliveries, the use cases the API and the CLI share: configure a
destination (type, settings validated by the type's schema, subscriptions with an FQL
condition and an Actions mapping, all checked before anything is stored), show it with its
delivery counts, send it one test message, list and replay deliveries.

Secrets in settings (a webhook's signing secret, an SMTP password) are never shown again:
answers carry ``********`` in their place, and a PUT that sends ``********`` back keeps the
stored secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr, ValidationError

from opencdp.activate.destinations import registered
from opencdp.activate.destinations.base import DestinationType, Message
from opencdp.activate.dispatcher import build_sender
from opencdp.activate.fql import ConditionError, parse_condition
from opencdp.activate.mapping import MappingError, compile_mapping
from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.storage.destinations import DestinationRow
from opencdp.storage.outbox import STATUSES, SUPPRESSED, DeliveryRow
from opencdp.storage.product_lookup import ProductLookup
from opencdp.timeutil import isoformat_us, to_us

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MASK = "********"
_FIELDS = {"type", "enabled", "settings", "subscriptions"}
_SUBSCRIPTION_FIELDS = {
    "name",
    "condition",
    "mapping",
    "template",
    "enabled",
    "audience",
    "identify",
    "track",
    "per_identifier",
}


# -- configuring ----------------------------------------------------------------------------------


def put_destination(
    runtime: Runtime, workspace_id: str, destination_id: str, body: Any
) -> tuple[dict[str, Any], bool]:
    """Create or replace a destination from ``{"type", "enabled", "settings",
    "subscriptions": [{"name", "condition", "mapping"}]}``; returns (its view, created)."""
    if not ID.fullmatch(destination_id):
        raise RequestError(
            f"{destination_id!r} is not a valid destination id: up to 64 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit",
            code="invalid_id",
        )
    if not isinstance(body, dict):
        raise RequestError("send a JSON object", code="invalid_destination")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise RequestError(
            f"unknown keys {unknown}: a destination has type, enabled, settings and subscriptions",
            code="invalid_destination",
        )
    types = registered()
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise RequestError(
            f"type: {kind!r} is not a destination type; known: {', '.join(sorted(types))}",
            code="unknown_destination_type",
        )
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RequestError("enabled: true or false", code="invalid_destination")
    existing = _existing(runtime, workspace_id, destination_id)
    kept = existing.settings if existing is not None and existing.type == kind else {}
    settings = _settings(types[kind], body.get("settings", {}), kept)
    subscriptions = _subscriptions(
        runtime, workspace_id, body.get("subscriptions", []), types[kind]
    )
    now = to_us(runtime.clock.now())
    created = runtime.destinations.put(
        {
            "workspace_id": workspace_id,
            "id": destination_id,
            "type": kind,
            "enabled": enabled,
            "settings": settings,
            "subscriptions": subscriptions,
            "health": "ok",
            "created_us": now,
            "updated_us": now,
        }
    )
    _backfill(runtime, workspace_id, destination_id, existing, subscriptions)
    return get_destination(runtime, workspace_id, destination_id), created


def _backfill(
    runtime: Runtime,
    workspace_id: str,
    destination_id: str,
    before: DestinationRow | None,
    subscriptions: list[dict[str, Any]],
) -> None:
    """Audience subscriptions that start now receive the audience's current members."""
    started = {(s["name"], s.get("audience")) for s in before.subscriptions} if before else set()
    with runtime.db.write() as conn:
        for s in subscriptions:
            if s.get("audience") and (s["name"], s["audience"]) not in started:
                runtime.router.backfill(conn, workspace_id, destination_id, s)


def _existing(runtime: Runtime, workspace_id: str, destination_id: str) -> DestinationRow | None:
    try:
        return runtime.destinations.get(workspace_id, destination_id)
    except RequestError:
        return None


def _settings(kind: type[DestinationType], given: Any, kept: Mapping[str, Any]) -> dict[str, Any]:
    """Settings validated by the type's schema, as stored (secrets in clear; ``********``
    stands for the stored value)."""
    if not isinstance(given, dict):
        raise RequestError("settings: a JSON object", code="invalid_settings")
    merged = {k: _unmask(v, kept.get(k)) for k, v in given.items()}
    try:
        model = kind.Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise RequestError(problems, code="invalid_settings") from None
    plain = _plain(model)
    assert isinstance(plain, dict)
    return plain


def _unmask(given: Any, stored: Any) -> Any:
    """``********`` (also in a list or as a header's value) stands for the stored value."""
    if given == MASK:
        return stored
    if isinstance(given, list) and given and all(v == MASK for v in given):
        return stored
    if isinstance(given, dict) and isinstance(stored, dict):
        return {k: stored.get(k) if v == MASK else v for k, v in given.items()}
    return given


def _problem(error: Mapping[str, Any]) -> str:
    """One settings problem as ``settings.<field>: what is wrong`` (a check over several
    fields names its field first in its message)."""
    text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    where = ".".join(str(p) for p in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        text = "not a setting of this type"
    return f"settings.{where}: {text}" if where else f"settings.{text}"


def _plain(value: Any) -> Any:
    """A validated settings model as JSON-ready values, secrets revealed (for storing)."""
    if isinstance(value, BaseModel):  # by the names users write (smtp's "from")
        return {
            (f.alias or k): _plain(getattr(value, k)) for k, f in type(value).model_fields.items()
        }
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _subscriptions(
    runtime: Runtime, workspace_id: str, given: Any, kind: type[DestinationType]
) -> list[dict[str, Any]]:
    if not isinstance(given, list):
        raise RequestError("subscriptions: a list", code="invalid_subscriptions")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, s in enumerate(given):
        where = f"subscriptions[{i}]"
        if not isinstance(s, dict):
            raise RequestError(f"{where}: a JSON object", code="invalid_subscriptions")
        unknown = sorted(set(s) - _SUBSCRIPTION_FIELDS)
        if unknown:
            raise RequestError(
                f"{where}: unknown keys {unknown} (name, condition, mapping, template, "
                "enabled; audience, identify, track, per_identifier)",
                code="invalid_subscriptions",
            )
        name = s.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise RequestError(
                f"{where}.name: a name of 1 to 200 characters", code="invalid_subscriptions"
            )
        if name in names:
            raise RequestError(
                f"{where}.name: {name!r} is used twice", code="invalid_subscriptions"
            )
        names.add(name)
        template = _template(kind, where, s.get("template"))
        audience = s.get("audience")
        if audience is not None:
            out.append(
                {**_audience_subscription(runtime, workspace_id, where, name, s), **template}
            )
            continue
        condition = s.get("condition", "all")
        if not isinstance(condition, str):
            raise RequestError(f"{where}.condition: FQL text", code="invalid_condition")
        try:
            parse_condition(condition)
        except ConditionError as exc:
            raise RequestError(
                f"{where}.condition: {exc.message}", code="invalid_condition"
            ) from None
        mapping = s.get("mapping")
        if mapping is not None:
            try:
                compile_mapping(mapping)
            except MappingError as exc:
                raise RequestError(
                    f"{where}.mapping: {exc.message}", code="invalid_mapping"
                ) from None
        enabled = s.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RequestError(f"{where}.enabled: true or false", code="invalid_subscriptions")
        out.append(
            {
                "name": name,
                "condition": condition,
                "mapping": mapping,
                "enabled": enabled,
                **template,
            }
        )
    return out


def _template(kind: type[DestinationType], where: str, template: Any) -> dict[str, Any]:
    """A subscription's own templates (an ``smtp`` destination's e-mail per subscription),
    checked by the type; ``{}`` without one."""
    if template is None:
        return {}
    try:
        return {"template": kind.check_template(template)}
    except ValueError as exc:
        raise RequestError(f"{where}.template: {exc}", code="invalid_subscriptions") from None


def _audience_subscription(
    runtime: Runtime, workspace_id: str, where: str, name: str, s: dict[str, Any]
) -> dict[str, Any]:
    """``{"name", "audience": key, "identify": true, "track": true, "mapping"}``: Segment's
    audience messages for an existing audience."""
    key = s["audience"]
    if not isinstance(key, str):
        raise RequestError(f"{where}.audience: an audience's key", code="invalid_subscriptions")
    if "condition" in s:
        raise RequestError(
            f"{where}: an audience subscription receives that audience's messages; "
            "it takes no condition",
            code="invalid_subscriptions",
        )
    try:
        runtime.compute.definitions.get(workspace_id, key, "audience")
    except NotFound:
        raise RequestError(
            f"{where}.audience: no audience {key!r} in this workspace", code="invalid_subscriptions"
        ) from None
    flags = {k: s.get(k, True) for k in ("identify", "track")}
    if not all(isinstance(v, bool) for v in flags.values()) or not any(flags.values()):
        raise RequestError(
            f"{where}: identify and track are true or false, at least one true",
            code="invalid_subscriptions",
        )
    mapping = s.get("mapping")
    if mapping is not None:
        try:
            compile_mapping(mapping)
        except MappingError as exc:
            raise RequestError(f"{where}.mapping: {exc.message}", code="invalid_mapping") from None
    enabled = s.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RequestError(f"{where}.enabled: true or false", code="invalid_subscriptions")
    per_identifier = s.get("per_identifier", False)
    if not isinstance(per_identifier, bool):
        raise RequestError(f"{where}.per_identifier: true or false", code="invalid_subscriptions")
    return {
        "name": name,
        "audience": key,
        **flags,
        "per_identifier": per_identifier,
        "mapping": mapping,
        "enabled": enabled,
    }


# -- reading --------------------------------------------------------------------------------------


def describe(runtime: Runtime, row: DestinationRow) -> dict[str, Any]:
    """A destination as the API shows it: secrets masked, with its deliveries' counts."""
    summary = runtime.outbox.summary(row.workspace_id, row.id)
    oldest = summary["oldest_waiting_us"]
    now = to_us(runtime.clock.now())
    return {
        "id": row.id,
        "type": row.type,
        "enabled": row.enabled,
        "health": row.health,
        "settings": _masked(registered().get(row.type), row.settings),
        "subscriptions": row.subscriptions,
        "deliveries": {
            **summary["counts"],
            "oldest_waiting_seconds": None if oldest is None else round((now - oldest) / 1e6, 3),
        },
        "created_at": isoformat_us(row.created_us),
        "updated_at": isoformat_us(row.updated_us),
    }


def _masked(kind: type[DestinationType] | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    if kind is None:  # its type is not installed: show nothing that may be secret
        return dict.fromkeys(settings, MASK)
    secret_fields = {
        f.alias or name
        for name, f in kind.Settings.model_fields.items()
        if f.annotation is not None and "SecretStr" in str(f.annotation)
    }
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if k == "headers" and isinstance(v, dict):  # an Authorization header is a secret
            out[k] = dict.fromkeys(v, MASK)
        elif k in secret_fields and v:
            out[k] = [MASK for _ in v] if isinstance(v, list) else MASK
        else:
            out[k] = v
    return out


def get_destination(runtime: Runtime, workspace_id: str, destination_id: str) -> dict[str, Any]:
    return describe(runtime, runtime.destinations.get(workspace_id, destination_id))


def list_destinations(runtime: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [describe(runtime, r) for r in runtime.destinations.of_workspace(workspace_id)]


def delete_destination(runtime: Runtime, workspace_id: str, destination_id: str) -> None:
    """Remove the destination and its deliveries."""
    runtime.destinations.delete(workspace_id, destination_id)


def set_enabled(
    runtime: Runtime, workspace_id: str, destination_id: str, enabled: bool
) -> dict[str, Any]:
    """Switch a destination on or off (off: nothing new is routed to it; the deliveries
    already in the outbox wait)."""
    runtime.destinations.get(workspace_id, destination_id)  # NotFound
    runtime.destinations.set_state(
        workspace_id,
        destination_id,
        to_us(runtime.clock.now()),
        enabled=enabled,
        **({"health": "ok"} if enabled else {}),
    )
    return get_destination(runtime, workspace_id, destination_id)


# -- testing ---------------------------------------------------------------------------------------

SAMPLE_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "userId": "test-user",
    "anonymousId": "test-anonymous",
    "messageId": "test-message",
    "timestamp": "2026-01-01T12:00:00.000Z",
    "properties": {
        "order_id": "test-order",
        "revenue": 42.5,
        "currency": "EUR",
        "products": [{"product_id": "sku-1", "name": "Test product", "price": 42.5}],
    },
    "context": {"traits": {"email": "test@example.com"}},
}


def test_destination(
    runtime: Runtime,
    workspace_id: str,
    destination_id: str,
    *,
    subscription: str | None = None,
    event: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Send one sample message (or ``event``) now, outside the outbox, shaped by a
    subscription's mapping (the first, or ``subscription``); returns what came back."""
    row = runtime.destinations.get(workspace_id, destination_id)
    chosen = [s for s in row.subscriptions if subscription in (None, s["name"])]
    if subscription is not None and not chosen:
        raise RequestError(
            f"subscription {subscription!r} is not one of {destination_id!r}'s",
            code="invalid_request",
        )
    sample = dict(event or SAMPLE_EVENT)
    mapping = chosen[0].get("mapping") if chosen else None
    catalog = ProductLookup(runtime.db, workspace_id)  # @catalog and product() in templates
    data = sample if mapping is None else compile_mapping(mapping).apply(sample, catalog=catalog)
    sender = build_sender(row)
    try:
        message = Message(
            "msg_test_" + secrets.token_hex(8),
            data,
            sample,
            chosen[0]["name"] if chosen else "test",
            1,
            runtime.clock.now(),
            catalog=catalog,
        )
        attempt = sender.send([message])[0]
        verdict = sender.classify(attempt)
    finally:
        sender.close()
    return {
        "id": message.id,
        "verdict": verdict.outcome,
        "reason": verdict.reason,
        "status": attempt.status,
        "error": attempt.error,
        "request": attempt.request,
        "response": attempt.response,
    }


# -- deliveries -----------------------------------------------------------------------------------


def delivery_view(row: DeliveryRow, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "destination": row.destination_id,
        "subscription": row.subscription,
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "message_id": row.message_id,
        "profile_id": row.profile_id,
        "created_at": isoformat_us(row.created_us),
        "next_attempt_at": (
            isoformat_us(row.next_attempt_us) if row.status in ("pending", "retrying") else None
        ),
        "delivered_at": None if row.delivered_us is None else isoformat_us(row.delivered_us),
    }
    if full:
        out["event"] = orjson.loads(row.payload)
        out["last_request"] = None if row.last_request is None else orjson.loads(row.last_request)
        out["last_response"] = (
            None if row.last_response is None else orjson.loads(row.last_response)
        )
    return out


def list_deliveries(
    runtime: Runtime,
    workspace_id: str,
    *,
    destination: str | None = None,
    status: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> dict[str, Any]:
    """A page of deliveries in enqueueing order: ``{"data": […], "cursor": {"has_more",
    "next"}}``."""
    if status is not None and status not in STATUSES:
        raise RequestError(
            f"status: one of {', '.join(STATUSES)}, not {status!r}", code="invalid_request"
        )
    if not 1 <= limit <= 1000:
        raise RequestError("limit: 1 to 1000", code="invalid_request")
    start: int | None = None
    if after:
        if not (after.isascii() and after.isdigit() and len(after) <= 18):
            raise RequestError("next: the cursor.next of the previous page", code="invalid_request")
        start = int(after)
    rows = runtime.outbox.page(
        workspace_id, destination_id=destination, status=status, limit=limit + 1, after=start
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [delivery_view(r) for r in rows],
        "cursor": {"has_more": more, "next": str(rows[-1].seq) if more else None},
    }


def get_delivery(runtime: Runtime, workspace_id: str, delivery_id: str) -> list[dict[str, Any]]:
    """A delivery with its event, last request and last answer (one per destination)."""
    rows = runtime.outbox.get(workspace_id, delivery_id)
    if not rows:
        raise NotFound(f"no delivery {delivery_id!r} in workspace {workspace_id!r}")
    return [delivery_view(r, full=True) for r in rows]


def replay_deliveries(runtime: Runtime, workspace_id: str, body: Any) -> dict[str, Any]:
    """Queue deliveries again under their ids: ``{"destination", "status": "dead"}``
    (default dead letters), optionally ``"ids": […]``."""
    if not isinstance(body, dict):
        raise RequestError("send a JSON object", code="invalid_request")
    destination = body.get("destination")
    status = body.get("status", "dead")
    ids = body.get("ids", [])
    if "destination" in body and not isinstance(destination, str):
        raise RequestError("destination: a destination's id", code="invalid_request")
    if destination is not None:
        runtime.destinations.get(workspace_id, destination)  # NotFound
    if status not in ("dead", "delivered", "retrying", SUPPRESSED):
        raise RequestError(
            "status: dead (after a fix), delivered (send again), retrying (without waiting) "
            "or suppressed_by_consent (consent is checked again)",
            code="invalid_request",
        )
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise RequestError("ids: a list of delivery ids", code="invalid_request")
    n = runtime.outbox.replay(
        workspace_id,
        to_us(runtime.clock.now()),
        destination_id=destination,
        status=status,
        ids=ids,
    )
    return {"replayed": n}
