"""The first step of parsing the query language: text → a Lark parse tree, and the errors
every step raises (pure).

The LALR grammar knows the shape of the language (junctions, comparisons, chains of calls,
arguments) but not its vocabulary, which :mod:`opencdp.query.builder` checks. A syntax error
names line, column and what was expected, in the language's words.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

DefinitionKind = Literal["audience", "trait"]
DefinitionType = Literal["USERS", "ACCOUNTS"]

_GRAMMAR: Final = r"""
start: expr

?expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: unary (_AND unary)*
?unary: _NOT unary -> not_
      | _ANY unary -> any_
      | _ALL unary -> all_
      | comparison
?comparison: operand (OP operand)?
?operand: chain
        | literal
        | "(" expr ")"

chain: call ("." call)*
call: NAME "(" [args] ")"
args: arg ("," arg)*
?arg: expr
    | duration
    | expr _AS NAME -> cast
    | NAME ":" arg -> named
    | "{" [args] "}" -> braces
    | "[" [args] "]" -> brackets
duration: NUMBER NAME
literal: STRING | NUMBER | TIMESTAMP | TRUE | FALSE | NULL

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_ANY.2: /any\b/i
_ALL.2: /all\b/i
_AS.2: /as\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
OP: "==" | "!=" | ">=" | "<=" | "=" | ">" | "<"
TIMESTAMP.3: /\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?/
NUMBER: /-?\d+(\.\d+)?/
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""

PARSER: Final = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

_TOKEN_NAMES: Final = {
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "_ANY": "ANY",
    "_ALL": "ALL",
    "_AS": "as",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "OP": "a comparison (= != > >= < <=)",
    "NAME": "a function name",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "TIMESTAMP": "a date or timestamp",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "$END": "the end of the definition",
}


class DefinitionError(ValueError):
    """A definition that cannot be used, with where (1-based line and column) and why."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message)


def syntax_error(exc: UnexpectedInput, query: str) -> DefinitionError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = query[pos] if pos < len(query) else ""
        return DefinitionError(f"unexpected character {char!r}", line, column)
    expected: set[str] = set()
    if isinstance(exc, UnexpectedToken | UnexpectedEOF):
        expected = {_TOKEN_NAMES.get(t, t) for t in exc.expected if not t.startswith("__")}
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        got = "end of the definition" if token.type == "$END" else repr(str(token))
        if token.type == "$END":
            line, column = end_of(query)
        message = f"unexpected {got}"
    else:
        line, column = end_of(query)
        message = "the definition ends too early"
    if expected:
        message += "; expected " + one_of(sorted(expected))
    return DefinitionError(message, line, column)


def end_of(query: str) -> tuple[int, int]:
    lines = query.split("\n")
    return len(lines), len(lines[-1]) + 1


def one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def pos(node: Any) -> tuple[int | None, int | None]:
    if isinstance(node, Token):
        return node.line, node.column
    meta = getattr(node, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column
    return None, None
