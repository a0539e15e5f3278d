"""A real SMTP server on a loopback port (aiosmtpd): records every accepted mail and answers
what the test tells it to (a reply per recipient, per mail, per sender); optionally with AUTH,
STARTTLS or implicit TLS, under a certificate authority made for the test."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    #: whether the session was encrypted (STARTTLS or implicit TLS)
    tls: bool
    #: the user it authenticated as
    login: str | None


@dataclass
class MailServer:
    """``with MailServer() as srv:`` … ``srv.port`` … ``srv.mails``.

    ``rcpt``, ``mail_from`` and ``data`` may return an SMTP reply (``"550 5.1.1 unknown"``)
    to refuse; None accepts. ``credentials`` require AUTH (over plain text unless
    ``starttls`` or ``implicit_tls`` is given a server context)."""

    rcpt: Callable[[str], str | None] = lambda _address: None
    mail_from: Callable[[str], str | None] = lambda _address: None
    data: Callable[[EmailMessage], str | None] = lambda _message: None
    credentials: tuple[str, str] | None = None
    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    mails: list[Mail] = field(default_factory=list)
    #: how many sessions said EHLO/HELO (STARTTLS sessions say it twice)
    greetings: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {"server_hostname": "mx.test", "ident": "test-mta"}
        if self.credentials is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.starttls is not None or self.implicit_tls is not None,
            )
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        self.controller = _LoopbackController(
            _Handler(self), hostname="127.0.0.1", port=0, ssl_context=self.implicit_tls, **kwargs
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        ok = (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == self.credentials
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.controller.stop()


class _LoopbackController(Controller):
    """aiosmtpd's controller on a port the system chooses (``port=0``)."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.server._lock:
            self.server.greetings += 1
        return responses

    async def handle_MAIL(
        self, _server: Any, _session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self.server.mail_from(address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: list[str]
    ) -> str:
        refusal = self.server.rcpt(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        refusal = self.server.data(message)
        if refusal:
            return refusal
        login = session.auth_data.login.decode() if session.authenticated else None
        mail = Mail(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            message,
            server.transport.get_extra_info("ssl_object") is not None,
            login,
        )
        with self.server._lock:
            self.server.mails.append(mail)
        return "250 2.0.0 accepted"


@dataclass
class Authority:
    """A certificate authority made for one test and a server certificate it signed for
    127.0.0.1 and localhost."""

    ca_pem: str
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def authority(directory: Path, name: str = "OpenCDP test CA") -> Authority:
    """Make a CA and a server certificate under ``directory`` (cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Authority(ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file)
