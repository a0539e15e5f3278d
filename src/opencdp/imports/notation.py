"""How a file writes its numbers: decimal and thousands separators, currency signs (pure).

``1.234,50`` is one thousand two hundred thirty-four and a half in Germany and nonsense in the
US; dropping the comma (as a lenient parser does) stores 1.2345 without a word. So a number is
read strictly in the notation its mapping declares (``locale: de_DE``, or ``decimal: ","`` and
``thousands: "."``; the default is ``1,234.56``): thousands separators only between groups of
three digits, at most one decimal separator, after them. Anything else is an error that names
the notation, and the row goes to quarantine with its row and column.

A currency sign or ISO code before or after the number (``€1.234,50``, ``12,99 €``,
``EUR 5``) is read off and returned, so the importer can check it against the order's currency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

from babel import Locale, UnknownLocaleError
from babel.numbers import get_decimal_symbol, get_group_symbol

from opencdp.errors import ConfigurationError

#: Signs and the currencies each may stand for ("$" is many dollars).
CURRENCY_SIGNS: Final[dict[str, frozenset[str]]] = {
    "€": frozenset({"EUR"}),
    "£": frozenset({"GBP"}),
    "¥": frozenset({"JPY", "CNY"}),
    "₹": frozenset({"INR"}),
    "₩": frozenset({"KRW"}),
    "₺": frozenset({"TRY"}),
    "zł": frozenset({"PLN"}),
    "kr": frozenset({"SEK", "NOK", "DKK", "ISK"}),
    "Fr.": frozenset({"CHF"}),
    "$": frozenset({"USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN"}),
    "US$": frozenset({"USD"}),
    "C$": frozenset({"CAD"}),
    "A$": frozenset({"AUD"}),
}
_SPACES: Final = " \u00a0\u202f\u2009"
_MINUS: Final = "\u2212"  # the typographic minus sign
_SIGN_PATTERN: Final = "|".join(re.escape(s) for s in sorted(CURRENCY_SIGNS, key=len, reverse=True))
# A sign or a three-letter code, before or after the number (with optional spaces).
_MONEY: Final = re.compile(
    rf"^(?P<pre>{_SIGN_PATTERN}|[A-Z]{{3}})?[{_SPACES}]*(?P<num>.*?)[{_SPACES}]*"
    rf"(?P<post>{_SIGN_PATTERN}|[A-Z]{{3}})?$",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Notation:
    """Decimal and thousands separators of a file's numbers."""

    decimal: str = "."
    thousands: str = ","

    def __post_init__(self) -> None:
        if len(self.decimal) != 1 or len(self.thousands) > 1:
            raise ConfigurationError("decimal is one character; thousands is one or none")
        if self.decimal == self.thousands or self.decimal.isdigit() or self.thousands.isdigit():
            raise ConfigurationError(
                f"decimal {self.decimal!r} and thousands {self.thousands!r} must be "
                "different characters and not digits"
            )

    @property
    def example(self) -> str:
        """``1,234.56`` in this notation (for messages)."""
        return f"1{self.thousands}234{self.decimal}56"

    def parse(self, text: str) -> tuple[Decimal, frozenset[str]]:
        """The number in ``text`` and the currencies its sign allows (empty: no sign).

        Raises ``ValueError`` saying what is wrong and which notation was expected.
        """
        return _parse(text, self.decimal, self.thousands)


DEFAULT_NOTATION: Final = Notation()


def notation_for(
    locale: str | None = None, decimal: str | None = None, thousands: str | None = None
) -> Notation:
    """The notation of ``locale`` (``de_DE``, ``fr-FR``; Babel's data) with ``decimal`` and
    ``thousands`` overriding it; the default is ``1,234.56``. Raises ConfigurationError."""
    base = DEFAULT_NOTATION
    if locale is not None:
        try:
            parsed = Locale.parse(locale.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            raise ConfigurationError(
                f"unknown locale {locale!r}: use a name such as de_DE, fr_FR or en_US"
            ) from None
        group = get_group_symbol(parsed)
        # French and Swiss group with (narrow) no-break spaces; people type plain spaces too.
        base = Notation(get_decimal_symbol(parsed), " " if group in _SPACES else group)
    return Notation(
        decimal if decimal is not None else base.decimal,
        thousands if thousands is not None else base.thousands,
    )


@lru_cache(maxsize=8192)
def _parse(text: str, decimal: str, thousands: str) -> tuple[Decimal, frozenset[str]]:
    shown = text if len(text) <= 60 else text[:57] + "…"
    expected = f"1{thousands}234{decimal}56"
    stripped = text.strip(_SPACES)
    outer = ""
    # A sign outside the currency mark (``-€0.01``, ``-$5``) belongs to the number.
    if stripped[:1] in ("-", "+", _MINUS) and stripped[1:2] and not stripped[1:2].isdigit():
        outer, stripped = stripped[0], stripped[1:].lstrip(_SPACES)
    match = _MONEY.match(stripped)
    assert match is not None  # the pattern matches every string
    pre, number, post = match["pre"], match["num"], match["post"]
    if pre and post:
        raise ValueError(f"{shown!r} has two currency marks")
    mark = pre or post
    currencies = CURRENCY_SIGNS.get(mark, frozenset({mark})) if mark else frozenset()
    if outer and not pre:
        number = outer + number  # not outside a mark after all: read it as written
        outer = ""
    negative = outer in ("-", _MINUS)
    if outer:
        pass  # one sign only: a second one leaves the number unreadable below
    elif number.startswith("(") and number.endswith(")"):  # accounting negatives
        negative, number = True, number[1:-1].strip(_SPACES)
    elif number and number[0] in "-+" + _MINUS:
        negative, number = number[0] in "-" + _MINUS, number[1:].strip(_SPACES)
    elif number and number[-1] in "-" + _MINUS:
        negative, number = True, number[:-1].strip(_SPACES)
    if thousands == " ":
        for space in _SPACES[1:]:
            number = number.replace(space, " ")
    digits = _strict(number, decimal, thousands)
    if digits is None:
        raise ValueError(
            f"{shown!r} is not a number written as {expected} (decimal {decimal!r}, thousands "
            f"{thousands!r}); set locale, or decimal and thousands, in the mapping"
        )
    try:
        value = Decimal(digits)
    except InvalidOperation:  # pragma: no cover - _strict only lets digits through
        raise ValueError(f"{shown!r} is not a number") from None
    return (-value if negative else value), currencies


@lru_cache(maxsize=64)
def _number_pattern(decimal: str, thousands: str) -> re.Pattern[str]:
    d, t = re.escape(decimal), re.escape(thousands)
    grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+" if thousands else r"(?!)"
    return re.compile(rf"^(?:(?P<int>{grouped}|\d+)(?:{d}(?P<frac>\d*))?|{d}(?P<only>\d+))$")


def _strict(number: str, decimal: str, thousands: str) -> str | None:
    """``number`` as plain digits with a ``.`` decimal point, or None when it does not follow
    the notation."""
    match = _number_pattern(decimal, thousands).match(number)
    if match is None:
        return None
    if match["only"] is not None:
        return "0." + match["only"]
    whole = match["int"].replace(thousands, "") if thousands else match["int"]
    frac = match["frac"]
    return f"{whole}.{frac}" if frac else whole
