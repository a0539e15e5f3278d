"""Predicted CLV over HTTP and the CLI on both backends: fit, model, score, the traits on the
profile and in the computed-traits list, the errors a user gets; and the SQL order summary
equals the models' own summary of the same orders."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opencdp.cli.main import app
from opencdp.predict import summary
from opencdp.runtime import Runtime
from opencdp.services import clv, compute
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic

AUTH = basic(TOKEN)
START = datetime(2025, 1, 1, tzinfo=UTC)
END = date(2025, 6, 30)  # the calibration end of these tests


def shop_orders(customers: int = 40, seed: int = 5) -> list[tuple[str, datetime, Any, str]]:
    """(user, time, amount, property name) of a small shop: most customers buy again, some
    twice on one day, amounts as numbers or numeric strings in revenue or total, a few
    without any amount; a third of the orders come after the calibration end."""
    rng = random.Random(seed)
    out = []
    for c in range(customers):
        user = f"u{c:02d}"
        first = START + timedelta(days=rng.randrange(60))
        day = first
        for n in range(rng.choice([1, 2, 3, 4, 6])):
            if n:
                day += timedelta(days=rng.choice([0, 3, 20, 45, 90]), hours=rng.randrange(20))
            amount: Any = round(rng.uniform(5, 120), 2)
            if rng.random() < 0.2:
                amount = f" {amount} "
            if rng.random() < 0.07:
                amount = None
            out.append((user, day, amount, rng.choice(["revenue", "total"])))
    return out


def message(i: int, user: str, when: datetime, amount: Any, field: str) -> dict[str, Any]:
    properties = {} if amount is None else {field: amount}
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"order-{i}",
        "timestamp": when.isoformat(),
        "properties": properties,
    }


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, start_worker=False)) as c:
        yield c


def send(client: TestClient, runtime: Runtime, batch: list[dict[str, Any]]) -> None:
    for i in range(0, len(batch), 100):
        r = client.post("/v1/batch", json={"batch": batch[i : i + 100]}, headers=basic(WRITE_KEY))
        assert r.status_code == 200, r.text
    runtime.processor.run_until_idle()


@pytest.fixture
def shop(client: TestClient, runtime: Runtime) -> list[tuple[str, datetime, Any, str]]:
    orders = shop_orders()
    batch = [message(i, *o) for i, o in enumerate(orders)]
    # noise: other events, and an anonymous order that joins u00's profile by a merge
    batch.append({"type": "track", "event": "Product Viewed", "userId": "u01", "messageId": "pv"})
    batch.append(
        message(9000, "x", START + timedelta(days=100), 10.0, "revenue")
        | {"userId": None, "anonymousId": "anon-9"}
    )
    batch.append({"type": "identify", "userId": "u00", "anonymousId": "anon-9", "messageId": "m"})
    send(client, runtime, [{k: v for k, v in m.items() if v is not None} for m in batch])
    return [*orders, ("u00", START + timedelta(days=100), 10.0, "revenue")]


def test_the_sql_summary_is_the_models_summary(
    runtime: Runtime, shop: list[tuple[str, datetime, Any, str]]
) -> None:
    end_day = (END - date(1970, 1, 1)).days
    history = clv.store(runtime).order_history("default", end_day)
    got = summary.from_day_counts(
        history.first_day,
        history.last_day,
        history.order_days,
        history.repeat_spend,
        history.repeat_spend_days,
        end_day,
        "week",
    )
    users = {
        pid: dict(ids)["user_id"]
        for pid, ids in compute.store(runtime).identifiers_of("default", history.profile_ids)
    }
    amounts = [math.nan if a is None else float(a) for _, _, a, _ in shop]
    days = [(when.date() - date(1970, 1, 1)).days for _, when, _, _ in shop]
    want = summary.from_transactions([u for u, *_ in shop], days, amounts, end_day, "week")
    order = [want.customers.index(users[pid]) for pid in history.profile_ids]
    assert len(order) == len(want.customers)
    for field in ("frequency", "recency", "age"):
        assert np.allclose(getattr(got, field), getattr(want.summary, field)[order]), field
    assert np.allclose(got.spend, want.summary.spend[order], equal_nan=True)
    assert history.holdout_days == list(want.holdout[order].astype(int))


def test_fit_model_and_score_over_http(shop: Any, client: TestClient) -> None:
    assert client.get("/api/clv/model", headers=AUTH).status_code == 404
    assert client.post("/api/clv/score", headers=AUTH).json()["code"] == "not_found"
    r = client.post(
        "/api/clv/fit", json={"calibration_end": END.isoformat(), "time_unit": "week"}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    model = r.json()
    assert set(model["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(model["gamma_gamma"]) >= {"p", "q", "v", "log_likelihood", "customers"}
    assert model["customers"] == 40 and model["time_unit"] == "week"
    assert model["holdout"]["actual"] > 0 and model["holdout"]["predicted"] > 0
    assert client.get("/api/clv/model", headers=AUTH).json() == model

    done = client.post("/api/clv/score", headers=AUTH).json()
    assert done["profiles"] == 40
    listed = {d["key"]: d for d in client.get("/api/computed-traits", headers=AUTH).json()["data"]}
    assert set(listed) == set(clv.TRAITS)
    assert listed["p_alive"]["definition"]["query"] == "clv('p_alive')"
    traits = client.get(
        "/v1/spaces/default/collections/users/profiles/user_id:u03/traits?limit=50", headers=AUTH
    ).json()["traits"]
    assert 0 < traits["p_alive"] <= 1
    assert traits["predicted_orders_12m"] >= 0 and traits["predicted_clv_12m"] >= 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"calibration_end": "2025-02-30"}, "invalid_date"),
        ({"calibration_end": "30/06/2025"}, "invalid_date"),
        ({"calibration_end": 20250630}, "invalid_date"),
        ({"time_unit": "month"}, "invalid_time_unit"),
        ({"time_unit": {}}, "invalid_time_unit"),
        ({"time_unit": None}, "invalid_time_unit"),
        ({"calibration_end": "2025-06-30", "window": 3}, "invalid_request"),
        ([1, 2], "invalid_request"),
        ({"calibration_end": "2024-06-30"}, "no_orders"),
        ({"calibration_end": "2025-01-10"}, "cannot_fit"),
    ],
)
def test_bad_fits_say_what_is_wrong(shop: Any, client: TestClient, body: Any, code: str) -> None:
    r = client.post("/api/clv/fit", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code and r.json()["message"]


def test_the_cli(shop: Any, runtime: Runtime) -> None:
    runner = CliRunner()
    options = ["--data-dir", str(runtime.settings.data_dir)]
    options += ["--database-url", runtime.settings.resolved_database_url()]

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["clv", *args, *options])
        return result.exit_code, result.output

    code, out = cli("fit", "--calibration-end", "2025-06-30", "--time-unit", "day", "--json")
    assert code == 0, out
    fitted = json.loads(out)
    assert fitted["time_unit"] == "day" and fitted["customers"] == 40
    code, out = cli("show")
    assert code == 0 and "BG/NBD" in out and "alpha" in out and "holdout" in out
    code, out = cli("score", "--json")
    assert code == 0 and json.loads(out)["profiles"] == 40
    code, out = cli("score")
    assert code == 0 and "p_alive" in out
    code, out = cli("fit", "--calibration-end", "tomorrow")
    assert code == 1 and "calibration_end is a date like 1997-09-30" in out
    code, out = cli("fit", "--time-unit", "fortnight")
    assert code == 1 and "time_unit is 'day' or 'week'" in out


def test_clv_definitions_are_computed_by_the_engine(
    shop: Any, client: TestClient, runtime: Runtime
) -> None:
    # A computed trait of the fitted model, and an audience that reads it, defined before any
    # fit: the trait fails, saying what to do.
    put = client.put(
        "/api/computed-traits/chance_active",
        json={"definition": {"query": "clv('p_alive')"}},
        headers=AUTH,
    )
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "failed" and "opencdp clv fit" in put.json()["error"]
    slipping = {"definition": {"query": "trait('chance_active') < 0.5"}}
    assert client.put("/api/audiences/slipping", json=slipping, headers=AUTH).status_code == 200

    # After a fit, score computes every clv() definition, then what reads them.
    assert client.post(
        "/api/clv/fit", json={"calibration_end": "2025-06-30"}, headers=AUTH
    ).is_success
    done = client.post("/api/clv/score", headers=AUTH).json()
    assert set(done["changed"]) == {*clv.TRAITS, "chance_active", "slipping"}
    mine = compute.store(runtime).values_by_key("default", "chance_active")
    assert mine == compute.store(runtime).values_by_key("default", "p_alive")
    members = client.get("/api/audiences/slipping", headers=AUTH).json()
    assert members["status"] == "ready"
    assert members["size"] == sum(1 for v in mine.values() if v < 0.5) > 0

    # Population functions are batch only: a new order leaves the prediction alone until the
    # schedule (or the next score) recomputes it.
    profile = "/v1/spaces/default/collections/users/profiles/user_id:u03/traits?limit=50"
    before = client.get(profile, headers=AUTH).json()["traits"]
    now = runtime.clock.now()
    send(client, runtime, [message(7777, "u03", now - timedelta(hours=1), 40.0, "revenue")])
    assert client.get(profile, headers=AUTH).json()["traits"] == before
    assert runtime.compute.refresh_due(0) >= 5
    after = client.get(profile, headers=AUTH).json()["traits"]
    assert after["predicted_orders_12m"] > before["predicted_orders_12m"]
    assert after["p_alive"] != before["p_alive"]
