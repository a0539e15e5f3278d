"""A journey's definition: what a journey file (YAML), ``PUT /api/journeys/{key}`` and
``opencdp journey apply`` hold, checked and compiled before anything is stored.

A journey starts for a profile when an **entry** trigger fires (an event matched by FQL, or
entering an audience), walks its **steps** and ends::

    name: Abandoned cart
    entry:
      event: event = "Product Added" or event = "Checkout Started"
      unique_identifier: properties.cart_id   # each cart its own instance
    reentry: every_time                        # | once | {after: "30 days"}
    exit:
      after: "30 days"                         # the longest an instance lives
      rules:
        - event: event = "Order Completed"
          match_identifier: true               # only the cart that was ordered
    steps:
      - key: wait_for_order
        wait_until:
          timeout: "1 hour"
          branches:
            - {name: ordered, event: 'event = "Order Completed"', match_identifier: true, next: end}
            - {name: cart_changed, event: 'event = "Product Added"', restart: true}
      - key: reminder
        send: {destination: mail, event_name: Cart Abandoned, template: {subject: …, text: …}}

Step kinds: ``wait`` (a duration), ``wait_until`` (event branches, first match wins, with a
``timeout``; a branch with ``restart`` starts the wait again and refreshes the context),
``split`` (an FQL ``condition`` over ``{"traits", "audiences", "journey_context", "event"}``
choosing ``then`` or ``else``), ``send`` (to a destination, through the outbox) and ``end``.
A step goes on to the next one in the list unless it names another (``next``, ``then``,
``else``, ``on_timeout``): always a later step or ``end``, so every journey finishes.

Durations are written ``30 seconds``, ``5 minutes``, ``1 hour``, ``2 days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from opencdp.activate.fql import Condition, ConditionError, parse_condition
from opencdp.activate.mapping import MappingError, compile_mapping
from opencdp.errors import RequestError
from opencdp.timeutil import parse_duration

#: a step name that ends the instance (completed)
END = "end"
MAX_STEPS = 50
#: concurrent instances of one journey per profile (Segment's limit)
MAX_INSTANCES = 25
#: how often one instance's wait can restart (Segment's limit)
MAX_RESTARTS = 100
#: events kept on an instance's path (the trigger and the waits' matches)
MAX_PATH_EVENTS = 50
SHORTEST = timedelta(seconds=1)
LONGEST = timedelta(days=365)
STEP_KINDS = ("wait", "wait_until", "split", "send", "end")


class JourneyError(RequestError):
    """A journey definition that cannot be used (400, ``invalid_journey``), naming the field."""

    code = "invalid_journey"
    status = 400


# -- what is stored: compiled, immutable ----------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """One way in: an event matched by ``condition``, or entering ``audience``."""

    condition: Condition | None
    audience: str | None
    #: only events of profiles their own batch created (a new customer)
    new_profile: bool
    #: the property path whose value keys parallel instances (``properties.cart_id``)
    unique_identifier: tuple[str, ...] | None
    #: events older than this (their timestamp) enter nothing: imported history stays history
    max_event_age: timedelta


@dataclass(frozen=True)
class Branch:
    name: str
    condition: Condition
    match_identifier: bool
    restart: bool
    next: str | None


@dataclass(frozen=True)
class ExitRule:
    name: str
    condition: Condition
    match_identifier: bool


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    next: str | None = None
    #: ``wait``: how long; ``wait_until``: the timeout
    duration: timedelta | None = None
    branches: tuple[Branch, ...] = ()
    on_timeout: str | None = None
    condition: Condition | None = None
    then: str | None = None
    otherwise: str | None = None
    destination: str | None = None
    event_name: str | None = None
    mapping: Any = None
    template: dict[str, str] | None = None


@dataclass(frozen=True)
class Journey:
    key: str
    name: str
    triggers: tuple[Trigger, ...]
    #: ``every_time``, ``once``, or a timedelta after the last instance ended
    reentry: str | timedelta
    exit_rules: tuple[ExitRule, ...]
    lifetime: timedelta
    steps: tuple[Step, ...]
    #: the definition as written (what the API shows and stores)
    source: dict[str, Any] = field(compare=False, repr=False)
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({s.key: i for i, s in enumerate(self.steps)})

    def step(self, key: str) -> Step:
        return self.steps[self._index[key]]

    def following(self, key: str) -> str | None:
        """The step after ``key`` in the list (None: the journey ends)."""
        i = self._index[key] + 1
        return self.steps[i].key if i < len(self.steps) else None

    @property
    def first(self) -> str:
        return self.steps[0].key

    def destinations(self) -> set[str]:
        return {s.destination for s in self.steps if s.destination is not None}

    def uses_profile(self) -> bool:
        """Whether a split or a send reads the profile's traits and audiences."""
        return any(s.kind in ("split", "send") for s in self.steps)


