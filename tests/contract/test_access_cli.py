"""``opencdp workspace …``, ``token …``, ``source add`` and ``audit`` on both backends, and the
audit log entries that every writing command leaves (channel cli, actor cli:<os user>)."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opencdp.cli.main import app
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import basic, make_settings


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None) -> Any:
    def run(*args: str, code: int = 0) -> Any:
        extra = ["--data-dir", str(tmp_path / "data")]
        if database_url is not None:
            extra += ["--database-url", database_url]
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == code, result.output
        return result

    run.settings = make_settings(tmp_path, database_url)  # type: ignore[attr-defined]
    return run


def secret(output: str, label: str) -> str:
    found = re.search(rf"{label}: (\S+)", output)
    assert found, output
    return found.group(1)


def test_a_brand_gets_a_workspace_a_source_and_tokens_of_each_role(cli: Any) -> None:
    assert "workspace b2c" in cli("workspace", "add", "b2c", "--name", "B2C shop").output
    refused = cli("workspace", "add", "b2c", "--name", "again", code=1)
    assert "already exists" in refused.output
    added = cli("source", "add", "web", "--workspace", "b2c")
    assert "in workspace b2c" in added.output
    key = secret(added.output, "write key")
    tokens = {}
    for role in ("admin", "write", "read", "support"):
        out = cli("token", "add", f"{role}-tok", "--workspace", "b2c", "--role", role).output
        assert f", {role})" in out and "in workspace b2c" in out
        tokens[role] = secret(out, "secret")
    old = cli("token", "add", "legacy", "--workspace", "b2c", "--scope", "read").output
    assert ", read)" in old
    root = cli("token", "add", "root", "--workspace", "b2c", "--instance-admin").output
    assert "instance administrator" in root
    cli("token", "add", "x", "--workspace", "b2c", "--role", "owner", code=1)
    cli("token", "add", "x", "--workspace", "b2c", "--role", "read", "--instance-admin", code=1)
    cli("token", "add", "x", "--workspace", "nowhere", code=1)

    shown = json.loads(cli("workspace", "show", "b2c", "--json").output)
    assert [s["name"] for s in shown["sources"]] == ["web"]
    assert sorted(t["role"] for t in shown["tokens"]) == [
        "admin",
        "admin",
        "read",
        "read",
        "support",
        "write",
    ]
    text = cli("workspace", "show", "b2c").output
    assert key not in text and not any(s in text for s in tokens.values())
    listed = json.loads(cli("workspace", "list", "--json").output)["data"]
    assert sorted(w["id"] for w in listed) == ["b2c", "default"]

    # The key and the tokens work against a server on the same database, in b2c only
    rt = Runtime(cli.settings)
    try:
        with TestClient(create_app(rt, start_worker=False)) as client:
            event = {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}}
            assert client.post("/v1/identify", json=event, headers=basic(key)).status_code == 200
            rt.processor.run_until_idle()
            traits = "/v1/spaces/b2c/collections/users/profiles/user_id:u-1/traits"
            assert client.get(traits, headers=basic(tokens["support"])).status_code == 200
            other = "/v1/spaces/default/collections/users/profiles/user_id:u-1/traits"
            assert client.get(other, headers=basic(tokens["admin"])).status_code == 401
            assert client.get("/api/audit", headers=basic(tokens["read"])).status_code == 403
    finally:
        rt.close()


def test_settings_are_shown_and_changed_by_field(cli: Any) -> None:
    cli("workspace", "add", "b2c", "--name", "B2C shop")
    shown = json.loads(cli("workspace", "settings", "b2c", "--json").output)
    assert shown["consent_default"] == "opt-in"
    changed = cli(
        "workspace",
        "settings",
        "b2c",
        "--consent-default",
        "opt-out",
        "--self-service-trait",
        "first_name",
        "--self-service-trait",
        "address",
        "--self-service-origin",
        "https://shop.example",
        "--link-ttl",
        "3600",
        "--json",
    )
    assert json.loads(changed.output) == {
        "consent_default": "opt-out",
        "self_service_traits": ["first_name", "address"],
        "self_service_origins": ["https://shop.example"],
        "self_service_link_ttl": 3600,
    }
    refused = cli("workspace", "settings", "b2c", "--consent-default", "maybe", code=1)
    assert "consent_default" in refused.output
    assert json.loads(cli("workspace", "settings", "b2c", "--json").output)["consent_default"] == (
        "opt-out"
    )


def test_rotate_and_revoke_act_in_the_named_workspace(cli: Any) -> None:
    cli("workspace", "add", "b2c", "--name", "B2C shop")
    cli("token", "add", "crm", "--workspace", "b2c", "--role", "read")
    lost = cli("token", "rotate", "crm", code=1)  # the default workspace has none of that name
    assert "--workspace b2c" in lost.output.replace("\n", " ")
    rotated = cli("token", "rotate", "crm", "--workspace", "b2c")
    assert "of workspace b2c rotated" in rotated.output
    assert "revoked" in cli("token", "revoke", "crm", "--workspace", "b2c").output
    cli("token", "revoke", "crm", "--workspace", "b2c", code=1)


def test_every_writing_command_is_in_the_audit_log(cli: Any, tmp_path: Path) -> None:
    cli("workspace", "add", "b2c", "--name", "B2C shop")
    cli("workspace", "settings", "b2c", "--consent-default", "opt-out")
    cli("source", "add", "web", "--workspace", "b2c")
    cli("source", "disable", "web", "--workspace", "b2c")
    cli("source", "enable", "web", "--workspace", "b2c")
    cli("source", "rotate-key", "web", "--workspace", "b2c")
    cli("token", "add", "crm", "--workspace", "b2c", "--role", "read")
    cli("token", "rotate", "crm", "--workspace", "b2c")
    cli("token", "revoke", "crm", "--workspace", "b2c")
    rules = tmp_path / "rules.json"
    rules.write_text("{}")
    cli("identity-rules", "set", str(rules), "--workspace", "b2c")
    drops = tmp_path / "drops"
    drops.mkdir()
    cli(
        "destination", "add", "drop", "--type", "file", "--set", f"directory={drops}",
        "--workspace", "b2c",
    )  # fmt: skip
    journey = tmp_path / "welcome.json"
    steps = [{"key": "tell", "send": {"destination": "drop", "event_name": "Told"}}]
    journey.write_text(json.dumps({"entry": {"event": 'event = "Signed Up"'}, "steps": steps}))
    cli("destination", "disable", "drop", "--workspace", "b2c")
    cli("journey", "apply", str(journey), "--workspace", "b2c")
    cli("journey", "pause", "welcome", "--workspace", "b2c")
    cli("journey", "delete", "welcome", "--workspace", "b2c")
    cli("destination", "delete", "drop", "--workspace", "b2c")
    cli("workspace", "settings", "b2c", "--consent-default", "never", code=1)

    out = json.loads(cli("audit", "--workspace", "b2c", "--json").output)
    actions = [(e["action"], e["status"]) for e in out["data"]]
    assert actions == [
        ("workspace.add", 0),
        ("workspace.settings", 0),
        ("source.add", 0),
        ("source.disable", 0),
        ("source.enable", 0),
        ("source.rotate_key", 0),
        ("token.add", 0),
        ("token.rotate", 0),
        ("token.revoke", 0),
        ("identity_rules.put", 0),
        ("destination.put", 0),
        ("destination.put", 0),
        ("journey.put", 0),
        ("journey.pause", 0),
        ("journey.delete", 0),
        ("destination.delete", 0),
        ("workspace.settings", 1),
    ]
    assert {(e["actor"], e["channel"], e["role"]) for e in out["data"]} == {
        (f"cli:{getpass.getuser()}", "cli", "operator")
    }
    assert all(e["request_id"] and e["workspace_id"] == "b2c" for e in out["data"])
    token_add = next(e for e in out["data"] if e["action"] == "token.add")
    assert re.fullmatch(r"/api/tokens/tok_\w+", token_add["target"])
    filtered = json.loads(
        cli("audit", "--workspace", "b2c", "--action", "journey", "--json").output
    )
    assert [e["action"] for e in filtered["data"]] == [
        "journey.put",
        "journey.pause",
        "journey.delete",
    ]
    limited = cli("audit", "--workspace", "b2c", "--limit", "2")
    assert "more entries follow" in limited.output
