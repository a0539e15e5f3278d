"""End-to-end: unmodified client SDKs against a real server, read back through the Profile API.

segment-analytics-python and rudder-sdk-python (segment-compat.md §4.1, §4.2) each send all six
call types over a real socket to ``opencdp serve`` on SQLite and on PostgreSQL; the profiles they
build are then read the way Segment's Profile API is read (§2.1): traits, external ids, events
(filters, sort, cursor pagination), metadata, links and the error shape. The analytics.js paths
(§1.1 short routes, ``text/plain``, CORS preflight, §1.3) are driven with raw httpx requests.

The SDK scenario runs once per backend per module (``sdk_server``) and the tests read from it:
starting a server and flushing two SDKs for every single assertion would cost minutes.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import pytest

from opencdp.runtime import Runtime
from tests.conftest import BACKENDS, TOKEN, WRITE_KEY, basic, make_settings
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

SPACE = "default"
SIX_TYPES = {"identify", "track", "page", "screen", "group", "alias"}


def import_rudder_client() -> Any:
    """rudder-sdk-python's Client, imported with ``.env`` loading off.

    The package calls ``load_dotenv()`` on import (segment-compat.md §4.2): a stray ``.env`` above
    site-packages would leak into ``os.environ``, and from there into the server processes these
    tests start (for example an ``OPENCDP_DATABASE_URL``). ``PYTHON_DOTENV_DISABLED`` stops that.
    """
    before = dict(os.environ)
    with mock.patch.dict(os.environ, {"PYTHON_DOTENV_DISABLED": "1"}):
        module = importlib.import_module("rudderstack.analytics")
    assert dict(os.environ) == before, "importing rudder-sdk-python changed the environment"
    return module.Client


def segment_client(server: LiveServer, on_error: Callable[..., None]) -> Any:
    from segment.analytics import Client

    return Client(
        server.write_key, host=server.url, on_error=on_error, max_retries=2, upload_interval=0.2
    )


def rudder_client(server: LiveServer, on_error: Callable[..., None]) -> Any:
    client = import_rudder_client()(
        server.write_key,
        host=server.url,
        on_error=on_error,
        gzip=True,
        max_retries=2,
        upload_interval=0.2,
    )
    assert client.host == server.url  # not TEST_DATA_PLANE_URL from some environment
    return client


@dataclass
class Sent:
    """What one SDK sent: the ids it used and the message ids it generated, in call order."""

    sdk: str
    anonymous_id: str
    user_id: str
    email: str
    group_id: str
    traits: dict[str, Any]
    calls: list[tuple[str, str | None, str]] = field(default_factory=list)  # type, name, msg id

    @property
    def message_ids(self) -> list[str]:
        return [mid for _t, _n, mid in self.calls]


def send_everything(sdk: str, client: Any, base: datetime) -> Sent:
    """One customer's journey: anonymous browsing, sign-in, purchase, account, alias."""
    sent = Sent(
        sdk=sdk,
        anonymous_id=f"{sdk}-anon-{uuid.uuid4().hex[:8]}",
        user_id=f"{sdk}-user-{uuid.uuid4().hex[:8]}",
        email=f"{sdk}.Buyer@Example.com",
        group_id=f"{sdk}-acct-{uuid.uuid4().hex[:8]}",
        traits={"email": f"{sdk}.Buyer@Example.com", "plan": "pro", "name": "Ann Example"},
    )
    a, u = sent.anonymous_id, sent.user_id

    def at(minutes: int) -> datetime:
        return base + timedelta(minutes=minutes)

    def record(typ: str, name: str | None, result: tuple[bool, dict[str, Any]]) -> None:
        ok, msg = result
        assert ok, f"{sdk} refused to enqueue a {typ}"
        sent.calls.append((typ, name, msg["messageId"]))

    record("identify", None, client.identify(anonymous_id=a, traits=sent.traits, timestamp=at(0)))
    record(
        "track",
        "Product Viewed",
        client.track(
            anonymous_id=a,
            event="Product Viewed",
            properties={"sku": "A-1", "price": 9.5},
            timestamp=at(1),
        ),
    )
    record(
        "page",
        "Pricing",
        client.page(
            anonymous_id=a,
            category="Docs",
            name="Pricing",
            properties={"path": "/pricing"},
            timestamp=at(2),
        ),
    )
    # The signed-in user first shows up on its own (a second profile until the alias).
    record("screen", "Checkout", client.screen(user_id=u, name="Checkout", timestamp=at(3)))
    record(
        "track",
        "Order Completed",
        client.track(user_id=u, event="Order Completed", properties={"total": 42}, timestamp=at(4)),
    )
    record(
        "group",
        None,
        client.group(
            user_id=u,
            group_id=sent.group_id,
            traits={"name": f"{sdk} Corp", "employees": 12},
            timestamp=at(5),
        ),
    )
    record("alias", None, client.alias(previous_id=a, user_id=u, timestamp=at(6)))
    record("identify", None, client.identify(user_id=u, traits={"tier": "gold"}, timestamp=at(7)))
    return sent


