"""The recommendation core on data whose answer is known: planted co-purchase pairs, the
holdouts, the metrics, the weights and the artifact."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.recs import artifact, metrics
from opencdp.recs.cooccurrence import top_per_row
from opencdp.recs.evaluation import evaluate, parse_holdout, split
from opencdp.recs.interactions import DAY_US, PURCHASE, VIEW, Interactions, Weights, encode
from opencdp.recs.training import TrainConfig, train

NOW = 400 * DAY_US
PAIRS = {f"a{i}": f"b{i}" for i in range(10)}  # buying a<i> is followed by buying b<i>


def planted(users: int = 300, seed: int = 3) -> Interactions:
    """Each customer buys a popular filler, then one planted product a<i>, then its partner
    b<i>: the first half of the customers all before day 300, the second half buys the partner
    in the last 30 days (the holdout). Fillers are far more popular than any partner."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int, int, float]] = []
    for u in range(users):
        user = f"u{u}"
        first = f"a{rng.integers(0, 10)}"
        rows.append((user, f"filler{rng.integers(0, 5)}", PURCHASE, 100 * DAY_US, 1.0))
        rows.append((user, first, PURCHASE, 200 * DAY_US, 1.0))
        rows.append((user, f"filler{rng.integers(0, 5)}", VIEW, 250 * DAY_US, 1.0))
        day = 290 if u < users // 2 else 390
        rows.append((user, PAIRS[first], PURCHASE, day * DAY_US, 1.0))
    return Interactions.from_rows(rows)


def test_the_evaluation_ranks_the_planted_partner_first() -> None:
    data = planted()
    config = TrainConfig(holdout="days:30", repeat=False)
    report = evaluate(data, {}, NOW, config, repeat=False)
    assert report.users == 150 and report.holdout == "days:30"
    assert report.models["cooccurrence"]["ndcg@10"] > 0.9
    assert report.models["popularity"]["ndcg@10"] < report.models["cooccurrence"]["ndcg@10"] / 2
    assert report.chosen in ("cooccurrence", "als") and report.lift is not None
    assert report.lift > 0.2
    model = train(data, {}, NOW, config)
    for first, partner in PAIRS.items():
        assert model.similar(first, 3)[0].product_id == partner
        # a visitor the model never saw, who just looked at a<i>: b<i> among the first two
        # (the other is a<i> itself), with the reason
        best = model.recommend(None, [first], 2)
        assert partner in [c.product_id for c in best]
        partner_candidate = next(c for c in best if c.product_id == partner)
        assert partner_candidate.because == first
        assert partner_candidate.reason == f"viewed together with {first}"


def test_a_known_customer_gets_the_partner_of_what_they_bought_with_the_reason() -> None:
    rows = [(f"u{u}", f"a{u % 10}", PURCHASE, 10 * DAY_US, 1.0) for u in range(200)]
    rows += [(f"u{u}", PAIRS[f"a{u % 10}"], PURCHASE, 10 * DAY_US, 1.0) for u in range(1, 200)]
    model = train(Interactions.from_rows(rows), {}, NOW, TrainConfig(models=("cooccurrence",)))
    assert model.kind == "cooccurrence"
    (best, *_) = [c for c in model.recommend("u0", [], 5) if c.product_id != "a0"]
    assert best.product_id == "b0"
    assert best.reason == "bought together with a0" and best.because == "a0"
    assert model.purchased("u0") == {"a0"} and model.history_of("nobody") == set()


def test_nothing_known_gives_popular_products_of_the_category() -> None:
    rows = [(f"u{u}", f"p{u % 7}", PURCHASE, DAY_US, float(1 + u % 7)) for u in range(100)]
    categories = {f"p{i}": ("Shoes/Running" if i % 2 else "Care") for i in range(7)}
    model = train(Interactions.from_rows(rows), categories, NOW)
    popular = model.recommend(None, [], 3, category="Shoes")
    assert [c.category for c in popular] == ["Shoes/Running"] * 3
    assert popular[0].reason == "popular in Shoes/Running"
    assert [c.score for c in popular] == sorted((c.score for c in popular), reverse=True)
    # an unknown category: popular overall
    assert len(model.recommend(None, [], 3, category="Garden")) == 3
    assert model.recommend("stranger", ["ghost"], 2)[0].reason.startswith("popular")


