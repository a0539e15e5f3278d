"""JSON values in SQL for the definition compiler (:mod:`opencdp.storage.definition_sql`):
a value read from JSON (an event's ``payload``, a trait's ``value``) or from a plain column (a
catalog field), as a :class:`Json` that knows its JSON type, raw value, text and number, the
way the reference rules of :mod:`opencdp.query.values` read them (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Numeric, Text, and_, case, cast, func, literal, null
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql import ColumnElement

from opencdp.query.values import NUMERIC_TEXT


@dataclass(frozen=True)
class Json:
    """A JSON value in SQL: ``kind`` is ``number``, ``string``, ``bool``, ``null`` (missing
    too) or ``other``; ``raw`` is the SQL value (text on PostgreSQL; booleans as
    ``'true'``/``'false'`` on SQLite); ``encoded`` its JSON text."""

    kind: ColumnElement[Any]
    raw: ColumnElement[Any]
    encoded: ColumnElement[Any]
    is_pg: bool
    #: SQLite, a value read from JSON: the number SQLite's JSON reader made of a JSON number
    #: (what ``opencdp_number`` would return, without a call into Python for every row)
    native: ColumnElement[Any] | None = None

    def text(self) -> ColumnElement[Any]:
        """The reference text (``true``/``false`` for booleans, ``12`` for 12.0)."""
        if self.is_pg:
            return case(
                (self.kind == "number", cast(cast(self.raw, Numeric), Text)),
                else_=self.raw,
            )
        return func.opencdp_text(self.raw)

    def number(self) -> ColumnElement[Any]:
        """The value as a number when it is one or a numeric string, else NULL."""
        if self.is_pg:
            return case(
                (self.kind == "number", cast(self.raw, Numeric)),
                (
                    and_(
                        self.kind == "string", self.raw.op("~", return_type=Boolean)(NUMERIC_TEXT)
                    ),
                    cast(func.trim(self.raw), Numeric),
                ),
                else_=null(),
            )
        if self.native is not None:
            return case(
                (self.kind == "number", self.native),
                (self.kind == "string", func.opencdp_number(self.raw)),
                else_=null(),
            )
        return case(
            (self.kind.in_(("number", "string")), func.opencdp_number(self.raw)),
            else_=null(),
        )

    def boolean(self) -> ColumnElement[Any]:
        """``'true'`` / ``'false'`` for booleans and strings that say so, else NULL."""
        word = func.lower(func.trim(self.raw))
        return case(
            (self.kind == "bool", self.raw),
            (and_(self.kind == "string", word.in_(("true", "false"))), word),
            else_=null(),
        )

    def string(self) -> ColumnElement[Any]:
        """The raw string of a string value (NULL otherwise), ordered by code point."""
        raw = case((self.kind == "string", self.raw), else_=null())
        return raw.collate("C") if self.is_pg else raw

    def exists(self) -> ColumnElement[bool]:
        return self.kind != "null"


def extract(is_pg: bool, document: Any, path: tuple[str, ...]) -> Json:
    """The JSON value at ``path`` of the JSON text ``document``."""
    if is_pg:
        doc = cast(document, JSONB)
        keys = literal(list(path), ARRAY(Text))
        node = doc.op("#>", return_type=JSONB)(keys)
        kind = func.jsonb_typeof(node)
        return Json(
            case(
                (kind.is_(None), "null"),
                (kind == "boolean", "bool"),
                (kind.in_(("number", "string", "null")), kind),
                else_="other",
            ),
            doc.op("#>>", return_type=Text)(keys),
            cast(node, Text),
            True,
        )
    json_path = "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in path)
    kind = func.json_type(document, json_path)
    return Json(
        case(
            (kind.is_(None), "null"),
            (kind.in_(("integer", "real")), "number"),
            (kind == "text", "string"),
            (kind.in_(("true", "false")), "bool"),
            (kind == "null", "null"),
            else_="other",
        ),
        case(
            (kind == "true", "true"),
            (kind == "false", "false"),
            else_=func.json_extract(document, json_path),
        ),
        document.op("->")(json_path),
        False,
        func.json_extract(document, json_path),
    )
