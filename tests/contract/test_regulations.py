"""Privacy requests on every backend, through the HTTP API in Segment's Public API shapes:
deletion of the whole person, suppression at collection and at import, lifting it, forwarding
the deletion to a webhook (delivered or failing), crash-resume and idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opencdp.clock import FrozenClock
from opencdp.errors import NotFound
from opencdp.imports.mapping import parse_mapping
from opencdp.runtime import Runtime
from opencdp.services import privacy
from opencdp.services.import_runs import ImportRequest, import_file
from opencdp.storage.schema import deliveries, inbox, quarantine
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.receiver import Answer, Receiver

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WS = "default"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def send(client: TestClient, rt: Runtime, *events: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic(WRITE_KEY))
    assert answer.status_code == 200, answer.text
    rt.processor.run_until_idle()
    return dict(answer.json())


def ann(client: TestClient, rt: Runtime) -> str:
    """Ann, with a user id, an e-mail and a phone, and a device she browsed on anonymously
    first (two profiles, merged when she signs in there)."""
    traits = {"email": "Ann@Example.com", "phone": "+14155550123", "name": "Ann"}
    send(client, rt, {"type": "identify", "userId": "ann", "traits": traits})
    send(client, rt, {"type": "page", "anonymousId": "ann-device", "name": "Home"})
    send(
        client,
        rt,
        {"type": "identify", "userId": "ann", "anonymousId": "ann-device"},
        {"type": "track", "userId": "ann", "event": "Order Completed"},
        {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}},
    )
    profile = rt.profiles.find(WS, "users", "user_id", "ann")
    assert rt.profiles.absorbed_ids(WS, profile), "the scenario must merge two profiles"
    return profile


def regulate(client: TestClient, kind: str, subject: str, *ids: str) -> str:
    body = {"regulationType": kind, "subjectType": subject, "subjectIds": list(ids)}
    answer = client.post("/api/regulations", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["regulateId"])


def status(client: TestClient, regulation: str) -> dict[str, Any]:
    answer = client.get(f"/api/regulations/{regulation}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"]["regulation"])


def gone(rt: Runtime, kind: str, value: str) -> bool:
    try:
        rt.profiles.find(WS, "users", kind, value)
    except NotFound:
        return True
    return False


def count(rt: Runtime, table: Any) -> int:
    with rt.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_deletion_by_e_mail_takes_the_whole_person_and_reports_per_store(
    client: TestClient, rt: Runtime
) -> None:
    ann(client, rt)
    # When Ann's deletion is requested by her e-mail (as she typed it)
    regulation = regulate(client, "DELETE_ONLY", "EMAIL", "ANN@example.com")
    # Then it finished at once, every identifier of hers is gone, and Bob is there
    body = status(client, regulation)
    assert body["overallStatus"] == "FINISHED" and body["finishedAt"]
    assert all(gone(rt, k, v) for k, v in [("user_id", "ann"), ("anonymous_id", "ann-device")])
    assert not gone(rt, "user_id", "bob")
    # with the rows removed per store, in Segment's shape plus the report
    assert body["report"]["events"] == 4 and body["report"]["identifiers"] == 4
    assert body["report"]["profiles"] == 2  # the anonymous profile merged into hers
    assert body["workspaceId"] == WS and body["regulationType"] == "DELETE_ONLY"
    assert body["streamStatus"] == [{"id": "opencdp", "destinationStatus": []}]
    # and the request no longer holds her e-mail, only a keyed hash
    assert [s.startswith("hash:") for s in body["subjects"]] == [True]
    assert "ann@example.com" not in client.get("/api/regulations", headers=AUTH).text.lower()


def test_a_person_already_deleted_is_deleted_again_with_nothing_to_remove(
    client: TestClient, rt: Runtime
) -> None:
    ann(client, rt)
    first = regulate(client, "DELETE_ONLY", "USER_ID", "ann")
    again = regulate(client, "DELETE_ONLY", "USER_ID", "ann")
    assert status(client, first)["report"]["events"] == 4
    assert (status(client, again)["overallStatus"], status(client, again)["report"]) == (
        "FINISHED",
        {},
    )


def test_suppression_refuses_events_at_collection_and_import_until_lifted(
    client: TestClient, rt: Runtime, tmp_path: Path
) -> None:
    ann(client, rt)
    before = (count(rt, inbox), count(rt, quarantine))
    # When Ann is suppressed by her user id
    regulation = regulate(client, "SUPPRESS_ONLY", "USER_ID", "ann")
    assert status(client, regulation)["overallStatus"] == "FINISHED"
    # Then events naming any identifier of hers are refused and kept nowhere
    result = send(
        client,
        rt,
        {"type": "track", "userId": "ann", "event": "Clicked"},
        {"type": "track", "anonymousId": "ann-device", "event": "Clicked"},
        {"type": "identify", "anonymousId": "new-device", "traits": {"email": "ann@example.com"}},
        {"type": "track", "userId": "bob", "event": "Clicked"},
    )
    assert (result["accepted"], result["suppressed"], result["quarantined"]) == (1, 3, 0)
    assert (count(rt, inbox), count(rt, quarantine)) == (before[0] + 1, before[1])
    # and so are rows of an import
    rows = tmp_path / "orders.csv"
    rows.write_text(
        "order_id,customer_id,email,ordered_at,total\n"
        "o1,ann,ann@example.com,2021-01-02T10:00:00Z,12.50\n"
        "o2,bob,bob@example.com,2021-01-02T10:00:00Z,30.00\n",
        encoding="utf-8",
    )
    spec = "kind: orders\nfields: {order_id: order_id, user_id: customer_id, email: email, "
    spec += "timestamp: ordered_at, total: total}\n"
    report = import_file(rt, ImportRequest(rows, parse_mapping(spec, name="orders.yaml")))
    assert (report["imported"]["accepted"], report["imported"]["suppressed"]) == (1, 1)
    # The suppression is listed with the value (nothing was deleted)
    listed = client.get("/api/suppressions", headers=AUTH).json()["data"]["suppressed"]
    assert {"subjectType": "USER_ID", "subjectIds": ["ann"]} in listed
    # When it is lifted, her events are accepted again
    regulate(client, "UNSUPPRESS", "USER_ID", "ann")
    assert send(client, rt, {"type": "track", "userId": "ann", "event": "Back"})["accepted"] == 1
    assert client.get("/api/suppressions", headers=AUTH).json()["data"]["suppressed"] == []


def test_a_suppressed_and_deleted_person_does_not_come_back(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    ann(client, rt)
    regulation = regulate(client, "SUPPRESS_WITH_DELETE", "PHONE", "(415) 555-0123")
    # The suppression is at once; the deletion waits until every process refuses her
    assert status(client, regulation)["overallStatus"] == "INITIALIZED"
    assert send(client, rt, {"type": "track", "userId": "ann"})["suppressed"] == 1
    clock.advance(privacy.SETTLE_US / 1e6)
    privacy.run_regulations(rt)
    assert status(client, regulation)["overallStatus"] == "FINISHED"
    assert gone(rt, "user_id", "ann")
    # When she sends again with another of her identifiers, she stays gone
    again = send(client, rt, {"type": "identify", "anonymousId": "ann-device", "traits": {}})
    assert again["suppressed"] == 1 and gone(rt, "anonymous_id", "ann-device")
    # and the suppressions keep no value of hers
    listed = client.get("/api/suppressions", headers=AUTH).text
    assert "ann" not in listed.replace("hash:", "") and "4155550123" not in listed


def test_the_deletion_is_forwarded_to_a_webhook_and_its_delivery_removed(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    hook(client, receiver)
    ann(client, rt)
    regulation = regulate(client, "DELETE_ONLY", "USER_ID", "ann")
    # While the deletion waits in the outbox the regulation is running
    body = status(client, regulation)
    assert body["overallStatus"] == "RUNNING" and body["report"]["events"] == 4
    assert body["streamStatus"][0]["destinationStatus"][0]["status"] == "RUNNING"
    # When the dispatcher sends it and the runner follows up
    rt.dispatcher.run_until_idle()
    privacy.run_regulations(rt)
    # Then the webhook got a delete naming every identifier, and the regulation finished
    [deleted] = [r.json() for r in receiver.requests if r.json()["type"] == "delete"]
    assert deleted["userId"] == "ann" and deleted["anonymousId"] == "ann-device"
    assert deleted["context"]["traits"]["email"] == "ann@example.com"
    body = status(client, regulation)
    assert body["overallStatus"] == "FINISHED"
    [crm] = body["streamStatus"][0]["destinationStatus"]
    assert (crm["id"], crm["status"], crm["errString"]) == ("crm", "FINISHED", None)
    # and nothing of hers is left in the outbox, the forwarded deletion included
    with rt.db.read() as conn:
        payloads = conn.execute(select(deliveries.c.payload)).scalars().all()
    assert not [p for p in payloads if '"ann' in p]


def test_a_failing_destination_fails_the_regulation_but_not_the_internal_deletion(
    client: TestClient, rt: Runtime, receiver: Receiver
) -> None:
    receiver.answer = lambda r: Answer(410 if r.json().get("type") == "delete" else 200)
    hook(client, receiver)
    ann(client, rt)
    regulation = regulate(client, "DELETE_ONLY", "USER_ID", "ann")
    rt.dispatcher.run_until_idle()
    privacy.run_regulations(rt)
    body = status(client, regulation)
    assert body["overallStatus"] == "FAILED"  # Segment's rule
    [crm] = body["streamStatus"][0]["destinationStatus"]
    assert crm["status"] == "FAILED" and "410" in (crm["errString"] or "")
    assert body["report"]["events"] == 4 and gone(rt, "user_id", "ann")


def test_a_regulation_interrupted_half_way_resumes_to_the_same_result(
    client: TestClient, rt: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann(client, rt)
    regulation = regulate(client, "SUPPRESS_WITH_DELETE", "USER_ID", "ann")
    clock.advance(privacy.SETTLE_US / 1e6)
    # When the process dies inside the erasure's transaction
    real = rt.outbox.enqueue

    def crash(*_a: Any, **_k: Any) -> None:
        # a driver's message quotes the parameters of the statement that failed
        raise RuntimeError("killed while writing ('ann', 'ann@example.com', '+14155550123')")

    monkeypatch.setattr(rt.outbox, "enqueue", crash)
    privacy.run_regulations(rt)
    # Then nothing was committed: she is all there, the regulation says what failed
    assert not gone(rt, "user_id", "ann")
    body = status(client, regulation)
    assert body["overallStatus"] == "INITIALIZED" and "killed" in body["error"]
    # (and it keeps none of her values: the error outlives her)
    assert "ann" not in body["error"].replace("[erased]", "")
    assert "4155550123" not in body["error"], body["error"]
    # When it dies again while scrubbing, after the deletion committed
    monkeypatch.setattr(rt.outbox, "enqueue", real)
    monkeypatch.setattr(privacy, "scrub_files", crash)
    privacy.run_regulations(rt)
    assert gone(rt, "user_id", "ann") and status(client, regulation)["step"] == "scrub"
    # And the next run finishes it, with the counts of the step that did the work
    monkeypatch.undo()
    privacy.run_regulations(rt)
    body = status(client, regulation)
    assert body["overallStatus"] == "FINISHED" and body["report"]["events"] == 4
    assert "error" not in body


@pytest.mark.parametrize(
    ("body", "status_code", "code"),
    [
        (
            {"regulationType": "FORGET", "subjectType": "USER_ID", "subjectIds": ["a"]},
            400,
            "invalid_regulation_type",
        ),
        (
            {"regulationType": "DELETE_ONLY", "subjectType": "NAME", "subjectIds": ["a"]},
            400,
            "invalid_subject_type",
        ),
        (
            {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": []},
            400,
            "invalid_subject_ids",
        ),
        (
            {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["u"] * 5001},
            400,
            "too_many_subjects",
        ),
        (
            {
                "regulationType": "DELETE_ARCHIVE_ONLY",
                "subjectType": "USER_ID",
                "subjectIds": ["a"],
            },
            400,
            "not_supported",
        ),
        (
            {"regulationType": "DELETE_ONLY", "subjectType": "OBJECT_ID", "subjectIds": ["a"]},
            400,
            "not_supported",
        ),
        ([], 400, "invalid_regulation"),
    ],
)
def test_bad_requests_are_refused_with_the_field_named(
    client: TestClient, body: Any, status_code: int, code: str
) -> None:
    answer = client.post("/api/regulations", json=body, headers=AUTH)
    assert (answer.status_code, answer.json()["code"]) == (status_code, code), answer.text
    assert client.get("/api/regulations", headers=AUTH).json()["data"]["regulations"] == []


def test_listing_pages_and_filters_and_an_unknown_id_is_404(
    client: TestClient, rt: Runtime
) -> None:
    ids = [regulate(client, "SUPPRESS_ONLY", "USER_ID", f"u{i}") for i in range(3)]
    page = client.get("/api/regulations?pagination.count=2", headers=AUTH).json()["data"]
    rest = client.get(
        f"/api/regulations?pagination.count=2&pagination.cursor={page['pagination']['next']}",
        headers=AUTH,
    ).json()["data"]
    seen = [r["id"] for r in page["regulations"] + rest["regulations"]]
    assert sorted(seen) == sorted(ids) and rest["pagination"]["next"] is None
    assert page["regulations"][0]["status"] == "FINISHED"
    none = client.get("/api/regulations?regulationTypes=DELETE_ONLY", headers=AUTH).json()
    assert none["data"]["regulations"] == []
    assert client.get("/api/regulations?status=DONE", headers=AUTH).status_code == 400
    assert client.get("/api/regulations/reg_nope", headers=AUTH).status_code == 404


def hook(client: TestClient, receiver: Receiver) -> None:
    body = {
        "type": "webhook",
        "settings": {"url": receiver.url, "allow_http": True, "allow_private_targets": True},
        "subscriptions": [{"name": "orders", "condition": 'event = "Order Completed"'}],
    }
    answer = client.put("/api/destinations/crm", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text


def test_the_cli_deletes_suppresses_and_shows_status(
    client: TestClient, rt: Runtime, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from opencdp.cli.main import app

    ann(client, rt)
    where = ["--data-dir", str(rt.settings.data_dir)]
    if rt.settings.database_url:
        where += ["--database-url", rt.settings.database_url]
    runner = CliRunner()
    # When an operator deletes and suppresses Ann by e-mail, and waits for it
    result = runner.invoke(
        app, ["privacy", "delete", "ann@example.com", "-t", "email", "--suppress", *where]
    )
    assert result.exit_code == 0, result.output
    assert "SUPPRESS_WITH_DELETE (EMAIL): FINISHED" in result.output
    assert gone(rt, "user_id", "ann")
    # Then the status lists it, as JSON too, and the audit log names the operator
    listed = runner.invoke(app, ["privacy", "status", "--json", *where])
    assert listed.exit_code == 0 and "SUPPRESS_WITH_DELETE" in listed.output
    [entry] = rt.audit.query(WS, action="regulation")
    assert (entry.channel, entry.action) == ("cli", "regulation.create")
    assert entry.actor.startswith("cli:")
    # And a wrong subject type is a message, not a traceback
    bad = runner.invoke(app, ["privacy", "suppress", "x", "-t", "name", *where])
    assert bad.exit_code == 1 and "subjectType must be one of" in bad.output


def test_a_subject_that_is_no_valid_e_mail_is_kept_as_given_and_names_nobody(
    client: TestClient, rt: Runtime
) -> None:
    ann(client, rt)
    regulation = regulate(client, "SUPPRESS_ONLY", "EMAIL", " not-an-e-mail ")
    assert status(client, regulation)["subjects"] == ["not-an-e-mail"]
    assert not gone(rt, "user_id", "ann")
    answer = client.post(
        "/api/regulations",
        json={"regulationType": "DELETE_ONLY", "subjectType": {}, "subjectIds": ["a"]},
        headers=AUTH,
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_subject_type")
