"""What an operator sees: health and readiness, Prometheus metrics, the OpenAPI document, rate
limiting and backpressure (429 with ``Retry-After``, segment-compat.md §1.8, §6 item 10), and
the ``opencdp`` command line.

Limits are tested in-process on a frozen clock (exact, no sleeping); one test sets the limit
through the environment of a real server to prove the setting is wired up end to end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from opencdp.cli.main import app as cli_app
from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e


@dataclass
class Ops:
    runtime: Runtime
    client: TestClient
    clock: FrozenClock

    def track(self, key: str = WRITE_KEY, **fields: Any) -> httpx.Response:
        body = {"userId": "u-1", "event": "Clicked", **fields}
        return self.client.post("/v1/track", json=body, headers=basic(key))

    def inbox_rows(self) -> int:
        from sqlalchemy import func, select

        from opencdp.storage.schema import inbox

        with self.runtime.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


@pytest.fixture
def make_ops(tmp_path: Path) -> Iterator[Callable[..., Ops]]:
    """Build an in-process server on a frozen clock with the given settings overrides."""
    made: list[Runtime] = []

    def make(**overrides: Any) -> Ops:
        clock = FrozenClock()
        runtime = Runtime(make_settings(tmp_path / f"rt{len(made)}", **overrides), clock)
        made.append(runtime)
        return Ops(runtime, TestClient(create_app(runtime, start_worker=False)), clock)

    yield make
    for runtime in made:
        runtime.close()


def metric(text: str, name: str) -> float:
    """The value of one sample in a Prometheus text exposition (which must parse)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} is not exposed")


# --- Health, readiness, metrics ----------------------------------------------------------------


def test_healthz(make_ops: Callable[..., Ops]) -> None:
    response = make_ops().client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_backlog_and_the_worker_lag(make_ops: Callable[..., Ops]) -> None:
    ops = make_ops()
    idle = ops.client.get("/readyz").json()
    assert idle == {
        "status": "ready",
        "database": "sqlite",
        "inbox_pending": 0,
        "worker_lag_seconds": 0.0,
        "worker_running": False,
        "worker_processes": 0,
    }
    # Given two events nobody has processed yet, received 2.5 s ago
    assert ops.track().status_code == 200
    assert ops.track(event="Bought").status_code == 200
    ops.clock.advance(2.5)
    # Then readiness shows them and how far behind the worker is
    behind = ops.client.get("/readyz").json()
    assert (behind["inbox_pending"], behind["worker_lag_seconds"]) == (2, 2.5)
    # When the worker catches up, both go back to zero
    ops.runtime.processor.run_until_idle()
    caught_up = ops.client.get("/readyz").json()
    assert (caught_up["inbox_pending"], caught_up["worker_lag_seconds"]) == (0, 0.0)


def test_metrics_are_prometheus_text_and_count_what_happens(make_ops: Callable[..., Ops]) -> None:
    ops = make_ops()
    first = ops.client.get("/metrics")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert metric(first.text, "opencdp_events_accepted_total") == 0
    # When three events are accepted, one refused, and the worker runs
    for i in range(3):
        assert ops.track(messageId=f"m{i}").status_code == 200
    assert ops.track(event="").status_code == 400
    ops.runtime.processor.run_until_idle()
    ops.client.get("/readyz")  # refreshes the gauges
    text = ops.client.get("/metrics").text
    # Then the counters moved by exactly that much
    assert metric(text, "opencdp_events_accepted_total") == 3
    assert metric(text, "opencdp_events_quarantined_total") == 1
    assert 'opencdp_events_quarantined_by_reason_total{reason="missing_event"} 1.0' in text
    assert metric(text, "opencdp_events_processed_total") == 3
    assert metric(text, "opencdp_profiles_created_total") == 1
    assert metric(text, "opencdp_inbox_pending") == 0
    assert metric(text, "opencdp_worker_lag_seconds") == 0


