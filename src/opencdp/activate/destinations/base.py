"""The one small interface every destination type implements.

A type says what its settings are (a pydantic model: validated when a destination is
configured, secrets as ``SecretStr`` so they never show in answers or logs), how many messages
it sends at once, how it sends them, and what its answers mean for retrying (by default the
HTTP rules of :func:`opencdp.activate.retry.classify`).

Adding a type is one module with a subclass of :class:`DestinationType` plus one line in
:mod:`opencdp.activate.destinations` — or, from another package, an entry point in the group
``opencdp.destinations`` naming the class. The contract tests run against every registered
type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opencdp.activate.retry import Verdict, classify
from opencdp.privacy.consent import check_categories
from opencdp.query.catalog import CatalogLookup
from opencdp.timeutil import parse_duration


class RetrySettings(BaseModel):
    """How long and how often a destination's deliveries are retried."""

    model_config = ConfigDict(extra="forbid")

    initial_backoff: str = Field(
        "5 seconds", description="the first wait; then four times longer each time"
    )
    max_age: str = Field("7 days", description="after this, a delivery still failing is dead")

    @field_validator("initial_backoff")
    @classmethod
    def _initial(cls, value: str) -> str:
        if not timedelta(seconds=1) <= parse_duration(value) <= timedelta(hours=1):
            raise ValueError(f"{value!r}: between 1 second and 1 hour")
        return value

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: str) -> str:
        if not timedelta(minutes=1) <= parse_duration(value) <= timedelta(days=30):
            raise ValueError(f"{value!r}: between 1 minute and 30 days")
        return value


class DestinationSettings(BaseModel):
    """Settings every type has; each type extends them."""

    model_config = ConfigDict(extra="forbid")

    retry: RetrySettings = Field(
        default_factory=RetrySettings,  # type: ignore[arg-type]
        description="how long and how often failed deliveries are retried",
    )
    rate_limit: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description=(
            "messages per second sent to this destination at most, by each dispatcher "
            "(bursts of one second's worth); none: no limit"
        ),
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=32,
        description=(
            "sends to this destination in parallel (one profile's deliveries stay in order); "
            "429, 502 and 504 answers halve it for a while"
        ),
    )
    consent_categories: list[str] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "the consent categories (Segment's category ids, e.g. Advertising, C0004) this "
            "destination serves: a delivery goes only to a profile that consents to each "
            "(a category without a record follows the workspace's consent_default); none: "
            "every profile"
        ),
    )
    purposes: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="the earlier name of consent_categories; both count",
    )

    @field_validator("consent_categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        try:
            return check_categories(value)
        except ValueError as exc:
            raise ValueError(f"consent_categories: {exc}") from None

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, value: list[str]) -> list[str]:
        try:
            return check_categories(value)
        except ValueError as exc:
            raise ValueError(f"purposes: {exc}") from None


@dataclass(frozen=True)
class Message:
    """One delivery as a type sends it."""

    #: the delivery's id (``webhook-id``): the same on every attempt and replay
    id: str
    #: the payload the subscription's mapping made of the event
    data: Any
    #: the event as it was stored (Segment's spec)
    event: dict[str, Any]
    subscription: str
    #: 1 for the first attempt
    attempt: int
    #: when this attempt is made (the injected clock)
    at: datetime
    #: the message's own templates (a journey's send step), for types that take them
    template: dict[str, str] | None = None
    #: the products of the event's workspace, for templates that read them (``product(id)``)
    catalog: CatalogLookup | None = field(default=None, compare=False, repr=False)


@dataclass
class Attempt:
    """What happened to one message: an HTTP-like ``status`` (or None and a transport
    ``error``: ``timeout``, ``connection``, ``dns``, ``tls``, ``refused_target``…)."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None
    #: what was sent, for the delivery's record (secrets left out)
    request: dict[str, Any] = field(default_factory=dict)
    #: what came back: status, headers, body (cut)
    response: dict[str, Any] = field(default_factory=dict)


class DestinationType(ABC):
    """A kind of receiving system. One instance serves one configured destination."""

    #: the name users write in ``"type"``
    name: ClassVar[str]
    #: the settings schema
    Settings: ClassVar[type[DestinationSettings]] = DestinationSettings
    #: what the type is for, one line (``opencdp destination types``)
    summary: ClassVar[str] = ""
    #: settings that validate, the fewest a user writes (documentation; the contract tests
    #: build every registered type from them)
    example: ClassVar[dict[str, Any]] = {}
    #: error classes (``Attempt.error`` up to its first ``:``) the type reports for a message
    #: it could not send at all and never will as it is (no recipient, an invalid payload):
    #: dead at once instead of retried like a transport error
    permanent_errors: ClassVar[frozenset[str]] = frozenset()
    #: whether the receiving system is told of a person's deletion (a ``delete`` message, sent
    #: when a regulation that forwards deletions erases someone; see docs/privacy.md)
    supports_deletion: ClassVar[bool] = False

    def __init__(self, destination_id: str, settings: DestinationSettings) -> None:
        self.destination_id = destination_id
        self.settings = settings

    @classmethod
    def check_template(cls, template: Any) -> dict[str, str]:
        """Check a message's own templates (a journey's send step); raises ValueError saying
        what is wrong. Most types render nothing: they refuse any."""
        raise ValueError(f"the {cls.name} type takes no template; shape the data with a mapping")

    @property
    def batch_size(self) -> int:
        """How many messages one :meth:`send` call takes at most."""
        return 1

    @abstractmethod
    def send(self, messages: Sequence[Message]) -> list[Attempt]:
        """Send ``messages``; one :class:`Attempt` per message, in order. Never raises for
        a receiver's failure: that is an attempt's status or error."""

    def classify(self, attempt: Attempt) -> Verdict:
        """What an attempt means: delivered, retry or dead (one of the type's
        :attr:`permanent_errors` is dead, named by its class)."""
        kind = (attempt.error or "").split(":", 1)[0]
        if attempt.status is None and kind in self.permanent_errors:
            return Verdict("dead", kind)
        return classify(attempt.status, attempt.error)

    def close(self) -> None:  # noqa: B027 - most types hold nothing to release
        """Release connections (the dispatcher drops the instance when its settings change)."""


def cut(text: str | bytes, limit: int) -> str:
    """At most ``limit`` characters of a body kept in a delivery's record."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more)"
