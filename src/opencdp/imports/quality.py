"""The data-quality profile of an import file, built while streaming it (pure).

:class:`QualityProfile` takes each row once (after conversion, see
:class:`~opencdp.imports.convert.RowValues`) and keeps only streaming accumulators: counts,
minimum and maximum, per-month counts, a few examples. Two checks need memory proportional to
the number of distinct keys, which is fine for tens of millions of rows: duplicate natural keys
(a set of key hashes) and orders pointing to unknown customers (distinct customer references).

"What identity resolution would merge" runs the messages the rows would become through the
real :class:`~opencdp.identity.IdentityGraph` in memory, against an empty graph: it shows what
the file does on its own (profiles, merges, identifiers left out by the limits), not what it
does to the profiles already in the database.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count, pairwise
from typing import Any, Final

from opencdp.errors import IdentityError
from opencdp.identity import IdentityConfig, IdentityGraph, extract_user_identifiers
from opencdp.imports.convert import CURRENCY_CONFLICT, RowError, RowValues
from opencdp.imports.mapping import FieldSpec, ImportMapping
from opencdp.timeutil import parse_timestamp, to_us

MAX_EXAMPLES: Final = 5
AMOUNT_TYPES: Final = frozenset({"decimal", "int", "float"})
DATE_TYPES: Final = frozenset({"date", "datetime"})
_RANGED: Final = AMOUNT_TYPES | DATE_TYPES
# Histogram buckets for amounts (upper bounds, exclusive), on a log scale: order values of shops
# span cents to tens of thousands.
AMOUNT_BUCKETS: Final = (0, 10, 25, 50, 100, 250, 500, 1000, 10_000)


@dataclass(slots=True)
class ColumnStats:
    """Streaming statistics of one source column."""

    name: str
    rows: int = 0
    nulls: int = 0
    empty: int = 0
    # Set for mapped columns with a type:
    target: str | None = None
    type: str | None = None
    invalid: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    minimum: Any = None
    maximum: Any = None
    total: Decimal = Decimal(0)
    values: int = 0
    by_month: Counter[str] = field(default_factory=Counter)
    histogram: Counter[str] = field(default_factory=Counter)

    def see(self, value: Any) -> None:
        if value is None:
            self.nulls += 1
        elif isinstance(value, str) and not value.strip():
            self.empty += 1

    def typed(self, value: Any) -> None:
        """Record a converted (valid) value for ranges, totals and coverage."""
        if value is None:
            return
        self.values += 1
        if self.type in AMOUNT_TYPES:
            number = value if isinstance(value, Decimal) else Decimal(str(value))
            self.total += number
            self.histogram[_bucket(number)] += 1
        elif self.type in DATE_TYPES:
            self.by_month[str(value)[:7]] += 1
        else:
            return
        if self.minimum is None or value < self.minimum:
            self.minimum = value
        if self.maximum is None or value > self.maximum:
            self.maximum = value

    def to_json(self) -> dict[str, Any]:
        rows = self.rows or 1
        out: dict[str, Any] = {
            "column": self.name,
            "rows": self.rows,
            "nulls": self.nulls,
            "empty": self.empty,
            "null_rate": round(self.nulls / rows, 6),
            "empty_rate": round(self.empty / rows, 6),
        }
        if self.target is not None:
            out.update(
                {
                    "mapped_to": self.target,
                    "type": self.type,
                    "invalid": self.invalid,
                    "invalid_rate": round(self.invalid / rows, 6),
                    "examples": self.examples,
                }
            )
            if self.type in AMOUNT_TYPES and self.values:
                out.update(
                    min=_num(self.minimum),
                    max=_num(self.maximum),
                    sum=_num(self.total),
                    mean=_num(self.total / self.values),
                    histogram={b: self.histogram[b] for b in _bucket_names() if self.histogram[b]},
                )
            if self.type in DATE_TYPES and self.values:
                out.update(
                    min=self.minimum,
                    max=self.maximum,
                    by_month=dict(sorted(self.by_month.items())),
                )
        return out


def _num(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(round(value, 4))
    return value


def _bucket(value: Decimal) -> str:
    if value < 0:
        return "< 0"
    low = 0
    for high in AMOUNT_BUCKETS[1:]:
        if value < high:
            return f"{low}-{high}"
        low = high
    return f"≥ {AMOUNT_BUCKETS[-1]}"


def _bucket_names() -> list[str]:
    names = ["< 0"]
    names += [f"{a}-{b}" for a, b in pairwise(AMOUNT_BUCKETS)]
    return [*names, f"≥ {AMOUNT_BUCKETS[-1]}"]


class QualityProfile:
    """Accumulates the data-quality report of one file (see the module docstring)."""

    def __init__(
        self, mapping: ImportMapping, identity: IdentityConfig, *, simulate_identity: bool = True
    ) -> None:
        """``simulate_identity=False`` (a real import, which reports the real merges) skips the
        in-memory identity graph, whose size grows with the file."""
        self.mapping = mapping
        self.simulate_identity = simulate_identity
        self.rows = 0
        self.unreadable: list[dict[str, Any]] = []
        self.unreadable_count = 0
        self.rejected = 0
        self.rejected_by_column: Counter[str] = Counter()
        self.reject_examples: list[dict[str, Any]] = []
        self.currency_conflicts = 0
        self.currency_examples: list[dict[str, Any]] = []
        self.columns: dict[str, ColumnStats] = {}
        self._specs: list[tuple[str, str, FieldSpec]] = []
        for section, specs in (
            ("fields", mapping.fields),
            ("items", mapping.items),
            ("traits", mapping.traits),
            ("properties", mapping.properties),
        ):
            for spec in specs.values():
                if spec.column is not None:
                    self._specs.append((spec.column, section, spec))
        self._keys: set[bytes] = set()
        self._last_key: tuple[str, ...] | None = None
        self.duplicates = 0
        self.duplicate_examples: list[dict[str, Any]] = []
        self.empty_keys = 0
        ref = mapping.customer_ref() if mapping.kind in ("orders", "events") else None
        self._ref = ref
        self.refs: Counter[str] = Counter()
        self.customer_keys: set[str] = set()
        self.messages_by_type: Counter[str] = Counter()
        ids = count(1)
        self._graph = IdentityGraph(identity, lambda: f"p{next(ids)}")
        self.merges = 0
        self.conflicts = 0
        self.unplaceable = 0
        self.identity_examples: list[dict[str, Any]] = []

    # -- feeding ----------------------------------------------------------------------------------
    def bad_row(self, row: int, problem: str, text: str) -> None:
        """A row the reader could not split into columns."""
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_EXAMPLES:
            self.unreadable.append({"row": row, "problem": problem, "text": text[:200]})

    def observe(self, rv: RowValues) -> None:
        """One row: column statistics, conversion problems, keys, customer references."""
        self.rows += 1
        raw = rv.raw
        columns = self.columns
        for name, value in raw.items():
            stats = columns.get(name)
            if stats is None:
                stats = columns[name] = ColumnStats(name, rows=self.rows - 1, nulls=self.rows - 1)
            stats.rows += 1
            stats.see(value)
        for name in columns.keys() - raw.keys():  # a JSON line without this key: a null
            columns[name].rows += 1
            columns[name].nulls += 1
        problems = {id(spec): (problem, value) for spec, problem, value in rv.problems}
        values = rv.values
        flagged: set[str] = set()  # a column mapped twice (e-mail as userId and email) counts once
        for column, section, spec in self._specs:
            stats = columns.get(column)
            if stats is None:
                continue
            if stats.target is None:
                stats.target, stats.type = spec.target, spec.type
            hit = problems.get(id(spec))
            if hit is not None:
                if column in flagged:
                    continue
                flagged.add(column)
                stats.invalid += 1
                if len(stats.examples) < MAX_EXAMPLES:
                    stats.examples.append(
                        {"row": rv.number, "value": _short(hit[1]), "problem": hit[0]}
                    )
            elif spec.type in _RANGED:
                stats.typed(values[section].get(spec.target))
        self._observe_key(rv)
        if self._ref is not None:
            ref = values["fields"].get(self._ref.target)
            if ref is not None:
                self.refs[str(ref)] += 1
        if self.mapping.kind == "customers":
            for target in ("user_id", "email"):
                value = values["fields"].get(target)
                if value is not None:
                    self.customer_keys.add(str(value))

    def _observe_key(self, rv: RowValues) -> None:
        if rv.key is None:
            self.empty_keys += 1
            return
        if self.mapping.items and rv.key == self._last_key:
            return  # the next line item of the same order
        self._last_key = rv.key
        digest = hashlib.blake2b("\x1f".join(rv.key).encode(), digest_size=12).digest()
        if digest in self._keys:
            self.duplicates += 1
            if len(self.duplicate_examples) < MAX_EXAMPLES:
                self.duplicate_examples.append({"row": rv.number, "key": "/".join(rv.key)})
        else:
            self._keys.add(digest)

    def outcome(self, number: int, result: dict[str, Any] | RowError) -> None:
        """What the row became: a rejection, or a message whose identity is simulated."""
        if isinstance(result, RowError):
            self.rejected += 1
            self.rejected_by_column[result.column or "(row)"] += 1
            example = {"row": result.row, "column": result.column, "problem": result.problem}
            if len(self.reject_examples) < MAX_EXAMPLES:
                self.reject_examples.append(example)
            if result.finding == CURRENCY_CONFLICT:
                self.currency_conflicts += 1
                if len(self.currency_examples) < MAX_EXAMPLES:
                    self.currency_examples.append(example)
            return
        if "type" not in result or self.mapping.kind == "products":
            return
        self.messages_by_type[str(result.get("type"))] += 1
        if self.simulate_identity:
            self._resolve(result)

    def _resolve(self, message: Mapping[str, Any]) -> None:
        graph = self._graph
        identifiers = extract_user_identifiers(message, graph.config)
        try:
            at_us = to_us(parse_timestamp(message.get("timestamp")))
        except ValueError:
            at_us = 0
        try:
            res = graph.resolve(identifiers, message_id=str(message.get("messageId")), at_us=at_us)
        except IdentityError:
            self.unplaceable += 1
            return
        if res.merged:
            self.merges += len(res.merged)
            if len(self.identity_examples) < MAX_EXAMPLES:
                self.identity_examples.append(
                    {
                        "row": _row_of(message),
                        "what": "merge",
                        "bridging": [str(i) for m in res.merged for i in m.identifiers],
                    }
                )
        if res.demoted:
            self.conflicts += 1
            if len(self.identity_examples) < MAX_EXAMPLES:
                self.identity_examples.append(
                    {
                        "row": _row_of(message),
                        "what": "identifier left out",
                        "left_out": [f"{d.identifier} ({d.reason})" for d in res.demoted],
                    }
                )

    # -- the report -------------------------------------------------------------------------------
    def customer_refs(self) -> Iterable[str]:
        """Distinct customer references of the orders/events seen (to check against a store)."""
        return self.refs.keys()

    def result(self, known_customers: set[str] | None = None) -> dict[str, Any]:
        """The report as JSON-ready data.

        ``known_customers`` are the customer keys orders may point to (user ids or e-mails);
        None means no check was possible.
        """
        columns = [c.to_json() for c in self.columns.values()]
        typed = [c for c in self.columns.values() if c.type is not None]
        report: dict[str, Any] = {
            "kind": self.mapping.kind,
            "mapping": self.mapping.name,
            "rows": self.rows + self.unreadable_count,
            "rows_readable": self.rows,
            "rows_unreadable": self.unreadable_count,
            "unreadable_examples": self.unreadable,
            "rows_rejected": self.rejected,
            "rejected_by_column": dict(self.rejected_by_column.most_common()),
            "rejected_examples": self.reject_examples,
            "columns": columns,
            "emails": _summary(typed, "email"),
            "phones": _summary(typed, "phone"),
            "dates": _summary(typed, "date", "datetime"),
            "amounts": _summary(
                [c for c in typed if c.target not in _QUANTITIES], "decimal", "int", "float"
            ),
            "quantities": _summary(
                [c for c in typed if c.target in _QUANTITIES], "decimal", "int", "float"
            ),
            "currency_conflicts": {
                "count": self.currency_conflicts,
                "examples": self.currency_examples,
            },
            "keys": {
                "columns": list(self.mapping.key),
                "distinct": len(self._keys),
                "duplicates": self.duplicates,
                "empty": self.empty_keys,
                "examples": self.duplicate_examples,
            },
            "identity": {
                "messages": sum(self.messages_by_type.values()),
                "by_type": dict(self.messages_by_type),
                "simulated": self.simulate_identity,
                "profiles": len(self._graph) if self.simulate_identity else None,
                "merges": self.merges if self.simulate_identity else None,
                "conflicts": self.conflicts if self.simulate_identity else None,
                "unplaceable": self.unplaceable if self.simulate_identity else None,
                "examples": self.identity_examples,
            },
        }
        if self._ref is not None:
            orphans: dict[str, Any] = {"checked": known_customers is not None}
            orphans["referenced"] = len(self.refs)
            if known_customers is not None:
                unknown = [r for r in self.refs if r not in known_customers]
                orphans["unknown_customers"] = len(unknown)
                orphans["orphan_rows"] = sum(self.refs[r] for r in unknown)
                orphans["examples"] = sorted(unknown)[:MAX_EXAMPLES]
            report["customer_refs"] = orphans
        report["issues"] = issues(report)
        return report


#: Fields counted as quantities, not amounts (a count of items is no money).
_QUANTITIES: Final = frozenset({"quantity"})


def _summary(columns: list[ColumnStats], *types: str) -> dict[str, Any]:
    picked = [c for c in columns if c.type in types]
    return {
        "columns": [c.name for c in picked],
        "checked": sum(c.rows - c.nulls - c.empty for c in picked),
        "invalid": sum(c.invalid for c in picked),
    }


def issues(report: Mapping[str, Any]) -> list[str]:
    """The report's findings as short sentences, worst first (what the CLI prints)."""
    out = []
    if report["rows_unreadable"]:
        out.append(
            f"{report['rows_unreadable']} rows could not be read (wrong field count, not JSON)"
        )
    if report["rows_rejected"]:
        cols = ", ".join(f"{c} ({n})" for c, n in report["rejected_by_column"].items())
        out.append(f"{report['rows_rejected']} rows would be quarantined: {cols}")
    for name, label in (("emails", "e-mail addresses"), ("phones", "phone numbers")):
        if report[name]["invalid"]:
            out.append(f"{report[name]['invalid']} invalid {label}")
    for name in ("dates", "amounts", "quantities"):
        if report.get(name, {}).get("invalid"):
            out.append(f"{report[name]['invalid']} unparseable {name}")
    conflicts = report.get("currency_conflicts", {}).get("count")
    if conflicts:
        out.append(f"{conflicts} amounts carry a currency sign that contradicts the currency")
    if report["keys"]["duplicates"]:
        out.append(
            f"{report['keys']['duplicates']} duplicate keys ({'/'.join(report['keys']['columns'])})"
        )
    if report["keys"]["empty"]:
        out.append(f"{report['keys']['empty']} rows without a key")
    refs = report.get("customer_refs")
    if refs and refs.get("orphan_rows"):
        out.append(
            f"{refs['orphan_rows']} rows point to {refs['unknown_customers']} unknown customers"
        )
    ident = report["identity"]
    if ident["merges"]:
        out.append(f"identity resolution would merge profiles {ident['merges']} times")
    if ident["conflicts"]:
        out.append(f"{ident['conflicts']} rows carry an identifier another customer already holds")
    return out


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "…"
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _row_of(message: Mapping[str, Any]) -> Any:
    ctx = message.get("context")
    imp = ctx.get("import") if isinstance(ctx, dict) else None
    return imp.get("row") if isinstance(imp, dict) else None
