"""The CDNOW cohort (CDNOW_sample.txt, 2,357 customers acquired in the first quarter of 1997,
calibration to 1997-09-30), read with the models' own summary code: the parameters Fader, Hardie
and Lee (2005) and Fader and Hardie's Gamma-Gamma note publish, to within 1 %."""

from __future__ import annotations

import csv
from datetime import date

import numpy as np
import pytest

from opencdp.datasets import cdnow_sample_path
from opencdp.predict import bgnbd, gamma_gamma, summary, value

#: Published, time in weeks (FHL 2005, table 1; the Gamma-Gamma note, section 4).
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}
CALIBRATION_END = date(1997, 9, 30).toordinal()


def read_sample() -> summary.Transactions:
    customers, days, amounts = [], [], []
    for line in cdnow_sample_path().read_text(encoding="ascii").splitlines():
        if line.strip():
            _, sample_id, day, _, amount = line.split()
            customers.append(sample_id)
            days.append(date(int(day[:4]), int(day[4:6]), int(day[6:])).toordinal())
            amounts.append(float(amount))
    return summary.from_transactions(customers, days, amounts, CALIBRATION_END, "week")


@pytest.fixture(scope="module")
def cohort() -> summary.Transactions:
    return read_sample()


def test_the_summary_is_the_papers_data(cohort: summary.Transactions) -> None:
    # The papers' own per-customer data (x, t_x, T, mean repeat amount) ships beside the sample.
    path = cdnow_sample_path().with_name("cdnow_customers_summary_with_transactions.csv")
    with path.open() as f:
        published = {int(row["ID"]): row for row in csv.DictReader(f)}
    s = cohort.summary
    assert len(s) == len(published) == 2357
    assert s.frequency.sum() == 2457 and int(s.repeaters.sum()) == 946
    for i, who in enumerate(cohort.customers):
        row = published[int(who)]
        assert s.frequency[i] == float(row["x"])
        assert round(s.recency[i], 2) == pytest.approx(float(row["t_x"]))
        assert round(s.age[i], 2) == pytest.approx(float(row["T"]))
        if s.frequency[i] > 0:
            assert s.spend[i] == pytest.approx(float(row["zbar"]), abs=0.0051)
    assert cohort.holdout_length == 39.0  # 1997-10-01 … 1998-06-30


def test_the_fit_matches_the_published_parameters(cohort: summary.Transactions) -> None:
    s = cohort.summary
    bg = bgnbd.fit(s.frequency, s.recency, s.age)
    gg = gamma_gamma.fit(s.frequency, s.spend)
    fitted = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
    for name, published in PUBLISHED.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), name
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)  # FHL 2005 reports -9,582.4
    assert gg.customers == 946
    # The holdout check: the sum of each customer's expected repeat purchases in the 39 weeks
    # after calibration, against the 1,882 purchase days they made.
    check = value.holdout_check(bg, s, cohort.holdout, cohort.holdout_length)
    assert check.actual == 1882
    assert check.predicted == pytest.approx(1653.4, abs=0.5)
    # Gamma-Gamma assumes spend does not follow frequency; on CDNOW they barely correlate.
    corr = value.spend_frequency_correlation(s)
    assert corr is not None and abs(corr) < 0.15
    assert np.all(value.predict(bg, gg, s).value >= 0)
