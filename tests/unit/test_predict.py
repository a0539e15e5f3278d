"""The CLV models' likelihoods, fits and predictions, without a database."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.predict import bgnbd, gamma_gamma, summary, value
from opencdp.predict.bgnbd import BgNbd
from opencdp.predict.gamma_gamma import GammaGamma
from opencdp.predict.summary import FitError

BG = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, customers=0)
GG = GammaGamma(p=6.25, q=3.74, v=15.44, log_likelihood=0.0, customers=0)


def lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def bgnbd_by_hand(r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float) -> float:
    """FHL (2005) equation 6, term by term in plain floats."""
    g = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    first = math.exp(lbeta(a, b + x) - lbeta(a, b)) * g / (alpha + T) ** (r + x)
    second = 0.0
    if x > 0:
        second = math.exp(lbeta(a + 1, b + x - 1) - lbeta(a, b)) * g / (alpha + tx) ** (r + x)
    return math.log(first + second)


@pytest.mark.parametrize(("x", "tx", "T"), [(0, 0.0, 38.86), (2, 30.43, 38.86), (14, 5.0, 20.0)])
def test_the_bgnbd_likelihood_is_the_papers_formula(x: int, tx: float, T: float) -> None:
    got = bgnbd.log_likelihood([0.243, 4.414, 0.793, 2.426], [x], [tx], [T])
    assert got[0] == pytest.approx(bgnbd_by_hand(0.243, 4.414, 0.793, 2.426, x, tx, T), rel=1e-12)


def test_the_gamma_gamma_likelihood_is_a_density_of_the_mean_amount() -> None:
    # Given x purchases, the mean amount's density integrates to 1 over (0, ∞).
    for x in (1, 3, 10):
        m = np.linspace(1e-4, 400, 400_001)
        density = np.exp(gamma_gamma.log_likelihood([6.25, 3.74, 15.44], np.full_like(m, x), m))
        assert np.trapezoid(density, m) == pytest.approx(1.0, abs=2e-3)


def simulate(
    model: BgNbd, n: int, T: float, after: float = 0.0, seed: int = 7
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers drawn from BG/NBD, all acquired at 0 and observed for T: x, t_x, T, and their
    purchases in (T, T + after]."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(model.r, 1 / model.alpha, n)
    drop = rng.beta(model.a, model.b, n)
    x, tx, later = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T + after:
                break
            if t <= T:
                x[i] += 1
                tx[i] = t
            else:
                later[i] += 1
            if rng.random() < drop[i]:
                break
    return x, tx, np.full(n, T), later


def test_a_fit_recovers_the_parameters_it_was_simulated_with() -> None:
    truth = BgNbd(r=0.8, alpha=6.0, a=0.6, b=3.0, log_likelihood=0.0, customers=0)
    x, tx, T, _ = simulate(truth, 6000, T=52.0)
    fitted = bgnbd.fit(x, tx, T)
    assert fitted.r == pytest.approx(truth.r, rel=0.15)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.2)
    assert fitted.a == pytest.approx(truth.a, rel=0.3)
    assert fitted.b == pytest.approx(truth.b, rel=0.4)
    assert fitted.customers == 6000
    assert fitted.log_likelihood == pytest.approx(
        float(np.sum(bgnbd.log_likelihood([fitted.r, fitted.alpha, fitted.a, fitted.b], x, tx, T)))
    )
    # At the maximum the gradient over the log-parameters is (numerically) zero.
    at = np.log([fitted.r, fitted.alpha, fitted.a, fitted.b])
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-5
        up = np.mean(bgnbd.log_likelihood(np.exp(at + step), x, tx, T))
        down = np.mean(bgnbd.log_likelihood(np.exp(at - step), x, tx, T))
        assert abs(up - down) / 2e-5 < 1e-4


def test_gamma_gamma_recovers_its_parameters() -> None:
    rng = np.random.default_rng(3)
    p, q, v = 4.0, 5.0, 30.0
    nu = rng.gamma(q, 1 / v, 5000)
    x = rng.integers(1, 8, 5000).astype(float)
    mean = rng.gamma(p * x, 1 / (nu * x))  # the mean of x Gamma(p, nu) amounts
    fitted = gamma_gamma.fit(x, mean)
    assert fitted.p == pytest.approx(p, rel=0.1)
    assert fitted.q == pytest.approx(q, rel=0.2)
    assert fitted.v == pytest.approx(v, rel=0.25)
    assert fitted.customers == 5000


def test_conditional_expectations_average_to_what_the_model_predicts() -> None:
    # Law of total expectation: over customers drawn from the model, the mean of
    # E[X(T, T+t) | x, t_x, T] equals the mean of what they then bought.
    x, tx, T, later = simulate(BG, 20_000, T=30.0, after=20.0, seed=11)
    predicted = bgnbd.expected_purchases(BG, 20.0, x, tx, T)
    assert predicted.mean() == pytest.approx(later.mean(), rel=0.05)
    # and over new customers, E[X(t)] of a customer seen for no time is the unconditional one
    assert bgnbd.expected_purchases(BG, 39.0, [0.0], [0.0], [0.0])[0] == pytest.approx(
        bgnbd.expected_purchases_new(BG, 39.0)
    )


def test_predictions_move_the_right_way() -> None:
    ts = [1.0, 10.0, 52.0, 104.0]
    by_t = [bgnbd.expected_purchases(BG, t, [3.0], [20.0], [30.0])[0] for t in ts]
    assert by_t == sorted(by_t) and by_t[0] > 0
    # more purchases in the same time: more expected (bought recently)
    by_x = bgnbd.expected_purchases(BG, 52.0, [1.0, 3.0, 10.0], [30.0] * 3, [30.0] * 3)
    assert list(by_x) == sorted(by_x)
    # the longer since the last purchase, the less likely alive and the fewer expected
    alive = bgnbd.p_alive(BG, [3.0] * 3, [29.0, 15.0, 2.0], [30.0] * 3)
    assert list(alive) == sorted(alive, reverse=True)
    assert bgnbd.p_alive(BG, [0.0], [0.0], [30.0])[0] == 1.0
    # the amount: between the population's mean and the customer's own, nearer theirs with x
    spend = gamma_gamma.expected_spend(GG, [1.0, 5.0, 50.0], [100.0] * 3)
    assert GG.mean_spend < spend[0] < spend[1] < spend[2] < 100.0
    assert gamma_gamma.expected_spend(GG, [0.0], [float("nan")])[0] == pytest.approx(GG.mean_spend)


@settings(max_examples=200, deadline=None)
@given(
    x=st.integers(0, 60),
    recency=st.floats(0, 1),
    T=st.floats(0.1, 200),
    t=st.floats(0.1, 200),
)
def test_predictions_are_probabilities_and_counts(
    x: int, recency: float, T: float, t: float
) -> None:
    tx = recency * T if x else 0.0
    alive = bgnbd.p_alive(BG, [x], [tx], [T])[0]
    assert 0 < alive <= 1
    now = bgnbd.expected_purchases(BG, t, [x], [tx], [T])[0]
    later = bgnbd.expected_purchases(BG, 2 * t, [x], [tx], [T])[0]
    assert 0 <= now <= later
    # never more than an always-alive customer at the posterior mean rate would buy
    assert now <= (BG.r + x) / (BG.alpha + T) * 2 * t + 1e-9


def test_value_is_orders_times_spend_over_twelve_months() -> None:
    s = summary.Summary(
        frequency=np.array([0.0, 2.0, 6.0]),
        recency=np.array([0.0, 20.0, 35.0]),
        age=np.array([38.0, 38.0, 38.0]),
        spend=np.array([np.nan, 30.0, 12.0]),
        unit="week",
    )
    out = value.predict(BG, GG, s)
    weeks = 365 / 7
    assert out.orders == pytest.approx(
        bgnbd.expected_purchases(BG, weeks, s.frequency, s.recency, s.age)
    )
    assert out.value == pytest.approx(out.orders * out.spend)
    days = summary.Summary(s.frequency, s.recency * 7, s.age * 7, s.spend, "day")
    in_days = BgNbd(BG.r, BG.alpha * 7, BG.a, BG.b, 0.0, 0)  # the same model, in days
    assert value.predict(in_days, GG, days).value == pytest.approx(out.value)


TRANSACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "cy", "dee"]),
        st.integers(0, 60),
        st.one_of(st.floats(1, 500), st.just(float("nan"))),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(rows=TRANSACTIONS, end=st.integers(0, 60), seed=st.integers(0, 10**6))
def test_a_summary_counts_distinct_days_and_ignores_order(
    rows: list[tuple[str, int, float]], end: int, seed: int
) -> None:
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    got = [summary.from_transactions(*zip(*r, strict=True), end, "day") for r in (rows, shuffled)]  # type: ignore[call-arg]
    assert got[0].customers == got[1].customers
    a, b = got[0].summary, got[1].summary
    for field in ("frequency", "recency", "age"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert np.allclose(a.spend, b.spend, equal_nan=True)
    for i, who in enumerate(got[0].customers):
        days = sorted({d for c, d, _ in rows if c == who})
        calib = [d for d in days if d <= end]
        assert a.frequency[i] == len(calib) - 1
        assert a.recency[i] == calib[-1] - calib[0]
        assert a.age[i] == end - calib[0]
        assert got[0].holdout[i] == len(days) - len(calib)
        repeat = [
            sum(v for c, d, v in rows if c == who and d == day and not math.isnan(v))
            for day in calib[1:]
            if any(c == who and d == day and not math.isnan(v) for c, d, v in rows)
        ]
        if repeat:
            assert a.spend[i] == pytest.approx(sum(repeat) / len(repeat))
        else:
            assert math.isnan(a.spend[i])
    assert set(got[0].customers) == {c for c, d, _ in rows if d <= end}


def test_what_cannot_be_fitted_says_why() -> None:
    with pytest.raises(FitError, match="at least 10"):
        bgnbd.fit([1.0, 0.0], [3.0, 0.0], [5.0, 5.0])
    with pytest.raises(FitError, match="no customer bought twice"):
        bgnbd.fit([0.0] * 20, [0.0] * 20, [5.0] * 20)
    with pytest.raises(FitError, match="Gamma-Gamma needs at least 10"):
        gamma_gamma.fit([1.0, 2.0], [3.0, 4.0])
    with pytest.raises(FitError, match="unknown time unit 'month'"):
        summary.from_transactions(["a"], [1], [2.0], 5, "month")


def test_no_customer_is_worth_less_than_nothing_when_the_mean_spend_is_infinite() -> None:
    # q <= 1: Gamma-Gamma's population mean p*v/(q-1) is infinite; a customer without a
    # repeat purchase gets no finite expectation rather than a negative one
    from opencdp.predict.gamma_gamma import GammaGamma, expected_spend

    model = GammaGamma(p=2.0, q=0.5, v=10.0, log_likelihood=0.0, customers=10)
    spend = expected_spend(model, [0.0, 3.0], [float("nan"), 20.0])
    assert np.isnan(spend[0])
    assert spend[1] > 0
