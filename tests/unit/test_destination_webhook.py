"""The ``webhook`` destination type against a real HTTP server on a loopback port, and the
target rules it shares with ``segment`` (:mod:`opencdp.activate.destinations.http`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook as Verifier

from opencdp.activate.destinations import http
from opencdp.activate.destinations.base import Message
from opencdp.activate.destinations.webhook import Webhook, WebhookSettings
from opencdp.activate.signing import batch_id, new_secret
from tests.support.net import closed_port
from tests.support.receiver import Answer, Receiver


def message(n: int) -> Message:
    data = {"order": f"o-{n}", "total": n}
    # now: a receiver refuses signatures more than five minutes off its clock
    return Message(f"msg_{n}", data, {"type": "track"}, "orders", 1, datetime.now(UTC))


def webhook(url: str, **settings: Any) -> Webhook:
    values = {"url": url, "allow_http": True, "allow_private_targets": True, **settings}
    return Webhook("erp", WebhookSettings.model_validate(values))


def test_one_message_is_one_signed_request() -> None:
    secret = new_secret()
    with Receiver() as receiver:
        [attempt] = webhook(receiver.url, secret=secret).send([message(1)])
    [got] = receiver.requests
    Verifier(secret).verify(got.body, got.headers, json_parse=False)  # raises when wrong
    assert got.headers["webhook-id"] == "msg_1"
    assert got.json() == {"order": "o-1", "total": 1}
    assert attempt.status == 200 and "webhook-signature" not in attempt.request["headers"]


def test_a_batch_is_a_json_array_under_the_id_of_all_its_members() -> None:
    with Receiver() as receiver:
        attempts = webhook(receiver.url, batch_size=10).send([message(1), message(2)])
        webhook(receiver.url, batch_size=10).send([message(1), message(2)])
        webhook(receiver.url, batch_size=10).send([message(1), message(3)])
    got, again, other = receiver.requests
    # the same batch again: the same id; another batch with the same first member: another
    assert got.headers["webhook-id"] == again.headers["webhook-id"] == batch_id(["msg_1", "msg_2"])
    assert other.headers["webhook-id"] not in (got.headers["webhook-id"], "msg_1")
    assert got.json() == [{"order": "o-1", "total": 1}, {"order": "o-2", "total": 2}]
    assert [a.status for a in attempts] == [200, 200]


def test_batch_size_one_sends_one_request_each() -> None:
    with Receiver() as receiver:
        webhook(receiver.url).send([message(1), message(2)])
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_1", "msg_2"]


def test_answers_and_transport_failures() -> None:
    with Receiver() as receiver:
        receiver.answer = lambda _r: Answer(503, {"retry-after": "30"}, b"busy")
        [busy] = webhook(receiver.url).send([message(1)])
        receiver.answer = lambda _r: (time.sleep(1.5), Answer())[1]
        [slow] = webhook(receiver.url, timeout_seconds=1).send([message(1)])
    [down] = webhook(f"http://127.0.0.1:{closed_port()}/h").send([message(1)])
    assert (busy.status, busy.retry_after, busy.response["body"]) == (503, "30", "busy")
    assert (slow.error, down.error) == ("timeout", "connection")


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"url": "ftp://x"}, "absolute http"),
        ({"url": "http://example.com/h"}, "plain http is refused; use https or set allow_http"),
        ({"url": "https://127.0.0.1/h"}, "set allow_private_targets"),
        ({"url": "https://[::1]/h"}, "set allow_private_targets"),
        ({"url": "https://app.localhost/h"}, "set allow_private_targets"),
        ({"url": "https://169.254.169.254/latest"}, "set allow_private_targets"),
    ],
)
def test_targets_are_refused_as_before(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        WebhookSettings.model_validate(settings)


@pytest.mark.parametrize(
    "host, private",
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("[fe80::1]", True),
        ("0.0.0.0", True),
        ("localhost", True),
        ("100.64.0.1", True),  # carrier-grade NAT: inside a provider's network
        ("[::ffff:10.0.0.1]", True),  # a private IPv4 address written as IPv6
        ("[::1]", True),
        ("224.0.0.1", True),  # multicast
        ("169.254.169.254", True),  # a cloud's metadata service
        ("198.18.0.1", True),  # benchmarking range
        ("93.184.215.14", False),
        ("[2606:4700::1111]", False),
        ("example.com", False),  # not resolved when asked not to
    ],
)
def test_private_addresses(host: str, private: bool) -> None:
    assert http.private(host, resolve=False) is private


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given settings for a public-looking name (validation does not resolve it)
    dest = Webhook("erp", WebhookSettings.model_validate({"url": "https://hooks.example.com/h"}))
    # When the name resolves inside (a resolver answering 10.0.0.5)
    monkeypatch.setattr(
        http.socket, "getaddrinfo", lambda *_a, **_k: [(2, 1, 6, "", ("10.0.0.5", 443))]
    )
    [attempt] = dest.send([message(1)])
    # Then nothing is sent: refused_target
    assert (attempt.status, attempt.error) == (None, "refused_target")


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X-Token": "a\r\nX-Evil: 1"}, "one line"),
        ({"X-Token": "a\nb"}, "one line"),
        ({"Bad Name": "x"}, "not a header name"),
        ({"X:Colon": "x"}, "not a header name"),
    ],
)
def test_header_values_cannot_start_another_header(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        WebhookSettings.model_validate({"url": "https://example.com/h", "headers": headers})
