"""``opencdp traits …`` and ``opencdp audiences …`` on both backends: definitions kept as YAML."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opencdp.cli.main import app
from opencdp.runtime import Runtime
from tests.contract.test_storage_contract import ingest

runner = CliRunner()


def cli(runtime: Runtime, *args: str) -> tuple[int, str]:
    options = ["--data-dir", str(runtime.settings.data_dir)]
    options += ["--database-url", runtime.settings.resolved_database_url()]
    result = runner.invoke(app, [*args, *options])
    return result.exit_code, result.output


def test_definitions_from_a_file(runtime: Runtime, tmp_path: Path) -> None:
    ingest(
        runtime,
        {"type": "identify", "userId": "ann", "messageId": "m1", "traits": {"plan": "pro"}},
        {"type": "identify", "userId": "bob", "messageId": "m2", "traits": {"plan": "free"}},
        {
            "type": "track",
            "userId": "ann",
            "messageId": "m3",
            "event": "Order Completed",
            "properties": {"revenue": 12.5},
        },
    )
    traits = tmp_path / "traits.yaml"
    traits.write_text(
        "traits:\n"
        "  order_count:\n"
        "    name: Orders\n"
        "    definition: {query: \"event('Order Completed').count()\"}\n"
    )
    audiences = tmp_path / "audiences.yaml"
    # The audience reads the trait of the other file, and a second one reads the first
    audiences.write_text(
        "- key: buyers_on_pro\n"
        "  definition: {query: \"trait('buyers') = true AND trait('plan') = 'pro'\"}\n"
        "- key: buyers\n"
        "  definition: {query: \"trait('order_count') >= 1\"}\n"
    )
    code, out = cli(runtime, "traits", "apply", str(traits), "--json")
    assert code == 0, out
    assert json.loads(out)[0]["status"] == "ready"
    code, out = cli(runtime, "audiences", "apply", str(audiences), "--json")
    assert code == 0, out
    assert {d["key"]: d["size"] for d in json.loads(out)} == {"buyers": 1, "buyers_on_pro": 1}
    code, out = cli(runtime, "audiences", "list")
    assert code == 0 and "buyers_on_pro" in out and "ready" in out
    code, out = cli(runtime, "audiences", "show", "buyers")
    assert code == 0 and json.loads(out)["size"] == 1
    code, out = cli(
        runtime, "traits", "preview", "event('Order Completed').sum(property('revenue'))"
    )
    assert code == 0 and json.loads(out)["profiles"] == 2
    code, out = cli(runtime, "audiences", "preview", "trait('plan') = 'free'")
    assert code == 0 and json.loads(out)["size"] == 1
    code, out = cli(runtime, "audiences", "delete", "buyers_on_pro")
    assert code == 0
    code, out = cli(runtime, "audiences", "show", "buyers_on_pro")
    assert code == 1 and "no audience 'buyers_on_pro'" in out


def test_a_bad_file_stores_nothing_and_says_why(runtime: Runtime, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- key: fine\n  definition: {query: \"event('A').count() >= 1\"}\n"
        "- key: broken\n  definition: {query: \"event('A').count( >= 1\"}\n"
    )
    code, out = cli(runtime, "audiences", "apply", str(bad))
    assert code == 1
    assert "broken: line 1, column 19" in out
    code, out = cli(runtime, "audiences", "list", "--json")
    assert json.loads(out) == []


def test_the_retail_preset(runtime: Runtime, tmp_path: Path) -> None:
    ingest(
        runtime,
        {
            "type": "track",
            "userId": "ann",
            "messageId": "o1",
            "event": "Order Completed",
            "properties": {"revenue": 600, "products": [{"category": "shoes", "brand": "Acme"}]},
        },
        {"type": "track", "userId": "bob", "messageId": "s1", "event": "Signed In"},
    )
    code, out = cli(runtime, "traits", "apply", "--preset", "retail", "--json")
    assert code == 0, out
    traits = {d["key"]: d for d in json.loads(out)}
    assert "rfm_segment" in traits and "favorite_brand" in traits
    clv = {"predicted_clv_12m", "p_alive", "predicted_orders_12m"}  # wait for `clv fit`
    assert {d["status"] for k, d in traits.items() if k not in clv} == {"ready"}
    assert {traits[k]["status"] for k in clv} == {"failed"}
    # each trait comes after those it reads
    keys = list(traits)
    assert keys.index("last_order_at") < keys.index("rfm_recency") < keys.index("rfm_segment")
    code, out = cli(runtime, "audiences", "apply", "--preset", "retail", "--json")
    assert code == 0, out
    sizes = {d["key"]: d["size"] for d in json.loads(out)}
    assert sizes["high_value"] == sizes["recent_buyers"] == 1
    # a single customer has no one below her: the bottom fifth, 'Lost' and no champion
    assert sizes["champions"] == 0
    code, out = cli(runtime, "traits", "show", "favorite_brand")
    assert code == 0 and json.loads(out)["status"] == "ready"


def test_a_preset_is_named_or_a_file_given_not_both(runtime: Runtime, tmp_path: Path) -> None:
    code, out = cli(runtime, "traits", "apply", "--preset", "nope")
    assert code == 1
    assert "there is no preset 'nope'" in out and "retail" in out
    file = tmp_path / "traits.yaml"
    file.write_text("traits: {n: {definition: {query: \"event('A').count()\"}}}\n")
    code, out = cli(runtime, "traits", "apply", str(file), "--preset", "retail")
    assert code == 2
    assert "give a FILE or --preset NAME" in out
    code, out = cli(runtime, "audiences", "apply")
    assert code == 2
    assert "give a FILE or --preset NAME" in out
    code, out = cli(runtime, "traits", "list", "--json")
    assert json.loads(out) == []