def test_a_real_server_reports_health_readiness_and_metrics(live_server: Any) -> None:
    url = live_server.url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["worker_running"] is True
    assert isinstance(ready["inbox_pending"], int)
    assert isinstance(ready["worker_lag_seconds"], float | int)
    before = metric(httpx.get(f"{url}/metrics").text, "opencdp_events_accepted_total")
    # When a batch arrives over the socket and the in-process worker drains it
    batch = [{"type": "track", "userId": "u-1", "event": f"E{i}"} for i in range(4)]
    response = httpx.post(f"{url}/v1/batch", json={"batch": batch}, headers=basic(WRITE_KEY))
    assert response.status_code == 200
    live_server.wait_idle()
    # Then the counters went up by the batch, and the worker processed it
    after = httpx.get(f"{url}/metrics").text
    assert metric(after, "opencdp_events_accepted_total") == before + 4
    assert metric(after, "opencdp_events_processed_total") >= 4
    assert httpx.get(f"{url}/readyz").json()["inbox_pending"] == 0


# --- OpenAPI -------------------------------------------------------------------------------------

PROFILE_BASE = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"


def test_openapi_document_lists_the_public_apis(make_ops: Callable[..., Ops]) -> None:
    response = make_ops().client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "OpenCDP"
    assert doc["info"]["version"]
    paths = doc["paths"]
    expected = {
        "/v1/batch": "post",
        "/v1/import": "post",
        **{f"/v1/{t}": "post" for t in ("identify", "track", "page", "screen", "group", "alias")},
        **{
            f"{PROFILE_BASE}/{r}": "get"
            for r in ("traits", "external_ids", "events", "metadata", "links")
        },
        "/api/contacts": "post",
        "/api/quarantine": "get",
        "/api/profiles/{profile_id}/identity": "get",
        "/healthz": "get",
        "/readyz": "get",
        "/metrics": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
    # The analytics.js short forms and the telemetry sink stay out of the public document
    assert not {"/v1/t", "/v1/b", "/v1/m"} & set(paths)
    # Every path parameter of a Profile API path is declared
    traits = paths[f"{PROFILE_BASE}/traits"]["get"]
    declared = {p["name"] for p in traits["parameters"] if p["in"] == "path"}
    assert declared == {"space", "collection", "external_id"}
    # The contact API documents what to send and what comes back
    contacts = paths["/api/contacts"]["post"]
    body_schema = contacts["requestBody"]["content"]["application/json"]["schema"]
    assert "identifiers" in body_schema["properties"]
    assert "identifiers" in body_schema["required"]
    assert {"200", "201"} <= set(contacts["responses"])


def test_openapi_document_is_internally_consistent(make_ops: Callable[..., Ops]) -> None:
    doc = make_ops().client.get("/openapi.json").json()
    schemas = doc.get("components", {}).get("schemas", {})
    operation_ids: list[str] = []

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "post", "put", "patch", "delete", "options", "head"}
            assert operation["responses"], f"{method} {path} documents no response"
            operation_ids.append(operation["operationId"])
            for name in re.findall(r"{(\w+)}", path):
                assert name in {p["name"] for p in operation.get("parameters", [])}, (path, name)
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"dangling {ref}"


# --- Rate limiting and backpressure --------------------------------------------------------------


def assert_429(response: httpx.Response, code: str) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), "Retry-After must be whole seconds (SDKs parse an int)"
    assert response.headers["x-ratelimit-reset"].isdigit()
    assert int(retry_after) >= 1
    return int(retry_after)


def test_rate_limit_per_source_answers_429_with_retry_after(make_ops: Callable[..., Ops]) -> None:
    # Given a source limited to 5 events/s (burst 5) on a clock that does not move
    ops = make_ops(rate_limit_per_source=5)
    # When six requests arrive at the same instant
    statuses = [ops.track(messageId=f"m{i}").status_code for i in range(6)]
    # Then five pass and the sixth is told to come back in one second
    assert statuses == [200] * 5 + [429]
    assert assert_429(ops.track(messageId="m6"), "rate_limited") == 1
    assert ops.inbox_rows() == 5  # a refused request leaves nothing behind
    # When a second has passed, the source may send again
    ops.clock.advance(1.0)
    assert ops.track(messageId="m7").status_code == 200