@dataclass
class World:
    server: LiveServer
    backend: str
    database_url: str | None
    sent: dict[str, Sent]


@pytest.fixture(scope="module", params=BACKENDS)
def sdk_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """``live_server_any`` once per module: a real server per backend, fed by both SDKs."""
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("pg_cluster").new_database()
    server = LiveServer(
        tmp_path_factory.mktemp(f"sdk-{request.param}"), WRITE_KEY, TOKEN, database_url
    ).start()
    try:
        # Given both SDKs configured as §4 says, collecting every delivery error
        errors: list[tuple[str, Exception]] = []
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        sent = {}
        for sdk, make in (("segment", segment_client), ("rudder", rudder_client)):
            client = make(server, lambda exc, _batch, sdk=sdk: errors.append((sdk, exc)))
            # When each sends a whole journey and is flushed synchronously
            sent[sdk] = send_everything(sdk, client, base)
            client.flush()
            client.join()
        # Then nothing failed on the wire, and the worker drains what was accepted
        assert errors == []
        server.wait_idle()
        yield World(server, request.param, database_url, sent)
    finally:
        server.stop()


@pytest.fixture(params=["segment", "rudder"])
def sdk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def profiles_url(server: LiveServer, space: str = SPACE, collection: str = "users") -> str:
    return f"{server.url}/v1/spaces/{space}/collections/{collection}/profiles"


def get(
    world: World,
    external_id: str,
    resource: str,
    *,
    collection: str = "users",
    token: str = TOKEN,
    space: str = SPACE,
    **params: Any,
) -> httpx.Response:
    url = (
        f"{profiles_url(world.server, space, collection)}/{quote(external_id, safe=':')}/{resource}"
    )
    return httpx.get(url, params=params, headers=basic(token), timeout=10)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers.get("request-id"), "every Profile API response carries a Request-Id"
    body: dict[str, Any] = response.json()
    return body


def all_events(world: World, external_id: str, **params: Any) -> list[dict[str, Any]]:
    return list(ok(get(world, external_id, "events", limit=100, **params))["data"])


def profile_id(world: World, sent: Sent) -> str:
    first = all_events(world, f"user_id:{sent.user_id}")[0]
    return str(first["related"]["users"])


# --- Profile API: what the SDKs built -----------------------------------------------------------


