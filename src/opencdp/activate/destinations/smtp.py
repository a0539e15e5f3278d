"""``smtp``: e-mail through an SMTP server (a relay, a transactional mail service), written
from Jinja2 templates.

Templates run in Jinja2's sandbox. They see the message's data (the mapped payload, or the
whole event when the subscription has no mapping) at the top level — ``{{ traits.name }}`` —
and also as ``data``; ``event`` is the event as stored (so a track event's name is
``{{ event.event }}``); ``product(id)`` is the product of that id in the workspace's catalog,
as a dict (``{{ product(properties.product_id).name }}``; None when the catalog has none).
A missing value, or a null, renders empty. ``html`` is autoescaped, everything
else is not; header values (``to``, ``subject``, ``reply_to``, ``list_unsubscribe``) are
folded onto one line, so no template can add a header. A syntax error, or an unknown filter,
is refused when the destination is configured.

The recipient, by default, is the first of ``email`` (a mapping's field), ``traits.email``
(identify), ``context.traits.email`` (track and page calls from analytics.js) and
``properties.email``. One connection per :meth:`Smtp.send` call carries its whole chunk.

What comes back, as the HTTP-like status the retry rules read (the verdict's reason is
``smtp_<code>``, or the error class):

=====================================================  =======  ===========================
SMTP                                                    status   verdict
=====================================================  =======  ===========================
accepted (2xx; some recipients refused: still 200)      200      delivered
4xx (greylisting, 421 busy, 452 full, 454 auth)         503      retry
530, 534, 535, 538: authentication; no AUTH offered     401      dead, credentials flagged
5xx to ``MAIL FROM``: this account may not send as it   403      dead, credentials flagged
other 5xx (550 no such mailbox, 554 refused content)    400      dead
no connection, DNS, timeout, TLS (also: no STARTTLS)    —        retry (``connection``…)
``to`` renders empty / no address                       —        dead (``no_recipient``…)
a template fails, a header cannot be written            —        dead (``template_error``…)
=====================================================  =======  ===========================

Every mail's ``Message-ID`` is ``<{delivery id}@{sender's domain}>``: the same on every retry,
so a copy sent again after an answer was lost is recognisable (and dropped by many mailbox
providers). Its ``Date`` is the attempt's time.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import lru_cache
from typing import Any, ClassVar

from jinja2 import ChainableUndefined, Template, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from opencdp.activate.destinations.base import (
    Attempt,
    DestinationSettings,
    DestinationType,
    Message,
    cut,
)
from opencdp.activate.retry import Verdict
from opencdp.query.catalog import CatalogLookup, CatalogUnavailable

DEFAULT_TO = "{{ email or traits.email or context.traits.email or properties.email }}"
#: the subject and text when neither the destination nor the message's template sets them
DEFAULT_SUBJECT = "{{ subject or event.event or event.type }}"
DEFAULT_TEXT = (
    "{% if text %}{{ text }}{% else %}{{ event.event or event.type }}\n\n"
    "{% for k, v in (event.properties or {}).items() %}{{ k }}: {{ v }}\n{% endfor %}"
    "{% endif %}"
)
#: replies about authentication (RFC 4954): the credentials fail
AUTH_CODES = frozenset({530, 534, 535, 538})
#: how much of a mail's text a delivery's record keeps
TEXT_KEPT = 16 * 1024
#: an address: local part, @, domain, with nothing that could end or start another
_ADDRESS = r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+"
#: one mailbox: ``address`` or ``Name <address>`` (a name quoted, or without <, >, " and @)
_MAILBOX = re.compile(
    rf'\s*(?:(?P<name>"(?:[^"\\]|\\.)*"|[^<>"@]*?)\s*<(?P<angle>{_ADDRESS})>|(?P<bare>{_ADDRESS}))\s*'
)
#: a comma between an address list's items (one inside quotes belongs to a name)
_COMMA = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


def _blank_null(value: Any) -> Any:
    """What ``{{ … }}`` prints for a JSON null: nothing (not ``None``), like a missing value."""
    return "" if value is None else value


_TEXT = SandboxedEnvironment(
    undefined=ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=_blank_null,
)
_HTML = SandboxedEnvironment(
    undefined=ChainableUndefined,
    autoescape=True,
    keep_trailing_newline=True,
    finalize=_blank_null,
)
#: the template fields; only ``html`` is autoescaped
TEMPLATES = ("to", "subject", "text", "html", "list_unsubscribe", "reply_to")


class SmtpSettings(DestinationSettings):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(description="the SMTP server's host name or address")
    port: int | None = Field(
        None, ge=1, le=65535, description="default: 465 with tls, 587 with starttls, else 25"
    )
    from_: str = Field(alias="from", description="the sender: an address, or 'Name <address>'")
    username: str | None = Field(None, description="the user to authenticate as (AUTH)")
    password: SecretStr | None = Field(None, description="the user's password")
    starttls: bool = Field(
        True, description="upgrade the connection with STARTTLS (refuse a server without it)"
    )
    tls: bool = Field(False, description="implicit TLS from the first byte (SMTPS, port 465)")
    tls_ca_pem: str | None = Field(
        None, description="PEM certificates to trust instead of the system's (a private relay)"
    )
    allow_plaintext_auth: bool = Field(
        False, description="allow a password over a connection with neither tls nor starttls"
    )
    timeout_seconds: float = Field(
        30.0, ge=1, le=120, description="the longest wait for the server on any one step"
    )
    to: str = Field(
        DEFAULT_TO,
        description="template of the recipient(s), comma-separated; the default reads email, "
        "traits.email, context.traits.email, properties.email",
    )
    subject: str | None = Field(
        None,
        description="template of the subject (default: the event's name); a journey's send "
        "step or a subscription can set its own",
    )
    text: str | None = Field(
        None,
        description="template of the plain-text part, not escaped (default: the event's name "
        "and properties); a journey's send step or a subscription can set its own",
    )
    html: str | None = Field(None, description="template of the HTML part (autoescaped)")
    list_unsubscribe: str | None = Field(
        None,
        description="template of the List-Unsubscribe header: mailto: and https: URIs, "
        "comma-separated, with or without <>",
    )
    list_unsubscribe_one_click: bool = Field(
        False, description="add List-Unsubscribe-Post for one-click unsubscribe (RFC 8058)"
    )
    reply_to: str | None = Field(None, description="template of the Reply-To address(es)")
    max_recipients: int = Field(
        1,
        ge=1,
        le=100,
        description="the most addresses one mail goes to (a value in the data holding a list "
        "cannot make a mail go to many)",
    )
    batch_size: int = Field(50, ge=1, le=500, description="mails sent over one connection")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value) or "/" in value:
            raise ValueError("host: a host name or address, such as smtp.example.com")
        return value

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        if "\n" in value or "\r" in value or not _MAILBOX.fullmatch(value):
            raise ValueError(f"from: {value!r} is not an address or 'Name <address>'")
        return value

    @field_validator(*TEMPLATES)
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        field = str(info.field_name)
        try:
            template = _compile(field, value)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" on line {line}" if line else ""
            raise ValueError(f"{field}: the template does not compile{where}: {exc}") from None
        # A header without variables is checked now as it would be at every send.
        check = _HEADERS.get(field)
        if check is not None and not meta.find_undeclared_variables(_TEXT.parse(value)):
            try:
                check(template.render())
            except _Unsendable as exc:
                raise ValueError(f"{field}: {exc.detail}") from None
            except Exception as exc:  # the sandbox, a filter: what every send would meet
                raise ValueError(f"{field}: {type(exc).__name__}: {exc}") from None
        return value

    @field_validator("tls_ca_pem")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ssl.create_default_context(cadata=value)
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"tls_ca_pem: not PEM certificates ({exc})") from None
        return value

    @model_validator(mode="after")
    def _connection(self) -> SmtpSettings:
        if self.tls and self.starttls:
            raise ValueError(
                "tls and starttls: choose one (tls for port 465, starttls for 587); "
                "set starttls to false with tls"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: set both, or neither")
        if self.username and not (self.tls or self.starttls or self.allow_plaintext_auth):
            raise ValueError(
                "password: it would travel in clear; set tls or starttls "
                "(or allow_plaintext_auth for a relay on a trusted network)"
            )
        if not meta.find_undeclared_variables(_TEXT.parse(self.to)):
            count = len(_recipients(_TEXT.from_string(self.to).render()))
            if count > self.max_recipients:
                raise ValueError(f"to: {count} addresses; max_recipients is {self.max_recipients}")
        if self.list_unsubscribe_one_click and not self.list_unsubscribe:
            raise ValueError("list_unsubscribe_one_click: set list_unsubscribe (an https: URI)")
        return self

    @property
    def port_number(self) -> int:
        """The port to connect to: the one set, else the one for the kind of connection."""
        if self.port is not None:
            return self.port
        return 465 if self.tls else 587 if self.starttls else 25


class _Unsendable(Exception):
    """A message that cannot become a mail as it is: ``kind`` is its error class."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class _Refused(Exception):
    """The server refused at connecting: ``attempt`` says how for every message."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt.error or attempt.status)
        self.attempt = attempt


class Smtp(DestinationType):
    name = "smtp"
    summary = "e-mail through an SMTP server (STARTTLS/TLS, AUTH), from Jinja2 templates"
    Settings: ClassVar[type[DestinationSettings]] = SmtpSettings
    example: ClassVar[dict[str, Any]] = {
        "host": "smtp.example.com",
        "from": "Shop <news@shop.example.com>",
        "username": "news@shop.example.com",
        "password": "the-password",
        "subject": "Thank you, {{ traits.first_name or 'friend' }}",
        "text": "Hello {{ traits.first_name }},\n\nthank you for your order.\n",
    }
    permanent_errors: ClassVar[frozenset[str]] = frozenset(
        {"no_recipient", "invalid_recipient", "template_error", "payload_invalid"}
    )

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        super().__init__(destination_id, settings)
        assert isinstance(settings, SmtpSettings)
        self.smtp = settings
        self.templates: dict[str, Template] = {
            f: _compile(f, source)
            for f in TEMPLATES
            if (source := getattr(settings, f)) is not None
        }
        self.templates.setdefault("subject", _compile("subject", DEFAULT_SUBJECT))
        self.templates.setdefault("text", _compile("text", DEFAULT_TEXT))
        self.sender = _mailboxes(settings.from_)[0][1]
        self.domain = self.sender.rpartition("@")[2]
        self.tls_context = ssl.create_default_context(cadata=settings.tls_ca_pem)

    @property
    def batch_size(self) -> int:
        return self.smtp.batch_size

    def send(self, messages: Sequence[Message]) -> list[Attempt]:
        attempts: list[Attempt | None] = [None] * len(messages)
        mails: list[tuple[int, EmailMessage, list[str], dict[str, Any]]] = []
        for i, m in enumerate(messages):
            try:
                mail, recipients = self.compose(m)
            except _Unsendable as exc:
                attempts[i] = Attempt(None, str(exc), request=self._record(m.id))
                continue
            except CatalogUnavailable as exc:  # a template's product(): retried
                attempts[i] = Attempt(None, f"catalog: {exc}", request=self._record(m.id))
                continue
            mails.append((i, mail, recipients, self._record(m.id, mail)))
        if mails:
            self._deliver(mails, attempts)
        return [a for a in attempts if a is not None]

    def compose(self, m: Message) -> tuple[EmailMessage, list[str]]:
        """The mail for ``m`` and its recipients' addresses; raises :class:`_Unsendable`."""
        values: dict[str, Any] = dict(m.data) if isinstance(m.data, dict) else {}
        values["data"] = m.data
        values["event"] = m.event
        values["product"] = _products(m.catalog)
        templates = dict(self.templates)
        for f, source in (m.template or {}).items():
            templates[f] = _compile(f, source)  # a journey step's or subscription's own
        text = {f: _render(templates[f], f, values) for f in templates}
        mail = EmailMessage()
        recipients = _recipients(text["to"])
        if len(recipients) > self.smtp.max_recipients:
            raise _Unsendable(
                "invalid_recipient",
                f"{len(recipients)} addresses; max_recipients is {self.smtp.max_recipients}",
            )
        try:
            mail["From"] = self.smtp.from_
            mail["To"] = ", ".join(formataddr(r) for r in recipients)
            mail["Subject"] = _line(text["subject"])
            mail["Date"] = format_datetime(m.at)
            mail["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9._-]', '_', m.id)}@{self.domain}>"
            if text.get("reply_to", "").strip():
                mail["Reply-To"] = ", ".join(formataddr(r) for r in _recipients(text["reply_to"]))
            if text.get("list_unsubscribe", "").strip():
                mail["List-Unsubscribe"] = _unsubscribe(text["list_unsubscribe"])
                if self.smtp.list_unsubscribe_one_click:
                    if "<https:" not in mail["List-Unsubscribe"]:
                        raise _Unsendable(
                            "payload_invalid", "one-click unsubscribe needs an https: URI"
                        )
                    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            mail.set_content(text["text"])
            if "html" in text:
                mail.add_alternative(text["html"], subtype="html")
        except (ValueError, TypeError) as exc:  # a header the e-mail policy refuses
            raise _Unsendable("payload_invalid", str(exc)) from None
        return mail, [address for _name, address in recipients]

    @classmethod
    def check_template(cls, template: Any) -> dict[str, str]:
        """A message's own templates (a journey's send step, a subscription): any of
        ``subject``, ``text``, ``html``, ``to``, ``reply_to``, ``list_unsubscribe``, checked as
        the destination's are."""
        if not isinstance(template, dict):
            raise ValueError("a JSON object of templates: subject, text, html, …")
        unknown = sorted(set(template) - set(TEMPLATES))
        if unknown:
            raise ValueError(f"unknown templates {unknown}; known: {', '.join(TEMPLATES)}")
        for f, source in template.items():
            if not isinstance(source, str):
                raise ValueError(f"{f}: a template is text")
            try:
                _compile(f, source)
            except TemplateError as exc:
                line = getattr(exc, "lineno", None)
                where = f" on line {line}" if line else ""
                raise ValueError(f"{f}: the template does not compile{where}: {exc}") from None
        return dict(template)

    def _deliver(
        self,
        mails: Sequence[tuple[int, EmailMessage, list[str], dict[str, Any]]],
        attempts: list[Attempt | None],
    ) -> None:
        """Send ``mails`` over one connection, filling in ``attempts``; when the connection
        breaks, the mails not yet sent share its failure."""
        try:
            conn = self._connect()
        except _Refused as exc:
            for i, _mail, _to, record in mails:
                attempts[i] = Attempt(
                    exc.attempt.status,
                    exc.attempt.error,
                    request=record,
                    response=exc.attempt.response,
                )
            return
        try:
            for n, (i, mail, to, record) in enumerate(mails):
                try:
                    refused = conn.send_message(mail, from_addr=self.sender, to_addrs=to)
                except smtplib.SMTPRecipientsRefused as exc:
                    codes = [code for code, _text in exc.recipients.values()]
                    worst = min(codes) if any(400 <= c < 500 for c in codes) else max(codes)
                    refusals = _refusals(exc.recipients)
                    answer = _answer(worst, "; ".join(refusals.values()), record, "rcpt")
                    answer.response["refused"] = refusals
                    attempts[i] = answer
                except smtplib.SMTPSenderRefused as exc:
                    attempts[i] = _answer(exc.smtp_code, _text(exc.smtp_error), record, "mail")
                except smtplib.SMTPResponseException as exc:  # DATA refused, …
                    attempts[i] = _answer(exc.smtp_code, _text(exc.smtp_error), record, "data")
                except smtplib.SMTPNotSupportedError as exc:  # SMTPUTF8 needed, not offered
                    attempts[i] = Attempt(400, str(exc), request=record)
                except (smtplib.SMTPException, OSError) as exc:  # the connection is gone
                    failed = _transport(exc)
                    for j, _mail, _to, rest in mails[n:]:
                        attempts[j] = Attempt(None, failed, request=rest)
                    return
                else:
                    response: dict[str, Any] = {"smtp_code": 250}
                    if refused:
                        response["refused"] = _refusals(refused)
                    attempts[i] = Attempt(200, request=record, response=response)
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def _connect(self) -> smtplib.SMTP:
        """An open, secured and authenticated connection; raises :class:`_Refused`."""
        s = self.smtp
        conn: smtplib.SMTP | None = None
        try:
            if s.tls:
                conn = smtplib.SMTP_SSL(
                    s.host, s.port_number, timeout=s.timeout_seconds, context=self.tls_context
                )
            else:
                conn = smtplib.SMTP(s.host, s.port_number, timeout=s.timeout_seconds)
            conn.ehlo()
            if s.starttls:
                if not conn.has_extn("starttls"):
                    raise _Refused(Attempt(None, "tls: the server offers no STARTTLS"))
                conn.starttls(context=self.tls_context)
                conn.ehlo()
            if s.username is not None and s.password is not None:
                if not conn.has_extn("auth"):
                    raise _Refused(Attempt(401, "the server offers no AUTH"))
                conn.login(s.username, s.password.get_secret_value())
            return conn
        except _Refused:
            _close(conn)
            raise
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO, STARTTLS, AUTH
            _close(conn)
            raise _Refused(_answer(exc.smtp_code, _text(exc.smtp_error), {}, "connect")) from None
        except (smtplib.SMTPException, OSError) as exc:
            _close(conn)
            raise _Refused(Attempt(None, _transport(exc))) from None

    def classify(self, attempt: Attempt) -> Verdict:
        verdict = super().classify(attempt)
        code = attempt.response.get("smtp_code")
        if code is not None and verdict.reason.startswith("http_"):
            return Verdict(
                verdict.outcome,
                f"smtp_{code}",
                disable=verdict.disable,
                auth_failing=verdict.auth_failing,
                throttled=verdict.throttled,
            )
        return verdict

    def _record(self, message_id: str, mail: EmailMessage | None = None) -> dict[str, Any]:
        """What a delivery keeps of its mail (never the password)."""
        record: dict[str, Any] = {
            "host": self.smtp.host,
            "port": self.smtp.port_number,
            "from": self.smtp.from_,
            "id": message_id,
        }
        if mail is not None:
            record.update(
                to=mail["To"],
                subject=mail["Subject"],
                message_id=mail["Message-ID"],
            )
            body = mail.get_body(("plain",))
            if body is not None:
                record["text"] = cut(str(body.get_content()), TEXT_KEPT)
        return record


@lru_cache(maxsize=512)
def _compile(field: str, source: str) -> Template:
    return (_HTML if field == "html" else _TEXT).from_string(source)


def _products(lookup: CatalogLookup | None) -> Callable[..., dict[str, Any] | None]:
    """The templates' ``product(id)``: the workspace's product of that id as a dict (None
    when the catalog has none, the id names none, or no catalog is at hand)."""

    def product(product_id: Any = None) -> dict[str, Any] | None:
        found = lookup(product_id) if lookup is not None and product_id is not None else None
        return dict(found) if isinstance(found, Mapping) else None

    return product


def _render(template: Template, field: str, values: dict[str, Any]) -> str:
    try:
        return template.render(values)
    except CatalogUnavailable:  # the database, not the template: tried again
        raise
    except Exception as exc:  # the sandbox, a filter, an undefined call: all the template's
        raise _Unsendable("template_error", f"{field}: {type(exc).__name__}: {exc}") from None


def _line(value: str) -> str:
    """A rendered header value on one line: no template can start another header."""
    return " ".join(value.split())


def _recipients(rendered: str) -> list[tuple[str, str]]:
    """The (name, address) pairs a rendered ``to`` or ``reply_to`` names; raises
    :class:`_Unsendable` when it names none or holds something that is no address."""
    pairs = _mailboxes(rendered)
    if not pairs:
        raise _Unsendable("no_recipient", "the to template rendered empty")
    return pairs


def _mailboxes(text: str) -> list[tuple[str, str]]:
    """The mailboxes of a comma-separated list, strictly: an item that is not exactly
    ``address`` or ``Name <address>`` is refused, not guessed at (``email.utils`` would
    read ``a@x.test RCPT TO:<b@y.test>`` as two addresses)."""
    pairs: list[tuple[str, str]] = []
    for item in _COMMA.split(_line(text)):
        if not item.strip():
            continue
        match = _MAILBOX.fullmatch(item)
        if match is None:
            raise _Unsendable("invalid_recipient", f"not an address: {item.strip()!r}")
        name = (match["name"] or "").strip()
        if name.startswith('"') and name.endswith('"'):
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        pairs.append((name, match["angle"] or match["bare"]))
    return pairs


def _unsubscribe(rendered: str) -> str:
    """A List-Unsubscribe value (RFC 2369): each mailto: or http(s): URI in angle brackets."""
    uris = [u.strip().removeprefix("<").removesuffix(">") for u in _line(rendered).split(",")]
    uris = [u for u in uris if u]
    for u in uris:
        if not u.lower().startswith(("mailto:", "https:", "http:")) or " " in u:
            raise _Unsendable("payload_invalid", f"list_unsubscribe: {u!r} is no mailto: or URL")
    return ", ".join(f"<{u}>" for u in uris)


#: the checks a header template without variables gets at configuration
_HEADERS = {"to": _recipients, "reply_to": _recipients, "list_unsubscribe": _unsubscribe}


def _answer(code: int, text: str, record: dict[str, Any], stage: str) -> Attempt:
    """An SMTP reply as an attempt with an HTTP-like status (see the module's table)."""
    if 200 <= code < 400:
        status = 200
    elif code in AUTH_CODES:
        status = 401
    elif 400 <= code < 500:
        status = 503
    elif stage == "mail":
        status = 403
    else:
        status = 400
    return Attempt(status, request=record, response={"smtp_code": code, "message": text})


def _refusals(refused: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    return {address: f"{code} {_text(text)}" for address, (code, text) in refused.items()}


def _text(reply: bytes | str) -> str:
    return cut(reply if isinstance(reply, str) else reply.decode("utf-8", "replace"), 1000)


def _transport(exc: BaseException) -> str:
    """The error class of a failure below SMTP's replies."""
    if isinstance(exc, smtplib.SMTPServerDisconnected) and exc.__context__ is not None:
        exc = exc.__context__  # smtplib reports a timeout waiting for a reply as a disconnect
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"tls: {exc}"
    return f"connection: {type(exc).__name__}"


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        conn.close()
