"""The ``segment`` destination type against a real HTTP server on a loopback port: what
/v1/batch receives, how chunks are split, what answers mean, and that an OpenCDP receiver
stores the timestamps OpenCDP stored."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from opencdp.activate.destinations.base import Message
from opencdp.activate.destinations.segment import Segment, SegmentSettings
from opencdp.collect.envelope import split_envelope
from opencdp.collect.normalize import NormalizedEvent, normalize
from tests.support.net import closed_port
from tests.support.receiver import Answer, Receiver

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEY = "downstream-write-key"


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": f"user-{n}",
        "messageId": f"ev-{n}",
        "properties": {"order_id": f"o-{n}", "total": 10.5 * n},
        "timestamp": "2026-12-04T11:00:00.000Z",
        "originalTimestamp": "2026-12-04T11:00:00.000Z",
        "receivedAt": "2026-12-04T11:00:01.000Z",
        **extra,
    }


def message(
    n: int, data: Any = None, ev: dict[str, Any] | None = None, at: datetime = AT
) -> Message:
    ev = ev if ev is not None else event(n)
    return Message(f"msg_{n}", ev if data is None else data, ev, "all", 1, at)


def segment(receiver: Receiver, **settings: Any) -> Segment:
    values = {
        "url": receiver.base,
        "write_key": KEY,
        "allow_http": True,
        "allow_private_targets": True,
        **settings,
    }
    return Segment("downstream", SegmentSettings.model_validate(values))


def test_a_chunk_goes_as_one_batch_with_basic_auth_and_the_events_unchanged() -> None:
    with Receiver() as receiver:
        dest = segment(receiver)
        attempts = dest.send([message(1), message(2), message(3)])
    [got] = receiver.requests
    assert (got.method, got.path) == ("POST", "/v1/batch")
    assert got.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert got.headers["content-type"] == "application/json"
    sent = got.json()["batch"]
    assert [e["messageId"] for e in sent] == ["ev-1", "ev-2", "ev-3"]
    for n, e in enumerate(sent, 1):
        # everything but sentAt as stored (no skew: sentAt is the attempt's time)
        assert {k: v for k, v in e.items() if k != "sentAt"} == event(n)
        assert e["sentAt"] == "2026-12-04T12:00:00.000Z"
    assert [(a.status, dest.classify(a).outcome) for a in attempts] == [(200, "delivered")] * 3


def test_the_record_keeps_each_event_and_the_batch_size_but_never_the_write_key() -> None:
    with Receiver() as receiver:
        attempts = segment(receiver).send([message(1), message(2)])
    record = orjson.dumps([a.request for a in attempts])
    assert KEY.encode() not in record and b"authorization" not in record
    assert orjson.loads(attempts[1].request["event"])["messageId"] == "ev-2"
    assert attempts[0].request["batch"] == {"events": 2, "bytes": len(receiver.requests[0].body)}
    assert attempts[0].request["url"] == receiver.base + "/v1/batch"


def test_batch_size_splits_a_chunk_in_order() -> None:
    with Receiver() as receiver:
        dest = segment(receiver, batch_size=2)
        assert dest.batch_size == 2
        attempts = dest.send([message(n) for n in range(1, 6)])
    assert [[e["userId"] for e in b["batch"]] for b in receiver.bodies()] == [
        ["user-1", "user-2"],
        ["user-3", "user-4"],
        ["user-5"],
    ]
    assert len(attempts) == 5


def test_a_request_never_passes_max_request_bytes() -> None:
    padding = "x" * 7000
    with Receiver() as receiver:
        dest = segment(receiver, max_request_bytes=20_000, max_event_bytes=12_000)
        attempts = dest.send([message(n, event(n, context={"pad": padding})) for n in range(7)])
    sizes = [len(r.body) for r in receiver.requests]
    assert all(size <= 20_000 for size in sizes), sizes
    assert len(sizes) == 4  # two ~7 KB events fit in 20 KB, three do not
    assert sum(len(b["batch"]) for b in receiver.bodies()) == 7
    assert {a.status for a in attempts} == {200}


def test_an_event_over_max_event_bytes_is_dead_alone() -> None:
    big = message(2, event(2, properties={"blob": "y" * 40_000}))
    with Receiver() as receiver:
        dest = segment(receiver)
        attempts = dest.send([message(1), big, message(3)])
    assert [e["userId"] for e in receiver.bodies()[0]["batch"]] == ["user-1", "user-3"]
    verdict = dest.classify(attempts[1])
    assert (verdict.outcome, verdict.reason) == ("dead", "payload_too_large")
    assert [dest.classify(a).outcome for a in (attempts[0], attempts[2])] == ["delivered"] * 2


@pytest.mark.parametrize(
    "data, problem",
    [
        (["not", "an", "object"], "JSON object"),
        ({"type": "purchase", "userId": "u"}, "type 'purchase'"),
        ({"type": "track", "event": "x"}, "userId or an anonymousId"),
    ],
)
def test_data_that_is_no_segment_event_is_dead_and_not_sent(data: Any, problem: str) -> None:
    with Receiver() as receiver:
        dest = segment(receiver)
        attempts = dest.send([message(1, data), message(2)])
    assert [e["userId"] for e in receiver.bodies()[0]["batch"]] == ["user-2"]
    assert attempts[0].error is not None and problem in attempts[0].error
    assert dest.classify(attempts[0]).outcome == "dead"


def test_a_mapping_without_message_id_keeps_the_events_or_the_deliverys() -> None:
    mapped = {"type": "identify", "userId": "u1", "traits": {"tier": "gold"}}
    with Receiver() as receiver:
        segment(receiver).send([message(1, mapped), message(2, mapped, ev={"type": "identify"})])
    first, second = receiver.bodies()[0]["batch"]
    assert first["messageId"] == "ev-1"  # the stored event's: the receiver de-duplicates
    assert second["messageId"] == "msg_2"  # no stored one: the delivery's, the same on retry
    assert first["traits"] == {"tier": "gold"}


def test_a_retry_sends_the_same_message_ids() -> None:
    with Receiver() as receiver:
        dest = segment(receiver)
        dest.send([message(1), message(2)])
        dest.send([message(1, at=AT + timedelta(minutes=5)), message(2)])
    first, second = receiver.bodies()
    assert [e["messageId"] for e in first["batch"]] == [e["messageId"] for e in second["batch"]]


def test_an_opencdp_receiver_stores_the_timestamp_opencdp_stored_however_late_it_is_sent() -> None:
    # Given an event from a phone whose clock is 10 minutes behind, as OpenCDP stored it
    received = datetime(2026, 12, 4, 9, 0, 5, tzinfo=UTC)
    client = {
        "type": "track",
        "event": "Signed Up",
        "anonymousId": "a1",
        "messageId": "m1",
        "timestamp": "2026-12-04T08:50:00.000Z",
        "sentAt": "2026-12-04T08:50:04.000Z",
    }
    stored = normalize(
        client, split_envelope("track", {}), received_at=received, max_event_bytes=32_768
    )
    assert isinstance(stored, NormalizedEvent)
    assert stored.payload["timestamp"] == "2026-12-04T09:00:01.000Z"
    # When it is forwarded three hours later (a receiver was down)
    late = received + timedelta(hours=3)
    with Receiver() as receiver:
        segment(receiver).send([Message("msg_1", stored.payload, stored.payload, "all", 4, late)])
    body = receiver.bodies()[0]
    # Then an OpenCDP receiver reading it a moment later stores the same timestamp
    again = normalize(
        body["batch"][0],
        split_envelope("batch", body),
        received_at=late + timedelta(milliseconds=40),
        max_event_bytes=32_768,
    )
    assert isinstance(again, NormalizedEvent)
    assert again.payload["timestamp"] == "2026-12-04T09:00:01.040Z"
    assert again.payload["originalTimestamp"] == stored.payload["originalTimestamp"]


@pytest.mark.parametrize(
    "status, outcome, flags",
    [
        (200, "delivered", {}),
        (400, "dead", {}),
        (401, "dead", {"auth_failing": True}),
        (429, "retry", {"throttled": True}),
        (500, "retry", {}),
        (503, "retry", {}),
    ],
)
def test_the_receivers_answer_decides_for_the_whole_batch(
    status: int, outcome: str, flags: dict[str, bool]
) -> None:
    with Receiver() as receiver:
        receiver.answer = lambda _r: Answer(status, {"retry-after": "7"}, b'{"success":false}')
        dest = segment(receiver)
        attempts = dest.send([message(1), message(2)])
    for a in attempts:
        verdict = dest.classify(a)
        assert (a.status, verdict.outcome) == (status, outcome)
        assert all(getattr(verdict, k) == v for k, v in flags.items())
        assert a.retry_after == "7"
        assert a.response["body"] == '{"success":false}'


def test_no_server_is_a_connection_error_retried() -> None:
    dest = Segment(
        "down",
        SegmentSettings(
            url=f"http://127.0.0.1:{closed_port()}",
            write_key=KEY,  # type: ignore[arg-type]
            allow_http=True,
            allow_private_targets=True,
        ),
    )
    [attempt] = dest.send([message(1)])
    assert (attempt.status, attempt.error) == (None, "connection")
    assert dest.classify(attempt).outcome == "retry"


def test_a_slow_receiver_is_a_timeout_retried() -> None:
    with Receiver() as receiver:
        receiver.answer = lambda _r: (time.sleep(1.5), Answer())[1]
        dest = segment(receiver, timeout_seconds=1)
        [attempt] = dest.send([message(1)])
    assert (attempt.error, dest.classify(attempt).outcome) == ("timeout", "retry")


def test_nothing_to_send_sends_nothing() -> None:
    with Receiver() as receiver:
        assert segment(receiver).send([]) == []
    assert receiver.requests == []


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"url": "http://api.example.com"}, "allow_http"),
        ({"url": "https://127.0.0.1:8080"}, "allow_private_targets"),
        ({"url": "https://localhost"}, "allow_private_targets"),
        ({"url": "https://10.0.0.7"}, "allow_private_targets"),
        ({"url": "api.example.com"}, "absolute http"),
        ({"url": "https://api.example.com/?x=1"}, "without a query"),
        ({"url": "https://api.example.com", "write_key": " "}, "write_key"),
        ({"url": "https://api.example.com", "batch_size": 0}, "batch_size"),
        ({"url": "https://api.example.com", "max_request_bytes": 20_000}, "max_event_bytes"),
        ({"url": "https://api.example.com", "colour": "red"}, "colour"),
    ],
)
def test_settings_refuse_what_cannot_work(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SegmentSettings.model_validate({"write_key": KEY, **settings})


@pytest.mark.parametrize(
    "url",
    ["https://api.example.com", "https://api.example.com/", "https://api.example.com/v1/batch"],
)
def test_the_url_is_the_base_even_written_as_the_endpoint(url: str) -> None:
    settings = SegmentSettings.model_validate({"url": url, "write_key": KEY})
    assert settings.url == "https://api.example.com"
    assert Segment("d", settings).endpoint == "https://api.example.com/v1/batch"


def test_the_write_key_is_masked_in_repr() -> None:
    settings = SegmentSettings.model_validate({"url": "https://api.example.com", "write_key": KEY})
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
