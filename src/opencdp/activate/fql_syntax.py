"""The first step of Segment's Filter Query Language (FQL): text → a small AST, the errors
that refuse a condition at configuration time, and lint warnings (pure).

The grammar (the digest's §1.2 with OpenCDP's precedence, §7.1)::

    condition  = "all" | expr
    expr       = and {"or" and}
    and        = comparison {"and" comparison}
    comparison = unary [("=" | "!=" | "<" | "<=" | ">" | ">=" | "in") unary]
    unary      = "!" unary | atom
    atom       = string | number | "true" | "false" | "null" | path
               | name "(" [expr {"," expr}] ")" | "[" [expr {"," expr}] "]" | "(" expr ")"

so ``!`` binds tighter than a comparison, a comparison tighter than ``and``, and ``and`` tighter
than ``or``. Comparisons do not chain (``a = b = c`` is an error).

Lexical rules:

* A path is dot-separated keys. A key holds ``A-Za-z0-9_-``; any other character, a dot
  included, is escaped with a backslash (``properties.product\\ 1.price``). The first key starts
  with a letter, ``_`` or an escape, so ``5`` is a number and ``-5`` too.
* Strings are in single or double quotes. Inside, ``\\\\``, ``\\'`` and ``\\"`` stand for the
  character after the backslash; any other backslash is kept as written, so a glob escape
  needs no doubling (``match(s, 'ab\\*d')``). Segment's trigger editor writes values raw.
* Numbers: ``42``, ``-3.5``, ``+1``, ``2e3``. Keywords (``and or in true false null``) are
  lowercase and reserved: a top-level field named ``in`` is written ``\\in``.

A condition is refused with :class:`ConditionError` when it does not parse, names an unknown
function or gives one the wrong number of arguments, is empty (write ``all``), longer than
:data:`MAX_CONDITION_LENGTH` or nested deeper than :data:`MAX_DEPTH`. The error says where
(``offset``, line and column) and what was expected.

Warnings (the condition is still accepted): ``and`` and ``or`` mixed at one level without
parentheses (Segment's trigger editor keeps the last conjunction it sees, so it reads them
differently), ``!x = y`` (which compares ``!x``), and comparisons that can never be true
(``x > "5"``, ``x in "abc"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive, v_args

from opencdp.errors import RequestError

#: The longest condition accepted, in characters.
MAX_CONDITION_LENGTH: Final = 20_000
#: The deepest nesting accepted (parentheses, ``!``, lists, calls).
MAX_DEPTH: Final = 64
#: Every function, and how many arguments it takes.
FUNCTIONS: Final[dict[str, int]] = {
    "contains": 2,
    "match": 2,
    "length": 1,
    "lowercase": 1,
    "uppercase": 1,
    "snakecase": 1,
    "kebabcase": 1,
    "titlecase": 1,
    "typeof": 1,
    "bool": 1,
    "string": 1,
    "number": 1,
}
#: The comparison operators that need numbers on both sides.
ORDERINGS: Final = frozenset({"<", "<=", ">", ">="})

_KEYWORDS: Final = ("and", "or", "in", "true", "false", "null")
# A keyword ends where a path could not go on.
_END: Final = r"(?![A-Za-z0-9_\-\\.])"
_KEY_START: Final = r"(?:[A-Za-z_]|\\[\s\S])"
_KEY_CHAR: Final = r"(?:[A-Za-z0-9_\-]|\\[\s\S])"

_GRAMMAR: Final = rf"""
start: expr

?expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: comparison (_AND comparison)*
?comparison: unary ((CMP | IN) unary)?
?unary: BANG unary                       -> not_
      | atom
?atom: STRING                            -> string
     | NUMBER                            -> number
     | TRUE                              -> true
     | FALSE                             -> false
     | NULL                              -> null
     | PATH                              -> path
     | PATH _LPAR [arguments] _RPAR      -> call
     | LSQB [arguments] _RSQB            -> list_
     | _LPAR expr _RPAR                  -> group
arguments: expr (_COMMA expr)*

_OR.2: /or{_END}/
_AND.2: /and{_END}/
IN.2: /in{_END}/
TRUE.2: /true{_END}/
FALSE.2: /false{_END}/
NULL.2: /null{_END}/
PATH: /(?!(?:{"|".join(_KEYWORDS)}){_END}){_KEY_START}{_KEY_CHAR}*(?:\.{_KEY_CHAR}+)*/
NUMBER: /[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\]|\\[\s\S])*"/ | /'(?:[^'\\]|\\[\s\S])*'/
CMP: "!=" | "<=" | ">=" | "=" | "<" | ">"
BANG: "!"
LSQB: "["
_RSQB: "]"
_LPAR: "("
_RPAR: ")"
_COMMA: ","

