"""Request envelopes (segment-compat.md §1.1-§1.3, §1.7): decompression, JSON, write key, batches."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from typing import Any

import orjson
import pytest

from opencdp.collect.envelope import (
    MAX_JSON_DEPTH,
    ROUTES,
    Envelope,
    MessageNotUnicode,
    MessageTooDeep,
    clipped,
    decompress,
    encode_message,
    find_write_key,
    parse_json_object,
    split_envelope,
    storable,
    write_key_from_basic,
)
from opencdp.errors import AuthenticationError, InvalidPayload, PayloadTooLarge

BODY = orjson.dumps({"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}})
LIMIT = 500 * 1024


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# -- decompress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_identity_encodings_return_the_body_unchanged(encoding: str | None) -> None:
    assert decompress(BODY, encoding, LIMIT) is BODY


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        (" gzip ", gzip.compress),
        ("deflate", zlib.compress),  # RFC 9110 deflate: zlib-wrapped
        ("deflate", raw_deflate),  # what some clients send instead
    ],
    ids=["gzip", "x-gzip", "upper-case", "padded", "deflate-zlib", "deflate-raw"],
)
def test_compressed_bodies_are_inflated(encoding: str, compress: Any) -> None:
    assert decompress(compress(BODY), encoding, LIMIT) == BODY


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, deflate"])
def test_unsupported_encoding_is_refused(encoding: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        decompress(BODY, encoding, LIMIT)
    assert info.value.code == "unsupported_encoding"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"this is not gzip at all"),
        ("deflate", b"\xff\xfe\xfd not deflate"),
        # A gzip stream whose CRC-32 trailer was damaged in transit.
        ("gzip", gzip.compress(BODY)[:-8] + b"\x00\x00\x00\x00" + gzip.compress(BODY)[-4:]),
    ],
    ids=["not-gzip", "not-deflate", "bad-crc"],
)
def test_corrupt_compressed_data_is_invalid_encoding(encoding: str, body: bytes) -> None:
    with pytest.raises(InvalidPayload) as info:
        decompress(body, encoding, LIMIT)
    assert info.value.code == "invalid_encoding"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(BODY)[:-4]),  # trailer cut short
        ("gzip", gzip.compress(BODY)[: len(gzip.compress(BODY)) // 2]),  # cut mid-stream
        ("gzip", gzip.compress(BODY)[:5]),  # cut inside the header
        ("gzip", b""),
        ("deflate", zlib.compress(BODY)[:-6]),
    ],
    ids=["no-trailer", "half", "header-only", "empty", "deflate-cut"],
)
def test_truncated_compressed_data_is_invalid_encoding(encoding: str, body: bytes) -> None:
    with pytest.raises(InvalidPayload) as info:
        decompress(body, encoding, LIMIT)
    assert info.value.code == "invalid_encoding"
    assert "truncated" in info.value.message or "not valid" in info.value.message


def test_uncompressed_body_at_the_limit_passes_and_one_byte_more_is_too_large() -> None:
    body = b"x" * 1000
    assert decompress(body, None, 1000) == body
    with pytest.raises(PayloadTooLarge) as info:
        decompress(body + b"x", None, 1000)
    assert info.value.code == "payload_too_large"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_inflated_body_at_the_limit_passes_and_one_byte_more_is_too_large(encoding: str) -> None:
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    body = b"y" * 4096
    assert decompress(compress(body), encoding, 4096) == body
    with pytest.raises(PayloadTooLarge):
        decompress(compress(body + b"y"), encoding, 4096)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """50 MB of zeros, gzipped (about 50 KB), built without holding the 50 MB in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(50)]
    parts.append(compressor.flush())
    return b"".join(parts)


def test_compression_bomb_is_refused_without_inflating_it(gzip_bomb: bytes) -> None:
    # Given a 50 KB request body that inflates to 50 MB
    assert len(gzip_bomb) < 100 * 1024
    # When it is decompressed with a 500 KB limit
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as info:
            decompress(gzip_bomb, "gzip", LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then it is refused as too large, having allocated about the limit, not the 50 MB
    assert info.value.code == "payload_too_large"
    assert peak < 4 * LIMIT


# -- parse_json_object -----------------------------------------------------------------------------


def test_json_object_is_parsed_whatever_it_contains() -> None:
    body = b'{"userId": "u1", "n": 1.5, "ok": true, "none": null, "list": [1, {"a": "\\u00e9"}]}'
    assert parse_json_object(body) == {
        "userId": "u1",
        "n": 1.5,
        "ok": True,
        "none": None,
        "list": [1, {"a": "é"}],
    }


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'[{"userId": "u1"}]',
        b"42",
        b'"a string"',
        b"null",
        b"true",
        b"",
        b"   \n\t ",
        b"{",
        b'{"userId": "u1",}',
        b"{'userId': 'u1'}",
        b'{"a": NaN}',
        b'{"a": "\xff"}',
        b'{"a": 1} trailing',
    ],
    ids=[
        "empty-array",
        "array",
        "number",
        "string",
        "null",
        "bool",
        "empty",
        "whitespace",
        "unclosed",
        "trailing-comma",
        "single-quotes",
        "nan",
        "bad-utf8",
        "trailing-text",
    ],
)
def test_anything_but_a_json_object_is_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as info:
        parse_json_object(body)
    assert info.value.code == "invalid_json"
    assert info.value.status == 400