# -- what is written: the JSON form of a journey file ---------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(value: str) -> str:
    d = parse_duration(value)
    if not SHORTEST <= d <= LONGEST:
        raise ValueError(f"{value!r}: between 1 second and 365 days")
    return value


class _Trigger(_Model):
    event: str | None = Field(None, description="FQL over the event")
    audience: str | None = Field(None, description="an audience's key: entering it")
    new_profile: bool = Field(False, description="only events of a profile created by them")
    unique_identifier: str | None = Field(
        None, description="a property path (properties.cart_id): one instance per value"
    )
    max_event_age: str = Field("1 day", description="older events (imports) enter nothing")

    @field_validator("max_event_age")
    @classmethod
    def _dur(cls, value: str) -> str:
        return _duration(value)


class _Branch(_Model):
    name: str = Field(min_length=1, max_length=100)
    event: str
    match_identifier: bool = False
    restart: bool = False
    next: str | None = None


class _WaitUntil(_Model):
    timeout: str
    branches: list[_Branch] = Field(min_length=1, max_length=9)
    on_timeout: str | None = None

    @field_validator("timeout")
    @classmethod
    def _dur(cls, value: str) -> str:
        return _duration(value)


class _Split(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    condition: str
    then: str | None = None
    else_: str | None = Field(None, alias="else")


class _Send(_Model):
    destination: str = Field(min_length=1, max_length=64)
    event_name: str | None = Field(None, max_length=200)
    mapping: Any = None
    template: dict[str, str] | None = None


class _Step(_Model):
    key: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    wait: str | None = None
    wait_until: _WaitUntil | None = None
    split: _Split | None = None
    send: _Send | None = None
    end: bool | None = None
    next: str | None = None

    @field_validator("wait")
    @classmethod
    def _dur(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)


class _Reentry(_Model):
    after: str

    @field_validator("after")
    @classmethod
    def _dur(cls, value: str) -> str:
        return _duration(value)


class _ExitRule(_Model):
    name: str | None = None
    event: str
    match_identifier: bool = False


class _Exit(_Model):
    after: str = "365 days"
    rules: list[_ExitRule] = Field(default_factory=list, max_length=10)

    @field_validator("after")
    @classmethod
    def _dur(cls, value: str) -> str:
        return _duration(value)


# entry and reentry each take two shapes. The shape given decides which one is checked (so a
# bad item of a list is not reported as "not a trigger"), and the tags that say so are left out
# of the field an error names.
_ONE, _MANY, _WORD, _AFTER = "<one>", "<many>", "<word>", "<after>"
_SHAPES = {_ONE, _MANY, _WORD, _AFTER}


def _entry_shape(value: Any) -> str:
    return _MANY if isinstance(value, list) else _ONE


def _reentry_shape(value: Any) -> str:
    return _AFTER if isinstance(value, (dict, _Reentry)) else _WORD


class _Journey(_Model):
    name: str | None = Field(None, max_length=200)
    description: str | None = None
    enabled: bool = True
    entry: Annotated[
        Annotated[_Trigger, Tag(_ONE)] | Annotated[list[_Trigger], Tag(_MANY)],
        Discriminator(_entry_shape),
    ]
    reentry: Annotated[
        Annotated[Literal["every_time", "once"], Tag(_WORD)] | Annotated[_Reentry, Tag(_AFTER)],
        Discriminator(_reentry_shape),
    ] = "every_time"
    exit: _Exit = Field(default_factory=_Exit)
    steps: list[_Step] = Field(min_length=1, max_length=MAX_STEPS)


def parse_journey(key: str, body: Any) -> Journey:
    """Check a journey's JSON form and compile it; raises :class:`JourneyError` naming the
    field (``steps.1.wait_until.timeout: …``)."""
    if not isinstance(body, dict):
        raise JourneyError("a journey is a JSON object (or a YAML mapping)")
    try:
        model = _Journey.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p not in _SHAPES) or "journey"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise JourneyError(f"{where}: {msg}") from None
    return _compile(key, model, body)