def test_identify_traits_are_on_the_profile(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    body = ok(get(sdk_server, f"user_id:{sent.user_id}", "traits"))
    # The anonymous identify's traits (rudder: only in context.traits) plus the later one.
    assert body["traits"] == {**sent.traits, "tier": "gold"}
    assert body["cursor"]["has_more"] is False
    assert body["cursor"]["next"] is None


def test_rudder_sends_identify_traits_only_in_context_traits(sdk_server: World) -> None:
    # Given rudder-sdk-python's identify (no top-level traits on the wire, §1.4)
    sent = sdk_server.sent["rudder"]
    first_identify = sent.calls[0][2]
    events = all_events(sdk_server, f"user_id:{sent.user_id}", sort="asc")
    stored = next(e for e in events if e["message_id"] == first_identify)
    # Then the server read the traits from context.traits
    assert stored["context"]["traits"] == sent.traits
    assert stored["traits"] == sent.traits
    assert stored["context"]["library"]["name"] == "analytics-python"


def test_traits_include_and_limit_paginate(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    ext = f"user_id:{sent.user_id}"
    assert ok(get(sdk_server, ext, "traits", include="plan,tier"))["traits"] == {
        "plan": "pro",
        "tier": "gold",
    }
    seen: dict[str, Any] = {}
    params: dict[str, Any] = {"limit": 2}
    for _ in range(10):
        body = ok(get(sdk_server, ext, "traits", **params))
        assert len(body["traits"]) <= 2
        assert not set(body["traits"]) & set(seen)
        seen.update(body["traits"])
        if not body["cursor"]["has_more"]:
            break
        params["next"] = body["cursor"]["next"]
    assert seen == {**sent.traits, "tier": "gold"}


def test_external_ids_cover_user_anonymous_and_email(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    data = ok(get(sdk_server, f"user_id:{sent.user_id}", "external_ids"))["data"]
    ids = {(d["type"], d["id"]) for d in data}
    assert ids == {
        ("user_id", sent.user_id),
        ("anonymous_id", sent.anonymous_id),
        ("email", sent.email.lower()),  # identifiers are normalized, traits are kept as sent
    }
    for d in data:
        assert d["collection"] == "users"
        assert d["encoding"] == "none"
        assert d["first_message_id"] in sent.message_ids
        assert d["source_id"].startswith("src_")
    only = ok(get(sdk_server, f"user_id:{sent.user_id}", "external_ids", include="email"))["data"]
    assert [(d["type"], d["id"]) for d in only] == [("email", sent.email.lower())]


def test_events_hold_all_six_types(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    events = all_events(sdk_server, f"user_id:{sent.user_id}")
    assert {e["type"] for e in events} == SIX_TYPES
    assert sorted(e["message_id"] for e in events) == sorted(sent.message_ids)
    track = next(e for e in events if e["event"] == "Order Completed")
    assert track["properties"] == {"total": 42}
    assert track["type"] == "track"
    source_ids = {e["source_id"] for e in events}
    assert len(source_ids) == 1


def test_events_sort_ascending_follows_the_event_time(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    asc = all_events(sdk_server, f"user_id:{sent.user_id}", sort="asc")
    desc = all_events(sdk_server, f"user_id:{sent.user_id}")  # desc is the default
    assert [e["message_id"] for e in asc] == sent.message_ids  # sent one minute apart
    assert [e["message_id"] for e in desc] == sent.message_ids[::-1]
    assert [e["type"] for e in asc] == [t for t, _n, _m in sent.calls]


def test_events_include_and_exclude_by_event_name(sdk_server: World, sdk: str) -> None:
    ext = f"user_id:{sdk_server.sent[sdk].user_id}"
    viewed = all_events(sdk_server, ext, include="Product Viewed")
    assert [(e["type"], e["event"]) for e in viewed] == [("track", "Product Viewed")]
    both = all_events(sdk_server, ext, include="Product Viewed,Order Completed")
    assert {e["event"] for e in both} == {"Product Viewed", "Order Completed"}
    rest = all_events(sdk_server, ext, exclude="Product Viewed")
    assert len(rest) == 7
    assert "Product Viewed" not in {e["event"] for e in rest}
    assert {e["type"] for e in rest} == SIX_TYPES  # Order Completed is still a track


def test_events_limit_and_cursor_pagination(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    ext = f"user_id:{sent.user_id}"
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": 3, "sort": "asc"}
    while True:
        body = ok(get(sdk_server, ext, "events", **params))
        pages.append([e["message_id"] for e in body["data"]])
        assert body["cursor"]["url"].startswith(f"/v1/spaces/{SPACE}/")
        if not body["cursor"]["has_more"]:
            assert body["cursor"]["next"] is None
            break
        assert len(pages) < 10, "pagination does not end"
        params["next"] = body["cursor"]["next"]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [mid for page in pages for mid in page] == sent.message_ids


def test_events_reject_a_cursor_they_did_not_issue(sdk_server: World) -> None:
    # A well-formed base64 JSON cursor of the wrong shape must be a 400, not a 500.
    ext = f"user_id:{sdk_server.sent['segment'].user_id}"
    for resource, cursor in (
        ("events", "eyJhIjoxfQ"),  # {"a":1}
        ("events", "Inp6eiI"),  # "zzz"
        ("external_ids", "WzEsMl0"),  # [1,2]
        ("traits", "NQ"),  # 5
        ("events", "!!not-base64"),
    ):
        response = get(sdk_server, ext, resource, next=cursor)
        assert response.status_code == 400, (resource, cursor, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert response.headers.get("request-id")


def test_metadata_names_first_and_last_messages(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    meta = ok(get(sdk_server, f"user_id:{sent.user_id}", "metadata"))["metadata"]
    assert set(meta) == {
        "created_at",
        "updated_at",
        "expires_at",
        "first_message_id",
        "first_source_id",
        "last_message_id",
        "last_source_id",
    }
    assert meta["first_message_id"] in sent.message_ids
    assert meta["last_message_id"] in sent.message_ids
    assert meta["first_source_id"] == meta["last_source_id"]
    assert meta["first_source_id"].startswith("src_")
    assert meta["created_at"] <= meta["updated_at"]  # same ISO format: text order is time order
    assert meta["created_at"].endswith("Z")


def test_links_point_to_the_group_account(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    data = ok(get(sdk_server, f"user_id:{sent.user_id}", "links"))["data"]
    assert len(data) == 1
    assert data[0]["to_collection"] == "accounts"
    assert [(x["type"], x["id"]) for x in data[0]["external_ids"]] == [("group_id", sent.group_id)]
    # And the account itself is readable from the accounts collection, with its group traits.
    account = ok(get(sdk_server, f"group_id:{sent.group_id}", "traits", collection="accounts"))
    assert account["traits"] == {"name": f"{sdk} Corp", "employees": 12}
    back = ok(get(sdk_server, f"group_id:{sent.group_id}", "links", collection="accounts"))
    assert back["data"][0]["to_collection"] == "users"
    assert ("user_id", sent.user_id) in {
        (x["type"], x["id"]) for x in back["data"][0]["external_ids"]
    }


def test_every_id_type_finds_the_same_profile(sdk_server: World, sdk: str) -> None:
    sent = sdk_server.sent[sdk]
    pid = profile_id(sdk_server, sent)
    assert pid.startswith("use_")
    lookups = [
        f"user_id:{sent.user_id}",
        f"anonymous_id:{sent.anonymous_id}",
        f"email:{sent.email.lower()}",
        pid,
    ]
    metas = [ok(get(sdk_server, ext, "metadata"))["metadata"] for ext in lookups]
    assert all(m == metas[0] for m in metas)
    for ext in lookups:
        events = all_events(sdk_server, ext)
        assert {e["related"]["users"] for e in events} == {pid}


def test_alias_merged_the_anonymous_profile(sdk_server: World, sdk: str) -> None:
    # Given a journey where the user id appeared (screen) before the alias joined it to the
    # anonymous visitor: two profiles existed for a moment
    sent = sdk_server.sent[sdk]
    pid = profile_id(sdk_server, sent)
    # Then the identity explanation shows one merge, made by the alias message
    response = httpx.get(
        f"{sdk_server.server.url}/api/profiles/{pid}/identity", headers=basic(TOKEN), timeout=10
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile_id"] == pid
    alias_mid = next(mid for typ, _n, mid in sent.calls if typ == "alias")
    merges = [m for m in body["merges"] if m["rule"] == "alias"]
    assert len(merges) == 1, body["merges"]
    assert merges[0]["message_id"] == alias_mid
    assert merges[0]["into_profile_id"] == pid
    absorbed = merges[0]["from_profile_id"]
    assert absorbed in body["absorbed_profile_ids"]
    assert {(i["type"], i["value"]) for i in body["identifiers"]} >= {
        ("user_id", sent.user_id),
        ("anonymous_id", sent.anonymous_id),
    }
    # And the absorbed profile id still resolves, to the surviving profile
    meta = ok(get(sdk_server, absorbed, "metadata"))["metadata"]
    assert meta == ok(get(sdk_server, pid, "metadata"))["metadata"]


# --- Profile API: errors and tenancy ------------------------------------------------------------


def assert_profile_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}
    assert response.headers.get("request-id")


def test_unknown_profile_is_segments_404(sdk_server: World) -> None:
    response = get(sdk_server, "user_id:nobody-at-all", "traits")
    assert_profile_error(response, 404, "not_found")
    assert response.json()["error"]["message"] == "Profile was not found."
    assert_profile_error(get(sdk_server, "use_doesnotexist", "events"), 404, "not_found")
    assert_profile_error(
        get(sdk_server, f"user_id:{sdk_server.sent['segment'].user_id}", "nothing"),
        404,
        "not_found",
    )


def test_missing_or_wrong_token_is_segments_401(sdk_server: World) -> None:
    ext = f"user_id:{sdk_server.sent['segment'].user_id}"
    url = f"{profiles_url(sdk_server.server)}/{ext}/traits"
    for headers in (
        {},
        basic("not-a-token"),
        basic(WRITE_KEY),  # a write key is not an access token
        {"Authorization": "Basic %%%"},
    ):
        assert_profile_error(httpx.get(url, headers=headers), 401, "authentication_error")


def test_another_workspaces_space_is_closed(sdk_server: World, tmp_path: Path) -> None:
    # Given a second workspace with its own token (made directly in the server's database)
    world = sdk_server
    settings = make_settings(
        tmp_path,
        world.database_url,
        data_dir=world.server.data_dir,  # the server's own SQLite file (unused on PostgreSQL)
        bootstrap_write_key=None,
        bootstrap_token=None,
    )
    rt = Runtime(settings)
    try:
        rt.admin.ensure_workspace("acme", "Acme", rt.now_us())
        _tok, acme_token = rt.admin.add_token("acme", "acme-reader", rt.now_us(), "read")
        _tok, own_token = rt.admin.add_token("default", "reader", rt.now_us(), "read")
    finally:
        rt.close()
    ext = f"user_id:{world.sent['segment'].user_id}"
    # Then a token cannot read another workspace's space, in either direction
    foreign = get(world, ext, "traits", token=acme_token)
    assert_profile_error(foreign, 401, "authentication_error")
    assert "does not belong to workspace 'default'" in foreign.json()["error"]["message"]
    own = {"token": own_token}
    assert_profile_error(
        get(world, ext, "traits", space="acme", **own), 401, "authentication_error"
    )
    assert_profile_error(
        get(world, ext, "traits", space="nope", **own), 401, "authentication_error"
    )
    # (the bootstrap token is an instance administrator's: it reads any space, acme has no one)
    assert_profile_error(get(world, ext, "traits", space="acme"), 404, "not_found")
    # And in its own space the other workspace simply has no such profile
    assert_profile_error(
        get(world, ext, "traits", token=acme_token, space="acme"), 404, "not_found"
    )


# --- analytics.js paths and CORS ----------------------------------------------------------------

ORIGIN = "https://shop.example.com"


def test_analytics_js_standard_batching_and_metrics_paths(sdk_server: World) -> None:
    server = sdk_server.server
    user, anon = f"ajs-{uuid.uuid4().hex[:8]}", f"ajs-anon-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    text = {"Content-Type": "text/plain", "Origin": ORIGIN}
    # Given analytics-next in standard mode: one text/plain POST per event, writeKey in the body
    standard = httpx.post(
        f"{server.url}/v1/t",
        content=json.dumps(
            {
                "type": "track",
                "event": "Signed Up",
                "anonymousId": anon,
                "userId": user,
                "properties": {"plan": "free"},
                "messageId": f"ajs-next-1-{uuid.uuid4()}",
                "writeKey": WRITE_KEY,
                "sentAt": now,
                "_metadata": {"bundled": ["Segment.io"]},
                "integrations": {"Segment.io": True},
            },
        ).encode(),
        headers=text,
    )
    assert standard.status_code == 200, standard.text
    assert standard.json() == {"success": True, "accepted": 1, "quarantined": 0}
    assert standard.headers["access-control-allow-origin"] == ORIGIN
    # When batching mode posts /v1/b with the key at the top level and in each message
    batched = httpx.post(
        f"{server.url}/v1/b",
        content=json.dumps(
            {
                "writeKey": WRITE_KEY,
                "sentAt": now,
                "batch": [
                    {
                        "type": "identify",
                        "userId": user,
                        "traits": {"city": "Zürich"},
                        "writeKey": WRITE_KEY,
                    },
                    {"type": "page", "userId": user, "name": "Home", "writeKey": WRITE_KEY},
                ],
            }
        ).encode(),
        headers=text,
    )
    assert batched.status_code == 200, batched.text
    assert batched.json()["accepted"] == 2
    # And the telemetry path is answered without storing anything
    metrics = httpx.post(
        f"{server.url}/v1/m",
        content=b'{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1}]}',
        headers=text,
    )
    assert metrics.status_code == 200
    # Then all three events are on the user's profile, and the secret key is not stored
    server.wait_idle()
    events = all_events(sdk_server, f"user_id:{user}", sort="asc")
    # (the two batched events share receivedAt, so only the standard-mode one is ordered)
    assert events[0]["type"] == "track"
    assert sorted(e["type"] for e in events) == ["identify", "page", "track"]
    assert ok(get(sdk_server, f"anonymous_id:{anon}", "traits"))["traits"] == {"city": "Zürich"}
    assert WRITE_KEY not in str(events)


def test_cors_preflight_on_the_tracking_api(sdk_server: World) -> None:
    response = httpx.options(
        f"{sdk_server.server.url}/v1/t",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-retry-count",
        },
    )
    assert response.status_code == 200
    h = response.headers
    assert h["access-control-allow-origin"] == ORIGIN  # echoed, not "*" (credentials)
    assert h["access-control-allow-credentials"] == "true"
    allowed = {x.strip().lower() for x in h["access-control-allow-headers"].split(",")}
    assert allowed == {"*"} or allowed >= {"authorization", "content-type", "x-retry-count"}
    assert "POST" in h["access-control-allow-methods"]
    assert "origin" in h.get("vary", "").lower()


def test_profile_api_answers_no_cors_headers(sdk_server: World) -> None:
    url = f"{profiles_url(sdk_server.server)}/user_id:{sdk_server.sent['segment'].user_id}/traits"
    plain = httpx.get(url, headers={**basic(TOKEN), "Origin": ORIGIN})
    assert plain.status_code == 200
    preflight = httpx.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code != 200  # no preflight support: browsers must not get in
    for response in (plain, preflight):
        assert not [k for k in response.headers if k.lower().startswith("access-control-")]