%ignore /\s+/
"""

_PARSER: Final = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

# What each terminal is called in an error, in the order errors list them.
_NAMES: Final = {
    "CMP": "a comparison (= != < <= > >=)",
    "IN": "'in'",
    "_AND": "'and'",
    "_OR": "'or'",
    "_LPAR": "'('",
    "_COMMA": "','",
    "_RPAR": "')'",
    "_RSQB": "']'",
    "$END": "the end of the condition",
}
_VALUE_START: Final = frozenset(
    {"PATH", "STRING", "NUMBER", "TRUE", "FALSE", "NULL", "LSQB", "_LPAR", "BANG"}
)
_A_VALUE: Final = (
    "a value (a field path, function call, string, number, true, false, null or list), '!' or '('"
)


class ConditionError(RequestError):
    """A condition OpenCDP cannot use, refused when it is configured (400).

    ``offset`` is the 0-based character offset of the problem in the text; ``line`` and
    ``column`` (1-based) say the same for people, and the message starts with them.
    """

    code = "invalid_condition"
    status = 400

    def __init__(self, message: str, *, text: str | None = None, offset: int | None = None):
        self.reason = message
        self.offset = offset
        self.line: int | None = None
        self.column: int | None = None
        if text is not None and offset is not None:
            self.line, self.column = line_column(text, offset)
            message = f"line {self.line}, column {self.column}: {message}"
        super().__init__(message)


# -- the AST ---------------------------------------------------------------------------------------
# ``offset`` (where the node starts in the text) is not part of a node's identity.


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, a number (int or float), ``true``, ``false`` or ``null``."""

    value: str | int | float | bool | None
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Path:
    """A field of the event, as its keys (``context.library.name`` → three keys)."""

    keys: tuple[str, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ListOf:
    """``[a, b]``; the items are expressions."""

    items: tuple[Node, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args)``: one of :data:`FUNCTIONS`, with as many arguments as it takes."""

    name: str
    args: tuple[Node, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; ``op`` is one of ``= != < <= > >= in``."""

    op: str
    left: Node
    right: Node
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    offset: int = field(default=0, compare=False)


Node: TypeAlias = Literal | Path | ListOf | Call | Not | Compare | And | Or


@dataclass(frozen=True, slots=True)
class Parsed:
    """A condition's AST and its lint warnings (each starting with line and column)."""

    root: Node
    warnings: tuple[str, ...] = ()


def parse(text: str) -> Parsed:
    """The AST of ``text``; ``all`` is the literal ``true``. Raises :class:`ConditionError`."""
    stripped = text.strip()
    if not stripped:
        raise ConditionError(
            "the condition is empty; write 'all' to match every event", text=text, offset=0
        )
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"the condition is longer than {MAX_CONDITION_LENGTH} characters",
            text=text,
            offset=MAX_CONDITION_LENGTH,
        )
    if stripped == "all":
        return Parsed(Literal(True, text.index("all")))
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise syntax_error(exc, text) from None
    _check_depth(tree, text)
    builder = _Builder(text)
    try:
        root = builder.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ConditionError):
            raise exc.orig_exc from None
        raise
    warnings = tuple(message for _, message in sorted(builder.warnings))
    return Parsed(root, warnings)


# -- errors ----------------------------------------------------------------------------------------


def syntax_error(exc: UnexpectedInput, text: str) -> ConditionError:
    """A Lark error in FQL's words: what was found, and what was expected instead."""
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream or 0
        char = text[offset]
        if char in "'\"":
            return ConditionError(
                f"unterminated string; expected a closing {char} to match this one",
                text=text,
                offset=offset,
            )
        message = f"unexpected character {char!r}"
        if char in "&|":
            message += f"; write '{'and' if char == '&' else 'or'}'"
        elif char == ".":
            message += "; a path has a key on both sides of every dot"
        else:
            message += (
                "; a field name with characters other than A-Z a-z 0-9 _ - escapes them "
                "with a backslash (properties.product\\ 1)"
            )
        return ConditionError(message, text=text, offset=offset)
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            offset, found = len(text.rstrip()), "end of the condition"
        else:
            offset, found = token.start_pos or 0, repr(str(token))
        message = f"unexpected {found}"
        parser = exc.interactive_parser
        # The parser's exact choices; LALR's lookahead sets (exc.expected) hold extras.
        accepts = parser.accepts() if parser is not None else exc.expected  # type: ignore[no-untyped-call]
        expected = _expected(accepts)
        if expected:
            message += f"; expected {expected}"
        if token.type == "PATH" and str(token).lower() in _KEYWORDS:
            message += f" (keywords are lowercase: {str(token).lower()})"
        elif token.type == "CMP" and text[offset - 1 : offset + 1] == "==":
            message += " (FQL writes equality with a single '=')"
        return ConditionError(message, text=text, offset=offset)
    return ConditionError("the condition ends too early", text=text, offset=len(text))


def _expected(terminals: Iterable[str]) -> str:
    names = set(terminals)
    phrases: list[str] = []
    if "PATH" in names:
        phrases.append(_A_VALUE)
        names -= _VALUE_START
    phrases += [phrase for name, phrase in _NAMES.items() if name in names]
    return one_of(phrases)


