"""Bad input at the Tracking API: every request gets an exact status and ``code``, nothing crashes,
valid events of a mixed batch land, and bad events wait in quarantine with their raw payload.

Most cases run in-process (``fastapi.testclient``) on a fresh runtime per test; the few that need
a real socket (chunked transfer encoding, a gzip bomb over the wire) use ``live_server``.
Response contract: ``200 {"success","accepted","quarantined"[,"errors"]}`` or ``{"code","message"}``
with 400/401/404/405 (segment-compat.md §1.9, §6 items 3, 5, 8, 9, 10).
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings

pytestmark = pytest.mark.e2e

KB = 1024


@dataclass
class Cdp:
    """A fresh runtime with an in-process client: post, drain the inbox, read back."""

    runtime: Runtime
    client: TestClient

    def post(
        self,
        path: str,
        body: bytes | dict[str, Any] | list[Any],
        headers: dict[str, str] | None = None,
        *,
        auth: bool = True,
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {**(basic(WRITE_KEY) if auth else {}), **(headers or {})}
        return self.client.post(path, content=content, headers=sent)

    def drain(self) -> int:
        return self.runtime.processor.run_until_idle()

    def quarantine(self, reason: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": "1000", **({"reason": reason} if reason else {})}
        response = self.client.get("/api/quarantine", params=params, headers=basic(TOKEN))
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def profile(self, external_id: str, resource: str, **params: Any) -> httpx.Response:
        path = f"/v1/spaces/default/collections/users/profiles/{quote(external_id)}/{resource}"
        return self.client.get(path, params=params, headers=basic(TOKEN))

    def events(self, external_id: str) -> list[dict[str, Any]]:
        response = self.profile(external_id, "events", limit=100, sort="asc")
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def inbox_count(self) -> int:
        from sqlalchemy import func, select

        from opencdp.storage.schema import inbox

        with self.runtime.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def fresh_cdp(tmp_path: Path, database_url: str | None = None) -> Iterator[Cdp]:
    """A fresh runtime with no background worker (drain with ``cdp.drain()``), closed after."""
    runtime = Runtime(make_settings(tmp_path, database_url))
    try:
        yield Cdp(runtime, TestClient(create_app(runtime, start_worker=False)))
    finally:
        runtime.close()


@pytest.fixture
def cdp(tmp_path: Path) -> Iterator[Cdp]:
    """A fresh SQLite runtime per test."""
    yield from fresh_cdp(tmp_path)


@pytest.fixture
def cdp_any(tmp_path: Path, database_url: str | None) -> Iterator[Cdp]:
    """A fresh runtime per test on each backend (PostgreSQL enforces what SQLite lets pass)."""
    yield from fresh_cdp(tmp_path, database_url)


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def track(**fields: Any) -> dict[str, Any]:
    return {"userId": "u-1", "event": "Clicked", **fields}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_track(levels: int) -> bytes:
    """A track whose ``properties.a`` holds ``levels`` nested arrays (built as text: Python's
    json module cannot build or read what is this deep)."""
    return b'{"userId":"u-1","event":"e","properties":{"a":' + nested(levels).encode() + b"}}"


def huge_track(chars: int) -> dict[str, Any]:
    return track(properties={"blob": "x" * chars})


def batch_of(n: int) -> bytes:
    return js({"batch": [{"type": "track", **track(messageId=f"m{i}")} for i in range(n)]})


# --- Requests refused as a whole: nothing is stored --------------------------------------------

ENVELOPE_ERRORS = [
    pytest.param("/v1/track", b'{"userId": "u-1", "event": ', {}, 400, "invalid_json", id="invalid-json"),
    pytest.param("/v1/track", b'[{"userId":"u-1","event":"x"}]', {}, 400, "invalid_json", id="json-array-body"),
    pytest.param("/v1/batch", b"[]", {}, 400, "invalid_json", id="json-empty-array-body"),
    pytest.param("/v1/track", b'"just a string"', {}, 400, "invalid_json", id="json-string-body"),
    pytest.param("/v1/track", b"", {}, 400, "invalid_json", id="empty-body"),
    pytest.param("/v1/track", b" \n\t ", {}, 400, "invalid_json", id="whitespace-body"),
    pytest.param("/v1/track", b'{"userId":"u-1","event":"x",}', {}, 400, "invalid_json", id="trailing-comma"),
    pytest.param("/v1/track", b'{"userId":"u-1","event":"\xff\xfe"}', {}, 400, "invalid_json", id="invalid-utf8"),
    pytest.param("/v1/track", nested(2000).encode(), {}, 400, "invalid_json", id="2000-nested-arrays"),
    pytest.param("/v1/track", b"not gzip at all", {"Content-Encoding": "gzip"}, 400, "invalid_encoding", id="corrupt-gzip"),
    pytest.param("/v1/track", gzip.compress(js(track()))[:-10], {"Content-Encoding": "gzip"}, 400, "invalid_encoding", id="truncated-gzip"),
    pytest.param("/v1/track", b"\x78\x9c garbage", {"Content-Encoding": "deflate"}, 400, "invalid_encoding", id="corrupt-deflate"),
    pytest.param("/v1/track", gzip.compress(b"\0" * 10_000_000), {"Content-Encoding": "gzip"}, 400, "payload_too_large", id="gzip-bomb-10mb"),
    pytest.param("/v1/batch", batch_of(8000), {}, 400, "payload_too_large", id="oversize-body"),
    pytest.param("/v1/track", js(track()), {"Content-Encoding": "br"}, 400, "unsupported_encoding", id="unsupported-encoding"),
    pytest.param("/v1/batch", js({"batch": {"type": "track"}}), {}, 400, "invalid_batch", id="batch-not-a-list"),
    pytest.param("/v1/batch", js({"type": "track", **track()}), {}, 400, "invalid_batch", id="batch-missing"),
    pytest.param("/v1/nope", js(track()), {}, 404, "not_found", id="unknown-path"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "headers", "status", "code"), ENVELOPE_ERRORS)
def test_request_is_refused_whole(
    cdp: Cdp, path: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = cdp.post(path, body, headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message"}
    assert response.json()["message"]
    # Nothing of a refused request is kept: not in the inbox, not in quarantine
    assert cdp.inbox_count() == 0
    assert cdp.quarantine() == []


AUTH_ERRORS = [
    pytest.param({}, js(track()), "missing_write_key", id="no-key-anywhere"),
    pytest.param({"Authorization": "Basic !!!"}, js(track()), "missing_write_key", id="basic-not-base64"),
    pytest.param({"Authorization": "Bearer " + WRITE_KEY}, js(track()), "missing_write_key", id="bearer-without-body-key"),
    pytest.param({}, js({**track(), "writeKey": ""}), "missing_write_key", id="empty-body-key"),
    pytest.param(basic("no-such-key"), js(track()), "invalid_write_key", id="unknown-key-basic"),
    pytest.param({}, js({**track(), "writeKey": "no-such-key"}), "invalid_write_key", id="unknown-key-body"),
    pytest.param(basic(TOKEN), js(track()), "invalid_write_key", id="access-token-is-no-write-key"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "body", "code"), AUTH_ERRORS)
def test_write_key_problems_are_401(
    cdp: Cdp, headers: dict[str, str], body: bytes, code: str
) -> None:
    response = cdp.post("/v1/track", body, headers, auth=False)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert cdp.inbox_count() == 0
    assert cdp.quarantine() == []


def test_wrong_method_is_405(cdp: Cdp) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = cdp.client.request(method, "/v1/track", headers=basic(WRITE_KEY))
        assert response.status_code == 405, (method, response.text)
        assert response.json()["code"] == "method_not_allowed"


# --- One invalid event on a single-event route: 400 with the reason, kept in quarantine ---------

SINGLE_EVENT_ERRORS = [
    pytest.param("/v1/identify", {"userId": "u-1", "traits": "gold"}, "invalid_field", id="traits-as-string"),
    pytest.param("/v1/identify", {"userId": {"id": 7}}, "invalid_field", id="userId-as-object"),
    pytest.param("/v1/identify", {"anonymousId": ["a"]}, "invalid_field", id="anonymousId-as-array"),
    pytest.param("/v1/identify", {"userId": True}, "invalid_field", id="userId-as-boolean"),
    pytest.param("/v1/track", track(event=42), "invalid_field", id="event-as-number"),
    pytest.param("/v1/track", track(properties=[1, 2]), "invalid_field", id="properties-as-array"),
    pytest.param("/v1/track", track(context="web"), "invalid_field", id="context-as-string"),
    pytest.param("/v1/page", {"userId": "u-1", "name": {"x": 1}}, "invalid_field", id="page-name-as-object"),
    pytest.param("/v1/track", track(event="E" * 201), "invalid_field", id="event-name-201-chars"),
    pytest.param("/v1/track", track(userId="u" * 501), "invalid_field", id="userId-501-chars"),
    pytest.param("/v1/track", {"event": "Clicked"}, "missing_identity", id="no-user-or-anonymous-id"),
    pytest.param("/v1/track", track(userId=None, anonymousId=None), "missing_identity", id="null-ids"),
    pytest.param("/v1/track", track(userId="", anonymousId=""), "missing_identity", id="empty-string-ids"),
    pytest.param("/v1/track", track(userId="  ", anonymousId="\t"), "missing_identity", id="blank-ids"),
    pytest.param("/v1/track", {"userId": "u-1"}, "missing_event", id="track-without-event"),
    pytest.param("/v1/track", track(event=""), "missing_event", id="track-empty-event"),
    pytest.param("/v1/track", track(event=None), "missing_event", id="track-null-event"),
    pytest.param("/v1/group", {"userId": "u-1", "traits": {"name": "Acme"}}, "missing_group_id", id="group-without-groupId"),
    pytest.param("/v1/group", {"userId": "u-1", "groupId": ""}, "missing_group_id", id="group-empty-groupId"),
    pytest.param("/v1/alias", {"userId": "u-1"}, "missing_previous_id", id="alias-without-previousId"),
    pytest.param("/v1/alias", {"anonymousId": "a-1", "previousId": "p-1"}, "missing_identity", id="alias-without-userId"),
    pytest.param("/v1/track", huge_track(33 * KB), "oversize_event", id="33kb-string"),
    pytest.param("/v1/track", track(timestamp="yesterday"), "bad_timestamp", id="timestamp-yesterday"),
    pytest.param("/v1/track", track(timestamp=12345), "bad_timestamp", id="timestamp-number"),
    pytest.param("/v1/track", track(timestamp="2026-13-45T99:00:00Z"), "bad_timestamp", id="timestamp-impossible-date"),
    pytest.param("/v1/track", track(timestamp="1500-01-01T00:00:00Z"), "bad_timestamp", id="timestamp-year-1500"),
    pytest.param("/v1/track", track(timestamp="2500-01-01T00:00:00Z"), "bad_timestamp", id="timestamp-year-2500"),
    pytest.param("/v1/track", track(sentAt="later"), "bad_timestamp", id="sentAt-garbage"),
    pytest.param("/v1/track", track(messageId="m" * 101), "invalid_message_id", id="messageId-101-chars"),
    pytest.param("/v1/track", track(messageId={"id": 1}), "invalid_message_id", id="messageId-as-object"),
    pytest.param("/v1/track", track(userId="nul\u0000id"), "invalid_field", id="nul-in-userId"),
    pytest.param("/v1/track", track(messageId="m\u0000"), "invalid_field", id="nul-in-messageId"),
    pytest.param("/v1/track", track(event="Clicked\u0000"), "invalid_field", id="nul-in-event-name"),
    pytest.param("/v1/track", track(properties={"k\u0000": "v"}), "invalid_field", id="nul-in-property-key"),
    pytest.param("/v1/page", {"userId": "u-1", "name": "N" * 201}, "invalid_field", id="page-name-201-chars"),
    pytest.param("/v1/identify", {"userId": "u-1", "traits": {"k" * 301: 1}}, "invalid_field", id="trait-key-301-chars"),
    pytest.param("/v1/track", track(context={"traits": {"k" * 301: 1}}), "invalid_field", id="context-trait-key-301-chars"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "message", "code"), SINGLE_EVENT_ERRORS)
def test_invalid_single_event_is_400_and_quarantined(
    cdp: Cdp, path: str, message: dict[str, Any], code: str
) -> None:
    # When a single-event route gets one event it cannot use
    response = cdp.post(path, message)
    # Then the sender learns why, with the quarantine reason as the code
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert "kept in quarantine" in response.json()["message"]
    # And the event is kept whole in quarantine, with the same reason, and nowhere else
    rows = cdp.quarantine()
    assert [r["reason"] for r in rows] == [code]
    # (plus the type its route implied, so that a replay sees the same message)
    assert rows[0]["payload"] == {**message, "type": path.rsplit("/", 1)[1]}
    assert rows[0]["stage"] == "collect"
    assert rows[0]["event_type"] == path.rsplit("/", 1)[1]
    assert cdp.inbox_count() == 0


# --- Odd but valid input: accepted and processed -------------------------------------------------

ACCEPTED = [
    pytest.param("/v1/track", zlib.compress(js(track())), {"Content-Encoding": "deflate"}, id="deflate-zlib"),
    pytest.param("/v1/track", zlib.compress(js(track()))[2:-4], {"Content-Encoding": "deflate"}, id="deflate-raw"),
    pytest.param("/v1/track", gzip.compress(js(track())), {"Content-Encoding": "x-gzip"}, id="x-gzip"),
    pytest.param("/v1/track", gzip.compress(js(track())), {"Content-Encoding": " GZIP "}, id="gzip-odd-case"),
    pytest.param("/v1/track", js(track()), {"Content-Encoding": "identity"}, id="identity-encoding"),
    pytest.param("/v1/track", js(track()), {"Content-Type": "text/plain"}, id="text-plain"),
    pytest.param("/v1/track", js(track()), {"Content-Type": "application/x-www-form-urlencoded"}, id="form-urlencoded"),
    pytest.param("/v1/track", js(track()), {"Authorization": "Basic " + base64.b64encode(WRITE_KEY.encode()).decode()}, id="basic-without-colon"),
    pytest.param("/v1/track", js(track()), {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:ignored".encode()).decode()}, id="basic-with-password"),
    pytest.param("/v1/track", js({**track(), "writeKey": WRITE_KEY}), {"Authorization": ""}, id="key-in-body"),
    pytest.param("/v1/batch", js({"batch": [{"type": "track", **track(), "writeKey": WRITE_KEY}]}), {"Authorization": ""}, id="key-only-in-batch-0"),
    pytest.param("/v1/import", js({"batch": [{"type": "track", **track()}]}), {}, id="import-is-batch"),
    pytest.param("/v1/track", js(track(messageId=None)), {}, id="messageId-missing"),
    pytest.param("/v1/track", js(track(messageId="m" * 100)), {}, id="messageId-100-chars"),
    pytest.param("/v1/track", js(track(anonymousId=None, context=None, properties=None, integrations=None)), {}, id="nulls-elsewhere"),
    pytest.param("/v1/track", js(track(context={"traits": {"k" * 300: 1}})), {}, id="trait-key-300-chars"),
    pytest.param("/v1/track", js(track(properties={"text": "a\\u0000b"})), {}, id="escaped-backslash-u0000-text"),
    pytest.param("/v1/track", js(huge_track(31 * KB)), {}, id="31kb-string"),
    pytest.param("/v1/track", deep_track(100), {}, id="100-nested-in-properties"),
    pytest.param("/v1/track", js(track(userId=12345)), {}, id="numeric-userId-as-text"),
    pytest.param("/v1/track", js(track(timestamp="2026-03-01T10:00:00.123456+02:00")), {}, id="timestamp-offset-micros"),
    pytest.param("/v1/track", js(track(type="page")), {}, id="path-type-wins-over-body-type"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "headers"), ACCEPTED)
def test_odd_but_valid_input_is_accepted(
    cdp: Cdp, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = cdp.post(path, body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1, "quarantined": 0}
    cdp.drain()
    user = "12345" if b'"userId": 12345' in body else "u-1"  # numbers are kept as text
    events = cdp.events(f"user_id:{user}")
    assert len(events) == 1
    assert events[0]["type"] == "track"
    assert events[0]["message_id"]  # generated when the sender did not give one
    assert cdp.quarantine() == []
    assert WRITE_KEY not in json.dumps(events)  # a secret: never stored with the event


def test_missing_message_id_is_generated_as_a_uuid(cdp: Cdp) -> None:
    assert cdp.post("/v1/track", track()).status_code == 200
    assert cdp.post("/v1/track", track()).status_code == 200  # no id: never a duplicate
    cdp.drain()
    ids = [e["message_id"] for e in cdp.events("user_id:u-1")]
    assert len(ids) == 2
    assert all(str(uuid.UUID(i)) == i for i in ids)


def test_duplicate_message_ids_across_requests_are_stored_once(cdp: Cdp) -> None:
    # Given an SDK retry: the same messageId sent twice, with a refreshed body the second time
    first = track(messageId="retry-1", properties={"attempt": 1})
    assert cdp.post("/v1/track", first).status_code == 200
    assert cdp.post("/v1/batch", {"batch": [{"type": "track", **first}]}).status_code == 200
    cdp.drain()
    again = track(messageId="retry-1", properties={"attempt": 2})
    assert cdp.post("/v1/track", again).status_code == 200  # after processing, too
    cdp.drain()
    # Then exactly one copy exists: one inbox row and one event, the first one
    assert cdp.inbox_count() == 1
    events = cdp.events("user_id:u-1")
    assert [(e["message_id"], e["properties"]) for e in events] == [("retry-1", {"attempt": 1})]


def test_null_identity_vs_nulls_elsewhere(cdp: Cdp) -> None:
    # JSON null counts as absent (§1.4): both ids null is an error, one null id is not
    both_null = cdp.post("/v1/identify", {"userId": None, "anonymousId": None, "traits": {}})
    assert both_null.json()["code"] == "missing_identity"
    one_null = cdp.post("/v1/identify", {"userId": None, "anonymousId": "a-9", "traits": None})
    assert one_null.status_code == 200
    cdp.drain()
    assert [e["type"] for e in cdp.events("anonymous_id:a-9")] == ["identify"]
    assert cdp.profile("anonymous_id:a-9", "external_ids").json()["data"][0]["type"] == (
        "anonymous_id"
    )


# --- Mixed batches: the good events land, the bad ones wait in quarantine ----------------------

BAD_ITEMS: list[tuple[Any, str]] = [
    (7, "not_an_object"),
    ("a string", "not_an_object"),
    ({"type": "purchase", "userId": "u-1"}, "invalid_type"),
    ({"userId": "u-1", "event": "No Type"}, "invalid_type"),
    ({"type": "track", "userId": "u-1"}, "missing_event"),
    ({"type": "track", "event": "Anon-less"}, "missing_identity"),
    ({"type": "identify", "userId": None, "anonymousId": ""}, "missing_identity"),
    ({"type": "group", "userId": "u-1"}, "missing_group_id"),
    ({"type": "alias", "userId": "u-1"}, "missing_previous_id"),
    ({"type": "identify", "userId": "u-1", "traits": "gold"}, "invalid_field"),
    ({"type": "track", **track(timestamp="yesterday")}, "bad_timestamp"),
    ({"type": "track", **track(messageId="m" * 101)}, "invalid_message_id"),
    ({"type": "track", **huge_track(33 * KB)}, "oversize_event"),
]


def test_mixed_batch_keeps_the_good_and_quarantines_the_bad(cdp: Cdp) -> None:
    # Given a batch where good events sit between every kind of bad one
    good = [
        {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}, "messageId": "g-0"},
        {"type": "track", **track(messageId="g-1")},
        {"type": "page", "userId": "u-1", "name": "Home", "messageId": "g-2"},
    ]
    items: list[Any] = [good[0], *[i for i, _ in BAD_ITEMS[:6]], good[1]]
    items += [*[i for i, _ in BAD_ITEMS[6:]], good[2]]
    # When it is sent, gzipped, as the rudder SDK would
    response = cdp.post(
        "/v1/batch", gzip.compress(js({"batch": items})), {"Content-Encoding": "gzip"}
    )
    # Then the batch is a 200 that counts and explains every rejected item by its index
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["quarantined"]) == (3, len(BAD_ITEMS))
    bad_indexes = [i for i, item in enumerate(items) if item not in good]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (index, code) for index, (_item, code) in zip(bad_indexes, BAD_ITEMS, strict=True)
    ]
    # And the valid events were processed into the profile
    cdp.drain()
    assert [e["message_id"] for e in cdp.events("user_id:u-1")] == ["g-0", "g-1", "g-2"]
    assert cdp.profile("user_id:u-1", "traits").json()["traits"] == {"plan": "pro"}
    # And every bad one is in quarantine with its reason and its raw payload
    rows = cdp.quarantine()
    assert len(rows) == len(BAD_ITEMS)
    for item, code in BAD_ITEMS:
        matches = [r for r in rows if r["reason"] == code and r["payload"] == item]
        assert len(matches) == 1, (code, item)
    # it had none: the quarantine gave it one (which a replay keeps)
    assert cdp.quarantine("oversize_event")[0]["message_id"].startswith("q-")


def test_the_write_key_is_never_kept_in_quarantine(cdp: Cdp) -> None:
    body = {"writeKey": WRITE_KEY, "batch": [{"type": "track", "writeKey": WRITE_KEY}]}
    response = cdp.post("/v1/batch", body, auth=False)
    assert response.json()["errors"][0]["code"] == "missing_identity"
    [row] = cdp.quarantine()
    assert row["payload"] == {"type": "track"}


def test_more_than_2500_events_keeps_the_first_2500(cdp: Cdp) -> None:
    # Given a batch of 2,600 small events (well under 500 KB)
    body = batch_of(2600)
    assert len(body) < 500 * KB
    # When it is sent
    response = cdp.post("/v1/batch", body)
    # Then it is a 200 (Segment's documented answer): 2,500 accepted, 100 quarantined
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["quarantined"]) == (2500, 100)
    assert {e["code"] for e in result["errors"]} == {"batch_limit_exceeded"}
    assert result["errors"][0]["index"] == 2500
    assert len(result["errors"]) <= 100  # the response stays small
    # And the first 2,500 are processed, the rest wait in quarantine in full
    assert cdp.drain() == 2500
    profile = cdp.runtime.profiles.find("default", "users", "user_id", "u-1")
    stored = cdp.runtime.profiles.events("default", profile, limit=5000)
    assert sorted(int(e.message_id[1:]) for e in stored) == list(range(2500))
    rows = cdp.quarantine("batch_limit_exceeded")
    assert sorted(int(r["payload"]["messageId"][1:]) for r in rows) == list(range(2500, 2600))


def test_exactly_2500_events_are_all_accepted(cdp: Cdp) -> None:
    response = cdp.post("/v1/batch", batch_of(2500))
    assert response.json() == {"success": True, "accepted": 2500, "quarantined": 0}


def test_event_size_limit_is_32_kb_per_event_inside_a_batch(cdp: Cdp) -> None:
    # Two near-limit events fit one batch; only the one over 32 KB is refused
    items = [
        {"type": "track", **huge_track(31 * KB), "messageId": "fits"},
        {"type": "track", **huge_track(33 * KB), "messageId": "too-big"},
    ]
    response = cdp.post("/v1/batch", {"batch": items})
    assert response.json()["errors"] == [
        {"index": 1, "code": "oversize_event", "message": response.json()["errors"][0]["message"]}
    ]
    cdp.drain()
    [event] = cdp.events("user_id:u-1")
    assert event["message_id"] == "fits"
    assert len(event["properties"]["blob"]) == 31 * KB
    [row] = cdp.quarantine("oversize_event")
    assert row["message_id"] == "too-big"
    assert row["payload"] == items[1]


STORAGE_HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("/v1/track", track(userId="nul\u0000id")),
    ("/v1/track", track(messageId="nul\u0000mid", event="nul\u0000event")),
    ("/v1/identify", {"userId": "u-1", "traits": {"city": "a\u0000b"}}),
    ("/v1/page", {"userId": "u-1", "name": "N" * 300}),
    ("/v1/identify", {"userId": "u-1", "traits": {"k" * 400: 1}}),
    ("/v1/track", track(context={"traits": {"k" * 400: 1}})),
]


def test_storage_hostile_events_cannot_block_the_worker(cdp_any: Cdp) -> None:
    # Given events that SQLite stores but PostgreSQL cannot (NUL in text, strings over a
    # VARCHAR length), batched together with good events, as an SDK would send them
    items = [{"type": path.rsplit("/", 1)[1], **msg} for path, msg in STORAGE_HOSTILE]
    good = {"type": "track", **track(messageId="good-1")}
    response = cdp_any.post("/v1/batch", {"batch": [*items, good]})
    # Then they are refused at the door on every backend, with their raw payload kept
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["quarantined"]) == (1, len(items))
    assert {e["code"] for e in response.json()["errors"]} == {"invalid_field"}
    assert sorted(json.dumps(r["payload"]) for r in cdp_any.quarantine()) == sorted(
        json.dumps(i) for i in items
    )
    # And the worker drains the inbox: nothing is left to fail its batch over and over
    assert cdp_any.drain() == 1
    assert cdp_any.runtime.inbox.pending() == 0
    assert [e["message_id"] for e in cdp_any.events("user_id:u-1")] == ["good-1"]
    # And single-event routes answer 400 for them instead of 500
    for path, msg in STORAGE_HOSTILE:
        single = cdp_any.post(path, msg)
        assert (single.status_code, single.json()["code"]) == (400, "invalid_field"), msg


# --- Unicode ----------------------------------------------------------------------------------

UNICODE_TRAITS = {
    "emoji": "🦄🧀👩🏽‍💻🏳️‍🌈",
    "rtl": "שלום עולם مرحبا بالعالم",
    "cjk": "你好世界 こんにちは 안녕하세요",
    "combining": "e\u0301 A\u030a",
    "zero_width": "a\u200db\ufeffc",
    "名前": "値",
    "astral": "\U0001d11e \U0001f600 \U0010fffd",
    "controls": "tab\tnewline\nbell\u0007",
}
UNICODE_EVENT = "Käse gekauft 🧀 注文 تم الطلب"


@pytest.mark.parametrize("encoding", ["plain", "gzip"])
def test_unicode_round_trips_exactly(cdp_any: Cdp, encoding: str) -> None:
    cdp = cdp_any
    user = "用户-😀-משתמש"
    body = js(
        {
            "batch": [
                {"type": "identify", "userId": user, "traits": UNICODE_TRAITS},
                {"type": "track", "userId": user, "event": UNICODE_EVENT, "properties": {"x": "✓"}},
            ]
        }
    )
    assert b"\\u" in body  # json.dumps escapes non-ASCII: the server must decode the escapes
    headers = {}
    if encoding == "gzip":
        body, headers = gzip.compress(body), {"Content-Encoding": "gzip"}
    assert cdp.post("/v1/batch", body, headers).json()["accepted"] == 2
    raw_utf8 = ('{"userId":"%s","event":"%s 2"}' % (user, UNICODE_EVENT)).encode()  # noqa: UP031
    assert cdp.post("/v1/track", raw_utf8).status_code == 200
    cdp.drain()
    ext = f"user_id:{user}"
    assert cdp.profile(ext, "traits", limit=50).json()["traits"] == UNICODE_TRAITS
    ids = cdp.profile(ext, "external_ids").json()["data"]
    assert [(i["type"], i["id"]) for i in ids] == [("user_id", user)]
    found = cdp.profile(ext, "events", include=UNICODE_EVENT).json()["data"]
    assert [(e["event"], e["properties"]) for e in found] == [(UNICODE_EVENT, {"x": "✓"})]
    names = sorted(e["event"] or "" for e in cdp.events(ext))
    assert names == ["", UNICODE_EVENT, f"{UNICODE_EVENT} 2"]


def test_escaped_surrogate_pairs_are_fine_but_a_lone_surrogate_is_quarantined(cdp: Cdp) -> None:
    # A correct UTF-16 escape pair is one character: accepted and decoded
    pair = b'{"userId":"u-1","event":"\\ud83e\\udd84 seen"}'
    assert cdp.post("/v1/track", pair).status_code == 200
    # A lone surrogate is not a Unicode character. Decision: the one event holding it is
    # quarantined (kept with U+FFFD in its place); the rest of its batch lands.
    for i, lone in enumerate((b"\\ud800", b"\\udfff", b"x\\udc00y")):
        batch = (
            b'{"batch":[{"type":"track","userId":"u-2","event":"' + lone + b'"},'
            b'{"type":"track","userId":"u-2","event":"fine","messageId":"ok-%d"}]}' % i
        )
        response = cdp.post("/v1/batch", batch)
        assert response.status_code == 200, response.text
        assert (response.json()["accepted"], response.json()["quarantined"]) == (1, 1)
        assert response.json()["errors"][0]["code"] == "invalid_unicode"
    assert cdp.inbox_count() == 4
    events = {r["payload"]["event"] for r in cdp.quarantine("invalid_unicode")}
    assert events == {"\ufffd", "x\ufffdy"}
    cdp.drain()
    assert [e["event"] for e in cdp.events("user_id:u-2")] == ["fine"] * 3
    assert cdp.client.get("/healthz").status_code == 200


def test_nesting_limit_is_128_levels_per_event(cdp: Cdp) -> None:
    # The body is level 1, properties level 2, so properties.a holds levels - 2 arrays.
    assert cdp.post("/v1/track", deep_track(128 - 2)).status_code == 200
    refused = cdp.post("/v1/track", deep_track(129 - 2))
    assert (refused.status_code, refused.json()["code"]) == (400, "nested_too_deep")
    assert "128" in refused.json()["message"]
    cdp.drain()
    # The deepest accepted event is readable through the Profile API (which nests it deeper)
    [event] = cdp.events("user_id:u-1")
    assert json.dumps(event["properties"]["a"]) == nested(126)


@pytest.mark.parametrize("levels", [129, 300, 1000])
def test_an_event_nested_too_deep_is_quarantined_and_its_batch_lands(cdp: Cdp, levels: int) -> None:
    # Given a batch whose middle event is nested deeper than the limit
    deep = b'{"type":"track","messageId":"deep","userId":"u-3","event":"e","properties":{"a":'
    deep += nested(levels).encode() + b"}}"
    good = [js({"type": "track", "userId": "u-3", "event": f"ok {i}"}) for i in range(2)]
    body = b'{"batch":[' + b",".join([good[0], deep, good[1]]) + b"]}"
    # When it is sent
    response = cdp.post("/v1/batch", body)
    # Then that event is quarantined with its reason and the others are accepted
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    assert response.json()["errors"] == [
        {"index": 1, "code": "nested_too_deep", "message": ANY_TEXT}
    ]
    [row] = cdp.quarantine("nested_too_deep")
    assert row["message_id"] == "deep"
    # (kept for inspection with its deep part cut off)
    assert row["payload"]["event"] == "e"
    assert "nested deeper than 128 levels" in json.dumps(row["payload"])
    cdp.drain()
    assert sorted(e["event"] for e in cdp.events("user_id:u-3")) == ["ok 0", "ok 1"]


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT: Any = _AnyText()


def test_a_garbage_envelope_does_not_cost_the_valid_events(cdp: Cdp) -> None:
    # Given valid events inside an envelope whose own fields are garbage
    body = {
        "sentAt": "yesterday",
        "context": "str",
        "integrations": [1],
        "batch": [
            {"type": "identify", "userId": "u-4", "traits": {"email": "g@example.com"}},
            {"type": "track", "userId": "u-4", "event": "Order Completed"},
        ],
    }
    # When it is sent
    response = cdp.post("/v1/batch", body)
    # Then the events are accepted and reach their profile
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["quarantined"]) == (2, 0)
    cdp.drain()
    assert {e["type"] for e in cdp.events("email:g@example.com")} == {"identify", "track"}
    traits = cdp.profile("user_id:u-4", "traits").json()["traits"]
    assert traits["email"] == "g@example.com"


def test_write_keys_are_never_stored(cdp: Cdp) -> None:
    # Given events that carry the write key in the body and in their context
    secret = {"writeKey": WRITE_KEY, "context": {"writeKey": WRITE_KEY, "ip": "1.2.3.4"}}
    assert cdp.post("/v1/track", {**track(messageId="kept"), **secret}).status_code == 200
    assert cdp.post("/v1/track", {"userId": "u-1", **secret}).status_code == 400
    # Then neither the stored event nor the quarantined one holds it
    cdp.drain()
    [event] = cdp.events("user_id:u-1")
    [row] = cdp.quarantine()
    assert WRITE_KEY not in json.dumps(event) + json.dumps(row)
    assert event["context"]["ip"] == "1.2.3.4"


def test_route_is_not_a_query_parameter(cdp: Cdp) -> None:
    # A `_route` query parameter neither breaks a request nor changes its route
    assert cdp.post("/v1/track?_route=zz", track(messageId="r1")).status_code == 200
    assert cdp.post("/v1/track?_route=identify", track(messageId="r2")).status_code == 200
    cdp.drain()
    assert [e["type"] for e in cdp.events("user_id:u-1")] == ["track", "track"]


def test_the_server_is_healthy_after_all_of_it(cdp: Cdp) -> None:
    for param in [*ENVELOPE_ERRORS, *SINGLE_EVENT_ERRORS]:
        path, body = param.values[0], param.values[1]
        headers = param.values[2] if len(param.values) == 5 else {}
        response = cdp.post(str(path), body if isinstance(body, bytes) else dict(body), headers)
        assert response.status_code < 500, (param.id, response.text)
    assert cdp.client.get("/healthz").json() == {"status": "ok"}
    assert cdp.post("/v1/track", track(messageId="after")).status_code == 200
    cdp.drain()
    assert [e["message_id"] for e in cdp.events("user_id:u-1")] == ["after"]


# --- Over a real socket --------------------------------------------------------------------------


def test_chunked_gzip_upload_like_legacy_android(live_server: Any) -> None:
    # Given a body streamed with Transfer-Encoding: chunked (no Content-Length), gzipped
    payload = gzip.compress(
        js(
            {
                "batch": [
                    {"type": "track", **track(userId="droid", messageId=f"c{i}")} for i in range(50)
                ]
            }
        )
    )

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 97):
            yield payload[start : start + 97]

    request = httpx.Request(
        "POST",
        f"{live_server.url}/v1/import",
        content=chunks(),
        headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
    )
    assert request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in request.headers
    with httpx.Client(timeout=30) as client:
        response = client.send(request)
    # Then it is read whole and accepted
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 50
    live_server.wait_idle()
    events = httpx.get(
        f"{live_server.url}/v1/spaces/default/collections/users/profiles/user_id:droid/events",
        params={"limit": 100},
        headers=basic(TOKEN),
    ).json()["data"]
    assert len(events) == 50


def test_gzip_bomb_over_the_wire_is_refused_and_the_server_survives(live_server: Any) -> None:
    # Given 10 MB of zeros that gzip to about 10 KB
    bomb = gzip.compress(b"\0" * 10_000_000, compresslevel=9)
    assert len(bomb) < 50 * KB
    # When it is posted (three times, to be sure nothing accumulates)
    for _ in range(3):
        response = httpx.post(
            f"{live_server.url}/v1/batch",
            content=bomb,
            headers={**basic(WRITE_KEY), "Content-Encoding": "gzip"},
            timeout=30,
        )
        # Then it is refused as too large, not a 5xx and not a hang
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "payload_too_large"
    # And the server is still alive and still takes events
    assert live_server.proc.poll() is None
    assert httpx.get(f"{live_server.url}/healthz").json() == {"status": "ok"}
    good = httpx.post(f"{live_server.url}/v1/track", json=track(), headers=basic(WRITE_KEY))
    assert good.status_code == 200
    live_server.wait_idle()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")  # pragma: no cover


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_huge_plain_body_is_refused_without_buffering_it(live_server: Any) -> None:
    # Given a client streaming 100 MB, far over the 500 KB batch limit, with no Content-Length
    before = peak_rss_kb(live_server.proc.pid)

    def hundred_megabytes() -> Iterator[bytes]:
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            yield chunk

    # When it is posted
    response = httpx.post(
        f"{live_server.url}/v1/batch",
        content=hundred_megabytes(),
        headers=basic(WRITE_KEY),
        timeout=60,
    )
    # Then it gets a clean 400 (not a reset connection that SDKs would retry)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "payload_too_large"
    assert "the limit is 512000 bytes" in response.json()["message"]
    # And the server never held the body in memory (it used to peak at twice its size)
    assert peak_rss_kb(live_server.proc.pid) - before < 30 * 1024
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200
