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

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from opencdp.activate import signing
from opencdp.activate.destinations import http
from opencdp.activate.destinations.base import (
    Attempt,
    DestinationSettings,
    DestinationType,
    Message,
    cut,
)
from opencdp.activate.destinations.http import REQUEST_BODY_KEPT

#: a header name (RFC 9110's token)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: headers a user cannot set: the signature's and the body's
RESERVED = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length"}
)


class WebhookSettings(DestinationSettings):
    url: str = Field(description="where to send: https://… (http:// with allow_http)")
    method: Literal["POST", "PUT", "PATCH"] = Field("POST", description="the HTTP method")
    headers: dict[str, str] = Field(default_factory=dict, description="extra ASCII headers")
    secret: SecretStr | None = Field(
        None, description="whsec_…: signs every request (Standard Webhooks)"
    )
    previous_secrets: list[SecretStr] = Field(
        default_factory=list, description="rotated-out secrets still signed with"
    )
    batch_size: int = Field(1, ge=1, le=1000, description="messages per request (1: one each)")
    timeout_seconds: float = Field(
        15.0, ge=1, le=60, description="how long one request may take (connecting: 5 s at most)"
    )
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
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header {name!r}: not a header name (letters, digits, -, _)")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a value is one line (no CR, LF or NUL)")
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
        http.check_target(
            self.url, allow_http=self.allow_http, allow_private_targets=self.allow_private_targets
        )
        return self


class Webhook(DestinationType):
    name = "webhook"
    summary = "JSON over HTTP(S), signed per Standard Webhooks, one message or a batch per request"
    Settings: ClassVar[type[DestinationSettings]] = WebhookSettings
    example: ClassVar[dict[str, Any]] = {"url": "https://erp.example.com/hooks/opencdp"}
    supports_deletion: ClassVar[bool] = True

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        super().__init__(destination_id, settings)
        assert isinstance(settings, WebhookSettings)
        self.webhook = settings
        self.client = http.new_client(settings.timeout_seconds)

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
        # A batch's id is its members': the same batch sent again has the same id, and a
        # batch that differs (one member retried with others) never passes for a duplicate.
        request_id = (
            messages[0].id if len(messages) == 1 else signing.batch_id([m.id for m in messages])
        )
        attempt = self._request(request_id, orjson.dumps(data), messages[0].at)
        return [attempt] * len(messages)

    def _request(self, message_id: str, body: bytes, at: datetime) -> Attempt:
        s = self.webhook
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
            # what OpenCDP set; the user's headers by name only (they may hold credentials)
            "headers": {
                k: ("********" if k in s.headers else v)
                for k, v in headers.items()
                if "signature" not in k
            },
            "body": cut(body, REQUEST_BODY_KEPT),
        }
        return http.send(
            self.client,
            s.method,
            s.url,
            content=body,
            headers=headers,
            record=request,
            allow_private_targets=s.allow_private_targets,
        )

    def close(self) -> None:
        self.client.close()