def test_a_big_batch_passes_a_full_bucket_and_then_waits_for_its_debt(
    make_ops: Callable[..., Ops],
) -> None:
    ops = make_ops(rate_limit_per_source=5)
    batch = [
        {"type": "track", "userId": "u-1", "event": "E", "messageId": f"b{i}"} for i in range(20)
    ]
    # A batch larger than the burst is let through once (otherwise it could never be sent)...
    response = ops.client.post("/v1/batch", json={"batch": batch}, headers=basic(WRITE_KEY))
    assert response.json()["accepted"] == 20
    # ...and the next request waits until the 15 events of debt are paid: (1 + 15) / 5 s
    assert assert_429(ops.track(), "rate_limited") == 4
    ops.clock.advance(3.0)
    assert ops.track().status_code == 429
    ops.clock.advance(1.0)
    assert ops.track().status_code == 200


def test_rate_limits_are_per_source(make_ops: Callable[..., Ops]) -> None:
    ops = make_ops(rate_limit_per_source=1)
    _source, other_key = ops.runtime.admin.add_source("default", "app", ops.runtime.now_us())
    assert ops.track().status_code == 200
    assert ops.track().status_code == 429
    assert ops.track(key=other_key).status_code == 200  # the other source has its own bucket


def test_inbox_backlog_limit_answers_429_backlog_full(make_ops: Callable[..., Ops]) -> None:
    # Given workers that fall behind: at most 3 unprocessed events may wait
    ops = make_ops(max_inbox_backlog=3)
    assert [ops.track(messageId=f"m{i}").status_code for i in range(3)] == [200] * 3
    # Then the collector pushes back instead of growing the inbox without bound
    assert assert_429(ops.track(messageId="m3"), "backlog_full") == 5
    assert ops.client.get("/readyz").json()["inbox_pending"] == 3
    # When the worker catches up (the backlog is re-read at most once a second)
    ops.runtime.processor.run_until_idle()
    ops.clock.advance(1.1)
    assert ops.track(messageId="m4").status_code == 200


def test_rate_limit_from_the_environment_on_a_real_server(tmp_path: Path) -> None:
    # Given a real server started with OPENCDP_RATE_LIMIT_PER_SOURCE=5
    server = LiveServer(
        tmp_path / "limited", WRITE_KEY, TOKEN, OPENCDP_RATE_LIMIT_PER_SOURCE="5"
    ).start()
    try:
        # When a client bursts 20 requests over one connection
        with httpx.Client(base_url=server.url, headers=basic(WRITE_KEY), timeout=10) as client:
            responses = [
                client.post("/v1/track", json={"userId": "u-1", "event": "Burst"})
                for _ in range(20)
            ]
        # Then the first ones pass and the rest are refused with 429 and Retry-After
        statuses = [r.status_code for r in responses]
        assert statuses[0] == 200
        assert set(statuses) == {200, 429}
        limited = [r for r in responses if r.status_code == 429]
        for response in limited:
            assert_429(response, "rate_limited")
        assert statuses.count(200) < 20
    finally:
        server.stop()


