"""Numbers in the notation a mapping declares, and currency signs (imports/notation.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency, format_decimal
from hypothesis import given
from hypothesis import strategies as st

from opencdp.errors import ConfigurationError
from opencdp.imports.mapping import parse_mapping
from opencdp.imports.notation import DEFAULT_NOTATION, notation_for
from opencdp.imports.values import convert_value, currency_marks

GERMAN = notation_for("de_DE")


@pytest.mark.parametrize(
    ("text", "value", "currencies"),
    [
        ("€1.234,50", "1234.50", {"EUR"}),
        ("12,99 €", "12.99", {"EUR"}),
        ("1,5", "1.5", set()),
        ("-1.000", "-1000", set()),
        ("(3,50)", "-3.50", set()),
        ("EUR 5", "5", {"EUR"}),
        ("1.234.567,8", "1234567.8", set()),
    ],
)
def test_german_notation(text: str, value: str, currencies: set[str]) -> None:
    assert GERMAN.parse(text) == (Decimal(value), frozenset(currencies))


@pytest.mark.parametrize("text", ["€1.234,50", "12,99 €", "1,5", "12,34.5x", "1,2345", "€ $ 5"])
def test_what_the_default_notation_cannot_read_is_an_error_not_a_guess(text: str) -> None:
    # The trial: these became 1.2345, 1299 and 15 without a word
    with pytest.raises(ValueError, match=r"written as 1,234\.56"):
        DEFAULT_NOTATION.parse(text)


def test_default_notation_reads_us_amounts() -> None:
    assert DEFAULT_NOTATION.parse("$1,234.50")[0] == Decimal("1234.50")
    assert "USD" in DEFAULT_NOTATION.parse("$1,234.50")[1]
    assert DEFAULT_NOTATION.parse("1234.5") == (Decimal("1234.5"), frozenset())


def test_french_groups_with_spaces() -> None:
    assert notation_for("fr_FR").parse("1\u202f234,50 €")[0] == Decimal("1234.50")
    assert notation_for("fr_FR").parse("1 234,50")[0] == Decimal("1234.50")


def test_a_sign_outside_the_currency_mark_is_the_numbers_sign() -> None:
    assert DEFAULT_NOTATION.parse("-€0.01") == (Decimal("-0.01"), frozenset({"EUR"}))
    assert DEFAULT_NOTATION.parse("\u2212EUR 3")[0] == Decimal("-3")
    assert DEFAULT_NOTATION.parse("-.5")[0] == Decimal("-0.5")
    with pytest.raises(ValueError):
        DEFAULT_NOTATION.parse("-€-5")  # two signs


def test_unknown_locale_and_bad_separators_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown locale"):
        notation_for("xx_YY")
    with pytest.raises(ConfigurationError):
        notation_for(None, ",", ",")


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
    # not de_CH: Babel 2.19 writes 10**9 there as "1000000'000.00", which no notation reads
    st.sampled_from(["de_DE", "en_US", "fr_FR", "pt_BR", "nl_NL", "it_IT", "es_ES"]),
)
def test_babel_formatted_numbers_read_back_exactly(value: Decimal, locale: str) -> None:
    notation = notation_for(locale)
    text = format_decimal(value, format="#,##0.00", locale=locale)
    assert notation.parse(text)[0] == value
    money = format_currency(value, "EUR", locale=locale)
    assert notation.parse(money) == (value, frozenset({"EUR"}))


def test_a_mapping_declares_the_notation_and_columns_may_override_it() -> None:
    mapping = parse_mapping(
        """
kind: orders
locale: de_DE
fields:
  order_id: ID
  user_id: Kunde
  timestamp: Datum
  total: Summe
  shipping: {column: Versand, type: decimal, decimal: ".", thousands: ""}
"""
    )
    total, shipping = mapping.fields["total"], mapping.fields["shipping"]
    assert convert_value(total, "1.234,50 €") == Decimal("1234.50")
    assert currency_marks(total, "1.234,50 €") == frozenset({"EUR"})
    assert convert_value(shipping, "4.95") == Decimal("4.95")
    with pytest.raises(ValueError):
        convert_value(shipping, "4,95")


def test_a_notation_on_a_text_field_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="only int, decimal and float"):
        parse_mapping("kind: customers\nfields:\n  user_id: {column: ID, locale: de_DE}\n")