def test_holdouts() -> None:
    data = Interactions.from_rows(
        [
            ("u1", "x", PURCHASE, 1 * DAY_US, 1.0),
            ("u1", "y", VIEW, 5 * DAY_US, 1.0),
            ("u1", "z", PURCHASE, 3 * DAY_US, 1.0),
            ("u2", "x", PURCHASE, 9 * DAY_US, 1.0),
        ]
    )
    train_part, test_part = split(data, "last-basket")
    # u1's last purchase day is day 3: day 3 and the later view are held out
    assert sorted(zip(test_part.users, test_part.items, strict=True)) == [
        ("u1", "y"),
        ("u1", "z"),
        ("u2", "x"),
    ]
    assert list(train_part.items) == ["x"]
    _, last = split(data, "days:5")
    assert sorted(last.items) == ["x", "y"]
    _, one = split(data, "last:1")
    assert sorted(zip(one.users, one.items, strict=True)) == [("u1", "y"), ("u2", "x")]
    assert parse_holdout(7) == ("days", 7)
    for bad in ("days:0", "weeks:2", "last:x", True):
        with pytest.raises(ValueError, match="holdout"):
            parse_holdout(bad)  # type: ignore[arg-type]


def test_metrics_on_a_known_list() -> None:
    ranked = ["a", "b", "c", "d"]
    truth = {"b", "d", "q"}
    assert metrics.precision(ranked, truth, 4) == 0.5
    assert metrics.recall(ranked, truth, 4) == pytest.approx(2 / 3)
    assert metrics.average_precision(ranked, truth, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg(ranked, truth, 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / ideal
    )
    assert metrics.ndcg(["b", "d", "q"], truth, 10) == pytest.approx(1.0)
    assert metrics.coverage([["a", "b"], ["b", "c"]], 6, 10) == 0.5
    assert metrics.recall(ranked, set(), 4) == 0.0


def test_weights_count_kinds_and_fade_with_age() -> None:
    data = Interactions.from_rows(
        [
            ("u", "bought", PURCHASE, NOW, 2.0),
            ("u", "viewed", VIEW, NOW, 1.0),
            ("u", "old", PURCHASE, NOW - 90 * DAY_US, 1.0),
        ]
    )
    encoded = encode(data, Weights(), NOW)
    row = dict(zip(encoded.item_ids, encoded.confidence.toarray()[0], strict=True))
    assert row == pytest.approx({"bought": 8.0, "viewed": 1.0, "old": 2.0})
    assert encoded.purchased.toarray()[0].tolist() == [1.0, 1.0, 0.0]
    assert Weights.from_document({"view": 0.5}).view == 0.5
    for bad in ({"view": -1}, {"buy": 1}, {"cart": "2"}, {"purchase": 0, "cart": 0, "view": 0}):
        with pytest.raises(ValueError, match="weights"):
            Weights.from_document(bad)


def test_the_artifact_round_trips(tmp_path: Path) -> None:
    model = train(planted(60), {"a1": "Shoes"}, NOW, TrainConfig(models=("als",)))
    artifact.save(model, tmp_path / "v0001")
    loaded = artifact.load(tmp_path / "v0001")
    assert loaded.kind == model.kind and loaded.evaluation == model.evaluation
    assert loaded.recommend("u1", [], 5) == model.recommend("u1", [], 5)
    assert loaded.similar("a1", 3) == model.similar("a1", 3)
    assert [c for _, c in loaded.top_for_all(3)] == [c for _, c in model.top_for_all(3)]
    assert not (tmp_path / "v0001.partial").exists()
    (tmp_path / "broken").mkdir()
    with pytest.raises(ValueError, match="no readable model"):
        artifact.load(tmp_path / "broken")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.floats(0.01, 9)), max_size=40),
    st.integers(1, 4),
)
def test_top_per_row_keeps_each_rows_largest(entries: list[tuple[int, int, float]], k: int) -> None:
    dense = np.zeros((6, 8), dtype=np.float32)
    for r, c, v in entries:
        dense[r, c] = v
    kept = top_per_row(sp.csr_matrix(dense), k).toarray()
    for r in range(6):
        row = dense[r][dense[r] > 0]
        assert np.count_nonzero(kept[r]) == min(k, len(row))
        if len(row):
            assert (
                sorted(kept[r][kept[r] > 0], reverse=True)
                == sorted(row, reverse=True)[: min(k, len(row))]
            )