# --- The command line ----------------------------------------------------------------------------


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI (picked up as new ones are added)."""
    root = typer.main.get_command(cli_app)
    found: list[tuple[str, ...]] = [()]

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        # Duck-typed: Typer's groups are click-like but not always click.Group instances.
        for name, command in sorted(getattr(group, "commands", {}).items()):
            found.append((*prefix, name))
            walk(command, (*prefix, name))

    walk(root, ())
    return found


@dataclass
class Cli:
    data_dir: Path
    runner: CliRunner

    def __call__(self, *args: str, data: bool = True) -> Any:
        extra = ["--data-dir", str(self.data_dir)] if data else []
        return self.runner.invoke(
            cli_app,
            [*args, *extra],
            env={
                "COLUMNS": "200",  # Rich tables: no wrapped or truncated cells
                "OPENCDP_DATABASE_URL": None,  # hermetic: only the data dir counts
                "OPENCDP_CONFIG_FILE": str(self.data_dir / "absent.toml"),
            },
        )

    def server(self) -> Ops:
        """An in-process server over the CLI's data directory."""
        settings = make_settings(
            self.data_dir, data_dir=self.data_dir, bootstrap_write_key=None, bootstrap_token=None
        )
        clock = FrozenClock()
        runtime = Runtime(settings, clock)
        return Ops(runtime, TestClient(create_app(runtime, start_worker=False)), clock)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "cli-data", CliRunner())


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "opencdp")
def test_help_on_every_command(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help", data=False)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "--help" in result.output


def test_the_cli_has_the_documented_commands() -> None:
    names = {" ".join(p) for p in command_paths()}
    assert names >= {
        "serve",
        "worker",
        "status",
        "demo",
        "source add",
        "source list",
        "token add",
        "token list",
        "profile show",
        "profile explain",
        "events tail",
    }


def test_source_add_prints_a_working_key_once(cli: Cli) -> None:
    # When an operator creates a source
    added = cli("source", "add", "web-shop")
    assert added.exit_code == 0, added.output
    key = re.search(r"write key: (\S+)", added.output)
    assert key, added.output
    write_key = key.group(1)
    assert len(write_key) >= 20
    assert "not shown again" in added.output
    # Then the list shows the source but only a hint of the key
    listed = cli("source", "list")
    assert listed.exit_code == 0
    assert "web-shop" in listed.output
    assert write_key not in listed.output
    assert write_key[:4] in listed.output
    # And the key works for ingest, while a made-up one does not
    ops = cli.server()
    try:
        assert ops.track(key=write_key, userId="shop-1").status_code == 200
        assert ops.track(key=write_key[:-1] + "?").status_code == 401
        ops.runtime.processor.run_until_idle()
    finally:
        ops.runtime.close()
    shown = cli("profile", "show", "user_id:shop-1")
    assert shown.exit_code == 0, shown.output
    assert "Clicked" in shown.output


def test_token_add_prints_a_working_secret_once(cli: Cli) -> None:
    added = cli("token", "add", "dashboards", "--scope", "read")
    assert added.exit_code == 0, added.output
    secret = re.search(r"secret: (\S+)", added.output)
    assert secret, added.output
    listed = cli("token", "list")
    assert listed.exit_code == 0
    assert "dashboards" in listed.output
    assert "read" in listed.output
    assert secret.group(1) not in listed.output
    ops = cli.server()
    try:
        ok = ops.client.get("/api/quarantine", headers=basic(secret.group(1)))
        assert ok.status_code == 200, ok.text
        assert ops.client.get("/api/quarantine", headers=basic("guess")).status_code == 401
    finally:
        ops.runtime.close()


@pytest.fixture
def aliased(cli: Cli) -> Cli:
    """A data dir holding one customer seen anonymously, then signed in, then aliased."""
    ops = cli.server()
    try:
        key = basic(WRITE_KEY)
        ops.runtime.admin.ensure_source_with_key("default", "test", WRITE_KEY, ops.runtime.now_us())
        batch = [
            {
                "type": "identify",
                "anonymousId": "cli-anon",
                "traits": {"email": "Ann@Example.com", "plan": "pro"},
                "timestamp": "2026-01-01T10:00:00Z",
                "messageId": "cli-1",
            },
            {
                "type": "track",
                "userId": "cli-user",
                "event": "Order Completed",
                "timestamp": "2026-01-01T10:01:00Z",
                "messageId": "cli-2",
            },
        ]
        assert ops.client.post("/v1/batch", json={"batch": batch}, headers=key).status_code == 200
        ops.runtime.processor.run_until_idle()  # two separate profiles now
        alias = {"previousId": "cli-anon", "userId": "cli-user", "messageId": "cli-alias"}
        assert ops.client.post("/v1/alias", json=alias, headers=key).status_code == 200
        ops.runtime.processor.run_until_idle()
    finally:
        ops.runtime.close()
    return cli


def test_profile_show_lists_identifiers_traits_and_events(aliased: Cli) -> None:
    result = aliased("profile", "show", "email:ann@example.com")
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"^use_\w+", out, re.M), out
    for text in ("cli-anon", "cli-user", "ann@example.com", "plan", '"pro"', "Order Completed"):
        assert text in out, text
    # The same profile, whichever id names it
    by_user = aliased("profile", "show", "user_id:cli-user")
    assert by_user.output.splitlines()[0] == out.splitlines()[0]


