"""From a row of an import file to a Segment message or a product row (pure).

:class:`Converter` applies an :class:`~opencdp.imports.mapping.ImportMapping` to rows in file
order. Each row first becomes :class:`RowValues` (every mapped field converted, with the
problems found); the data-quality profile reads those. Then rows become outcomes:

* customers → an ``identify`` message; orders → a ``track`` message (``Order Completed`` by
  default) with Segment e-commerce properties; events → the mapped or passed-through message;
  products → a row of the ``products`` table;
* or a :class:`RowError` naming the row, the column and the problem (the runner quarantines it).

Every message gets a deterministic ``messageId`` derived from the workspace, source, kind and the
row's natural key, so importing the same file twice changes nothing. Orders with line items
arrive one row per item: consecutive rows with the same order key form one order, which is
emitted when the key changes (the file must be grouped by order; a streamed file cannot be
re-sorted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from typing import Any, Final, Protocol

import orjson

from opencdp.identity import normalize_email
from opencdp.imports.mapping import FIELDS, ROW_COLUMN, FieldSpec, ImportMapping
from opencdp.imports.values import (  # noqa: F401  (re-exported: the converter's public API)
    _decimal,
    _show,
    _text,
    convert_value,
    currency_marks,
    parse_datetime,
    zone,
)

LIBRARY: Final = "opencdp-import"
INVALID_ROW: Final = "invalid_row"  # the quarantine reason of rows the converter refuses
_MISSING: Final = object()


CURRENCY_CONFLICT: Final = "currency_conflict"  # a finding the quality report counts


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that cannot be imported as written: where (row, column) and why."""

    row: int
    column: str | None
    problem: str
    raw: Any
    message_id: str
    #: A named finding the quality report counts on its own (``currency_conflict``).
    finding: str | None = None
    #: The record's rows as read, with their numbers (several for an order with line items;
    #: none for a line that could not be read as a row).
    rows: tuple[tuple[int, Mapping[str, Any]], ...] = ()

    def detail(self, file_name: str) -> str:
        """``orders.csv: row 17, column 'Purchase Date': …`` — what the quarantine shows."""
        where = f", column {self.column!r}" if self.column else ""
        return f"{file_name}: row {self.row}{where}: {self.problem}"

    def payload(self, file_name: str, run_id: str) -> dict[str, Any]:
        """What the quarantine keeps: where the record was and why it was refused
        (``import``), and its original rows with their numbers (``rows``), so that a replay
        converts them again (:func:`record_rows`). A line that was no row keeps its text."""
        where = {
            "file": file_name,
            "run": run_id,
            "row": self.row,
            "column": self.column,
            "problem": self.problem,
        }
        if self.rows:
            rows = [{"number": n, "values": dict(values)} for n, values in self.rows]
            return {"import": where, "rows": rows}
        extra = self.raw if isinstance(self.raw, dict) else {"raw": self.raw}
        return {**extra, "import": where}


