"""Redaction of a person's values in text no column ties to them (import reports)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opencdp.privacy.redaction import ERASED, MIN_SEARCHED_LENGTH, needles, redact


def test_needles_are_the_values_as_written_and_as_json_escapes_them() -> None:
    assert needles(['ann "the" o\'hara', "ab", "zoe@example.org"]) == [
        'ann "the" o\'hara',
        'ann \\"the\\" o\'hara',
        "zoe@example.org",
    ]


def test_values_too_short_to_search_are_left_out() -> None:
    assert needles(["x" * (MIN_SEARCHED_LENGTH - 1)]) == []


def test_redact_replaces_every_occurrence_in_any_letter_case() -> None:
    text = "row 3: 'Zoe@Example.org' is not a number; row 9: 'zoe@example.org' neither"
    assert redact(text, ["zoe@example.org"]) == (
        f"row 3: '{ERASED}' is not a number; row 9: '{ERASED}' neither"
    )


def test_a_value_inside_a_longer_one_goes_with_it() -> None:
    assert redact("call +4915112345 now", ["+4915112345", "4915"]) == f"call {ERASED} now"


value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789@.+-_ ", min_size=3, max_size=20)


@given(
    before=st.lists(st.text(max_size=30), min_size=1, max_size=5),
    secret=value.filter(lambda v: v.strip() and v.lower() not in ERASED),
)
def test_no_occurrence_of_the_value_survives(before: list[str], secret: str) -> None:
    text = secret.upper().join(before) + secret
    out = redact(text, needles([secret]))
    assert secret.lower() not in out.lower()