def test_profile_explain_shows_the_alias_merge(aliased: Cli) -> None:
    as_json = aliased("profile", "explain", "user_id:cli-user", "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    [merge] = body["merges"]
    assert merge["rule"] == "alias"
    assert merge["message_id"] == "cli-alias"
    assert merge["into_profile_id"] == body["profile_id"]
    assert {(i["type"], i["value"]) for i in body["identifiers"]} == {
        ("anonymous_id", "cli-anon"),
        ("email", "ann@example.com"),
        ("user_id", "cli-user"),
    }
    table = aliased("profile", "explain", "anonymous_id:cli-anon")
    assert table.exit_code == 0, table.output
    assert "alias" in table.output
    assert "cli-alias" in table.output
    assert "no merges" not in table.output


def test_status_shows_backlog_profiles_and_quarantine(aliased: Cli) -> None:
    ops = aliased.server()
    try:
        assert ops.track(key=WRITE_KEY, userId="late").status_code == 200  # not processed yet
        assert ops.track(key=WRITE_KEY, event="").status_code == 400
    finally:
        ops.runtime.close()
    result = aliased("status")
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1]
        for line in result.output.splitlines()
        if len(cells := [c.strip() for c in re.split(r"[│|]", line) if c.strip()]) == 2
    }
    assert rows["inbox pending"] == "1"
    assert rows["profiles (users)"] == "1"
    assert json.loads(rows["quarantine"]) == {"missing_event": 1}
    assert rows["database"].startswith("sqlite")


def test_events_tail_shows_the_latest_events_newest_last(aliased: Cli) -> None:
    ops = aliased.server()
    try:
        for i in range(1, 8):
            assert ops.track(key=WRITE_KEY, event=f"Step {i}").status_code == 200
    finally:
        ops.runtime.close()
    result = aliased("events", "tail", "-n", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 5
    assert [re.search(r"Step \d", line).group(0) for line in lines] == [  # type: ignore[union-attr]
        f"Step {i}" for i in range(3, 8)
    ]
    assert all("pending" in line for line in lines)


def test_profile_show_of_an_unknown_customer_is_a_clear_error(cli: Cli) -> None:
    result = cli("profile", "show", "email:nobody@example.com")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "Profile was not found" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_read_only_tokens_cannot_create_contacts_or_change_rules(sqlite_runtime: Runtime) -> None:
    # Given a read-only token
    _tok, secret = sqlite_runtime.admin.add_token(
        "default", "support", sqlite_runtime.now_us(), "read"
    )
    client = TestClient(create_app(sqlite_runtime, start_worker=False))
    # When it tries to write, Then it is refused with 403 and nothing is created
    r = client.post(
        "/api/contacts", json={"identifiers": {"email": "ro@example.com"}}, headers=basic(secret)
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = client.put("/api/workspaces/default/identity-rules", json={}, headers=basic(secret))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert sqlite_runtime.profiles.count_profiles("default") == 0
    # And it can still read
    r = client.get("/api/workspaces/default/identity-rules", headers=basic(secret))
    assert r.status_code == 200
