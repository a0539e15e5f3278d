"""The ``smtp`` destination type against a real SMTP server (aiosmtpd) on a loopback port:
the mail as received, templates and their sandbox, replies and what they mean, AUTH,
STARTTLS and implicit TLS under a certificate authority made for the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from opencdp.activate.destinations.base import Attempt, Message
from opencdp.activate.destinations.smtp import Smtp, SmtpSettings
from tests.support.mail import Authority, MailServer, authority
from tests.support.net import SilentServer, closed_port

# aiosmtpd's warning for the AUTH-over-plain-text server (the tests ask for it on purpose)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TEMPLATES = {
    "from": "Shop <news@shop.test>",
    "subject": "Thank you, {{ traits.first_name or 'friend' }}",
    "text": "Hello {{ traits.first_name }}!\nYour code: {{ traits.code }}",
}


def identify(n: int, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": f"user-{n}",
        "messageId": f"ev-{n}",
        "traits": {"email": f"user{n}@example.test", "first_name": f"Ann{n}", **traits},
    }


def message(n: int, data: Any = None, event: dict[str, Any] | None = None) -> Message:
    ev = event if event is not None else identify(n)
    return Message(f"msg_{n}", ev if data is None else data, ev, "all", 1, AT)


def smtp(port: int, **settings: Any) -> Smtp:
    values = {"host": "127.0.0.1", "port": port, "starttls": False, **TEMPLATES, **settings}
    return Smtp("news", SmtpSettings.model_validate(values))


def content(part: Any) -> str:
    """A received part's text with its lines ended as Python writes them."""
    return str(part.get_content()).replace("\r\n", "\n")


def outcome(dest: Smtp, attempt: Attempt) -> tuple[str, str]:
    verdict = dest.classify(attempt)
    return verdict.outcome, verdict.reason


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer() as s:
        yield s


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return authority(tmp_path_factory.mktemp("ca"))


def test_a_chunk_goes_over_one_connection_as_mails_with_text_and_html(
    server: MailServer,
) -> None:
    dest = smtp(
        server.port,
        html="<p>Hello {{ traits.first_name }}, {{ traits.code }}</p>",
        reply_to="Help <help@shop.test>",
    )
    attempts = dest.send([message(1, identify(1, code="<b>&</b>")), message(2)])
    assert [outcome(dest, a) for a in attempts] == [("delivered", "smtp_250")] * 2
    assert server.greetings == 1  # one connection (one EHLO) for the whole chunk
    first = server.mails[0]
    assert (first.mail_from, first.rcpt_tos) == ("news@shop.test", ["user1@example.test"])
    mail = first.message
    assert mail["From"] == "Shop <news@shop.test>"
    assert mail["To"] == "user1@example.test"
    assert mail["Subject"] == "Thank you, Ann1"
    assert mail["Reply-To"] == "Help <help@shop.test>"
    assert mail["Date"] == "Fri, 04 Dec 2026 12:00:00 +0000"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    # the HTML part is autoescaped, the text part is not
    assert content(text) == "Hello Ann1!\nYour code: <b>&</b>\n"
    assert content(html) == "<p>Hello Ann1, &lt;b&gt;&amp;&lt;/b&gt;</p>\n"
    assert server.mails[1].message["To"] == "user2@example.test"


def test_without_html_the_mail_is_plain_text(server: MailServer) -> None:
    smtp(server.port).send([message(1, identify(1, code=None))])
    mail = server.mails[0].message
    assert mail.get_content_type() == "text/plain"
    assert content(mail) == "Hello Ann1!\nYour code: \n"  # a missing value renders empty


def test_the_message_id_derives_from_the_delivery_and_is_the_same_on_a_retry(
    server: MailServer,
) -> None:
    dest = smtp(server.port)
    dest.send([message(1)])
    dest.send([message(1)])  # a retry: the same delivery
    dest.send([message(2)])
    ids = [m.message["Message-ID"] for m in server.mails]
    assert ids == ["<msg_1@shop.test>", "<msg_1@shop.test>", "<msg_2@shop.test>"]


