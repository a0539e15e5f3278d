"""The reference semantics of a definition: evaluate its AST over one profile (pure).

This is what a definition *means*: the batch compiler must produce the same values, and the
real-time path uses it for the profiles a micro-batch touched. The decisions the documentation
leaves open are made here, once (see ``docs/compute.md``):

* **Null.** Positive comparators are false on a missing value, and so is ``differs``; ``absent``
  is true, and ``omits`` / ``none_of`` are ``NOT contains`` / ``NOT one_of``, so true as well.
* **Empty streams.** ``count`` and ``sum`` give 0, ``unique`` gives ``[]``, the other reducers
  give null (the trait is unset).
* **Numbers.** ``sum``, ``avg`` and numeric ``min``/``max`` skip values that do not read as
  numbers (:data:`NUMERIC_TEXT`); numeric strings count, booleans do not; sums are exact. A number compared with a numeric string
  compares as numbers; ``'true'`` equals ``true``; a timestamp compared with a string reads the
  string as ISO 8601 (false if it is not one).
* **Case.** ``equals``, ``contains``, ``starts_with``, ``ends_with`` and ``one_of`` are
  case-sensitive.
* **Order.** ``first``/``last`` order events by timestamp, then received time, then message
  id; ``mode`` breaks ties alphabetically; ``unique`` sorts alphabetically (as strings).
* **Windows.** ``within(N)`` keeps ``now - N <= ts <= now``; ``between(A, B)`` keeps
  ``now - B <= ts <= now - A``; future-dated events fall outside every past window.
  ``within(parent: N)`` keeps ``parent.ts <= ts <= parent.ts + N``.
* **Accounts.** ``ANY x``: at least one of the account's users satisfies x; ``ALL x``: every
  user does, and an account without users satisfies no ``ALL``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from opencdp.query import ast
from opencdp.query.catalog import Catalog, product_value
from opencdp.query.functions import FUNCTIONS, apply
from opencdp.query.values import (
    equal,
    flatten,
    lookup,
    number_of,
    order,
    parse_timestamp,
    plain_number,
    text_of,
)
from opencdp.timeutil import isoformat

#: How the event names of page and screen calls read in event() (Segment's convention).
PAGE_EVENT = "Page Viewed"
SCREEN_EVENT = "Screen Viewed"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a profile's timeline, as definitions read it."""

    name: str  # the track event's name; "Page Viewed" / "Screen Viewed" for page and screen calls
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    source_id: str | None = None
    received: datetime | None = None
    message_id: str = ""
    item: int = -1  # after items(): the line item's place in its event's array

    def order_key(self) -> tuple[datetime, datetime, str, int]:
        return (self.timestamp, self.received or self.timestamp, self.message_id, self.item)


