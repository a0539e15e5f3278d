"""``webhook``: JSON over HTTP(S) to any service (Hybris, an ERP, an internal API), signed per
Standard Webhooks so the receiver can trust it, one message or a batch per request.

Each request carries ``webhook-id`` (the delivery's id: the same on every retry, the
receiver's idempotency key), ``webhook-timestamp`` (this attempt, Unix seconds) and
``webhook-signature`` (``v1,`` HMAC-SHA256 over ``id.timestamp.body``, one per key while a
rotated-out key is honoured). A batch is a JSON array of the messages' payloads under the id
of its first message. Redirects are not followed; loopback, private and link-local targets
are refused unless ``allow_private_targets``; plain HTTP unless ``allow_http``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from opencdp.activate import signing
from opencdp.activate.destinations.base import (
    Attempt,
    DestinationSettings,
    DestinationType,
    Message,
    cut,
)
from opencdp.version import __version__

#: headers a user cannot set: the signature's and the body's
RESERVED = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length"}
)
REQUEST_BODY_KEPT = 256 * 1024
RESPONSE_BODY_KEPT = 64 * 1024


class WebhookSettings(DestinationSettings):
    url: str = Field(description="where to send: https://… (http:// with allow_http)")
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, description="extra ASCII headers")
    secret: SecretStr | None = Field(
        None, description="whsec_…: signs every request (Standard Webhooks)"
    )
    previous_secrets: list[SecretStr] = Field(
        default_factory=list, description="rotated-out secrets still signed with"
    )
    batch_size: int = Field(1, ge=1, le=1000, description="messages per request (1: one each)")
    timeout_seconds: float = Field(15.0, ge=1, le=60)
    allow_http: bool = Field(False, description="allow plain http:// URLs")
    allow_private_targets: bool = Field(
        False, description="allow loopback, private and link-local addresses"
    )
    segment_signature: bool = Field(
        False, description="also send Segment's X-Signature (hex HMAC-SHA1 of the body)"
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not (name.isascii() and text.isascii()):
                raise ValueError(f"header {name!r}: names and values must be ASCII")
            if name.lower() in RESERVED:
                raise ValueError(f"header {name!r} is set by OpenCDP and cannot be overridden")
        return value

    @field_validator("secret", "previous_secrets")
    @classmethod
    def _secrets(cls, value: Any) -> Any:
        for s in value if isinstance(value, list) else [value]:
            if s is not None:
                signing.secret_bytes(s.get_secret_value())  # raises ValueError
        return value

    @model_validator(mode="after")
    def _target(self) -> WebhookSettings:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: {self.url!r} is not an absolute http(s) URL")
        if parts.scheme == "http" and not self.allow_http:
            raise ValueError("url: plain http is refused; use https or set allow_http")
        if not self.allow_private_targets and _private(parts.hostname, resolve=False):
            raise ValueError(
                f"url: {parts.hostname} is a loopback, private or link-local address; "
                "set allow_private_targets to send there"
            )
        return self


def _private(host: str, *, resolve: bool) -> bool:
    """Whether ``host`` is (or, with ``resolve``, resolves to) an address OpenCDP must not
    reach by default (server-side request forgery)."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return True
        if not resolve:
            return False
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False  # the request fails with a DNS error, retried
        addresses = [ipaddress.ip_address(i[4][0]) for i in infos]
    return any(
        a.is_loopback or a.is_private or a.is_link_local or a.is_reserved or a.is_unspecified
        for a in addresses
    )


class Webhook(DestinationType):
    name = "webhook"
    summary = "JSON over HTTP(S), signed per Standard Webhooks, one message or a batch per request"
    Settings: ClassVar[type[DestinationSettings]] = WebhookSettings

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        super().__init__(destination_id, settings)
        assert isinstance(settings, WebhookSettings)
        self.webhook = settings
        self.client = httpx.Client(
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=min(5.0, settings.timeout_seconds)
            ),
            follow_redirects=False,
            headers={"user-agent": f"OpenCDP/{__version__}"},
        )

    @property
    def batch_size(self) -> int:
        return self.webhook.batch_size

    def send(self, messages: Sequence[Message]) -> list[Attempt]:
        if not messages:
            return []
        s = self.webhook
        single = s.batch_size == 1 and len(messages) == 1
        if not single and s.batch_size == 1:  # one request each
            return [a for m in messages for a in self.send([m])]
        data: Any = messages[0].data if single else [m.data for m in messages]
        attempt = self._request(messages[0].id, orjson.dumps(data), messages[0].at)
        return [attempt] * len(messages)

    def _request(self, message_id: str, body: bytes, at: datetime) -> Attempt:
        s = self.webhook
        host = urlsplit(s.url).hostname or ""
        now = int(at.timestamp())
        headers = {**s.headers, "content-type": "application/json", "webhook-id": message_id}
        headers["webhook-timestamp"] = str(now)
        keys = [k.get_secret_value() for k in ([s.secret] if s.secret else [])]
        keys += [k.get_secret_value() for k in s.previous_secrets]
        if keys:
            headers["webhook-signature"] = signing.signature_header(keys, message_id, now, body)
            if s.segment_signature:
                headers["x-signature"] = signing.segment_signature(keys[0], body)
        request = {
            "method": s.method,
            "url": s.url,
            "headers": {k: v for k, v in headers.items() if "signature" not in k},
            "body": cut(body, REQUEST_BODY_KEPT),
        }
        if not s.allow_private_targets and _private(host, resolve=True):
            return Attempt(None, "refused_target", request=request)
        try:
            answer = self.client.request(s.method, s.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Attempt(None, "timeout", request=request)
        except httpx.ConnectError as exc:
            kind = "tls" if "SSL" in str(exc) or "certificate" in str(exc) else "connection"
            return Attempt(None, kind, request=request)
        except httpx.HTTPError as exc:
            return Attempt(None, f"connection: {type(exc).__name__}", request=request)
        response = {
            "status": answer.status_code,
            "headers": dict(answer.headers),
            "body": cut(answer.content, RESPONSE_BODY_KEPT),
        }
        return Attempt(
            answer.status_code,
            retry_after=answer.headers.get("retry-after"),
            request=request,
            response=response,
        )

    def close(self) -> None:
        self.client.close()