def nested(levels: int) -> bytes:
    """A JSON object that is ``levels`` levels of objects/arrays deep (the outer object is one)."""
    inner = b"[" * (levels - 2) + b"{}" + b"]" * (levels - 2)
    return b'{"a":' + inner + b"}"


def test_nesting_up_to_max_json_depth_is_accepted() -> None:
    parsed = parse_json_object(nested(MAX_JSON_DEPTH))
    depth, value = 1, parsed["a"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert depth + 1 == MAX_JSON_DEPTH
    assert value == {}


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 300, 1000])
def test_deeper_nesting_is_parsed_and_left_to_each_message(levels: int) -> None:
    parsed = parse_json_object(nested(levels))
    with pytest.raises(MessageTooDeep, match="nested deeper than 128 levels"):
        encode_message(parsed)
    assert not storable(parsed)


def test_what_the_parser_cannot_read_is_invalid_json() -> None:
    with pytest.raises(InvalidPayload) as info:
        parse_json_object(nested(5000))
    assert info.value.code == "invalid_json"


def test_encode_message_is_the_message_as_json() -> None:
    message = {"a": [1, {"b": "é"}], "n": None}
    assert encode_message(message) == orjson.dumps(message)
    assert encode_message(parse_json_object(nested(MAX_JSON_DEPTH))) == (
        orjson.dumps(parse_json_object(nested(MAX_JSON_DEPTH)))
    )


def test_a_lone_surrogate_is_parsed_then_refused_by_encode_message() -> None:
    parsed = parse_json_object(b'{"a": "x\\ud800", "b": "\\ud83e\\udd84"}')
    assert parsed["b"] == "🦄"
    with pytest.raises(MessageNotUnicode):
        encode_message(parsed)
    # The quarantine keeps a copy that can be stored
    assert clipped(parsed) == {"a": "x\ufffd", "b": "🦄"}
    assert storable(clipped(parsed))


def test_clipped_cuts_what_is_too_deep_and_keeps_the_rest() -> None:
    parsed = parse_json_object(nested(300))
    kept = clipped(parsed)
    assert storable(kept)
    assert "nested deeper than 128 levels" in orjson.dumps(kept).decode()


@pytest.mark.parametrize("body", [b'{"a": NaN, "b": "\\ud800"}', b'{"a": "\\ud800"'])
def test_the_surrogate_fallback_is_still_strict_json(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_json_object(body)


# -- write_key_from_basic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("wk_123:"), "wk_123"),  # as the docs say: username, colon, empty password
        (basic("wk_123"), "wk_123"),  # without the colon, "for backward compatibility"
        (basic("wk_123:ignored-password"), "wk_123"),
        ("basic " + base64.b64encode(b"wk_123:").decode(), "wk_123"),
        ("  Basic   " + base64.b64encode(b"wk_123:").decode() + "  ", "wk_123"),
    ],
    ids=["with-colon", "without-colon", "with-password", "lower-case-scheme", "extra-spaces"],
)
def test_write_key_is_the_basic_username(header: str, expected: str) -> None:
    assert write_key_from_basic(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic ",
        "Basic not*base64!",
        "Basic d2tf=MTIz",  # padding in the middle: not valid base64
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # not UTF-8
        basic(":"),  # empty username
        basic(":password"),
        basic(""),
        "Bearer " + base64.b64encode(b"wk_123:").decode(),
        "Digest username=wk_123",
        base64.b64encode(b"wk_123:").decode(),  # no scheme at all
    ],
    ids=[
        "none",
        "empty",
        "scheme-only",
        "scheme-space",
        "bad-base64",
        "no-padding",
        "not-utf8",
        "empty-username",
        "empty-username-with-password",
        "empty-credentials",
        "bearer",
        "digest",
        "no-scheme",
    ],
)
def test_no_write_key_from_a_bad_or_foreign_authorization(header: str | None) -> None:
    assert write_key_from_basic(header) is None


# -- find_write_key --------------------------------------------------------------------------------


def test_basic_auth_wins_over_the_body() -> None:
    body = {"writeKey": "from-body", "batch": [{"writeKey": "from-item"}]}
    assert find_write_key(basic("from-header:"), body) == "from-header"


def test_body_write_key_wins_over_the_first_batch_item() -> None:
    body = {"writeKey": "from-body", "batch": [{"writeKey": "from-item"}]}
    assert find_write_key(None, body) == "from-body"


def test_first_batch_item_write_key_is_the_last_resort() -> None:
    # analytics-next standard mode puts writeKey only on the messages.
    body = {"batch": [{"writeKey": "from-item"}, {"writeKey": "from-second-item"}]}
    assert find_write_key(None, body) == "from-item"


