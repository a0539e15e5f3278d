"""Predicted CLV through OpenCDP on the CDNOW cohort (CDNOW_sample.txt imported as orders),
on both backends: the fit gives the published parameters within 1 %, the holdout check the
same figures as the file read directly, and scoring writes the three traits of every customer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from opencdp.clock import FrozenClock
from opencdp.datasets import cdnow_sample_path
from opencdp.imports.mapping import parse_mapping
from opencdp.imports.presets import preset_text
from opencdp.predict import bgnbd, gamma_gamma, value
from opencdp.runtime import Runtime
from opencdp.services import clv, compute
from opencdp.services.import_runs import ImportRequest, import_file
from tests.conftest import make_settings
from tests.unit.test_predict_cdnow import PUBLISHED, read_sample

pytestmark = pytest.mark.slow


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def runtime(tmp_path: Path, database_url: str | None, clock: FrozenClock) -> Iterator[Runtime]:
    """A runtime on each backend whose clock the test moves."""
    rt = Runtime(make_settings(tmp_path, database_url), clock)
    yield rt
    rt.close()


def import_sample(runtime: Runtime) -> None:
    """The CDNOW preset, with the sample's extra column (its 1/10 cohort's own id)."""
    text = preset_text("cdnow").replace(
        "columns: [customer_id, date, cds, amount]",
        "columns: [customer_id, sample_id, date, cds, amount]",
    )
    assert "sample_id" in text
    mapping = parse_mapping(text, kind="orders", name="cdnow-sample")
    import_file(runtime, ImportRequest(cdnow_sample_path(), mapping))


def test_clv_on_the_cdnow_cohort(runtime: Runtime, clock: FrozenClock) -> None:
    import_sample(runtime)
    model = clv.fit(runtime, "default", date(1997, 9, 30), "week")
    fitted = {**model["bgnbd"], **model["gamma_gamma"]}
    for name, published in PUBLISHED.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), name
    assert model["customers"] == 2357
    assert model["repeat_customers"] == model["gamma_gamma"]["customers"] == 946
    assert model["repeat_purchases"] == 2457
    assert model["holdout"]["from"] == "1997-10-01" and model["holdout"]["to"] == "1998-06-30"
    assert model["holdout"]["length"] == 39.0
    assert model["holdout"]["actual"] == 1882
    assert model["holdout"]["predicted"] == pytest.approx(1653.4, abs=0.5)
    assert clv.model(runtime, "default")["bgnbd"] == model["bgnbd"]

    # Scoring as of the calibration end writes all three traits of every customer, the
    # values the model gives on the file's own summary.
    clock.set(datetime(1997, 9, 30, 18, tzinfo=UTC))
    done = clv.score(runtime, "default")
    assert done["profiles"] == 2357
    assert done["changed"] == dict.fromkeys(clv.TRAITS, 2357)
    store = compute.store(runtime)
    alive = store.values_by_key("default", "p_alive")
    values = store.values_by_key("default", "predicted_clv_12m")
    orders = store.values_by_key("default", "predicted_orders_12m")
    assert len(alive) == len(values) == len(orders) == 2357
    assert all(0 < p <= 1 for p in alive.values())
    by_customer = {
        dict(ids)["user_id"]: pid for pid, ids in store.identifiers_of("default", sorted(alive))
    }
    cohort = read_sample()
    bg = bgnbd.BgNbd(**model["bgnbd"], customers=2357)
    gg_params = {k: model["gamma_gamma"][k] for k in ("p", "q", "v", "log_likelihood")}
    gg = gamma_gamma.GammaGamma(**gg_params, customers=946)
    expected = value.predict(bg, gg, cohort.summary)
    master_of = sample_to_master()
    for i, sample_id in enumerate(cohort.customers):
        pid = by_customer[master_of[sample_id]]
        assert alive[pid] == pytest.approx(expected.p_alive[i], rel=1e-5)
        assert orders[pid] == pytest.approx(expected.orders[i], rel=1e-5)
        assert values[pid] == pytest.approx(expected.value[i], abs=0.006)
    listed = {row.key: row for row in store.of_workspace("default", "trait")}
    assert {k: listed[k].query for k in clv.TRAITS} == {k: f"clv('{k}')" for k in clv.TRAITS}
    assert all(listed[k].status == "ready" for k in clv.TRAITS)
    # Scoring again with nothing new changes nothing.
    assert clv.score(runtime, "default")["changed"] == dict.fromkeys(clv.TRAITS, 0)

    # In days, the same model: alpha scales with the unit, the rest does not.
    in_days = clv.fit(runtime, "default", date(1997, 9, 30), "day")
    assert in_days["bgnbd"]["r"] == pytest.approx(model["bgnbd"]["r"], rel=1e-3)
    assert in_days["bgnbd"]["alpha"] == pytest.approx(7 * model["bgnbd"]["alpha"], rel=1e-3)


def sample_to_master() -> dict[str, str]:
    """The sample's own customer id → CDNOW's master id (the import's userId)."""
    out = {}
    for line in cdnow_sample_path().read_text(encoding="ascii").splitlines():
        if line.strip():
            master, sample = line.split()[:2]
            out[sample] = master
    return out
