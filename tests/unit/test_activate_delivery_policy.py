"""The pure parts of delivery: Standard Webhooks signatures, the retry verdicts, backoff,
Retry-After and maximum age, and durations written in words."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from opencdp.activate import retry, signing
from opencdp.timeutil import parse_duration

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_standard_webhooks_test_vector() -> None:
    sig = signing.sign(
        VECTOR_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=40))
def test_a_receiver_verifies_what_we_sign(body: bytes, message: str) -> None:
    secret = signing.new_secret()
    msg_id = signing.webhook_id("erp", "orders", message)
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": signing.signature_header([secret], msg_id, now, body),
    }
    Webhook(secret).verify(body, headers, json_parse=False)  # raises when wrong
    other = signing.new_secret()
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        Webhook(other).verify(body, headers, json_parse=False)


def test_rotation_signs_with_every_key_still_honoured() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    header = signing.signature_header([new, old], "msg_x", 1, b"{}")
    parts = header.split(" ")
    assert parts == [signing.sign(new, "msg_x", 1, b"{}"), signing.sign(old, "msg_x", 1, b"{}")]


def test_the_id_is_the_same_for_the_same_delivery_and_differs_otherwise() -> None:
    a = signing.webhook_id("erp", "orders", "m1")
    assert a == signing.webhook_id("erp", "orders", "m1")
    assert a.startswith("msg_") and len(a) == 30 and "." not in a
    assert (
        len(
            {
                a,
                signing.webhook_id("erp", "orders", "m2"),
                signing.webhook_id("crm", "orders", "m1"),
                signing.webhook_id("erp", "all", "m1"),
            }
        )
        == 4
    )


@pytest.mark.parametrize(
    "secret, problem",
    [("abc", "starts with 'whsec_'"), ("whsec_!!!", "base64"), ("whsec_YWJj", "24 to 64 bytes")],
)
def test_bad_secrets_say_what_is_wrong(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        signing.secret_bytes(secret)


def test_segment_signature_is_hex_hmac_sha1_of_the_body() -> None:
    import hashlib
    import hmac

    assert (
        signing.segment_signature("s3cret", b"[1]")
        == hmac.new(b"s3cret", b"[1]", hashlib.sha1).hexdigest()
    )


@pytest.mark.parametrize(
    "status, error, outcome, flag",
    [
        (200, None, "delivered", None),
        (204, None, "delivered", None),
        (301, None, "dead", None),
        (307, None, "dead", None),
        (400, None, "dead", None),
        (401, None, "dead", "auth_failing"),
        (403, None, "dead", "auth_failing"),
        (404, None, "dead", None),
        (408, None, "retry", None),
        (410, None, "dead", "disable"),
        (423, None, "retry", None),
        (429, None, "retry", "throttled"),
        (500, None, "retry", None),
        (501, None, "dead", None),
        (502, None, "retry", "throttled"),
        (503, None, "retry", None),
        (504, None, "retry", "throttled"),
        (None, "timeout", "retry", None),
        (None, "connection", "retry", None),
    ],
)
def test_verdicts(status: int | None, error: str | None, outcome: str, flag: str | None) -> None:
    verdict = retry.classify(status, error)
    assert verdict.outcome == outcome
    for name in ("auth_failing", "disable", "throttled"):
        assert getattr(verdict, name) is (name == flag)


def test_backoff_grows_fourfold_within_its_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    expected = [5, 20, 80, 320, 1280, 5120, 20480, 21600, 21600]
    for attempt, base in enumerate(expected, start=1):
        wait = retry.backoff(attempt, rng=rng).total_seconds()
        assert 0.8 * base <= wait <= 1.2 * base


def test_retry_after_in_seconds_or_a_date_capped_at_a_day() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert retry.retry_after("120", now) == timedelta(seconds=120)
    assert retry.retry_after("Fri, 04 Dec 2026 12:10:00 GMT", now) == timedelta(minutes=10)
    assert retry.retry_after("Thu, 03 Dec 2026 12:10:00 GMT", now) == timedelta(0)
    assert retry.retry_after("999999", now) == retry.MAX_RETRY_AFTER
    assert retry.retry_after("soon", now) is None
    assert retry.retry_after(None, now) is None


def test_a_retry_past_the_maximum_age_is_dead() -> None:
    created = datetime(2026, 12, 1, tzinfo=UTC)
    rng = random.Random(1)
    soon = retry.next_attempt(
        created, created, 1, initial=timedelta(seconds=5), max_age=timedelta(days=7), rng=rng
    )
    assert soon is not None and timedelta(seconds=4) <= soon - created <= timedelta(seconds=6)
    late = created + timedelta(days=6, hours=23)
    assert (
        retry.next_attempt(
            late, created, 12, initial=timedelta(seconds=5), max_age=timedelta(days=7), rng=rng
        )
        is None
    )
    asked = retry.next_attempt(
        created,
        created,
        1,
        initial=timedelta(seconds=5),
        max_age=timedelta(days=7),
        asked=timedelta(hours=1),
        rng=rng,
    )
    assert asked == created + timedelta(hours=1)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30 seconds", 30),
        ("1 second", 1),
        ("5 minutes", 300),
        ("1 hour", 3600),
        ("2 days", 172800),
        ("1 week", 604800),
        (" 1.5 Hours ", 5400),
    ],
)
def test_durations_in_words(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "minutes", "5 fortnights", "-1 day"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. '30 seconds'"):
        parse_duration(text)
