"""Workspaces, sources and tokens through ``/api`` on both backends: who may create what, what
the answers hold (a secret once, hints after), and rotation and revocation taking effect at
once in this process."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from opencdp.runtime import Runtime
from opencdp.storage.schema import access_tokens, sources
from tests.conftest import TOKEN, basic

INSTANCE = basic(TOKEN)


def as_instance(workspace: str) -> dict[str, str]:
    return {**INSTANCE, "OpenCDP-Workspace": workspace}


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def new_workspace(client: TestClient, ws: str) -> None:
    ok(client.post("/api/workspaces", json={"id": ws, "name": ws.title()}, headers=INSTANCE), 201)


def new_token(client: TestClient, ws: str, role: str, **extra: Any) -> dict[str, Any]:
    body = {"name": f"{role}-of-{ws}", "role": role, **extra}
    return ok(client.post("/api/tokens", json=body, headers=as_instance(ws)), 201)  # type: ignore[no-any-return]


def test_instance_administrators_create_workspaces_and_say_what_is_wrong(
    client: TestClient,
) -> None:
    created = ok(
        client.post(
            "/api/workspaces", json={"id": "b2c-shop", "name": "B2C shop"}, headers=INSTANCE
        ),
        201,
    )
    assert created["id"] == "b2c-shop" and created["settings"]["consent_default"] == "opt-in"
    again = client.post(
        "/api/workspaces", json={"id": "b2c-shop", "name": "Again"}, headers=INSTANCE
    )
    assert again.status_code == 409 and "b2c-shop" in again.json()["message"]
    for bad in ("B2C Shop", "", "-x", "a" * 65, 7):
        answer = client.post("/api/workspaces", json={"id": bad, "name": "x"}, headers=INSTANCE)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["code"] == "invalid_workspace_id"
        assert repr(bad) in answer.json()["message"]
    nameless = client.post("/api/workspaces", json={"id": "b2b"}, headers=INSTANCE)
    assert nameless.status_code == 400 and "name" in nameless.json()["message"]
    # an admin of a workspace is not an instance administrator
    admin = new_token(client, "b2c-shop", "admin")["token"]
    refused = client.post(
        "/api/workspaces", json={"id": "b2b", "name": "B2B"}, headers=basic(admin)
    )
    assert refused.status_code == 403
    ids = [w["id"] for w in ok(client.get("/api/workspaces", headers=INSTANCE))["data"]]
    assert sorted(ids) == ["b2c-shop", "default"]


def test_a_token_sees_only_its_own_workspace(client: TestClient) -> None:
    new_workspace(client, "shop")
    new_workspace(client, "portal")
    reader = basic(new_token(client, "shop", "read")["token"])
    assert [w["id"] for w in ok(client.get("/api/workspaces", headers=reader))["data"]] == ["shop"]
    shown = ok(client.get("/api/workspaces/shop", headers=reader))
    assert shown["sources"] == [] and [t["role"] for t in shown["tokens"]] == ["read"]
    assert "token" not in shown["tokens"][0]
    assert client.get("/api/workspaces/portal", headers=reader).status_code == 401
    naming = {**reader, "OpenCDP-Workspace": "portal"}
    assert client.get("/api/sources", headers=naming).status_code == 403
    assert client.get("/api/workspaces/nope", headers=INSTANCE).status_code == 404


def test_settings_change_what_is_sent_and_name_the_wrong_field(client: TestClient) -> None:
    new_workspace(client, "shop")
    url = "/api/workspaces/shop/settings"
    changed = ok(client.put(url, json={"consent_default": "opt-out"}, headers=INSTANCE))
    assert changed["settings"]["consent_default"] == "opt-out"
    changed = ok(client.put(url, json={"self_service_link_ttl": 3600}, headers=INSTANCE))
    assert changed["settings"] == {**changed["settings"], "consent_default": "opt-out"}
    for body, field in (
        ({"consent_default": "maybe"}, "consent_default"),
        ({"self_service_origins": ["shop.example"]}, "self_service_origins"),
        ({"self_service_link_ttl": 5}, "self_service_link_ttl"),
        ({"colour": "red"}, "colour"),
    ):
        answer = client.put(url, json=body, headers=INSTANCE)
        assert answer.status_code == 400 and field in answer.json()["message"], answer.text
    assert (
        ok(client.get("/api/workspaces/shop", headers=INSTANCE))["settings"][
            "self_service_link_ttl"
        ]
        == 3600
    )
    writer = basic(new_token(client, "shop", "write")["token"])
    assert client.put(url, json={"consent_default": "opt-in"}, headers=writer).status_code == 403


def test_a_source_write_key_is_shown_once_stored_hashed_and_lands_in_its_workspace(
    client: TestClient, rt: Runtime
) -> None:
    new_workspace(client, "shop")
    admin = basic(new_token(client, "shop", "admin")["token"])
    created = ok(client.post("/api/sources", json={"name": "web"}, headers=admin), 201)
    key = created["write_key"]
    assert created["workspace_id"] == "shop" and key.startswith(created["write_key_hint"][:4])
    listed = ok(client.get("/api/sources", headers=admin))["data"]
    assert [s["name"] for s in listed] == ["web"] and "write_key" not in listed[0]
    with rt.db.read() as conn:
        stored = repr([tuple(r) for r in conn.execute(select(sources))])
    assert key not in stored
    event = {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}}
    assert client.post("/v1/identify", json=event, headers=basic(key)).status_code == 200
    rt.processor.run_until_idle()
    assert rt.profiles.find("shop", "users", "user_id", "u-1")
    assert client.post("/api/sources", json={"name": " "}, headers=admin).status_code == 400


def test_tokens_never_gain_power_and_rotation_and_revocation_act_at_once(
    client: TestClient, rt: Runtime
) -> None:
    new_workspace(client, "shop")
    admin_view = new_token(client, "shop", "admin")
    admin = basic(admin_view["token"])
    # an admin creates tokens of every role in its workspace, never an instance administrator
    reader = ok(client.post("/api/tokens", json={"name": "r", "role": "read"}, headers=admin), 201)
    assert reader["role"] == "read" and reader["workspace_id"] == "shop"
    escalate = {"name": "root", "role": "admin", "instance_admin": True}
    assert client.post("/api/tokens", json=escalate, headers=admin).status_code == 403
    # ... nor one in another workspace
    naming = {**admin, "OpenCDP-Workspace": "default"}
    assert client.post("/api/tokens", json={"name": "x"}, headers=naming).status_code == 403
    bad = client.post("/api/tokens", json={"name": "x", "role": "owner"}, headers=admin)
    assert bad.status_code == 400 and "role" in bad.json()["message"]
    # an instance administrator may create another
    other = new_token(client, "shop", "admin", instance_admin=True)
    assert other["instance_admin"] is True
    # an admin cannot rotate or revoke an instance administrator's token in its workspace
    for method, path in (("POST", "/rotate"), ("DELETE", "")):
        answer = client.request(method, f"/api/tokens/{other['id']}{path}", headers=admin)
        assert answer.status_code == 403, answer.text
    # secrets are stored as keyed hashes only
    with rt.db.read() as conn:
        stored = repr([tuple(r) for r in conn.execute(select(access_tokens))])
    assert reader["token"] not in stored and admin_view["token"] not in stored
    # rotation: the old secret stops at once, the new one works
    probe = "/api/destinations"
    assert client.get(probe, headers=basic(reader["token"])).status_code == 200
    rotated = ok(client.post(f"/api/tokens/{reader['id']}/rotate", headers=admin))
    assert rotated["id"] == reader["id"] and rotated["token"] != reader["token"]
    assert client.get(probe, headers=basic(reader["token"])).status_code == 401
    assert client.get(probe, headers=basic(rotated["token"])).status_code == 200
    # revocation: at once
    ok(client.delete(f"/api/tokens/{reader['id']}", headers=admin))
    assert client.get(probe, headers=basic(rotated["token"])).status_code == 401
    assert client.delete(f"/api/tokens/{reader['id']}", headers=admin).status_code == 404
    # a token of another workspace is not found from here
    bootstrap = next(t for t in rt.admin.list_tokens("default") if t.instance_admin)
    assert client.delete(f"/api/tokens/{bootstrap.id}", headers=admin).status_code == 404
    listed = ok(client.get("/api/tokens", headers=admin))["data"]
    assert all("token" not in t for t in listed)
    assert {t["id"] for t in listed} == {admin_view["id"], other["id"]}