@pytest.mark.parametrize(
    "data, recipient",
    [
        ({"type": "identify", "traits": {"email": "a@example.test"}}, "a@example.test"),
        (
            {"type": "track", "event": "Order", "context": {"traits": {"email": "b@example.test"}}},
            "b@example.test",
        ),
        ({"type": "track", "properties": {"email": "c@example.test"}}, "c@example.test"),
        ({"email": "d@example.test", "order": 7}, "d@example.test"),  # a mapping's payload
    ],
)
def test_the_default_recipient_reads_where_segment_events_keep_an_email(
    server: MailServer, data: dict[str, Any], recipient: str
) -> None:
    [attempt] = smtp(server.port).send([message(1, data)])
    assert attempt.status == 200
    assert server.mails[0].rcpt_tos == [recipient]


def test_templates_see_the_data_at_the_top_and_the_stored_event_as_event(
    server: MailServer,
) -> None:
    stored = {"type": "track", "event": "Order Completed", "userId": "u1", "properties": {}}
    mapped = {"email": "ann@example.test", "total": 42.5}
    dest = smtp(
        server.port,
        subject="{{ event.event }}: {{ total }}",
        text="{{ data.total }} for {{ event.userId }}",
    )
    dest.send([message(1, mapped, stored)])
    mail = server.mails[0].message
    assert mail["Subject"] == "Order Completed: 42.5"
    assert content(mail) == "42.5 for u1\n"


def test_several_recipients_and_list_unsubscribe(server: MailServer) -> None:
    dest = smtp(
        server.port,
        to="{{ traits.email }}, Sales <sales@shop.test>",
        max_recipients=2,
        list_unsubscribe="mailto:unsubscribe@shop.test, https://shop.test/u/{{ userId }}",
        list_unsubscribe_one_click=True,
    )
    [attempt] = dest.send([message(1)])
    assert attempt.status == 200
    got = server.mails[0]
    assert got.rcpt_tos == ["user1@example.test", "sales@shop.test"]
    assert got.message["List-Unsubscribe"] == (
        "<mailto:unsubscribe@shop.test>, <https://shop.test/u/user-1>"
    )
    assert got.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_one_click_unsubscribe_needs_an_https_uri(server: MailServer) -> None:
    dest = smtp(
        server.port,
        list_unsubscribe="mailto:u@shop.test?subject={{ userId }}",
        list_unsubscribe_one_click=True,
    )
    [attempt] = dest.send([message(1)])
    assert outcome(dest, attempt) == ("dead", "payload_invalid")
    assert server.mails == []


def test_no_template_can_add_a_header(server: MailServer) -> None:
    dest = smtp(server.port, subject="{{ traits.first_name }}")
    evil = identify(1, first_name="Ann\r\nBcc: victim@example.test")
    [attempt] = dest.send([message(1, evil)])
    assert attempt.status == 200
    got = server.mails[0]
    assert got.message["Subject"] == "Ann Bcc: victim@example.test"
    assert got.message["Bcc"] is None and got.rcpt_tos == ["user1@example.test"]


@pytest.mark.parametrize(
    "data, reason",
    [
        (identify(1, email=None), "no_recipient"),
        (identify(1, email=""), "no_recipient"),
        ({"type": "track", "properties": {"email": None}}, "no_recipient"),  # null: not "None"
        ({"type": "track", "event": "Order Completed"}, "no_recipient"),
        (identify(1, email="not-an-address"), "invalid_recipient"),
        (identify(1, email="a@example.test\r\nRCPT TO:<b@example.test>"), "invalid_recipient"),
        (identify(1, email="a@example.test RCPT TO:<b@example.test>"), "invalid_recipient"),
    ],
)
def test_a_missing_or_broken_recipient_is_dead_and_nothing_is_sent(
    server: MailServer, data: dict[str, Any], reason: str
) -> None:
    dest = smtp(server.port)
    [attempt] = dest.send([message(1, data)])
    assert outcome(dest, attempt) == ("dead", reason)
    assert server.greetings == 0  # not even a connection
    assert server.mails == []