def record_rows(payload: Any) -> list[tuple[int, dict[str, Any]]] | None:
    """The original rows (number, values) of a quarantined import record, or None when the
    payload holds none (a line that could not be read, a row stored before rows were kept)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("import"), dict):
        return None
    rows = payload.get("rows")
    if not isinstance(rows, list) or not rows:
        return None
    out: list[tuple[int, dict[str, Any]]] = []
    for item in rows:
        number = item.get("number") if isinstance(item, dict) else None
        values = item.get("values") if isinstance(item, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not isinstance(values, dict):
            return None
        out.append((number, values))
    return out


def convert_record(
    converter: Converter, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> list[dict[str, Any] | RowError]:
    """Convert the rows of one record again (a replay): its message, product row or error.

    The converter must be fresh; the message id is derived as on import, so a record that
    converts now has the message id of its quarantine row (unless the mapping's key changed).
    """
    out: list[dict[str, Any] | RowError] = []
    for number, values in rows:
        out.extend(outcome for _, outcome in converter.feed(converter.values(values, number)))
    out.extend(outcome for _, outcome in converter.flush())
    return out


class EncodedRows(Protocol):
    """Rows that can hand over a column as a set (:class:`~opencdp.imports.readers.Chunk`)."""

    rows: list[dict[str, Any]]
    numbers: list[int]

    def encoded(self, column: str, missing: Any) -> tuple[list[Any], list[int]]:
        """The column's distinct values and, per row, the index of its value among them."""
        ...


@dataclass(frozen=True, slots=True)
class _Cell:
    """One value as written, converted: the value, or the problem that refused it, and the
    currencies its notation allows (amounts with a sign or code)."""

    value: Any
    problem: str | None
    marks: frozenset[str] | None


@dataclass(slots=True)
class RowValues:
    """One row's mapped fields after conversion, and every problem found on the way."""

    number: int
    raw: Mapping[str, Any]
    key: tuple[str, ...] | None
    # section ("fields", "items", "traits", "properties") -> target -> converted value
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (spec, problem, value as written); includes problems whose value was kept or dropped.
    problems: list[tuple[FieldSpec, str, Any]] = field(default_factory=list)
    error: tuple[str | None, str] | None = None  # (column, problem) that rejects the row
    # (column, value as written, currencies its sign allows) of amounts that carry a sign
    currencies: list[tuple[str | None, Any, frozenset[str]]] = field(default_factory=list)

    def key_text(self) -> str:
        """The natural key as one string (``a/b`` for compound keys)."""
        return "/".join(self.key or ())


@dataclass(frozen=True, slots=True)
class ImportContext:
    """Where rows come from: stamped on every message (``context.import``)."""

    workspace_id: str
    source_id: str
    file_name: str
    run_id: str
    version: str = "0"
    # Identify messages without a date of their own are stamped with this (the file's date).
    default_timestamp: str = "1970-01-01T00:00:00.000Z"


# -- single values ---------------------------------------------------------------------------------


# -- rows --------------------------------------------------------------------------------------


class Converter:
    """Turns rows of one file into messages / product rows per a mapping (see module doc)."""

    def __init__(self, mapping: ImportMapping, ctx: ImportContext) -> None:
        self.mapping = mapping
        self.ctx = ctx
        self.tz = zone(mapping.timezone)
        self.sections: list[tuple[str, dict[str, FieldSpec]]] = [
            ("fields", mapping.fields),
            ("items", mapping.items),
            ("traits", mapping.traits),
            ("properties", mapping.properties),
        ]
        self._seed = "\x1f".join((ctx.workspace_id, ctx.source_id, mapping.kind))
        self._by_row = ROW_COLUMN in mapping.key or not mapping.key
        self._group: list[RowValues] = []
        self._mapped = mapping.mapped_columns()

    # -- step 1: values ---------------------------------------------------------------------------
    def values(self, row: Mapping[str, Any], number: int) -> RowValues:
        """Every mapped field of ``row`` converted; problems recorded, nothing raised."""
        rv = self._row(row, number)
        region, tz = self.mapping.phone_region, self.tz
        for section, specs in self.sections:
            values = rv.values[section] = {}
            for name, spec in specs.items():
                raw = spec.value if spec.column is None else row.get(spec.column, _MISSING)
                self._apply(rv, values, name, spec, raw, self._cell(spec, raw, region, tz))
        return rv

    def values_of(self, chunk: EncodedRows) -> list[RowValues]:
        """:meth:`values` of every row of ``chunk``, converted column by column: each mapped
        column's distinct values are converted once (a file repeats its dates, amounts,
        statuses and customers), then every row takes its value's result."""
        rvs = [self._row(row, n) for row, n in zip(chunk.rows, chunk.numbers, strict=True)]
        region, tz = self.mapping.phone_region, self.tz
        for section, specs in self.sections:
            sections = [rv.values.setdefault(section, {}) for rv in rvs]
            for name, spec in specs.items():
                if spec.column is None:
                    cell = self._cell(spec, spec.value, region, tz)
                    for rv, values in zip(rvs, sections, strict=True):
                        self._apply(rv, values, name, spec, spec.value, cell)
                    continue
                distinct, indices = chunk.encoded(spec.column, _MISSING)
                cells = [self._cell(spec, raw, region, tz) for raw in distinct]
                for rv, values, i in zip(rvs, sections, indices, strict=True):
                    self._apply(rv, values, name, spec, distinct[i], cells[i])
        return rvs

    def _row(self, row: Mapping[str, Any], number: int) -> RowValues:
        rv = RowValues(number, row, self._key(row, number))
        if rv.key is None:
            missing = next(
                (k for k in self.mapping.key if k != ROW_COLUMN and _empty(row.get(k))), None
            )
            rv.error = (missing, "the natural key is empty")
        return rv

    @staticmethod
    def _cell(spec: FieldSpec, raw: Any, region: str, tz: tzinfo) -> _Cell:
        """What one value as written converts to (a pure function of the spec and the value,
        so a column's repeated values share one)."""
        if raw is _MISSING:
            raw = None
        try:
            value = convert_value(spec, raw, region=region, tz=tz)
        except ValueError as exc:
            return _Cell(None, str(exc), None)
        marks = currency_marks(spec, raw) if value is not None else None
        return _Cell(value, None, marks or None)

    @staticmethod
    def _apply(
        rv: RowValues,
        values: dict[str, Any],
        name: str,
        spec: FieldSpec,
        raw: Any,
        cell: _Cell,
    ) -> None:
        """Record ``cell`` (the conversion of ``raw``) as field ``name`` of row ``rv``."""
        if raw is _MISSING:
            raw = None
            if rv.error is None and spec.required:
                rv.error = (spec.column, "the column is missing from the file")
        value = cell.value
        if cell.problem is not None:
            rv.problems.append((spec, cell.problem, raw))
            if spec.invalid == "keep":
                value = raw.strip() if isinstance(raw, str) else raw
            elif spec.invalid == "null":
                value = None
            else:
                if rv.error is None:
                    rv.error = (spec.column, cell.problem)
                return
        elif cell.marks:
            rv.currencies.append((spec.column, raw, cell.marks))
        if value is None:
            if spec.default is not None:
                value = spec.default
            elif spec.required and rv.error is None:
                rv.error = (spec.column, "a value is required")
        if value is not None:
            values[name] = value

    def _key(self, row: Mapping[str, Any], number: int) -> tuple[str, ...] | None:
        key = self.mapping.key
        if not key:
            own = row.get("messageId") if self.mapping.passthrough else None
            return (str(own),) if isinstance(own, str) and own.strip() else (f"#{number}",)
        out = []
        for col in key:
            if col == ROW_COLUMN:
                out.append(f"#{number}")
                continue
            value = row.get(col)
            if _empty(value):
                return None
            out.append(value.strip() if isinstance(value, str) else _text(value))
        return tuple(out)

    def message_id(self, key: tuple[str, ...] | None, number: int) -> str:
        """``imp-`` + SHA-1 of workspace, source, kind and the natural key (44 characters).

        Keys built from row numbers also include the file name: row 7 of two different files
        is not the same record. Rows without a key get an id from their row number, so a
        re-run quarantines them again in place instead of twice.
        """
        parts = [self._seed]
        if key is None or self._by_row:
            parts.append(self.ctx.file_name)
        parts.extend(key if key is not None else (f"#{number}",))
        return "imp-" + hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()

    # -- step 2: outcomes -------------------------------------------------------------------------
    def feed(self, rv: RowValues) -> list[tuple[int, dict[str, Any] | RowError]]:
        """The outcomes this row completes, as (row number, message | product row | error).

        With line items, a row completes the order *before* it when its order key differs;
        call :meth:`flush` after the last row.
        """
        if not self.mapping.items:
            return [(rv.number, self._one(rv))]
        out: list[tuple[int, dict[str, Any] | RowError]] = []
        if self._group and self._group[0].key != rv.key:
            out.append(self._emit_group())
        if rv.key is None:  # cannot belong to any order: refuse it alone
            out.append((rv.number, self._error(rv, rv.error or (None, "the natural key is empty"))))
        else:
            self._group.append(rv)
        return out

    def flush(self) -> list[tuple[int, dict[str, Any] | RowError]]:
        """Outcomes still held back (the last order of a line-item file)."""
        return [self._emit_group()] if self._group else []

    @property
    def open_from(self) -> int | None:
        """The row number of the first row of an order not yet emitted (a checkpoint must not
        pass it), or None."""
        return self._group[0].number if self._group else None

    def _error(
        self, rv: RowValues, error: tuple[str | None, str], finding: str | None = None
    ) -> RowError:
        column, problem = error
        raw = dict(rv.raw)
        message_id = self.message_id(rv.key, rv.number)
        return RowError(rv.number, column, problem, raw, message_id, finding, ((rv.number, raw),))

    def _one(self, rv: RowValues) -> dict[str, Any] | RowError:
        if rv.error is not None:
            return self._error(rv, rv.error)
        kind = self.mapping.kind
        try:
            if kind == "customers":
                return self._identify(rv)
            if kind == "orders":
                return self._order(rv, [])
            if kind == "products":
                return self._product(rv)
            return self._event(rv)
        except _RowProblem as exc:
            return self._error(rv, (exc.column, exc.problem), exc.finding)

    def _emit_group(self) -> tuple[int, dict[str, Any] | RowError]:
        group, self._group = self._group, []
        head = group[0]
        for rv in group:
            if rv.error is not None:
                err = self._error(rv, rv.error)
                raw = {"rows": [dict(r.raw) for r in group]}
                problem = f"{err.problem} (the whole order of {len(group)} rows is kept aside)"
                rows = tuple((r.number, dict(r.raw)) for r in group)
                return head.number, RowError(
                    rv.number, err.column, problem, raw, err.message_id, rows=rows
                )
        items = [self._item(rv) for rv in group]
        try:
            return head.number, self._order(head, items, group)
        except _RowProblem as exc:
            return head.number, self._error(head, (exc.column, exc.problem), exc.finding)

    # -- builders ----------------------------------------------------------------------------------
    def _section(self, rv: RowValues, section: str) -> dict[str, Any]:
        values = rv.values.get(section)
        if not values:
            return {}
        return {k: _json(v) if isinstance(v, Decimal) else v for k, v in values.items()}

    def _base(self, rv: RowValues, typ: str) -> dict[str, Any]:
        f = self._section(rv, "fields")
        msg: dict[str, Any] = {"type": typ, "messageId": self.message_id(rv.key, rv.number)}
        for src, dst in (("user_id", "userId"), ("anonymous_id", "anonymousId")):
            if f.get(src) is not None:
                msg[dst] = str(f[src])
        if "userId" not in msg and "anonymousId" not in msg:
            email = f.get("email")
            normalized = normalize_email(email)
            if normalized is not None:
                # A guest with only an e-mail: a stable anonymous id, so the e-mail joins them.
                digest = hashlib.sha1(normalized.encode(), usedforsecurity=False)
                msg["anonymousId"] = "email-" + digest.hexdigest()[:24]
            else:
                ref = self.mapping.customer_ref()
                raise _RowProblem(
                    ref.column if ref else None, "no customer identifier (user id or e-mail)"
                )
        msg["context"] = {
            "library": {"name": LIBRARY, "version": self.ctx.version},
            "import": {"file": self.ctx.file_name, "row": rv.number, "run": self.ctx.run_id},
        }
        return msg

    def _constants(self, known: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Constants split into field defaults and extras (traits / properties / attributes)."""
        fields = {k: v for k, v in self.mapping.constants.items() if k in known}
        extra = {k: v for k, v in self.mapping.constants.items() if k not in known}
        return fields, extra

    def _identify(self, rv: RowValues) -> dict[str, Any]:
        msg = self._base(rv, "identify")
        defaults, extra = self._constants(FIELDS["customers"])
        f = {**defaults, **self._section(rv, "fields")}
        traits: dict[str, Any] = {**extra}
        for name in FIELDS["customers"]:
            if name not in ("user_id", "anonymous_id", "timestamp") and f.get(name) is not None:
                traits[name] = f[name]
        traits.update(self._section(rv, "traits"))
        msg["traits"] = traits
        msg["timestamp"] = f.get("timestamp") or f.get("created_at") or self.ctx.default_timestamp
        return msg

    def _order(
        self, rv: RowValues, items: list[dict[str, Any]], group: Sequence[RowValues] = ()
    ) -> dict[str, Any]:
        msg = self._base(rv, "track")
        defaults, extra = self._constants(FIELDS["orders"])
        f = {**defaults, **self._section(rv, "fields")}
        status = f.get("status")
        msg["event"] = self.mapping.event
        if status is not None:  # a cancelled order is no purchase
            msg["event"] = self.mapping.status_events.get(str(status).strip().lower(), msg["event"])
        f["currency"] = self._currency(group or [rv], f.get("currency"), "order")
        ts = f.get("timestamp")
        if ts is None:
            raise _RowProblem(self.mapping.fields["timestamp"].column, "the order date is empty")
        msg["timestamp"] = ts
        props: dict[str, Any] = {**extra}
        props["order_id"] = str(f["order_id"]) if f.get("order_id") is not None else rv.key_text()
        for name in ("total", "revenue", "subtotal", "shipping", "tax", "discount"):
            if f.get(name) is not None:
                props[name] = f[name]
        if items:
            props["products"] = items
            if "total" not in props and "revenue" not in props:
                props["total"] = _json(
                    sum(
                        (_decimal(i.get("price", 0)) * i.get("quantity", 1) for i in items),
                        Decimal(0),
                    )
                )
        # Segment's "revenue" is what LTV and segments read; when a file has one amount only,
        # it stands for both.
        if "revenue" not in props and "total" in props:
            props["revenue"] = props["total"]
        if "total" not in props and "revenue" in props:
            props["total"] = props["revenue"]
        for name in ("coupon", "currency", "status", "affiliation"):
            if f.get(name) is not None:
                props[name] = f[name]
        props.update(self._section(rv, "properties"))
        msg["properties"] = props
        traits = {k: f[k] for k in ("email", "phone") if f.get(k) is not None}
        traits.update(self._section(rv, "traits"))
        if traits:
            msg["context"]["traits"] = traits
        return msg

    def _currency(self, rows: Sequence[RowValues], currency: Any, what: str) -> Any:
        """The record's currency, checked against the signs its amounts carry: a sign that
        contradicts it (``12,99 €`` with ``currency: USD``) rejects the row; without a stated
        currency, one the signs agree on is taken."""
        marked = [c for r in rows for c in r.currencies]
        if not marked:
            return currency
        if currency is not None:
            stated = str(currency).strip().upper()
            for column, raw, marks in marked:
                if stated not in marks:
                    raise _RowProblem(
                        column,
                        f"{raw!r} is written in {'/'.join(sorted(marks))}, but the {what}'s "
                        f"currency is {stated}; fix the file or the mapping's currency",
                        CURRENCY_CONFLICT,
                    )
            return currency
        common = frozenset.intersection(*(marks for _, _, marks in marked))
        if len(common) == 1:
            return next(iter(common))
        if not common:
            column, raw, marks = marked[0]
            raise _RowProblem(
                column, f"the amounts of this {what} carry different currencies", CURRENCY_CONFLICT
            )
        return None

    def _item(self, rv: RowValues) -> dict[str, Any]:
        item = self._section(rv, "items")
        if "product_id" not in item and "sku" in item:
            item["product_id"] = item["sku"]
        if "sku" not in item and "product_id" in item:
            item["sku"] = item["product_id"]
        return item

    def _product(self, rv: RowValues) -> dict[str, Any]:
        defaults, extra = self._constants(FIELDS["products"])
        f = {**defaults, **self._section(rv, "fields")}
        f["currency"] = self._currency([rv], f.get("currency"), "product")
        pid = f.get("id") if f.get("id") is not None else f.get("sku")
        if pid is None:
            spec = self.mapping.fields.get("id") or self.mapping.fields.get("sku")
            raise _RowProblem(spec.column if spec else None, "the product id is empty")
        attributes = {
            k: _json(v) for k, v in rv.raw.items() if k not in self._mapped and not _empty(v)
        }
        attributes.update(extra)
        attributes.update(self._section(rv, "properties"))
        attributes.update(self._section(rv, "traits"))
        price = f.get("price")
        quantity = f.get("quantity")
        return {
            "workspace_id": self.ctx.workspace_id,
            "id": str(pid)[:200],
            "sku": _short(f.get("sku"), 200),
            "name": _short(f.get("name"), 500),
            "category": _short(f.get("category"), 300),
            "brand": _short(f.get("brand"), 200),
            "price": float(price) if price is not None else None,
            "currency": _short(f.get("currency"), 3),
            "url": f.get("url"),
            "image_url": f.get("image_url"),
            "quantity": int(quantity) if quantity is not None else None,
            "attributes": orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS).decode(),
            "source_id": self.ctx.source_id,
        }

    def _event(self, rv: RowValues) -> dict[str, Any]:
        if self.mapping.passthrough:
            msg = unflatten(rv.raw)
            msg.setdefault("messageId", self.message_id(rv.key, rv.number))
            ctx = msg.get("context")
            ctx = dict(ctx) if isinstance(ctx, dict) else {}
            ctx.setdefault("library", {"name": LIBRARY, "version": self.ctx.version})
            ctx["import"] = {"file": self.ctx.file_name, "row": rv.number, "run": self.ctx.run_id}
            msg["context"] = ctx
            return msg
        f = self._section(rv, "fields")
        msg = self._base(rv, str(f.get("type") or "track"))
        if f.get("message_id") is not None:
            msg["messageId"] = str(f["message_id"])
        for name in ("event", "name", "timestamp"):
            if f.get(name) is not None:
                msg[name] = f[name]
        if f.get("group_id") is not None:
            msg["groupId"] = str(f["group_id"])
        props = self._section(rv, "properties")
        traits = self._section(rv, "traits")
        if f.get("email") is not None:
            traits.setdefault("email", f["email"])
        if msg["type"] in ("identify", "group"):
            msg["traits"] = traits
        else:
            msg["properties"] = props
            if traits:
                msg["context"]["traits"] = traits
        return msg


class _RowProblem(Exception):
    def __init__(self, column: str | None, problem: str, finding: str | None = None) -> None:
        super().__init__(problem)
        self.column = column
        self.problem = problem
        self.finding = finding


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _short(value: Any, n: int) -> str | None:
    return None if value is None else str(value)[:n]


def _json(value: Any) -> Any:
    """A converted value as JSON: decimals become numbers (ints when whole)."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and abs(value) < 2**53
            else float(value)
        )
    return value


def unflatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted column names as nested objects (``properties.total`` → ``{"properties":
    {"total": …}}``); empty CSV cells are dropped. JSON rows pass through unchanged."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and value == "" and "." in key):
            continue
        if "." not in key:
            out[key] = value
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out