def test_unusable_basic_auth_falls_back_to_the_body() -> None:
    assert find_write_key("Basic %%%", {"writeKey": "from-body"}) == "from-body"
    assert find_write_key(basic(":"), {"writeKey": "from-body"}) == "from-body"
    assert find_write_key("Bearer token", {"writeKey": "from-body"}) == "from-body"


def test_single_message_body_write_key_is_used() -> None:
    assert find_write_key(None, {"userId": "u1", "writeKey": "wk"}) == "wk"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"writeKey": ""},
        {"writeKey": None},
        {"writeKey": 123},
        {"writeKey": ["wk"]},
        {"batch": []},
        {"batch": [{}]},
        {"batch": [{"writeKey": ""}]},
        {"batch": ["wk"]},
        {"batch": "wk"},
        {"batch": {"writeKey": "wk"}},
        {"batch": [{"type": "track"}, {"writeKey": "only-on-the-second"}]},
    ],
)
def test_missing_write_key_is_an_authentication_error(body: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError) as info:
        find_write_key(None, body)
    assert info.value.code == "missing_write_key"
    assert info.value.status == 401


# -- split_envelope --------------------------------------------------------------------------------

SINGLE_ROUTES = {route: implied for route, implied in ROUTES.items() if implied is not None}
BATCH_ROUTES = [route for route, implied in ROUTES.items() if implied is None]


def test_routes_cover_the_segment_paths() -> None:
    # segment-compat.md §1.1: long paths, analytics.js one-letter paths, batch aliases.
    assert SINGLE_ROUTES == {
        "identify": "identify",
        "track": "track",
        "page": "page",
        "screen": "screen",
        "group": "group",
        "alias": "alias",
        "i": "identify",
        "t": "track",
        "p": "page",
        "s": "screen",
        "g": "group",
        "a": "alias",
    }
    assert sorted(BATCH_ROUTES) == ["b", "batch", "import"]


@pytest.mark.parametrize(("route", "implied"), sorted(SINGLE_ROUTES.items()))
def test_single_message_routes_carry_the_body_with_the_implied_type(
    route: str, implied: str
) -> None:
    body = {
        "userId": "u1",
        "sentAt": "2026-01-01T00:00:00Z",
        "context": {"ip": "1.2.3.4"},
        "integrations": {"All": False},
    }
    envelope = split_envelope(route, body)
    assert envelope.messages == [body]
    assert envelope.messages[0] is body
    assert envelope.implied_type == implied
    # The message's own sentAt/context stay on the message; nothing is batch-level.
    assert envelope.sent_at is None
    assert envelope.context == {}
    assert envelope.integrations == {}


@pytest.mark.parametrize("route", BATCH_ROUTES)
def test_batch_routes_carry_the_items_and_batch_level_fields(route: str) -> None:
    items = [{"type": "track", "event": "A"}, {"type": "identify"}]
    body = {
        "batch": items,
        "sentAt": "2026-01-01T00:00:05.000Z",
        "context": {"library": {"name": "analytics-python"}},
        "integrations": {"All": True, "Salesforce": False},
        "writeKey": "wk",
    }
    envelope = split_envelope(route, body)
    assert envelope == Envelope(
        messages=items,
        implied_type=None,
        sent_at="2026-01-01T00:00:05.000Z",
        context={"library": {"name": "analytics-python"}},
        integrations={"All": True, "Salesforce": False},
    )


@pytest.mark.parametrize("route", BATCH_ROUTES)
def test_empty_batch_is_an_envelope_without_messages(route: str) -> None:
    assert split_envelope(route, {"batch": []}) == Envelope(messages=[], implied_type=None)


@pytest.mark.parametrize("route", BATCH_ROUTES)
def test_batch_without_optional_fields_gets_empty_defaults(route: str) -> None:
    envelope = split_envelope(route, {"batch": [{"type": "track"}]})
    assert envelope.sent_at is None
    assert envelope.context == {}
    assert envelope.integrations == {}


def test_batch_level_context_and_integrations_that_are_not_objects_are_ignored() -> None:
    envelope = split_envelope("batch", {"batch": [], "context": "x", "integrations": [1]})
    assert envelope.context == {}
    assert envelope.integrations == {}


@pytest.mark.parametrize("route", BATCH_ROUTES)
@pytest.mark.parametrize("body", [{}, {"batch": None}, {"userId": "u1", "type": "track"}])
def test_batch_route_without_batch_is_invalid_batch(route: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload) as info:
        split_envelope(route, body)
    assert info.value.code == "invalid_batch"


@pytest.mark.parametrize("batch", [{"type": "track"}, "[]", 3, True])
def test_batch_that_is_not_a_list_is_invalid_batch(batch: Any) -> None:
    with pytest.raises(InvalidPayload) as info:
        split_envelope("batch", {"batch": batch})
    assert info.value.code == "invalid_batch"
