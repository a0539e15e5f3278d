"""Training's edges on both backends: a failed training is recorded and keeps the active
version, old versions lose their files (not their rows) and cannot be made active again, a due
training runs once across two processes, the training routes' 4xx, and an erased customer
leaves every stored version (also one trained while the erasure ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import privacy, recs
from opencdp.services.profile_lookup import locate_profile
from opencdp.services.recs_erasure import scrub_models
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from tests.conftest import TOKEN, make_settings
from tests.contract.test_recommendations import shop

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY_US = 86_400_000_000


def files(rt: Runtime, version: str) -> Path:
    return rt.settings.data_dir / "recs" / WS / version


def test_a_failed_training_is_recorded_and_keeps_the_active_version(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(rt, 8)
    assert recs.train(rt, WS)["version"] == "v0001"

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the factorisation diverged")

    with monkeypatch.context() as patch:
        patch.setattr(recs, "train_model", broken)
        with pytest.raises(RuntimeError, match="diverged"):
            recs.train(rt, WS)
    failed, active = rt.recs.versions(WS)
    assert (failed.version, failed.status, failed.active) == ("v0002", "failed", False)
    assert "diverged" in (failed.error or "") and failed.path is None
    assert (active.version, active.status, active.active) == ("v0001", "ready", True)
    assert (files(rt, "v0001") / "meta.json").exists()
    with pytest.raises(RequestError, match="its training failed"):
        recs.rollback(rt, WS, "v0002")
    # the claim was released: the next training runs, and is v0003
    assert recs.train(rt, WS)["version"] == "v0003"
    assert rt.recs.active(WS).version == "v0003"  # type: ignore[union-attr]


def test_old_versions_lose_their_files_not_their_rows(rt: Runtime) -> None:
    shop(rt, 8)
    for _ in range(recs.KEEP_FILES + 2):
        recs.train(rt, WS)
    versions = {v.version: v for v in rt.recs.versions(WS)}
    assert sorted(versions) == [f"v{n:04d}" for n in range(1, recs.KEEP_FILES + 3)]
    for old in ("v0001", "v0002"):
        assert versions[old].path is None and not files(rt, old).exists()
    for kept in ("v0003", "v0007"):
        assert versions[kept].path and (files(rt, kept) / "meta.json").exists()
    with pytest.raises(RequestError, match="its files were pruned"):
        recs.rollback(rt, WS, "v0001")
    assert recs.rollback(rt, WS)["version"] == "v0006"
    # rolled back to v0006: the next training's pruning keeps the active one's files
    recs.train(rt, WS)
    assert (files(rt, "v0006") / "meta.json").exists()
    assert rt.recs.active(WS).version == "v0008"  # type: ignore[union-attr]


def test_a_due_training_runs_once_across_two_runtimes(
    rt: Runtime, clock: FrozenClock, tmp_path: Path, database_url: str | None
) -> None:
    shop(rt, 8)
    other = Runtime(make_settings(tmp_path, database_url), clock)
    try:
        every = 24 * 3_600_000_000
        # both processes looked and found the workspace due; the second claims after the
        # first trained: it looks again and does not train
        assert recs._train_when_due(rt, WS, every) == "v0001"
        assert recs._train_when_due(other, WS, every) is None
        # while one process holds the claim, the other does not train either
        clock.advance(25 * 3600)
        assert rt.recs.claim(WS, rt.now_us(), recs.STALE_CLAIM_US)
        assert recs._train_when_due(other, WS, every) is None
        rt.recs.release(WS)
        assert [v.version for v in rt.recs.versions(WS)] == ["v0001"]
        # due again: the worker's look starts one training, on a thread
        assert recs._scheduled(other) == 1
        for thread in __import__("threading").enumerate():
            if thread.name == f"recs-{WS}":
                thread.join(60)
        newest = rt.recs.versions(WS)[0]
        assert (newest.version, newest.source) == ("v0002", "schedule")
        assert recs._scheduled(rt) == recs._scheduled(other) == 0
        # the setting turns it off for the workspace
        clock.advance(25 * 3600)
        recs.apply_settings(rt, WS, {"train_every_hours": 0})
        assert recs._scheduled(other) == 0
    finally:
        other.close()


def test_the_training_routes_answer_their_4xx(rt: Runtime, client: TestClient) -> None:
    shop(rt, 8)
    assert rt.recs.claim(WS, rt.now_us(), recs.STALE_CLAIM_US)
    busy = client.post("/api/recs/train", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["code"] == "training_running"
    rt.recs.release(WS)
    trained = client.post("/api/recs/train", headers=AUTH)
    assert trained.status_code == 201 and trained.json()["version"] == "v0001"
    assert trained.json()["active"] is True and trained.json()["source"] == "api"
    listed = client.get("/api/recs/models", headers=AUTH).json()["data"]
    assert [v["version"] for v in listed] == ["v0001"]
    for body, status, code in (
        ({"version": 3}, 400, "invalid_request"),
        ({"version": "v0001", "force": True}, 400, "invalid_request"),
        ({"version": "v0042"}, 404, None),
        ({}, 400, "nothing_to_roll_back_to"),
    ):
        answer = client.post("/api/recs/rollback", headers=AUTH, json=body)
        assert answer.status_code == status, (body, answer.json())
        assert code is None or answer.json()["code"] == code
    assert (
        "v0042"
        in client.post("/api/recs/rollback", headers=AUTH, json={"version": "v0042"}).json()[
            "message"
        ]
    )
    for document, field in (
        ({"train_every_hours": -1}, "train_every_hours"),
        ({"train_every_hours": "daily"}, "train_every_hours"),
        ({"holdout": "yesterday"}, "holdout"),
        ({"weights": {"half_life_days": "long"}}, "weights.half_life_days"),
        ({"rules": {"pinned": "GIFT"}}, "rules.pinned"),
        ({"colour": "blue"}, "settings.colour"),
    ):
        bad = client.put("/api/recs/settings", headers=AUTH, json=document)
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_settings", document
        assert field in bad.json()["message"], (document, bad.json())
    good = client.put("/api/recs/settings", headers=AUTH, json={"train_every_hours": 6})
    assert good.status_code == 200 and good.json()["train_every_hours"] == 6
    assert client.get("/api/recs/settings", headers=AUTH).json()["train_every_hours"] == 6


def test_a_process_that_runs_a_worker_runs_the_schedule(rt: Runtime) -> None:
    from opencdp.web.app import create_app

    def installed() -> int:
        return sum(getattr(h, "__wrapped__", None) is recs._scheduled for h in rt.timer_hooks)

    create_app(rt, start_worker=False)  # an HTTP process beside workers: no schedule
    assert installed() == 0
    create_app(rt, start_worker=True)
    create_app(rt, start_worker=True)
    assert installed() == 1


def test_the_cli_says_what_to_do_before_there_is_anything_to_learn(rt: Runtime) -> None:
    from typer.testing import CliRunner

    from opencdp.cli.main import app

    runner = CliRunner()
    options = ["--data-dir", str(rt.settings.data_dir)]
    options += ["--database-url", rt.settings.resolved_database_url()]

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["recs", *args, *options])
        return result.exit_code, " ".join(result.output.split())  # the console wraps lines

    code, out = cli("train")
    assert code == 1 and "no product events" in out and "Order Completed" in out, out
    code, out = cli("evaluate", "--json")
    assert code == 1 and "no product events" in out, out
    code, out = cli("rollback")
    assert code == 1 and "no trained model yet" in out, out
    code, out = cli("models")
    assert code == 0, out
    assert rt.recs.versions(WS) == []


def test_hooks_hear_of_each_version_made_active(rt: Runtime) -> None:
    shop(rt, 8)
    heard: list[tuple[str, str]] = []

    def broken(workspace_id: str, version: str) -> None:
        raise RuntimeError("a hook that fails")

    rt.recs_trained_hooks.extend([broken, lambda w, v: heard.append((w, v))])
    recs.train(rt, WS)
    recs.train(rt, WS)
    recs.rollback(rt, WS)
    assert heard == [(WS, "v0001"), (WS, "v0002"), (WS, "v0001")]
    assert rt.recs.active(WS).version == "v0001"  # type: ignore[union-attr]
    # a failed training is not heard of
    with pytest.raises(RuntimeError), pytest.MonkeyPatch.context() as patch:
        patch.setattr(recs, "train_model", lambda *a, **k: broken(WS, ""))
        recs.train(rt, WS)
    assert len(heard) == 3


def _files_naming(rt: Runtime, profile_id: str) -> list[str]:
    """The model files that hold ``profile_id`` (numpy keeps text as UTF-32)."""
    needles = (profile_id.encode(), profile_id.encode("utf-32-le"))
    return [
        str(path.relative_to(rt.settings.data_dir))
        for path in sorted((rt.settings.data_dir / "recs").rglob("*"))
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    ]


def test_an_erased_customer_leaves_every_stored_model(rt: Runtime) -> None:
    # Given two trained versions that both learnt from c1
    shop(rt, 8)
    recs.train(rt, WS)
    recs.train(rt, WS)
    c1 = locate_profile(rt, WS, "user_id:c1").id
    assert len(_files_naming(rt, c1)) >= 2
    before = {v.version: v for v in rt.recs.versions(WS)}
    # When c1 is erased
    privacy.create_regulation(rt, WS, "DELETE_ONLY", "USER_ID", ["c1"], requested_by="test")
    privacy.run_regulations(rt)
    # Then no model file holds c1 any more, and both versions were rewritten without it
    assert _files_naming(rt, c1) == []
    after = {v.version: v for v in rt.recs.versions(WS)}
    for version in ("v0001", "v0002"):
        assert after[version].path != before[version].path
        assert after[version].users == before[version].users - 1
        assert not (rt.settings.data_dir / before[version].path).exists()  # type: ignore[operator]
    # and the others are still served, by the active version and after a rollback
    assert recs.for_profile(rt, WS, "user_id:c2")["data"]
    assert recs.rollback(rt, WS, "v0001")["version"] == "v0001"
    assert recs.for_profile(rt, WS, "user_id:c2")["data"]
    # a second scrub finds nothing to do
    assert scrub_models(rt, WS) == 0


def test_a_customer_erased_while_a_training_runs_is_not_in_its_version(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(rt, 8)
    c3 = locate_profile(rt, WS, "user_id:c3").id
    real = recs.train_model

    def erased_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # the interactions were read (c3 among them); the deletion runs at once
        privacy.create_regulation(rt, WS, "DELETE_ONLY", "USER_ID", ["c3"], requested_by="test")
        return real(*args, **kwargs)

    monkeypatch.setattr(recs, "train_model", erased_meanwhile)
    trained = recs.train(rt, WS)
    assert _files_naming(rt, c3) == []
    assert trained["users"] == 7
