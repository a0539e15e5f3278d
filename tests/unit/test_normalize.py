"""Normalization of single messages (segment-compat.md §1.4, §1.5, §1.7)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from opencdp.collect.envelope import Envelope
from opencdp.collect.normalize import (
    BAD_TIMESTAMP,
    EVENT_TYPES,
    INVALID_FIELD,
    INVALID_MESSAGE_ID,
    INVALID_TYPE,
    MAX_MESSAGE_ID,
    MISSING_EVENT,
    MISSING_GROUP_ID,
    MISSING_IDENTITY,
    MISSING_PREVIOUS_ID,
    NOT_AN_OBJECT,
    OVERSIZE_EVENT,
    REASONS,
    NormalizedEvent,
)
from opencdp.collect.normalize import normalize as _normalize
from opencdp.collect.rejection import Rejection
from opencdp.timeutil import to_us

RECEIVED = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
RECEIVED_ISO = "2026-03-01T12:00:10.000Z"
GENERATED_ID = "generated-message-id"
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def single(implied_type: str = "track") -> Envelope:
    return Envelope(messages=[], implied_type=implied_type)


def batch(**fields: Any) -> Envelope:
    return Envelope(messages=[], implied_type=None, **fields)


def normalize(
    raw: Any,
    envelope: Envelope | None = None,
    *,
    received_at: datetime = RECEIVED,
    max_event_bytes: int = 32 * 1024,
) -> NormalizedEvent | Rejection:
    return _normalize(
        raw,
        envelope if envelope is not None else batch(),
        received_at=received_at,
        max_event_bytes=max_event_bytes,
        new_message_id=lambda: GENERATED_ID,
    )


def accepted(raw: Any, envelope: Envelope | None = None, **kwargs: Any) -> NormalizedEvent:
    outcome = normalize(raw, envelope, **kwargs)
    assert isinstance(outcome, NormalizedEvent), outcome
    return outcome


def rejected(raw: Any, envelope: Envelope | None = None, **kwargs: Any) -> Rejection:
    outcome = normalize(raw, envelope, **kwargs)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.raw is raw
    return outcome


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Signed Up", "userId": "u1", **fields}


# -- the stored shape ------------------------------------------------------------------------------


def test_minimal_track_gets_type_message_id_and_the_four_timestamps() -> None:
    event = accepted({"type": "track", "event": "Signed Up", "userId": "u1"})
    assert event.message_id == GENERATED_ID
    assert event.type == "track"
    assert event.payload == {
        "type": "track",
        "event": "Signed Up",
        "userId": "u1",
        "messageId": GENERATED_ID,
        "originalTimestamp": RECEIVED_ISO,
        "timestamp": RECEIVED_ISO,
        "receivedAt": RECEIVED_ISO,
    }
    assert event.timestamp_us == event.received_us == to_us(RECEIVED)


def test_the_raw_message_is_not_mutated() -> None:
    raw = track(anonymousId=None, writeKey="wk", context={"traits": {"a": 1}})
    snapshot = orjson.dumps(raw)
    accepted(raw, batch(context={"ip": "1.2.3.4"}))
    assert orjson.dumps(raw) == snapshot


def test_nulls_at_the_top_level_count_as_absent() -> None:
    # Given what segment-python sends: explicit nulls for the id it does not have
    raw = {
        "type": "page",
        "userId": None,
        "anonymousId": "a1",
        "name": "Home",
        "category": None,
        "messageId": None,
        "timestamp": None,
    }
    # When it is normalized
    event = accepted(raw)
    # Then the nulls are gone and the message is valid on its anonymous id
    assert "userId" not in event.payload
    assert "category" not in event.payload
    assert event.payload["anonymousId"] == "a1"
    assert event.message_id == GENERATED_ID
    assert event.payload["timestamp"] == RECEIVED_ISO


def test_nulls_inside_objects_are_kept() -> None:
    event = accepted(track(properties={"coupon": None}))
    assert event.payload["properties"] == {"coupon": None}


def test_write_key_is_never_stored() -> None:
    for envelope in (single("track"), batch(), batch(context={"ip": "1.2.3.4"})):
        event = accepted(track(writeKey="secret-write-key"), envelope)
        assert "writeKey" not in event.payload
        assert b"secret-write-key" not in orjson.dumps(event.payload)


# -- identifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, "42"), (0, "0"), (-7, "-7"), (2**63 - 1, str(2**63 - 1)), (1.5, "1.5"), (12.0, "12")],
)
@pytest.mark.parametrize("field", ["userId", "anonymousId"])
def test_numeric_ids_become_strings(field: str, value: Any, expected: str) -> None:
    event = accepted({"type": "identify", field: value})
    assert event.payload[field] == expected


def test_float_ids_keep_every_digit() -> None:
    first = accepted({"type": "identify", "userId": 1234567.5})
    second = accepted({"type": "identify", "userId": 1234567.25})
    assert first.payload["userId"] == "1234567.5"
    assert second.payload["userId"] == "1234567.25"


def test_ids_are_stripped_and_blank_ids_are_absent() -> None:
    event = accepted({"type": "identify", "userId": "  u1 ", "anonymousId": "   "})
    assert event.payload["userId"] == "u1"
    assert "anonymousId" not in event.payload


@pytest.mark.parametrize("value", [True, False, {"id": "u1"}, ["u1"]])
@pytest.mark.parametrize("field", ["userId", "anonymousId", "groupId", "previousId"])
def test_booleans_objects_and_arrays_as_ids_are_invalid_fields(field: str, value: Any) -> None:
    raw = {"type": "group", "userId": "u1", "groupId": "g1", field: value}
    rejection = rejected(raw)
    assert rejection.reason == INVALID_FIELD
    assert field in rejection.detail
    assert rejection.message_id == GENERATED_ID
    assert rejection.type == "group"


def test_id_over_500_characters_is_an_invalid_field() -> None:
    assert accepted({"type": "identify", "userId": "u" * 500}).payload["userId"] == "u" * 500
    assert rejected({"type": "identify", "userId": "u" * 501}).reason == INVALID_FIELD


@pytest.mark.parametrize("typ", sorted(EVENT_TYPES))
@pytest.mark.parametrize(
    "ids", [{}, {"userId": None, "anonymousId": None}, {"userId": "", "anonymousId": " "}]
)
def test_message_without_user_or_anonymous_id_is_missing_identity(
    typ: str, ids: dict[str, Any]
) -> None:
    raw = {"type": typ, "event": "E", "groupId": "g1", "previousId": "p1", **ids}
    rejection = rejected(raw)
    assert rejection.reason == MISSING_IDENTITY
    assert rejection.type == typ


def test_group_with_only_a_group_id_is_missing_identity() -> None:
    # analytics-node's client check lets this through (segment-compat.md §1.4).
    assert rejected({"type": "group", "groupId": "g1"}).reason == MISSING_IDENTITY


def test_anonymous_id_alone_is_enough_identity() -> None:
    event = accepted({"type": "track", "event": "Viewed", "anonymousId": "a1"})
    assert event.payload["anonymousId"] == "a1"


# -- per-type required fields ----------------------------------------------------------------------


@pytest.mark.parametrize("event", [None, "", "   "])
def test_track_without_an_event_name_is_missing_event(event: Any) -> None:
    rejection = rejected({"type": "track", "userId": "u1", "event": event})
    assert rejection.reason == MISSING_EVENT
    assert rejection.message_id == GENERATED_ID


def test_track_without_event_key_is_missing_event() -> None:
    assert rejected({"type": "track", "userId": "u1"}).reason == MISSING_EVENT


@pytest.mark.parametrize("event", [42, True, {"name": "x"}, ["x"]])
def test_track_event_that_is_not_a_string_is_an_invalid_field(event: Any) -> None:
    assert rejected(track(event=event)).reason == INVALID_FIELD


def test_track_event_name_is_stripped_and_limited_to_200_characters() -> None:
    assert accepted(track(event="  Signed Up  ")).payload["event"] == "Signed Up"
    assert accepted(track(event="e" * 200)).payload["event"] == "e" * 200
    assert rejected(track(event="e" * 201)).reason == INVALID_FIELD


@pytest.mark.parametrize("group_id", [None, "", "  "])
def test_group_without_group_id_is_missing_group_id(group_id: Any) -> None:
    rejection = rejected({"type": "group", "userId": "u1", "groupId": group_id})
    assert rejection.reason == MISSING_GROUP_ID


def test_group_with_group_id_is_accepted() -> None:
    event = accepted({"type": "group", "userId": "u1", "groupId": 7, "traits": {"name": "Acme"}})
    assert event.payload["groupId"] == "7"
    assert event.payload["traits"] == {"name": "Acme"}


def test_alias_without_previous_id_is_missing_previous_id() -> None:
    assert rejected({"type": "alias", "userId": "u1"}).reason == MISSING_PREVIOUS_ID
    assert rejected({"type": "alias", "userId": "u1", "previousId": ""}).reason == (
        MISSING_PREVIOUS_ID
    )


def test_alias_without_user_id_is_missing_identity_even_with_an_anonymous_id() -> None:
    rejection = rejected({"type": "alias", "anonymousId": "a1", "previousId": "p1"})
    assert rejection.reason == MISSING_IDENTITY
    assert "userId" in rejection.detail


def test_alias_with_both_ids_is_accepted() -> None:
    event = accepted({"type": "alias", "userId": "u1", "previousId": "a1"})
    assert (event.payload["userId"], event.payload["previousId"]) == ("u1", "a1")


@pytest.mark.parametrize("field", ["name", "category"])
@pytest.mark.parametrize("value", [1, True, {"a": 1}])
def test_page_name_and_category_must_be_strings(field: str, value: Any) -> None:
    assert rejected({"type": "page", "userId": "u1", field: value}).reason == INVALID_FIELD


def test_page_name_is_limited_to_200_characters() -> None:
    assert accepted({"type": "screen", "userId": "u1", "name": "n" * 200}).type == "screen"
    assert rejected({"type": "screen", "userId": "u1", "name": "n" * 201}).reason == INVALID_FIELD


@pytest.mark.parametrize("field", ["traits", "properties", "context", "integrations"])
@pytest.mark.parametrize("value", ["x", 1, [1], True])
def test_object_fields_must_be_objects(field: str, value: Any) -> None:
    rejection = rejected(track(**{field: value}))
    assert rejection.reason == INVALID_FIELD
    assert field in rejection.detail


def test_trait_key_over_300_characters_is_an_invalid_field() -> None:
    ok = {"type": "identify", "userId": "u1", "traits": {"k" * 300: 1}}
    assert accepted(ok).payload["traits"] == {"k" * 300: 1}
    for raw in (
        {"type": "identify", "userId": "u1", "traits": {"k" * 301: 1}},
        {"type": "track", "event": "E", "userId": "u1", "context": {"traits": {"k" * 301: 1}}},
    ):
        assert rejected(raw).reason == INVALID_FIELD


# -- type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", sorted(EVENT_TYPES))
def test_type_comes_from_the_path_on_single_message_routes(typ: str) -> None:
    raw = {"userId": "u1", "event": "E", "groupId": "g1", "previousId": "p1"}
    event = accepted(raw, single(typ))
    assert event.type == typ
    assert event.payload["type"] == typ


def test_the_path_type_wins_over_the_message_type() -> None:
    event = accepted({"type": "identify", "userId": "u1", "event": "E"}, single("track"))
    assert event.type == "track"
    assert event.payload["type"] == "track"


def test_batch_items_name_their_type_in_any_case() -> None:
    event = accepted({"type": " Identify ", "userId": "u1"})
    assert event.type == "identify"
    assert event.payload["type"] == "identify"


@pytest.mark.parametrize("typ", [None, "", "purchase", "tracks", 1, ["track"], {"t": 1}])
def test_batch_item_without_a_valid_type_is_invalid_type(typ: Any) -> None:
    raw = {"type": typ, "userId": "u1", "event": "Signed Up"}
    rejection = rejected(raw)
    assert rejection.reason == INVALID_TYPE
    assert rejection.type is None
    assert rejection.event == "Signed Up"


@pytest.mark.parametrize("raw", [[], "track", 3, None, True])
def test_a_message_that_is_not_an_object_is_not_an_object(raw: Any) -> None:
    rejection = rejected(raw)
    assert rejection.reason == NOT_AN_OBJECT


# -- messageId -------------------------------------------------------------------------------------


def test_message_id_is_generated_when_missing() -> None:
    ids = iter(["first", "second"])

    def next_id() -> str:
        return next(ids)

    outcomes = [
        _normalize(
            track(), batch(), received_at=RECEIVED, max_event_bytes=32_000, new_message_id=next_id
        )
        for _ in range(2)
    ]
    assert [o.message_id for o in outcomes if isinstance(o, NormalizedEvent)] == [
        "first",
        "second",
    ]


def test_message_id_is_kept_and_generator_not_called() -> None:
    def fail() -> str:
        raise AssertionError("must not generate an id when the message has one")

    outcome = _normalize(
        track(messageId="ajs-next-1700000000000-uuid"),
        batch(),
        received_at=RECEIVED,
        max_event_bytes=32_000,
        new_message_id=fail,
    )
    assert isinstance(outcome, NormalizedEvent)
    assert outcome.message_id == outcome.payload["messageId"] == "ajs-next-1700000000000-uuid"


def test_numeric_message_id_becomes_a_string() -> None:
    assert accepted(track(messageId=123)).message_id == "123"


def test_message_id_of_100_characters_is_accepted_and_101_is_refused() -> None:
    assert accepted(track(messageId="m" * MAX_MESSAGE_ID)).message_id == "m" * 100
    rejection = rejected(track(messageId="m" * (MAX_MESSAGE_ID + 1)))
    assert rejection.reason == INVALID_MESSAGE_ID
    assert rejection.message_id is None  # a truncated id could be another message's
    assert rejection.type == "track"


@pytest.mark.parametrize("value", [True, {"id": 1}, ["m1"]])
def test_message_id_that_is_not_a_string_or_number_is_invalid(value: Any) -> None:
    assert rejected(track(messageId=value)).reason == INVALID_MESSAGE_ID


# -- batch-level context and integrations, identify traits -----------------------------------------


def test_batch_context_and_integrations_are_merged_with_item_keys_winning() -> None:
    envelope = batch(
        context={"library": {"name": "batch-lib"}, "ip": "1.1.1.1"},
        integrations={"All": True, "Salesforce": False},
    )
    raw = track(
        context={"ip": "2.2.2.2", "locale": "fr-FR"},
        integrations={"Salesforce": True},
    )
    event = accepted(raw, envelope)
    assert event.payload["context"] == {
        "library": {"name": "batch-lib"},
        "ip": "2.2.2.2",
        "locale": "fr-FR",
    }
    assert event.payload["integrations"] == {"All": True, "Salesforce": True}


def test_batch_context_applies_to_items_without_context() -> None:
    event = accepted(track(), batch(context={"ip": "1.1.1.1"}, integrations={"All": False}))
    assert event.payload["context"] == {"ip": "1.1.1.1"}
    assert event.payload["integrations"] == {"All": False}


def test_identify_traits_come_from_context_traits_when_absent() -> None:
    # Given what rudder-sdk-python sends: identify traits only in context.traits
    raw = {"type": "identify", "userId": "u1", "context": {"traits": {"email": "a@b.c"}}}
    # When it is normalized
    event = accepted(raw)
    # Then the traits are where every other client puts them, and context keeps its copy
    assert event.payload["traits"] == {"email": "a@b.c"}
    assert event.payload["context"]["traits"] == {"email": "a@b.c"}


def test_identify_null_traits_fall_back_to_context_traits() -> None:
    raw = {"type": "identify", "userId": "u1", "traits": None, "context": {"traits": {"a": 1}}}
    assert accepted(raw).payload["traits"] == {"a": 1}


def test_identify_top_level_traits_are_not_overridden_by_context_traits() -> None:
    raw = {
        "type": "identify",
        "userId": "u1",
        "traits": {"plan": "pro"},
        "context": {"traits": {"plan": "free", "email": "a@b.c"}},
    }
    assert accepted(raw).payload["traits"] == {"plan": "pro"}


def test_identify_empty_top_level_traits_are_kept() -> None:
    raw = {"type": "identify", "userId": "u1", "traits": {}, "context": {"traits": {"a": 1}}}
    assert accepted(raw).payload["traits"] == {}


def test_context_traits_are_not_copied_for_other_types() -> None:
    event = accepted(track(context={"traits": {"email": "a@b.c"}}))
    assert "traits" not in event.payload


def test_identify_traits_can_come_from_batch_level_context_traits() -> None:
    envelope = batch(context={"traits": {"email": "a@b.c"}})
    assert accepted({"type": "identify", "userId": "u1"}, envelope).payload["traits"] == {
        "email": "a@b.c"
    }


# -- timestamps (segment-compat.md §1.5) -----------------------------------------------------------


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # Given a device whose clock runs one hour ahead: the event happened 5 s before sending
    raw = track(timestamp="2026-03-01T13:00:00.000Z", sentAt="2026-03-01T13:00:05.000Z")
    # When the server receives it at 12:00:10 (true time)
    event = accepted(raw)
    # Then timestamp = receivedAt - (sentAt - originalTimestamp) = 12:00:05
    assert event.payload["timestamp"] == "2026-03-01T12:00:05.000Z"
    assert event.timestamp_us == to_us(RECEIVED - timedelta(seconds=5))
    # And the client's own times are kept as sent
    assert event.payload["originalTimestamp"] == "2026-03-01T13:00:00.000Z"
    assert event.payload["sentAt"] == "2026-03-01T13:00:05.000Z"
    assert event.payload["receivedAt"] == RECEIVED_ISO


def test_clock_skew_correction_with_a_clock_that_runs_behind_and_offsets() -> None:
    # The device clock is 2 days behind and reports in UTC-05:00.
    raw = track(
        originalTimestamp="2026-02-27T06:59:58.250-05:00",  # 11:59:58.250Z
        sentAt="2026-02-27T07:00:00.000-05:00",  # 12:00:00.000Z
    )
    event = accepted(raw)
    assert event.payload["timestamp"] == "2026-03-01T12:00:08.250Z"
    assert event.payload["originalTimestamp"] == "2026-02-27T11:59:58.250Z"
    assert event.payload["sentAt"] == "2026-02-27T12:00:00.000Z"


def test_original_timestamp_wins_over_timestamp_as_the_client_time() -> None:
    raw = track(
        originalTimestamp="2026-03-01T12:00:00Z",
        timestamp="2026-01-01T00:00:00Z",
        sentAt="2026-03-01T12:00:04Z",
    )
    event = accepted(raw)
    assert event.payload["originalTimestamp"] == "2026-03-01T12:00:00.000Z"
    assert event.payload["timestamp"] == "2026-03-01T12:00:06.000Z"


def test_per_message_sent_at_wins_over_batch_sent_at() -> None:
    envelope = batch(sent_at="2026-03-01T12:00:30Z")
    raw = track(timestamp="2026-03-01T12:00:00Z", sentAt="2026-03-01T12:00:01Z")
    event = accepted(raw, envelope)
    assert event.payload["sentAt"] == "2026-03-01T12:00:01.000Z"
    assert event.payload["timestamp"] == "2026-03-01T12:00:09.000Z"


def test_batch_sent_at_applies_when_the_message_has_none() -> None:
    envelope = batch(sent_at="2026-03-01T12:00:30Z")
    for raw in (
        track(timestamp="2026-03-01T12:00:00Z"),
        track(timestamp="2026-03-01T12:00:00Z", sentAt=None),
    ):
        event = accepted(raw, envelope)
        assert event.payload["sentAt"] == "2026-03-01T12:00:30.000Z"
        assert event.payload["timestamp"] == "2026-03-01T11:59:40.000Z"


def test_without_sent_at_the_timestamp_is_kept_as_sent() -> None:
    event = accepted(track(timestamp="2026-02-01T08:30:00.5+01:00"))
    assert event.payload["timestamp"] == "2026-02-01T07:30:00.500Z"
    assert event.payload["originalTimestamp"] == "2026-02-01T07:30:00.500Z"
    assert "sentAt" not in event.payload
    assert event.timestamp_us == to_us(datetime(2026, 2, 1, 7, 30, 0, 500_000, tzinfo=UTC))


def test_without_timestamp_the_received_time_is_used() -> None:
    event = accepted(track(sentAt="2026-03-01T12:00:09Z"))
    assert event.payload["timestamp"] == RECEIVED_ISO
    assert event.payload["originalTimestamp"] == RECEIVED_ISO
    assert event.payload["sentAt"] == "2026-03-01T12:00:09.000Z"
    assert event.timestamp_us == to_us(RECEIVED)


def test_all_four_timestamps_are_iso_8601_utc_with_milliseconds() -> None:
    received = datetime(2026, 3, 1, 12, 0, 10, 987_654, tzinfo=UTC)
    raw = track(
        timestamp="2026-03-01T13:00:00.123456+01:00",  # rudder-python: microseconds
        sentAt="2026-03-01T12:00:01.5+00:00",
    )
    payload = accepted(raw, received_at=received).payload
    for name in ("originalTimestamp", "timestamp", "sentAt", "receivedAt"):
        assert ISO_MS_Z.match(payload[name]), (name, payload[name])
    assert payload["originalTimestamp"] == "2026-03-01T12:00:00.123Z"
    assert payload["sentAt"] == "2026-03-01T12:00:01.500Z"
    assert payload["receivedAt"] == "2026-03-01T12:00:10.987Z"
    # 12:00:10.987654 - (12:00:01.5 - 12:00:00.123456) = 12:00:09.611110
    assert payload["timestamp"] == "2026-03-01T12:00:09.611Z"


@pytest.mark.parametrize(
    "value",
    [
        1_700_000_000,
        1.7e9,
        True,
        {"at": "2026-01-01"},
        ["2026-01-01"],
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "1500-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2300-01-01T00:00:00Z",
        "2200-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt"])
def test_bad_timestamps_are_rejected(field: str, value: Any) -> None:
    rejection = rejected(track(**{field: value}))
    assert rejection.reason == BAD_TIMESTAMP
    assert rejection.message_id == GENERATED_ID


@pytest.mark.parametrize("value", [12, "not a time", "1500-01-01T00:00:00Z"])
def test_bad_batch_sent_at_is_a_bad_timestamp(value: Any) -> None:
    rejection = rejected(track(timestamp="2026-03-01T12:00:00Z"), batch(sent_at=value))
    assert rejection.reason == BAD_TIMESTAMP


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_out_of_range_timestamp_with_an_offset_is_a_bad_timestamp(value: str) -> None:
    assert rejected(track(timestamp=value)).reason == BAD_TIMESTAMP


# -- size ------------------------------------------------------------------------------------------


def test_oversize_event_boundary_is_the_size_of_the_message_as_sent() -> None:
    # Given a message whose JSON encoding (writeKey and nulls included) is exactly N bytes
    raw = track(
        messageId="m-big",
        writeKey="wk",
        anonymousId=None,
        properties={"blob": "x" * 1000, "note": "é"},
    )
    size = len(orjson.dumps(raw))
    # Then a limit of N accepts it
    assert accepted(raw, max_event_bytes=size).message_id == "m-big"
    # And a limit of N - 1 quarantines it as oversize, keeping what identifies it
    rejection = rejected(raw, max_event_bytes=size - 1)
    assert rejection.reason == OVERSIZE_EVENT
    assert rejection.message_id == "m-big"
    assert rejection.type == "track"
    assert rejection.event == "Signed Up"
    assert str(size) in rejection.detail


def test_batch_level_context_does_not_count_towards_the_event_size() -> None:
    raw = track()
    size = len(orjson.dumps(raw))
    envelope = batch(context={"library": {"name": "x" * 5000}})
    assert accepted(raw, envelope, max_event_bytes=size).payload["context"]["library"]


# -- NUL characters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        track(event="Signed\x00Up"),
        track(userId="u\x001"),
        track(properties={"note": "a\x00b"}),
        track(properties={"k\x00": 1}),
        track(properties={"list": [{"deep": ["\x00"]}]}),
        {"type": "identify", "userId": "u1", "context": {"traits": {"name": "\x00"}}},
        track(sentAt="2026-03-01T12:00:00Z\x00"),
    ],
    ids=["event", "user-id", "property-value", "property-key", "deep", "context-traits", "sent-at"],
)
def test_nul_characters_are_invalid_fields(raw: dict[str, Any]) -> None:
    rejection = rejected(raw)
    assert rejection.reason == INVALID_FIELD
    assert "NUL" in rejection.detail


def test_nul_in_batch_level_context_is_an_invalid_field() -> None:
    rejection = rejected(track(), batch(context={"page": {"title": "a\x00b"}}))
    assert rejection.reason == INVALID_FIELD


def test_nul_in_batch_level_integrations_is_an_invalid_field() -> None:
    outcome = normalize(track(), batch(integrations={"Amplitude\x00": True}))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == INVALID_FIELD


def test_escaped_backslash_u0000_text_is_not_a_nul() -> None:
    event = accepted(track(properties={"text": "\\u0000"}))
    assert event.payload["properties"] == {"text": "\\u0000"}


# -- property --------------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    traits=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6),
    long_key=st.sampled_from([None, None, 300, 301]),
    user_id=st.text(max_size=12) | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    typ=st.sampled_from(sorted(EVENT_TYPES)),
    in_context=st.booleans(),
    max_event_bytes=st.sampled_from([512, 32 * 1024, 32 * 1024]),
)
def test_normalize_never_raises_and_stores_only_json(
    traits: dict[str, Any],
    long_key: int | None,
    user_id: Any,
    typ: str,
    in_context: bool,
    max_event_bytes: int,
) -> None:
    if long_key is not None:  # the trait key column holds 300 characters
        traits["k" * long_key] = 1
    raw: dict[str, Any] = {
        "type": typ,
        "userId": user_id,
        "event": "E",
        "groupId": "g1",
        "previousId": "p1",
    }
    if in_context:
        raw["context"] = {"traits": traits}
    else:
        raw["traits"] = traits
    outcome = normalize(raw, max_event_bytes=max_event_bytes)
    event(outcome.reason if isinstance(outcome, Rejection) else "accepted")
    if isinstance(outcome, Rejection):
        assert outcome.reason in REASONS
        assert outcome.raw is raw, "a rejection keeps the message as sent"
    else:
        assert isinstance(outcome, NormalizedEvent)
        assert orjson.loads(orjson.dumps(outcome.payload)) == outcome.payload
        assert outcome.payload["type"] == typ
        assert outcome.payload["userId"].strip() == outcome.payload["userId"] != ""
        for name in ("originalTimestamp", "timestamp", "receivedAt"):
            assert ISO_MS_Z.match(outcome.payload[name])


def test_a_skew_correction_out_of_range_keeps_the_clients_time() -> None:
    # Given client times that disagree by two centuries (a broken clock on one of them)
    raw = track(timestamp="1971-06-01T00:00:00Z", sentAt="2198-06-01T00:00:00Z")
    # Then the event is kept, at the time the client gave (the correction would leave 1970).
    event = accepted(raw)
    assert event.payload["timestamp"] == "1971-06-01T00:00:00.000Z"


def test_a_huge_whole_float_id_keeps_its_short_form() -> None:
    event = accepted(track(messageId=2.5e210, userId=42.0))
    assert event.payload["messageId"] == "2.5e+210"
    assert event.payload["userId"] == "42"