def test_a_value_holding_a_list_cannot_make_a_mail_go_to_many(server: MailServer) -> None:
    dest = smtp(server.port)
    many = identify(1, email="a@example.test, b@example.test, c@example.test")
    [attempt] = dest.send([message(1, many)])
    assert outcome(dest, attempt) == ("dead", "invalid_recipient")
    assert attempt.error is not None and "max_recipients is 1" in attempt.error
    assert server.mails == []


def test_an_unsendable_message_does_not_hold_up_its_chunk(server: MailServer) -> None:
    dest = smtp(server.port)
    attempts = dest.send([message(1), message(2, {"type": "track"}), message(3)])
    assert [outcome(dest, a)[0] for a in attempts] == ["delivered", "dead", "delivered"]
    assert [m.rcpt_tos for m in server.mails] == [["user1@example.test"], ["user3@example.test"]]


def test_the_sandbox_refuses_what_a_template_must_not_reach(server: MailServer) -> None:
    dest = smtp(server.port, text="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    [attempt] = dest.send([message(1)])
    assert outcome(dest, attempt) == ("dead", "template_error")
    assert attempt.error is not None and "SecurityError" in attempt.error
    assert server.mails == []


@pytest.mark.parametrize(
    "reply, status, verdict",
    [
        ("550 5.1.1 no such mailbox", 400, ("dead", "smtp_550")),
        ("553 5.1.3 bad address", 400, ("dead", "smtp_553")),
        ("451 4.7.1 greylisted, try again later", 503, ("retry", "smtp_451")),
        ("452 4.2.2 mailbox full", 503, ("retry", "smtp_452")),
    ],
)
def test_a_refused_recipient(reply: str, status: int, verdict: tuple[str, str]) -> None:
    with MailServer(rcpt=lambda a: reply if a.startswith("user2") else None) as server:
        dest = smtp(server.port)
        attempts = dest.send([message(1), message(2), message(3)])
    assert [a.status for a in attempts] == [200, status, 200]
    assert outcome(dest, attempts[1]) == verdict
    assert attempts[1].response["refused"] == {"user2@example.test": reply}
    assert [m.rcpt_tos[0] for m in server.mails] == ["user1@example.test", "user3@example.test"]


def test_some_recipients_refused_is_still_delivered() -> None:
    with MailServer(rcpt=lambda a: "550 5.1.1 unknown" if a.startswith("sales") else None) as srv:
        dest = smtp(srv.port, to="{{ traits.email }}, sales@shop.test", max_recipients=2)
        [attempt] = dest.send([message(1)])
    assert outcome(dest, attempt) == ("delivered", "smtp_250")
    assert attempt.response["refused"] == {"sales@shop.test": "550 5.1.1 unknown"}
    assert srv.mails[0].rcpt_tos == ["user1@example.test"]


@pytest.mark.parametrize(
    "reply, status, verdict",
    [
        ("554 5.7.1 message refused as spam", 400, ("dead", "smtp_554")),
        ("552 5.3.4 message too big", 400, ("dead", "smtp_552")),
        ("451 4.3.0 local error, try later", 503, ("retry", "smtp_451")),
    ],
)
def test_a_refused_mail(reply: str, status: int, verdict: tuple[str, str]) -> None:
    refuse = lambda m: reply if "Ann2" in str(m["Subject"]) else None  # noqa: E731
    with MailServer(data=refuse) as server:
        dest = smtp(server.port)
        attempts = dest.send([message(1), message(2), message(3)])
    assert [a.status for a in attempts] == [200, status, 200]
    assert outcome(dest, attempts[1]) == verdict
    assert len(server.mails) == 2


def test_a_sender_the_server_refuses_flags_the_destinations_settings() -> None:
    with MailServer(mail_from=lambda _a: "553 5.7.1 sender not allowed for this user") as s:
        dest = smtp(s.port)
        attempts = dest.send([message(1), message(2)])
    for a in attempts:
        verdict = dest.classify(a)
        assert (a.status, verdict.outcome, verdict.reason) == (403, "dead", "smtp_553")
        assert verdict.auth_failing


def test_auth_with_the_right_password_sends() -> None:
    with MailServer(credentials=("news", "s3cret")) as server:
        dest = smtp(server.port, username="news", password="s3cret", allow_plaintext_auth=True)
        [attempt] = dest.send([message(1)])
    assert attempt.status == 200
    assert server.mails[0].login == "news"
    assert "s3cret" not in repr(dest.settings) and "s3cret" not in str(attempt.request)


def test_a_wrong_password_is_401_dead_with_credentials_flagged() -> None:
    with MailServer(credentials=("news", "s3cret")) as server:
        dest = smtp(server.port, username="news", password="wrong", allow_plaintext_auth=True)
        attempts = dest.send([message(1), message(2)])
    for a in attempts:
        verdict = dest.classify(a)
        assert (a.status, verdict.outcome, verdict.reason) == (401, "dead", "smtp_535")
        assert verdict.auth_failing
    assert server.mails == []


def test_a_server_requiring_auth_refuses_a_destination_without_credentials() -> None:
    with MailServer(credentials=("news", "s3cret")) as server:
        dest = smtp(server.port)
        [attempt] = dest.send([message(1)])
    assert (attempt.status, outcome(dest, attempt)) == (401, ("dead", "smtp_530"))


def test_starttls_with_a_private_ca_then_auth(ca: Authority) -> None:
    with MailServer(credentials=("news", "s3cret"), starttls=ca.server_context()) as server:
        dest = smtp(
            server.port, starttls=True, tls_ca_pem=ca.ca_pem, username="news", password="s3cret"
        )
        [attempt] = dest.send([message(1)])
    assert attempt.status == 200, attempt
    assert server.mails[0].tls and server.mails[0].login == "news"


def test_starttls_refuses_a_certificate_it_cannot_verify(ca: Authority, tmp_path: Path) -> None:
    other = authority(tmp_path, "another CA")
    with MailServer(starttls=ca.server_context()) as server:
        dest = smtp(server.port, starttls=True, tls_ca_pem=other.ca_pem)
        [attempt] = dest.send([message(1)])
    assert attempt.error is not None and attempt.error.startswith("tls")
    assert dest.classify(attempt).outcome == "retry"
    assert server.mails == []


def test_starttls_refuses_a_server_that_does_not_offer_it(server: MailServer) -> None:
    dest = smtp(server.port, starttls=True)
    [attempt] = dest.send([message(1)])
    assert attempt.error == "tls: the server offers no STARTTLS"
    assert dest.classify(attempt).outcome == "retry"
    assert server.mails == []


def test_implicit_tls(ca: Authority) -> None:
    with MailServer(implicit_tls=ca.server_context()) as server:
        dest = smtp(server.port, tls=True, starttls=False, tls_ca_pem=ca.ca_pem)
        [attempt] = dest.send([message(1)])
    assert attempt.status == 200
    assert server.mails[0].tls


def test_no_server_is_a_connection_error_retried() -> None:
    dest = smtp(closed_port())
    attempts = dest.send([message(1), message(2)])
    assert [outcome(dest, a)[0] for a in attempts] == ["retry", "retry"]
    assert all((a.error or "").startswith("connection") for a in attempts)


def test_a_server_that_never_answers_is_a_timeout_retried() -> None:
    with SilentServer() as silent:
        dest = smtp(silent.port, timeout_seconds=1)
        [attempt] = dest.send([message(1)])
    assert (attempt.status, attempt.error) == (None, "timeout")
    assert dest.classify(attempt).outcome == "retry"


def test_nothing_to_send_connects_to_nothing(server: MailServer) -> None:
    assert smtp(server.port).send([]) == []
    assert server.greetings == 0


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"subject": "Hi {{ traits.name "}, "subject: the template does not compile on line 1"),
        ({"text": "a\n{% if x %}b"}, "text: the template does not compile on line 2"),
        ({"html": "{{ x | no_such_filter }}"}, "html: the template does not compile"),
        ({"to": "not an address"}, "to: not an address"),
        ({"to": "a@shop.test, b@shop.test"}, "max_recipients is 1"),
        ({"reply_to": "nobody"}, "reply_to: not an address"),
        (
            {"list_unsubscribe": "unsubscribe@shop.test"},
            "list_unsubscribe: 'unsubscribe@shop.test'",
        ),
        ({"list_unsubscribe_one_click": True}, "set list_unsubscribe"),
        ({"from": "news at shop"}, "from: 'news at shop' is not an address"),
        ({"tls": True, "starttls": True}, "choose one"),
        ({"username": "news"}, "set both, or neither"),
        ({"username": "news", "password": "x", "starttls": False}, "travel in clear"),
        ({"tls_ca_pem": "-----BEGIN CERTIFICATE-----\nnope\n"}, "tls_ca_pem"),
        ({"host": "smtp example"}, "host"),
        ({"port": 0}, "port"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_settings_refuse_what_cannot_work(settings: dict[str, Any], problem: str) -> None:
    values = {"host": "smtp.example.com", **TEMPLATES, **settings}
    with pytest.raises(ValidationError, match=problem):
        SmtpSettings.model_validate(values)


def test_without_subject_and_text_a_mail_says_what_happened() -> None:
    # Given a destination with neither template (journeys bring their own)
    settings = SmtpSettings.model_validate({"host": "smtp.example.com", "from": "a@shop.test"})
    sender = Smtp("mail", settings)
    event = {
        "type": "track",
        "event": "Order Completed",
        "properties": {"order_id": "o1", "revenue": 12.5},
        "context": {"traits": {"email": "ann@example.com"}},
    }
    mail, to = sender.compose(Message("msg_1", event, event, "all", 1, AT))
    # Then the subject is the event's name and the text lists its properties
    assert to == ["ann@example.com"] and mail["Subject"] == "Order Completed"
    assert content(mail.get_body(("plain",))).splitlines() == [
        "Order Completed",
        "",
        "order_id: o1",
        "revenue: 12.5",
    ]


def test_a_messages_own_templates_win_over_the_destinations() -> None:
    sender = smtp(25)
    event = identify(1)
    own = {"subject": "Cart of {{ traits.first_name }}", "html": "<p>{{ traits.first_name }}</p>"}
    mail, _to = sender.compose(Message("msg_1", event, event, "j", 1, AT, own))
    assert mail["Subject"] == "Cart of Ann1"
    assert mail.get_body(("html",)) is not None


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ({"subjekt": "x"}, "unknown templates ['subjekt']"),
        ({"text": "{% if %}"}, "text: the template does not compile"),
        ({"text": 3}, "text: a template is text"),
        ("text", "a JSON object of templates"),
    ],
)
def test_a_messages_own_templates_are_checked(template: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        Smtp.check_template(template)


def test_the_port_follows_the_kind_of_connection() -> None:
    base = {"host": "smtp.example.com", **TEMPLATES}
    assert SmtpSettings.model_validate(base).port_number == 587
    assert SmtpSettings.model_validate({**base, "tls": True, "starttls": False}).port_number == 465
    assert SmtpSettings.model_validate({**base, "starttls": False}).port_number == 25
    assert SmtpSettings.model_validate({**base, "port": 2525}).port_number == 2525