def _compile(key: str, m: _Journey, source: dict[str, Any]) -> Journey:
    entries = m.entry if isinstance(m.entry, list) else [m.entry]
    if not entries:
        raise JourneyError("entry: at least one trigger")
    triggers = tuple(
        _trigger(t, f"entry.{i}" if isinstance(m.entry, list) else "entry")
        for i, t in enumerate(entries)
    )
    keys = [s.key for s in m.steps]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise JourneyError(f"steps: the keys {dupes} are used twice; each step's key is unique")
    if END in keys:
        raise JourneyError(f"steps: {END!r} is reserved (it ends the journey)")
    steps = tuple(_step(s, i, keys) for i, s in enumerate(m.steps))
    rules = tuple(
        ExitRule(
            r.name or f"rule {i + 1}",
            _condition(r.event, f"exit.rules.{i}.event"),
            r.match_identifier,
        )
        for i, r in enumerate(m.exit.rules)
    )
    reentry: str | timedelta = (
        m.reentry if isinstance(m.reentry, str) else parse_duration(m.reentry.after)
    )
    return Journey(
        key=key,
        name=m.name or key,
        triggers=triggers,
        reentry=reentry,
        exit_rules=rules,
        lifetime=parse_duration(m.exit.after),
        steps=steps,
        source=source,
    )


def _trigger(t: _Trigger, where: str) -> Trigger:
    if (t.event is None) == (t.audience is None):
        raise JourneyError(f"{where}: give either event (FQL) or audience (a key)")
    path = None
    if t.unique_identifier is not None:
        parts = tuple(t.unique_identifier.split("."))
        if not all(parts):
            raise JourneyError(
                f"{where}.unique_identifier: a property path such as properties.cart_id"
            )
        path = parts
    return Trigger(
        condition=None if t.event is None else _condition(t.event, f"{where}.event"),
        audience=t.audience,
        new_profile=t.new_profile,
        unique_identifier=path,
        max_event_age=parse_duration(t.max_event_age),
    )


def _step(s: _Step, i: int, keys: list[str]) -> Step:
    where = f"steps.{i}"
    kinds = [k for k in STEP_KINDS if getattr(s, k) not in (None, False)]
    if len(kinds) != 1:
        raise JourneyError(
            f"{where}: give exactly one of {', '.join(STEP_KINDS)} (found {kinds or 'none'})"
        )
    kind = kinds[0]

    def target(name: str | None, field_name: str) -> str | None:
        if name is None or name == END:
            return name
        if name not in keys:
            raise JourneyError(f"{where}.{field_name}: no step is called {name!r}")
        if keys.index(name) <= i:
            raise JourneyError(
                f"{where}.{field_name}: {name!r} is not after this step (journeys only move "
                "forward: no loops)"
            )
        return name

    nxt = target(s.next, "next")
    if kind == "wait":
        assert s.wait is not None
        return Step(s.key, kind, nxt, duration=parse_duration(s.wait))
    if kind == "wait_until":
        w = s.wait_until
        assert w is not None
        branches = tuple(
            Branch(
                b.name,
                _condition(b.event, f"{where}.wait_until.branches.{j}.event"),
                b.match_identifier,
                b.restart,
                target(b.next, f"wait_until.branches.{j}.next"),
            )
            for j, b in enumerate(w.branches)
        )
        names = [b.name for b in branches]
        if len(set(names)) != len(names):
            raise JourneyError(f"{where}.wait_until.branches: each branch needs its own name")
        return Step(
            s.key,
            kind,
            nxt,
            duration=parse_duration(w.timeout),
            branches=branches,
            on_timeout=target(w.on_timeout, "wait_until.on_timeout"),
        )
    if kind == "split":
        sp = s.split
        assert sp is not None
        return Step(
            s.key,
            kind,
            nxt,
            condition=_condition(sp.condition, f"{where}.split.condition"),
            then=target(sp.then, "split.then"),
            otherwise=target(sp.else_, "split.else"),
        )
    if kind == "send":
        sd = s.send
        assert sd is not None
        if sd.mapping is not None:
            try:
                compile_mapping(sd.mapping)
            except MappingError as exc:
                raise JourneyError(f"{where}.send.mapping: {exc}") from None
        return Step(
            s.key,
            kind,
            nxt,
            destination=sd.destination,
            event_name=sd.event_name or s.key,
            mapping=sd.mapping,
            template=sd.template,
        )
    return Step(s.key, "end")


def _condition(text: str, where: str) -> Condition:
    try:
        return parse_condition(text)
    except ConditionError as exc:
        raise JourneyError(f"{where}: {exc}") from None
