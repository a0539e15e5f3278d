"""OpenCDP's functions for computed traits (pure): quintile scores, RFM segments, and the
per-profile functions days_since and divide."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.query.functions import RFM_SEGMENTS, apply, quintiles, rfm_segment

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


# -- quintiles ------------------------------------------------------------------------------------


def test_one_to_a_hundred_splits_into_five_equal_fifths() -> None:
    scores = quintiles({f"p{i}": i for i in range(1, 101)})
    assert Counter(scores.values()) == {1: 20, 2: 20, 3: 20, 4: 20, 5: 20}
    assert (scores["p1"], scores["p20"], scores["p21"], scores["p80"], scores["p81"]) == (
        1,
        1,
        2,
        4,
        5,
    )
    assert scores["p100"] == 5


def test_equal_values_get_one_score() -> None:
    # Half the population at 0: they are all in the bottom fifth, none is split off into 2-3
    values = {f"low{i}": 0 for i in range(50)} | {f"high{i}": 10 + i for i in range(50)}
    scores = quintiles(values)
    assert {scores[f"low{i}"] for i in range(50)} == {1}
    # 50 below the first high value: 1 + floor(5 * 50 / 100) = 3
    assert scores["high0"] == 3
    assert scores["high49"] == 5
    # Every score is the same for everyone when all are equal
    assert set(quintiles(dict.fromkeys("abcdefg", "7")).values()) == {1}


def test_numeric_text_ranks_as_a_number_not_as_text() -> None:
    # As text "10" < "9"; as numbers 9 < 10
    scores = quintiles({"a": "9", "b": "10", "c": 1, "d": 2.5, "e": Decimal("100")})
    assert [scores[k] for k in "cdabe"] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("unranked", [None, True, False, [1, 2], {"a": 1}])
def test_nulls_booleans_and_lists_are_not_ranked(unranked: Any) -> None:
    scores = quintiles({"x": unranked, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    assert "x" not in scores
    assert scores == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}


def test_nothing_to_rank_gives_no_scores() -> None:
    assert quintiles({}) == {}
    assert quintiles({"a": None, "b": [1]}) == {}


def test_timestamps_rank_as_times_even_when_their_text_sorts_otherwise() -> None:
    # By text "2024-05-01T09:00:00+05:00" > "2024-05-01T06:00:00Z", but it is 04:00 UTC, earlier
    values = {
        "early_offset": "2024-05-01T09:00:00+05:00",  # 04:00 UTC
        "later_z": "2024-05-01T06:00:00Z",
        "lower_z": "2024-05-01T05:00:00z",
        "plain": "2024-05-01T07:00:00.000Z",
        "latest": "2024-05-02T00:00:00-01:00",  # 01:00 UTC the next day
    }
    scores = quintiles(values)
    assert sorted(scores, key=scores.__getitem__) == [
        "early_offset",
        "lower_z",
        "later_z",
        "plain",
        "latest",
    ]
    assert sorted(scores.values()) == [1, 2, 3, 4, 5]


@given(st.lists(st.one_of(st.integers(-1000, 1000), st.none()), max_size=60))
def test_scores_are_monotone_in_the_value_and_between_one_and_five(
    values: list[int | None],
) -> None:
    scores = quintiles({f"p{i}": v for i, v in enumerate(values)})
    ranked = [(v, scores[f"p{i}"]) for i, v in enumerate(values) if v is not None]
    assert set(scores) == {f"p{i}" for i, v in enumerate(values) if v is not None}
    assert all(1 <= s <= 5 for _, s in ranked)
    ranked.sort()
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(ranked))
    # equal values, equal scores
    by_value: dict[int, set[int]] = {}
    for v, s in ranked:
        by_value.setdefault(v, set()).add(s)
    assert all(len(s) == 1 for s in by_value.values())


@given(st.sets(st.floats(-1e6, 1e6, allow_nan=False), min_size=5, max_size=200))
def test_distinct_values_split_into_near_equal_fifths(values: set[float]) -> None:
    scores = quintiles({f"p{i}": v for i, v in enumerate(sorted(values))})
    counts = Counter(scores.values())
    n = len(values)
    assert set(counts) == {1, 2, 3, 4, 5}
    assert all(abs(counts[q] - n / 5) < 1 for q in range(1, 6)), counts
    # and the top score goes to the largest values
    ordered = sorted(scores.items(), key=lambda kv: int(kv[0][1:]))
    assert [s for _, s in ordered] == sorted(s for _, s in ordered)


# -- RFM segments ---------------------------------------------------------------------------------


def test_every_one_of_the_25_cells_has_a_segment() -> None:
    names = {name for name, _ in RFM_SEGMENTS}
    cells = {(r, f): rfm_segment(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert all(segment in names for segment in cells.values()), cells
    # and every segment is some cell's (none is shadowed by the ones before it)
    assert set(cells.values()) == names


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "Champions"),
        (4, 4, "Champions"),
        (5, 1, "New customers"),
        (4, 1, "Promising"),
        (3, 3, "Loyal"),
        (3, 1, "Need attention"),
        (1, 5, "Can't lose them"),
        (2, 5, "At risk"),
        (2, 1, "Hibernating"),
        (1, 1, "Lost"),
    ],
)
def test_segments_by_hand(r: int, f: int, segment: str) -> None:
    assert rfm_segment(r, f) == segment
    # scores read back from storage as text or floats mean the same
    assert rfm_segment(str(r), float(f)) == segment


@pytest.mark.parametrize(
    ("r", "f"),
    [(None, 3), (3, None), (0, 3), (6, 3), (3, 2.5), ("x", 1), (True, 1), (3, [3]), (-1, 2)],
)
def test_non_scores_have_no_segment(r: Any, f: Any) -> None:
    assert rfm_segment(r, f) is None
    assert apply("rfm_segment", [r, f], NOW) is None


# -- per-profile functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "days"),
    [
        ("2024-05-31T12:00:00.000Z", 1),
        ("2024-05-31T12:00:00.001Z", 0),  # a millisecond short of a day: floors to 0
        ("2024-06-01T12:00:00Z", 0),
        ("2024-05-22T18:00:00Z", 9),  # 9.75 days
        ("2024-06-01T13:00:00Z", -1),  # an hour ahead: floor(-1/24) is -1, not 0
        ("2024-06-11T12:00:00Z", -10),
        ("2024-05-31T23:00:00+02:00", 0),  # 21:00 UTC, 15 hours ago
        ("2023-06-01T12:00:00Z", 366),  # through a leap day
        (datetime(2024, 5, 1, 12, tzinfo=UTC), 31),
    ],
)
def test_days_since_counts_whole_days_floored(value: Any, days: int) -> None:
    assert apply("days_since", [value], NOW) == days


@pytest.mark.parametrize("value", [None, "", "yesterday", 42, True, ["2024-05-01"], "12.5"])
def test_days_since_of_a_non_timestamp_is_none(value: Any) -> None:
    assert apply("days_since", [value], NOW) is None


@pytest.mark.parametrize(
    ("value", "divisor", "quotient"),
    [
        (8, 4, 2),
        (1, 4, 0.25),
        (7, 4, 1.75),
        (0, 4, 0),
        ("10", 4, 2.5),
        (" 3 ", 2, 1.5),
        (0.3, 3, 0.1),  # exact: 0.09999999999999999 in floats
        (-9, 2, -4.5),
        (5, 0.5, 10),
    ],
)
def test_divide_is_exact(value: Any, divisor: Any, quotient: Any) -> None:
    result = apply("divide", [value, divisor], NOW)
    assert result == quotient
    assert type(result) is type(quotient)  # whole results are ints (as JSON numbers read)


@pytest.mark.parametrize("value", [None, "x", True, [4], {"n": 4}])
def test_divide_of_a_non_number_is_none(value: Any) -> None:
    assert apply("divide", [value, 4], NOW) is None
    assert apply("divide", [4, value], NOW) is None


def test_divide_by_zero_at_run_time_is_none_not_an_error() -> None:
    assert apply("divide", [4, 0], NOW) is None


def test_days_since_moves_with_now() -> None:
    stamp = "2024-05-01T00:00:00Z"
    assert apply("days_since", [stamp], NOW) == 31
    assert apply("days_since", [stamp], NOW + timedelta(days=10)) == 41
