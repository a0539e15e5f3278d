"""The typed AST of a query-language definition (pure data; see :mod:`opencdp.query.parser`).

A definition is a boolean expression (an audience) or a value expression (a computed trait).
Values are trait references, literals, or aggregates of an event stream: ``event('Name')``
narrowed by filters (``where``, ``sources``, ``within``, ``between``, ``expires_after``) and
reduced by one reducer (``count``, ``sum``, ``avg``, ``min``, ``max``, ``mode``, ``first``,
``last``, ``unique``). Comparisons apply one comparator to a value; junctions combine them.

OpenCDP's extensions (see ``docs/compute.md``): ``timestamp()`` (an event's time, for
``first``/``last``), ``items('products')`` (a stream of the events' line items),
``product('brand')`` (a field of the event's product in the catalog) and, as the whole
definition of a computed trait, the functions of :mod:`opencdp.query.functions`
(``days_since``, ``divide``, ``quintile``, ``rfm_segment``, ``clv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal as TypingLiteral

#: The units a duration may be written in, and their length in seconds.
UNITS: dict[str, int] = {
    "second": 1,
    "seconds": 1,
    "hour": 3_600,
    "hours": 3_600,
    "day": 86_400,
    "days": 86_400,
}


@dataclass(frozen=True, slots=True)
class Duration:
    """``30 days``: an amount of a unit."""

    amount: int
    unit: str

    @property
    def seconds(self) -> int:
        return self.amount * UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"


# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: a number, a string, a boolean, null, or a timestamp (dates are midnight UTC)."""

    value: int | float | str | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Trait:
    """``trait('a.b')``: a profile trait (``path`` split on unescaped dots)."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Property:
    """``property('a.b')``: a property of the event in the stream; ``parent`` reads the event
    of the enclosing stream (a funnel's dynamic property reference)."""

    path: tuple[str, ...]
    parent: bool = False


@dataclass(frozen=True, slots=True)
class Product:
    """``product('brand')``: a field of the event's (after ``items()``: the line item's) product
    in the workspace's catalog, found by its ``product_id`` (else ``sku``) property; without
    such a product, the event's own property of that name (an OpenCDP extension, see
    :mod:`opencdp.query.catalog`). ``parent`` reads the enclosing stream's event."""

    path: tuple[str, ...]
    parent: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """``context('page.url')``: a path into the event's ``context``."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Timestamp:
    """``timestamp()``: the time of the event in the stream (an OpenCDP extension)."""


# -- streams ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Where:
    """Keep the events for which ``condition`` holds."""

    condition: Expr


@dataclass(frozen=True, slots=True)
class Sources:
    """Drop the events of the listed source ids."""

    exclude: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Within:
    """Events of the last ``duration`` (``parent``: within ``duration`` after the parent event)."""

    duration: Duration
    parent: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    """Events older than ``newest`` and newer than ``oldest`` (``between(7 days, 10 days)``)."""

    newest: Duration
    oldest: Duration
    parent: bool = False


@dataclass(frozen=True, slots=True)
class ExpiresAfter:
    """Only the current session counts; a session ends after ``duration`` without events."""

    duration: Duration


@dataclass(frozen=True, slots=True)
class Items:
    """``items('products')``: from here on the stream holds the object elements of each
    event's ``path`` array (an order's line items), each at its event's time; ``property()``
    then reads the item, ``context()`` its event (an OpenCDP extension)."""

    path: tuple[str, ...]


Filter = Where | Sources | Within | Between | ExpiresAfter | Items


@dataclass(frozen=True, slots=True)
class Stream:
    """``event('Name')`` and its filters, in the order written."""

    event: str
    filters: tuple[Filter, ...] = ()


ReducerName = TypingLiteral[
    "count", "sum", "avg", "min", "max", "mode", "first", "last", "unique", "unique_count"
]
#: How min/max/mode compare values: as numbers, as strings, or (mode) whole arrays.
CompareAs = TypingLiteral["number", "string", "array"]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A stream reduced to one value (``unique``: to a list; ``unique_count``: its length)."""

    stream: Stream
    reducer: ReducerName
    argument: Property | Product | Context | Timestamp | None = None
    compare_as: CompareAs | None = None
    min_count: int | None = None  # mode's threshold


Value = Literal | Trait | Property | Product | Context | Timestamp | Aggregate


# -- conditions ------------------------------------------------------------------------------------

ComparatorName = TypingLiteral[
    "equals",
    "differs",
    "greater_than",
    "at_least",
    "less_than",
    "at_most",
    "exists",
    "absent",
    "contains",
    "omits",
    "starts_with",
    "ends_with",
    "one_of",
    "none_of",
    "before_date",
    "after_date",
    "within_last",
    "within_next",
    "before_last",
    "after_next",
]


@dataclass(frozen=True, slots=True)
class Comparison:
    """A comparator applied to a value; ``arguments`` are values or durations."""

    value: Value
    comparator: ComparatorName
    arguments: tuple[Value | Duration, ...] = ()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


@dataclass(frozen=True, slots=True)
class AnyUser:
    """ACCOUNTS definitions: at least one of the account's users satisfies ``item``."""

    item: Expr


@dataclass(frozen=True, slots=True)
class AllUsers:
    """ACCOUNTS definitions: every one of the account's users satisfies ``item``."""

    item: Expr


Condition = Comparison | And | Or | Not | AnyUser | AllUsers


@dataclass(frozen=True, slots=True)
class Function:
    """``quintile(trait('lifetime_value'))``: one of :mod:`opencdp.query.functions` applied to
    values or conditions; only as the whole definition of a computed trait (an OpenCDP
    extension)."""

    name: str
    arguments: tuple[Expr, ...]


Expr = Condition | Value | Function