def one_of(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_depth(tree: Tree[Token], text: str) -> None:
    # Compiling and evaluating recurse once per level; keep far from Python's recursion limit.
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConditionError(
                f"the condition is nested more than {MAX_DEPTH} levels deep",
                text=text,
                offset=getattr(node.meta, "start_pos", None),
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


# -- the parse tree → the AST ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Group:
    """A parenthesised expression, until its parent has seen the parentheses (for lint)."""

    node: Node


def _bare(child: Node | _Group) -> Node:
    return child.node if isinstance(child, _Group) else child


class _Builder(Transformer_NonRecursive[Token, Any]):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.warnings: list[tuple[int, str]] = []

    def warn(self, offset: int, message: str) -> None:
        line, column = line_column(self.text, offset)
        self.warnings.append((offset, f"line {line}, column {column}: {message}"))

    def start(self, children: list[Any]) -> Node:
        return _bare(children[0])

    def group(self, children: list[Any]) -> _Group:
        return _Group(_bare(children[0]))

    def string(self, children: list[Token]) -> Literal:
        token = children[0]
        body = token[1:-1]
        if "\\" in body:
            body = re.sub(r"\\([\\'\"])", r"\1", body)
        return Literal(body, token.start_pos or 0)

    def number(self, children: list[Token]) -> Literal:
        token = children[0]
        offset = token.start_pos or 0
        try:
            value: int | float = int(token) if token.lstrip("+-").isdigit() else float(token)
        except ValueError:
            raise ConditionError(
                "this number has too many digits", text=self.text, offset=offset
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConditionError("this number is too large", text=self.text, offset=offset)
        return Literal(value, offset)

    def true(self, children: list[Token]) -> Literal:
        return Literal(True, children[0].start_pos or 0)

    def false(self, children: list[Token]) -> Literal:
        return Literal(False, children[0].start_pos or 0)

    def null(self, children: list[Token]) -> Literal:
        return Literal(None, children[0].start_pos or 0)

    def path(self, children: list[Token]) -> Path:
        token = children[0]
        return Path(path_keys(token), token.start_pos or 0)

    def arguments(self, children: list[Any]) -> list[Node]:
        return [_bare(child) for child in children]

    def call(self, children: list[Any]) -> Call:
        name, args = children[0], children[1] if len(children) > 1 else []
        offset = name.start_pos or 0
        arity = FUNCTIONS.get(str(name))
        if arity is None:
            known = ", ".join(FUNCTIONS)
            raise ConditionError(
                f"unknown function {str(name)!r}; FQL has {known}", text=self.text, offset=offset
            )
        if len(args) != arity:
            plural = "s" if arity > 1 else ""
            raise ConditionError(
                f"{name}() takes {arity} argument{plural}, not {len(args)}",
                text=self.text,
                offset=offset,
            )
        return Call(str(name), tuple(args), offset)

    def list_(self, children: list[Any]) -> ListOf:
        bracket, items = children[0], children[1] if len(children) > 1 else []
        return ListOf(tuple(items), bracket.start_pos or 0)

    def not_(self, children: list[Any]) -> Not:
        return Not(_bare(children[1]), children[0].start_pos or 0)

    @v_args(meta=True)
    def comparison(self, meta: Meta, children: list[Any]) -> Compare:
        left, token, right = _bare(children[0]), children[1], _bare(children[2])
        op, offset = str(token), token.start_pos or 0
        if isinstance(children[0], Not):
            self.warn(
                left.offset,
                f"'!' applies to its operand only, so this compares !… {op} …; "
                f"write !(… {op} …) to negate the comparison",
            )
        if op in ORDERINGS and any(_never_a_number(side) for side in (left, right)):
            self.warn(offset, f"'{op}' compares numbers only, so this is never true")
        if op == "in" and isinstance(right, Literal):
            self.warn(offset, "'in' needs a list on its right, so this is never true")
        return Compare(op, left, right, meta.start_pos)

    @v_args(meta=True)
    def and_expr(self, meta: Meta, children: list[Any]) -> And:
        return And(tuple(_bare(child) for child in children), meta.start_pos)

    @v_args(meta=True)
    def or_expr(self, meta: Meta, children: list[Any]) -> Or:
        operands = tuple(_bare(child) for child in children)
        if any(isinstance(child, And) for child in children):
            self.warn(
                meta.start_pos,
                "'and' and 'or' are mixed without parentheses: 'and' binds tighter, "
                "so this reads as (… and …) or …; Segment's trigger editor reads it "
                "differently, so add parentheses to say which you mean",
            )
        return Or(operands, meta.start_pos)


def _never_a_number(node: Node) -> bool:
    if isinstance(node, Literal):
        return isinstance(node.value, bool) or not isinstance(node.value, int | float)
    return isinstance(node, ListOf | Compare | Not | And | Or)


def path_keys(path: str) -> tuple[str, ...]:
    """The keys of a path as written: dots split, a backslash takes the next character."""
    if "\\" not in path:
        return tuple(path.split("."))
    keys: list[str] = []
    key: list[str] = []
    chars = iter(path)
    for char in chars:
        if char == "\\":
            key.append(next(chars))
        elif char == ".":
            keys.append("".join(key))
            key = []
        else:
            key.append(char)
    keys.append("".join(key))
    return tuple(keys)
