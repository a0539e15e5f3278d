"""The audit log on both backends: every write through the API is recorded (who, what, when,
request id, workspace, answer), support tokens' profile reads are recorded with the profile id,
read-role reads are not, entries hold no personal data, and nothing changes or deletes them."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.services import access
from opencdp.storage.audit import AuditEntry, AuditStore
from opencdp.storage.schema import audit_log
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.routes import http_routes

ADMIN = basic(TOKEN)
EMAIL = "ann.auditee@example.com"

#: POST routes that only read (a dry run, a preview): written down here, by hand
READING_POSTS = {"/api/tracking-plans/{plan_id}/dry-run", "/api/audiences/preview"}


def entries(rt: Runtime, workspace: str = "default", **filters: Any) -> list[AuditEntry]:
    return rt.audit.query(workspace, limit=1000, **filters)


def by_request(rt: Runtime, request_id: str) -> list[AuditEntry]:
    with rt.db.read() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.request_id == request_id))
        return [AuditEntry(**r._asdict()) for r in rows]


def profile_with_email(client: TestClient, rt: Runtime) -> str:
    event = {"type": "identify", "userId": "ann", "traits": {"email": EMAIL, "name": "Ann"}}
    assert client.post("/v1/identify", json=event, headers=basic(WRITE_KEY)).status_code == 200
    rt.processor.run_until_idle()
    return str(rt.profiles.find("default", "users", "user_id", "ann"))


def token(rt: Runtime, role: str, workspace: str = "default") -> dict[str, str]:
    return basic(access.add_token(rt, None, workspace, f"{role}-token", role)["token"])


def test_every_write_route_records_who_what_when_and_the_answer(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    writes = [
        (method, path)
        for method, path in http_routes(client.app)  # type: ignore[arg-type]
        if method in ("POST", "PUT", "DELETE", "PATCH")
        and (path.startswith("/api/") and not path.startswith("/api/self"))
        and path not in READING_POSTS
    ]
    assert len(writes) > 25, writes
    bootstrap = next(t for t in rt.admin.list_tokens("default") if t.instance_admin)
    missing = []
    for n, (method, path) in enumerate(writes):
        clock.advance(1)
        rid = f"audit-check-{n}"
        concrete = path.replace("{workspace_id}", "default")
        while "{" in concrete:
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + "k1" + concrete[end + 1 :]
        answer = client.request(method, concrete, json={}, headers={**ADMIN, "Request-Id": rid})
        found = by_request(rt, rid)
        if len(found) != 1:
            missing.append(f"{method} {path}: {len(found)} entries")
            continue
        [entry] = found
        assert entry.workspace_id == "default"
        assert entry.actor == f"{bootstrap.id} ({bootstrap.name})"
        assert entry.role == "instance_admin" and entry.channel == "api"
        assert entry.at_us == rt.now_us(), (method, path)
        assert entry.status == answer.status_code, (method, path, answer.text)
        assert entry.action and "." in entry.action, entry
        assert entry.target is not None and entry.target.startswith("/api/"), entry
    assert missing == []


def test_a_refused_write_is_recorded_with_its_403(client: TestClient, rt: Runtime) -> None:
    reader = token(rt, "read")
    body = {"type": "file", "settings": {"directory": "/tmp/never"}}
    answer = client.put("/api/destinations/hook", json=body, headers=reader)
    assert answer.status_code == 403
    [entry] = entries(rt, action="destination.put")
    assert (entry.role, entry.status, entry.target) == ("read", 403, "/api/destinations/hook")


def test_support_reads_are_recorded_with_the_profile_and_not_the_email(
    client: TestClient, rt: Runtime
) -> None:
    pid = profile_with_email(client, rt)
    support = token(rt, "support")
    base = "/v1/spaces/default/collections/users/profiles"
    for resource in ("traits", "events", "external_ids"):
        answer = client.get(f"{base}/email:{EMAIL}/{resource}", headers=support)
        assert answer.status_code == 200, answer.text
    assert client.get(f"/api/profiles/{pid}/identity", headers=support).status_code == 200
    found = entries(rt, action="profile.read")
    assert [e.action for e in found] == [
        "profile.read.traits",
        "profile.read.events",
        "profile.read.external_ids",
        "profile.read.identity",
    ]
    assert {e.profile_id for e in found} == {pid}
    assert {e.role for e in found} == {"support"}
    assert found[0].target == ("/v1/spaces/default/collections/users/profiles/{external_id}/traits")
    assert entries(rt, profile_id=pid) == found


def test_reads_by_other_roles_are_not_recorded(client: TestClient, rt: Runtime) -> None:
    profile_with_email(client, rt)
    before = len(entries(rt))
    for role in ("read", "write", "admin"):
        headers = token(rt, role)
        traits = f"/v1/spaces/default/collections/users/profiles/email:{EMAIL}/traits"
        assert client.get(traits, headers=headers).status_code == 200
        assert client.get("/api/destinations", headers=headers).status_code == 200
    assert len(entries(rt)) == before


def test_no_entry_holds_personal_data(client: TestClient, rt: Runtime) -> None:
    # Given a person's e-mail and phone sent where keys go, and a profile read by e-mail
    profile_with_email(client, rt)
    support = token(rt, "support")
    base = "/v1/spaces/default/collections/users/profiles"
    client.get(f"{base}/email:{EMAIL}/traits", headers=support)
    client.put(f"/api/destinations/{EMAIL}", json={}, headers=ADMIN)
    client.put("/api/journeys/+4915112345678", json={}, headers=ADMIN)
    client.delete("/api/audiences/4915112345678", headers=ADMIN)
    client.post("/api/contacts", json={"identifiers": {"email": EMAIL}}, headers=ADMIN)
    # Then no column of any entry holds them
    with rt.db.read() as conn:
        text = repr([tuple(r) for r in conn.execute(select(audit_log))])
    assert "destination.put" in text and "journey.put" in text and "contact.upsert" in text
    for value in (EMAIL, "ann.auditee", "4915112345678", "Ann"):
        assert value not in text


def test_the_log_filters_by_time_action_actor_and_pages(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    start = clock.now()
    body = {"type": "file", "settings": {"directory": "/tmp/never"}}
    for n in range(5):
        clock.advance(60)
        client.put(f"/api/destinations/d{n}", json=body, headers=ADMIN)
    client.delete("/api/destinations/d0", headers=ADMIN)
    client.put("/api/journeys/j", json={}, headers=ADMIN)

    def audit(**params: Any) -> Any:
        answer = client.get("/api/audit", params=params, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [e["action"] for e in audit(action="destination")["data"]] == [
        *["destination.put"] * 5,
        "destination.delete",
    ]
    assert len(audit(action="destination.put")["data"]) == 5
    assert audit(action="dest")["data"] == []  # a prefix ends at a dot
    since = (start + timedelta(seconds=150)).isoformat()
    assert [e["target"] for e in audit(since=since, action="destination.put")["data"]] == [
        "/api/destinations/d2",
        "/api/destinations/d3",
        "/api/destinations/d4",
    ]
    until_ms = int((start + timedelta(seconds=150)).timestamp() * 1000)
    assert len(audit(until=until_ms, action="destination.put")["data"]) == 2
    # pages
    first = audit(limit=3)
    assert len(first["data"]) == 3 and first["next"]
    second = audit(limit=3, next=first["next"])
    rest = audit(limit=100, next=second["next"])
    ids = [e["id"] for e in first["data"] + second["data"] + rest["data"]]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 7
    assert rest["next"] is None
    # actor
    actor = first["data"][0]["actor"]
    assert len(audit(actor=actor, limit=100)["data"]) == 7
    assert audit(actor="nobody")["data"] == []
    # bad filters say what to send
    for query, word in (
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?colour=1", "colour"),
    ):
        answer = client.get(f"/api/audit{query}", headers=ADMIN)
        assert answer.status_code == 400 and word in answer.json()["message"], answer.text


def test_each_workspace_reads_only_its_own_log(client: TestClient, rt: Runtime) -> None:
    rt.admin.add_workspace("other", "Other", rt.now_us())
    other_admin = token(rt, "admin", "other")
    client.put("/api/journeys/j", json={}, headers=ADMIN)
    assert client.get("/api/audit", headers=other_admin).json()["data"] == []
    client.put("/api/journeys/j", json={}, headers=other_admin)
    [mine] = client.get("/api/audit?action=journey", headers=other_admin).json()["data"]
    assert mine["workspace_id"] == "other"
    ws_header = {**ADMIN, "OpenCDP-Workspace": "other"}
    assert len(client.get("/api/audit", headers=ws_header).json()["data"]) == 1
    for role in ("write", "read", "support"):
        assert client.get("/api/audit", headers=token(rt, role)).status_code == 403


def test_nothing_updates_or_deletes_an_entry(client: TestClient, rt: Runtime) -> None:
    # no route
    audit_routes = [r for r in http_routes(client.app) if r[1].startswith("/api/audit")]  # type: ignore[arg-type]
    assert audit_routes == [("GET", "/api/audit")]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert client.request(method, "/api/audit", headers=ADMIN).status_code == 405
    # no store method: appending and querying only
    public = {
        n for n, _ in inspect.getmembers(AuditStore, inspect.isfunction) if not n.startswith("_")
    }
    assert public == {"record", "query"}


@pytest.mark.parametrize("request_id", ["x" * 200])
def test_a_long_client_request_id_still_leaves_an_entry(
    client: TestClient, rt: Runtime, request_id: str
) -> None:
    client.put("/api/journeys/j", json={}, headers={**ADMIN, "Request-Id": request_id})
    [entry] = entries(rt, action="journey.put")
    assert entry.request_id == request_id[:64]
