"""``segment``: events forwarded to any Segment-compatible Tracking API — another OpenCDP
workspace, RudderStack's data plane, Segment itself — so that OpenCDP can sit in front of an
existing pipeline.

Messages go in batches to ``{url}/v1/batch`` (``{"batch": [event, …]}``) with the write key
as the HTTP Basic user and an empty password, as Segment's libraries send them: at most
``batch_size`` events and ``max_request_bytes`` (Segment: 500 KB) per request, so a chunk may
take several requests. Each message's ``data`` (the whole event when its subscription has no
mapping) goes as it is, with two exceptions:

* ``messageId`` is kept (the stored event's when a mapping left it out, else the delivery's
  id), so that the receiver drops the copy a retry sends after a lost answer;
* ``sentAt`` is this attempt's time on the clock of the event's ``originalTimestamp``
  (``now - (timestamp - originalTimestamp)``). A receiver corrects client clocks with
  ``receivedAt - (sentAt - originalTimestamp)``; with the original ``sentAt`` an event sent an
  hour late would be dated an hour late, with this one the receiver computes the
  ``timestamp`` OpenCDP stored.

An event that cannot be one (not an object, an unknown ``type``, neither ``userId`` nor
``anonymousId``) or is larger than ``max_event_bytes`` (Segment: 32 KB) is dead on its own
(``payload_invalid``, ``payload_too_large``) rather than failing its whole batch at the
receiver. Targets follow the webhook's rules (:mod:`.http`): https, or http with
``allow_http``; no private addresses without ``allow_private_targets``; no redirects.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from opencdp.activate.destinations import http
from opencdp.activate.destinations.base import (
    Attempt,
    DestinationSettings,
    DestinationType,
    Message,
    cut,
)
from opencdp.timeutil import EPOCH, LATEST, isoformat, parse_timestamp

#: the calls of Segment's spec a Tracking API takes in a batch
EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
#: what a batch adds to its events' bytes: ``{"batch":[`` … ``]}``
_OPEN, _CLOSE = b'{"batch":[', b"]}"
#: the most of one event kept in each delivery's record
EVENT_KEPT = 32 * 1024


class SegmentSettings(DestinationSettings):
    url: str = Field(
        description="the Tracking API's base URL (https://api.segment.io, another OpenCDP's "
        "address, a RudderStack data plane); requests go to {url}/v1/batch"
    )
    write_key: SecretStr = Field(
        description="the receiving source's write key (the HTTP Basic user, empty password)"
    )
    batch_size: int = Field(100, ge=1, le=2500, description="events per /v1/batch request")
    max_request_bytes: int = Field(
        500 * 1024,
        ge=16 * 1024,
        le=4 * 1024 * 1024,
        description="largest request body; a chunk is split to stay under it (Segment: 500 KB, "
        "RudderStack: 4 MB)",
    )
    max_event_bytes: int = Field(
        32 * 1024,
        ge=1024,
        le=4 * 1024 * 1024,
        description="largest single event; a larger one is dead (payload_too_large) rather than "
        "failing its batch (Segment: 32 KB)",
    )
    timeout_seconds: float = Field(
        15.0, ge=1, le=60, description="how long one request may take (connecting: 5 s at most)"
    )
    allow_http: bool = Field(False, description="allow a plain http:// URL")
    allow_private_targets: bool = Field(
        False, description="allow loopback, private and link-local addresses"
    )

    @field_validator("url")
    @classmethod
    def _base(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.query or parts.fragment:
            raise ValueError("url: write the base URL, without a query or fragment")
        # The endpoint written in full is taken for its base rather than doubled.
        return parts.geturl().rstrip("/").removesuffix("/v1/batch").rstrip("/")

    @field_validator("write_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("write_key: the receiving source's write key is required")
        return value

    @model_validator(mode="after")
    def _target(self) -> SegmentSettings:
        http.check_target(
            self.url, allow_http=self.allow_http, allow_private_targets=self.allow_private_targets
        )
        if self.max_event_bytes > self.max_request_bytes - len(_OPEN) - len(_CLOSE):
            raise ValueError("max_event_bytes: must leave room in max_request_bytes")
        return self


class Segment(DestinationType):
    name = "segment"
    summary = "events forwarded to a Segment-compatible Tracking API (/v1/batch, write key)"
    Settings: ClassVar[type[DestinationSettings]] = SegmentSettings
    example: ClassVar[dict[str, Any]] = {
        "url": "https://api.segment.io",
        "write_key": "the-receiving-source-write-key",
    }
    permanent_errors: ClassVar[frozenset[str]] = frozenset({"payload_invalid", "payload_too_large"})

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        super().__init__(destination_id, settings)
        assert isinstance(settings, SegmentSettings)
        self.segment = settings
        self.endpoint = settings.url + "/v1/batch"
        self.client = http.new_client(settings.timeout_seconds)

    @property
    def batch_size(self) -> int:
        return self.segment.batch_size

    def send(self, messages: Sequence[Message]) -> list[Attempt]:
        s = self.segment
        attempts: list[Attempt | None] = [None] * len(messages)
        ready: list[tuple[int, bytes]] = []
        for i, m in enumerate(messages):
            try:
                raw = orjson.dumps(outgoing(m))
            except (ValueError, TypeError) as exc:
                attempts[i] = Attempt(None, f"payload_invalid: {exc}", request=self._record(m))
                continue
            if len(raw) > s.max_event_bytes:
                attempts[i] = Attempt(
                    None,
                    f"payload_too_large: {len(raw)} bytes, the limit is {s.max_event_bytes}",
                    request=self._record(m, raw),
                )
                continue
            ready.append((i, raw))
        room = s.max_request_bytes - len(_OPEN) - len(_CLOSE)
        for group in batches(ready, s.batch_size, room):
            body = _OPEN + b",".join(raw for _i, raw in group) + _CLOSE
            attempt = self._post(body)
            summary = {"events": len(group), "bytes": len(body)}
            for i, raw in group:
                record = self._record(messages[i], raw, summary)
                attempts[i] = dataclasses.replace(attempt, request=record)
        return [a for a in attempts if a is not None]

    def _post(self, body: bytes) -> Attempt:
        key = self.segment.write_key.get_secret_value()
        headers = {
            "content-type": "application/json",
            "authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode("ascii"),
        }
        return http.send(
            self.client,
            "POST",
            self.endpoint,
            content=body,
            headers=headers,
            record={},
            allow_private_targets=self.segment.allow_private_targets,
        )

    def _record(
        self, m: Message, raw: bytes | None = None, batch: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """What a delivery keeps of its request: its own event (not the whole batch, which
        every delivery in it would otherwise keep a copy of) and the batch's size; never the
        write key."""
        body = raw if raw is not None else orjson.dumps(m.data, default=repr)
        record: dict[str, Any] = {
            "method": "POST",
            "url": self.endpoint,
            "headers": {"content-type": "application/json"},
            "event": cut(body, EVENT_KEPT),
        }
        if batch is not None:
            record["batch"] = batch
        return record

    def close(self) -> None:
        self.client.close()


def outgoing(m: Message) -> dict[str, Any]:
    """The event sent for ``m``: its data with ``messageId`` kept and ``sentAt`` this
    attempt's (see the module's docstring). Raises ``ValueError`` for data that is no Segment
    event."""
    data = m.data
    if not isinstance(data, dict):
        raise ValueError(f"a Segment event is a JSON object, not {type(data).__name__}")
    if data.get("type") not in EVENT_TYPES:
        raise ValueError(
            f"type {data.get('type')!r} is not one of {', '.join(sorted(EVENT_TYPES))}"
        )
    if not (data.get("userId") or data.get("anonymousId")):
        raise ValueError("a Segment event needs a userId or an anonymousId")
    out = dict(data)
    out["messageId"] = data.get("messageId") or m.event.get("messageId") or m.id
    sent = m.at - _skew(data)
    # A receiver refuses times outside 1970..2200 (OpenCDP's rule): then the attempt's own.
    out["sentAt"] = isoformat(sent if EPOCH <= sent < LATEST else m.at)
    return out


def _skew(data: dict[str, Any]) -> timedelta:
    """How far the stored ``timestamp`` was corrected from the client's
    ``originalTimestamp`` (zero when either is missing or unreadable)."""
    try:
        corrected = parse_timestamp(data["timestamp"])
        original = parse_timestamp(data.get("originalTimestamp", data["timestamp"]))
    except (KeyError, ValueError):
        return timedelta(0)
    return corrected - original


def batches(
    encoded: Sequence[tuple[int, bytes]], most: int, room: int
) -> Iterator[list[tuple[int, bytes]]]:
    """``encoded`` events in order, in groups of at most ``most`` whose bytes, with a comma
    between each two, fit in ``room`` (each event alone fits: larger ones were left out)."""
    group: list[tuple[int, bytes]] = []
    size = 0
    for item in encoded:
        extra = len(item[1]) + (1 if group else 0)
        if group and (len(group) == most or size + extra > room):
            yield group
            group, extra, size = [], len(item[1]), 0
        group.append(item)
        size += extra
    if group:
        yield group
