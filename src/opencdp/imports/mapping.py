"""Import mappings: which source column becomes which OpenCDP field, and how (pure).

A mapping is a small YAML document (see ``docs/import.md`` and ``examples/mappings/``)::

    kind: orders                      # customers | orders | products | events
    format: csv                       # csv | jsonl | parquet | whitespace (default: by extension)
    key: [ID]                         # natural key columns; "$row" = the row number
    constants: {currency: USD}        # values every row gets (source name, currency, …)
    fields:                           # OpenCDP field -> a column spec
      order_id: ID
      timestamp: {column: Purchase Date, type: datetime, format: "%b %d, %Y %I:%M:%S %p"}
    items: {sku: SKU, quantity: {column: Qty, type: int}}   # one row per line item
    traits: {group: Customer Group}   # extra traits (customers) / context.traits (orders)
    properties: {channel: Purchase Point}                  # extra event properties

:func:`parse_mapping` validates everything up front and raises
:class:`~opencdp.errors.ConfigurationError` naming the offending key, so a typo fails before a
single row is read, not at row 3,000,000.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from opencdp.errors import ConfigurationError
from opencdp.imports.notation import DEFAULT_NOTATION, Notation, notation_for

KINDS: Final = ("customers", "orders", "products", "events")
FORMATS: Final = ("csv", "jsonl", "parquet", "whitespace")
TYPES: Final = (
    "string",
    "int",
    "decimal",
    "float",
    "bool",
    "date",
    "datetime",
    "email",
    "phone",
    "json",
)
#: What happens to a value that does not convert: reject the row (quarantine it), import the
#: row without the value, or keep the value as written (only sensible for e-mail and phone).
ON_INVALID: Final = ("reject", "null", "keep")
#: The pseudo column holding a row's number: the only natural key a file without ids has.
ROW_COLUMN: Final = "$row"

# The fields each kind understands; anything else under ``fields`` is a typo.
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "customers": (
        "user_id",
        "anonymous_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "created_at",
        "timestamp",
        "birthday",
        "gender",
        "company",
        "city",
        "country",
        "postal_code",
        "street",
        "state",
    ),
    "orders": (
        "order_id",
        "user_id",
        "anonymous_id",
        "email",
        "phone",
        "timestamp",
        "total",
        "revenue",
        "subtotal",
        "shipping",
        "tax",
        "discount",
        "coupon",
        "currency",
        "status",
        "affiliation",
    ),
    "products": (
        "id",
        "sku",
        "name",
        "category",
        "brand",
        "price",
        "currency",
        "url",
        "image_url",
        "quantity",
    ),
    "events": (
        "type",
        "event",
        "message_id",
        "user_id",
        "anonymous_id",
        "email",
        "timestamp",
        "name",
        "group_id",
    ),
}
ITEM_FIELDS: Final = ("product_id", "sku", "name", "price", "quantity", "category", "brand")

# Sensible default types, so that `email: Customer Email` is enough.
DEFAULT_TYPES: Final[dict[str, str]] = {
    "email": "email",
    "phone": "phone",
    "timestamp": "datetime",
    "created_at": "datetime",
    "birthday": "date",
    "total": "decimal",
    "revenue": "decimal",
    "subtotal": "decimal",
    "shipping": "decimal",
    "tax": "decimal",
    "discount": "decimal",
    "price": "decimal",
    "quantity": "int",
}
# Fields that name the customer an order or event belongs to, by priority.
CUSTOMER_REF_FIELDS: Final = ("user_id", "email", "anonymous_id")
_KEY_FIELD: Final = {
    "customers": "user_id",
    "orders": "order_id",
    "products": "id",
    "events": "message_id",
}
_TOP_KEYS: Final = frozenset(
    {
        "version",
        "kind",
        "format",
        "description",
        "csv",
        "columns",
        "key",
        "constants",
        "fields",
        "items",
        "traits",
        "properties",
        "phone_region",
        "timezone",
        "event",
        "library",
        "locale",
        "decimal",
        "thousands",
        "status_events",
    }
)
_SPEC_KEYS: Final = frozenset(
    {
        "column",
        "value",
        "type",
        "format",
        "required",
        "default",
        "invalid",
        "timezone",
        "locale",
        "decimal",
        "thousands",
    }
)
_NUMERIC: Final = frozenset({"int", "decimal", "float"})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where one OpenCDP field comes from: a column (converted to ``type``) or a constant."""

    target: str
    column: str | None = None
    value: Any = None
    type: str = "string"
    format: str | None = None
    required: bool = False
    default: Any = None
    invalid: str = "reject"
    #: How numbers are written in the column (decimal and thousands separators).
    notation: Notation = DEFAULT_NOTATION

    @property
    def source(self) -> str:
        """How error messages name where the value came from."""
        return f"column {self.column!r}" if self.column is not None else f"constant {self.target}"


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How a delimited text file is read."""

    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ImportMapping:
    """A validated mapping. ``digest`` identifies its content (part of an import run's id)."""

    kind: str
    format: str | None
    key: tuple[str, ...]
    fields: dict[str, FieldSpec]
    items: dict[str, FieldSpec] = field(default_factory=dict)
    traits: dict[str, FieldSpec] = field(default_factory=dict)
    properties: dict[str, FieldSpec] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    csv: CsvOptions = field(default_factory=CsvOptions)
    phone_region: str = "US"
    timezone: str = "UTC"
    event: str = "Order Completed"
    #: Order status (lower case) -> the event such an order becomes instead of ``event``.
    status_events: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    name: str = "mapping"
    #: The mapping document as written (a run stores it, so its rows can be converted again).
    document: MappingABC[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def passthrough(self) -> bool:
        """True for an ``events`` mapping without fields: rows are Segment messages already."""
        return self.kind == "events" and not self.fields

    def key_columns(self) -> tuple[str, ...]:
        """The columns (or ``$row``) whose values identify a record."""
        return self.key

    def customer_ref(self) -> FieldSpec | None:
        """The field naming the customer of an order or event (for orphan checks)."""
        for name in CUSTOMER_REF_FIELDS:
            spec = self.fields.get(name)
            if spec is not None and spec.column is not None:
                return spec
        return None

    def all_specs(self) -> list[FieldSpec]:
        """Every column spec of the mapping (fields, items, traits, properties)."""
        return [
            *self.fields.values(),
            *self.items.values(),
            *self.traits.values(),
            *self.properties.values(),
        ]

    def check_columns(self, available: Sequence[str], file_name: str) -> None:
        """Refuse a mapping that names columns the file does not have: a typo would otherwise
        drop the field from every row without a word. Raises ConfigurationError listing the
        file's columns (and the closest name, when there is one)."""
        have = set(available)
        missing = sorted(self.mapped_columns() - have)
        if not missing:
            return
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigurationError(
            f"{self.name}: {file_name} has no column {', '.join(hints)}; its columns are: "
            f"{', '.join(repr(c) for c in available)}. Fix the column names in the mapping.",
            code="invalid_mapping",
        )

    def mapped_columns(self) -> set[str]:
        """The source columns the mapping reads."""
        cols = {s.column for s in self.all_specs() if s.column is not None}
        return cols | {k for k in self.key if k != ROW_COLUMN}


def load_mapping(path: str | Path, *, kind: str | None = None) -> ImportMapping:
    """Read and validate a YAML mapping file (see :func:`parse_mapping`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read mapping {p}: {exc.strerror or exc}") from None
    return parse_mapping(text, kind=kind, name=p.name)


def parse_mapping(text: str, *, kind: str | None = None, name: str = "mapping") -> ImportMapping:
    """Validate a YAML mapping document and return it compiled.

    ``kind`` is the kind the command imports; a mapping that names another kind is refused.
    Every problem raises :class:`ConfigurationError` naming the mapping and the key at fault.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{name}: not valid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigurationError(f"{name}: a mapping must be a YAML object of keys")
    return compile_mapping(doc, kind=kind, name=name, text=text)


def compile_mapping(
    doc: MappingABC[str, Any], *, kind: str | None = None, name: str = "mapping", text: str = ""
) -> ImportMapping:
    """Validate an already-parsed mapping document (see :func:`parse_mapping`)."""

    def fail(where: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{name}: {where}: {problem}", code="invalid_mapping")

    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    declared = doc.get("kind", kind)
    if declared not in KINDS:
        raise fail("kind", f"must be one of {', '.join(KINDS)}, got {declared!r}")
    if kind is not None and declared != kind:
        raise fail("kind", f"this mapping imports {declared}, not {kind}")
    fmt = doc.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise fail("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    constants = doc.get("constants") or {}
    if not isinstance(constants, dict):
        raise fail("constants", "must be an object of name: value")
    tz = doc.get("timezone", "UTC")
    if not isinstance(tz, str):
        raise fail("timezone", "must be an IANA name such as Europe/Berlin")

    numbers = _notation(doc, "", fail, DEFAULT_NOTATION)

    def specs(section: str, allowed: tuple[str, ...] | None) -> dict[str, FieldSpec]:
        raw = doc.get(section) or {}
        if not isinstance(raw, dict):
            raise fail(section, "must be an object of field: column")
        out: dict[str, FieldSpec] = {}
        for target, spec in raw.items():
            if not isinstance(target, str) or not target:
                raise fail(section, f"field names must be strings, got {target!r}")
            if allowed is not None and target not in allowed:
                raise fail(
                    f"{section}.{target}",
                    f"unknown field for {declared}; expected one of {', '.join(allowed)}",
                )
            out[target] = _spec(target, spec, f"{section}.{target}", fail, numbers)
        return out

    fields = specs("fields", FIELDS[declared])
    items = specs("items", ITEM_FIELDS)
    if items and declared != "orders":
        raise fail("items", "line items belong to orders")
    if items and not any(k in items for k in ("product_id", "sku")):
        raise fail("items", "line items need product_id or sku")
    traits = specs("traits", None)
    properties = specs("properties", None)

    columns = doc.get("columns") or []
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise fail("columns", "must be a list of column names")
    csv_raw = doc.get("csv") or {}
    if not isinstance(csv_raw, dict) or set(csv_raw) - {"delimiter", "quote", "header", "encoding"}:
        raise fail("csv", "allowed keys are delimiter, quote, header, encoding")
    csv = CsvOptions(**csv_raw)
    if len(csv.delimiter) != 1:
        raise fail("csv.delimiter", "must be one character (use \\t for tabs)")
    if not csv.header and not columns:
        raise fail("columns", "a file without a header row needs its column names here")

    key_raw = doc.get("key")
    if key_raw is None:
        default = fields.get(_KEY_FIELD[declared])
        if default is not None and default.column is not None:
            key: tuple[str, ...] = (default.column,)
        elif declared == "events":
            key = ()  # pass-through events: their own messageId, else the row number
        else:
            raise fail(
                "key",
                f"say which columns identify a {declared[:-1]} (or map "
                f'fields.{_KEY_FIELD[declared]}); use ["$row"] for files without ids',
            )
    else:
        key = tuple([key_raw] if isinstance(key_raw, str) else key_raw)
        if not key or not all(isinstance(k, str) and k for k in key):
            raise fail("key", "must be a column name or a list of them")

    if declared == "customers" and fields and not ({"user_id", "anonymous_id"} & set(fields)):
        raise fail("fields", "customers need user_id (or anonymous_id) to become profiles")
    if declared == "orders":
        if "timestamp" not in fields:
            raise fail("fields.timestamp", "orders need their date (historical time is kept)")
        if not set(CUSTOMER_REF_FIELDS) & set(fields):
            raise fail("fields", "orders need user_id, email or anonymous_id")
    if declared == "products" and "id" not in fields and "sku" not in fields:
        raise fail("fields.id", "products need id (or sku)")

    event = doc.get("event", "Order Completed")
    if not isinstance(event, str) or not event.strip():
        raise fail("event", "must be a non-empty event name")
    status_events = doc.get("status_events") or {}
    if not isinstance(status_events, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in status_events.items()
    ):
        raise fail("status_events", "must be an object of status: event name")
    if status_events and declared != "orders":
        raise fail("status_events", "only orders have a status")
    region = doc.get("phone_region", "US")
    if not isinstance(region, str) or len(region) != 2:
        raise fail("phone_region", "must be a two-letter region code such as US or DE")
    digest = hashlib.sha256((text or repr(sorted(doc.items(), key=str))).encode()).hexdigest()
    return ImportMapping(
        kind=declared,
        format=fmt,
        key=key,
        fields=fields,
        items=items,
        traits=traits,
        properties=properties,
        constants=dict(constants),
        columns=tuple(columns),
        csv=csv,
        phone_region=region.upper(),
        timezone=tz,
        event=event.strip(),
        status_events={k.strip().lower(): v.strip() for k, v in status_events.items()},
        digest=digest[:32],
        name=name,
        document=dict(doc),
    )


def _notation(doc: MappingABC[str, Any], where: str, fail: Any, base: Notation) -> Notation:
    """The number notation ``doc`` declares (``locale``, ``decimal``, ``thousands``) over
    ``base``; the mapping's top level gives the default of its columns."""
    given = {k: doc.get(k) for k in ("locale", "decimal", "thousands") if doc.get(k) is not None}
    if not given:
        return base
    for key, value in given.items():
        if not isinstance(value, str):
            raise fail(f"{where}{key}", 'must be text, e.g. locale: de_DE or decimal: ","')
    try:
        if "locale" in given:
            return notation_for(given["locale"], given.get("decimal"), given.get("thousands"))
        return notation_for(
            None, given.get("decimal", base.decimal), given.get("thousands", base.thousands)
        )
    except ConfigurationError as exc:
        raise fail(f"{where}{next(iter(given))}", exc.message) from None


def _spec(target: str, raw: Any, where: str, fail: Any, numbers: Notation) -> FieldSpec:
    default_type = DEFAULT_TYPES.get(target, "string")
    if isinstance(raw, str):
        return FieldSpec(
            target,
            column=raw,
            type=default_type,
            invalid=_default_invalid(default_type),
            notation=numbers,
        )
    if not isinstance(raw, dict):
        raise fail(where, "must be a column name or an object with column/value")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise fail(where, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_SPEC_KEYS))}")
    if ("column" in raw) == ("value" in raw):
        raise fail(where, "give exactly one of column (read from the file) or value (a constant)")
    column = raw.get("column")
    if column is not None and (not isinstance(column, str) or not column):
        raise fail(f"{where}.column", "must be a column name")
    typ = raw.get("type", default_type)
    if typ not in TYPES:
        raise fail(f"{where}.type", f"must be one of {', '.join(TYPES)}, got {typ!r}")
    fmt = raw.get("format")
    if fmt is not None:
        if typ not in ("date", "datetime"):
            raise fail(f"{where}.format", "only date and datetime fields take a format")
        if not isinstance(fmt, str):
            raise fail(f"{where}.format", "must be a strptime format, iso, yyyymmdd or unix")
        if fmt not in ("iso", "yyyymmdd", "unix", "unix_ms"):
            try:
                sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC).strftime(fmt)
                datetime.strptime(sample, fmt)  # noqa: DTZ007 - only checks the format
            except ValueError as exc:
                raise fail(
                    f"{where}.format", f"{fmt!r} is not a usable strptime format: {exc}"
                ) from None
    invalid = raw.get("invalid", _default_invalid(typ))
    if invalid not in ON_INVALID:
        raise fail(f"{where}.invalid", f"must be one of {', '.join(ON_INVALID)}")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise fail(f"{where}.required", "must be true or false")
    notation = _notation(raw, f"{where}.", fail, numbers)
    if notation is not numbers and typ not in _NUMERIC:
        raise fail(
            f"{where}.{next(k for k in ('locale', 'decimal', 'thousands') if k in raw)}",
            "only int, decimal and float fields take a number notation",
        )
    return FieldSpec(
        target,
        column=column,
        value=raw.get("value"),
        type=typ,
        format=fmt,
        required=required,
        default=raw.get("default"),
        invalid=invalid,
        notation=notation,
    )


def _default_invalid(typ: str) -> str:
    # A mistyped e-mail or phone should not cost the customer's whole record: keep the value as
    # written (identity resolution ignores it, the check report counts it). A date or amount that
    # does not parse would silently change history, so the row goes to quarantine instead.
    return "keep" if typ in ("email", "phone") else "reject"