@dataclass(frozen=True, slots=True)
class ProfileData:
    """What a definition reads of one profile: its traits (computed traits and audience
    memberships included) and its events. An account's profile also has its users."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[EventRecord] = ()
    users: Sequence[ProfileData] = ()


def event_name(message: Mapping[str, Any]) -> str | None:
    """The name ``event()`` knows a stored message by (None: a call event() cannot select)."""
    kind = message.get("type")
    if kind == "track":
        name = message.get("event")
        return name if isinstance(name, str) else None
    if kind == "page":
        return PAGE_EVENT
    if kind == "screen":
        return SCREEN_EVENT
    return None


class Evaluator:
    """Evaluates definitions at one instant ``now`` (the injected clock's); ``product()``
    reads ``catalog`` (the workspace's products, at least those the events name)."""

    def __init__(self, now: datetime, catalog: Catalog | None = None) -> None:
        self.now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        self.catalog: Catalog = catalog if catalog is not None else {}

    def evaluate(self, root: ast.Expr, profile: ProfileData) -> Any:
        """The value of a computed trait, or True / False for an audience. A function over
        the population (``quintile``, ``clv``) needs every profile: the compute engine
        evaluates those."""
        if isinstance(root, ast.Function):
            spec = FUNCTIONS[root.name]
            if spec.population:
                raise ValueError(f"{root.name}() ranks the whole workspace: compute it in batch")
            arguments = [self._expr(a, profile, None, None) for a in root.arguments]
            return apply(root.name, arguments, self.now)
        return self._expr(root, profile, None, None)

    # -- expressions ------------------------------------------------------------------------------
    def _expr(
        self,
        node: ast.Expr,
        profile: ProfileData,
        event: EventRecord | None,
        parent: EventRecord | None,
    ) -> Any:
        if isinstance(node, ast.And):
            return all(self._expr(i, profile, event, parent) for i in node.items)
        if isinstance(node, ast.Or):
            return any(self._expr(i, profile, event, parent) for i in node.items)
        if isinstance(node, ast.Not):
            return not self._expr(node.item, profile, event, parent)
        if isinstance(node, ast.AnyUser):
            return any(self._expr(node.item, user, None, None) for user in profile.users)
        if isinstance(node, ast.AllUsers):
            users = profile.users
            return bool(users) and all(self._expr(node.item, u, None, None) for u in users)
        if isinstance(node, ast.Comparison):
            return self._compare(node, profile, event, parent)
        if isinstance(node, ast.Function):
            raise ValueError(f"{node.name}() is a whole definition, not a value inside one")
        return self._value(node, profile, event, parent)

    def _value(
        self,
        node: ast.Value,
        profile: ProfileData,
        event: EventRecord | None,
        parent: EventRecord | None,
    ) -> Any:
        if isinstance(node, ast.Literal):
            return node.value
        if isinstance(node, ast.Trait):
            return lookup(profile.traits, node.path)
        if isinstance(node, ast.Property):
            source = parent if node.parent else event
            return None if source is None else lookup(source.properties, node.path)
        if isinstance(node, ast.Product):
            source = parent if node.parent else event
            if source is None:
                return None
            return product_value(self.catalog, source.properties, node.path)
        if isinstance(node, ast.Context):
            return None if event is None else lookup(event.context, node.path)
        if isinstance(node, ast.Timestamp):
            return None if event is None else isoformat(event.timestamp)
        return self._aggregate(node, profile, event)

    # -- streams ----------------------------------------------------------------------------------
    def stream(
        self, stream: ast.Stream, profile: ProfileData, parent: EventRecord | None = None
    ) -> list[EventRecord]:
        """The profile's events that ``stream`` keeps, in timeline order."""
        events = [e for e in profile.events if e.name == stream.event]
        for f in stream.filters:
            events = self._filter(f, events, profile, parent)
        return sorted(events, key=EventRecord.order_key)

    def _filter(
        self,
        f: ast.Filter,
        events: list[EventRecord],
        profile: ProfileData,
        parent: EventRecord | None,
    ) -> list[EventRecord]:
        if isinstance(f, ast.Where):
            return [e for e in events if self._expr(f.condition, profile, e, parent)]
        if isinstance(f, ast.Items):
            return [
                EventRecord(
                    e.name, e.timestamp, item, e.context, e.source_id, e.received, e.message_id, i
                )
                for e in events
                if isinstance(array := lookup(e.properties, f.path), list)
                for i, item in enumerate(array)
                if isinstance(item, Mapping)
            ]
        if isinstance(f, ast.Sources):
            excluded = set(f.exclude)
            return [e for e in events if e.source_id not in excluded]
        if isinstance(f, ast.Within):
            span = timedelta(seconds=f.duration.seconds)
            if f.parent:
                if parent is None:
                    return []
                return [
                    e for e in events if parent.timestamp <= e.timestamp <= parent.timestamp + span
                ]
            return [e for e in events if self.now - span <= e.timestamp <= self.now]
        if isinstance(f, ast.Between):
            anchor = parent.timestamp if f.parent and parent is not None else self.now
            if f.parent and parent is not None:
                low = anchor + timedelta(seconds=f.newest.seconds)
                high = anchor + timedelta(seconds=f.oldest.seconds)
                return [e for e in events if low <= e.timestamp <= high]
            low = anchor - timedelta(seconds=f.oldest.seconds)
            high = anchor - timedelta(seconds=f.newest.seconds)
            return [e for e in events if low <= e.timestamp <= high]
        # ExpiresAfter: the current session only — events since the last gap longer than the
        # session, and none once the session has expired.
        gap = timedelta(seconds=f.duration.seconds)
        ordered = sorted((e for e in events if e.timestamp <= self.now), key=EventRecord.order_key)
        if not ordered or self.now - ordered[-1].timestamp > gap:
            return []
        start = len(ordered) - 1
        while start > 0 and ordered[start].timestamp - ordered[start - 1].timestamp <= gap:
            start -= 1
        return ordered[start:]

    def _aggregate(
        self, node: ast.Aggregate, profile: ProfileData, parent: EventRecord | None
    ) -> Any:
        events = self.stream(node.stream, profile, parent)
        reducer = node.reducer
        if reducer == "count":
            return len(events)
        assert node.argument is not None
        values = [self._value(node.argument, profile, e, parent) for e in events]
        if reducer in ("sum", "avg"):
            numbers = [n for n in map(number_of, values) if n is not None]
            if reducer == "sum":
                return plain_number(sum(numbers, Decimal(0)))
            return plain_number(sum(numbers, Decimal(0)) / len(numbers)) if numbers else None
        if reducer in ("min", "max"):
            pick = min if reducer == "min" else max
            if node.compare_as == "string":
                texts = [text_of(v) for v in values if v is not None]
                return pick(texts) if texts else None
            pairs = [(n, v) for v in values if (n := number_of(v)) is not None]
            return pick(pairs, key=lambda p: p[0])[1] if pairs else None
        if reducer == "first" or reducer == "last":
            present = [v for v in values if v is not None]
            if not present:
                return None
            return present[0] if reducer == "first" else present[-1]
        if reducer == "mode":
            counts = Counter(text_of(v) for v in values if v is not None)
            eligible = [(c, t) for t, c in counts.items() if c >= (node.min_count or 1)]
            if not eligible:
                return None
            best = max(c for c, _ in eligible)
            return min(t for c, t in eligible if c == best)
        distinct = sorted({text_of(v) for v in flatten(values)})
        if reducer == "unique":
            return distinct
        return len(distinct)  # unique_count

    # -- comparisons ------------------------------------------------------------------------------
    def _compare(
        self,
        node: ast.Comparison,
        profile: ProfileData,
        event: EventRecord | None,
        parent: EventRecord | None,
    ) -> bool:
        value = self._value(node.value, profile, event, parent)
        name = node.comparator
        if name == "exists":
            return value is not None
        if name == "absent":
            return value is None
        if name in ("omits", "none_of"):
            positive = "contains" if name == "omits" else "one_of"
            return not self._test(positive, value, node, profile, event, parent)
        return self._test(name, value, node, profile, event, parent)

    def _test(
        self,
        name: str,
        value: Any,
        node: ast.Comparison,
        profile: ProfileData,
        event: EventRecord | None,
        parent: EventRecord | None,
    ) -> bool:
        if value is None:
            return False
        if name in ("within_last", "within_next", "before_last", "after_next"):
            stamp = parse_timestamp(value)
            span = node.arguments[0]
            if stamp is None or not isinstance(span, ast.Duration):
                return False
            delta = timedelta(seconds=span.seconds)
            return {
                "within_last": lambda: self.now - delta <= stamp <= self.now,
                "within_next": lambda: self.now <= stamp <= self.now + delta,
                "before_last": lambda: stamp <= self.now - delta,
                "after_next": lambda: stamp >= self.now + delta,
            }[name]()
        args = [
            self._value(a, profile, event, parent)
            for a in node.arguments
            if not isinstance(a, ast.Duration)
        ]
        if name in ("before_date", "after_date"):
            stamp, bound = parse_timestamp(value), parse_timestamp(args[0])
            if stamp is None or bound is None:
                return False
            return stamp < bound if name == "before_date" else stamp > bound
        if name in ("contains", "starts_with", "ends_with"):
            texts = [text_of(v) for v in flatten([value])]
            needles = [text_of(a) for a in args if a is not None]
            test: Callable[[str, str], bool] = {
                "contains": lambda t, n: n in t,
                "starts_with": lambda t, n: t.startswith(n),
                "ends_with": lambda t, n: t.endswith(n),
            }[name]
            return any(test(t, n) for t in texts for n in needles)
        if name == "one_of":
            return any(equal(value, a) for a in args)
        other = args[0]
        if other is None:
            return False
        if name == "equals":
            return equal(value, other)
        if name == "differs":
            return not equal(value, other)
        sign = order(value, other)
        if sign is None:
            return False
        return {
            "greater_than": sign > 0,
            "at_least": sign >= 0,
            "less_than": sign < 0,
            "at_most": sign <= 0,
        }[name]
