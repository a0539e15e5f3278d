"""Quarantine closure on every storage backend: rows closed by a later success (live pipeline,
import), replay of import rows, and dismissal over ``POST /api/quarantine/dismiss``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.imports.mapping import parse_mapping
from opencdp.runtime import Runtime
from opencdp.services import governance as gov
from opencdp.services.import_runs import ImportRequest, import_file
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.web.app import create_app
from tests.conftest import TOKEN, basic
from tests.contract.test_storage_contract import source

WS = DEFAULT_WORKSPACE
ORDERS = """
kind: orders
constants: {currency: EUR}
fields:
  order_id: order_id
  user_id: customer_id
  timestamp: ordered_at
  total: {column: total, type: decimal}
"""
HEADER = "order_id,customer_id,ordered_at,total\n"


def send(runtime: Runtime, *messages: dict[str, Any]) -> Any:
    result = runtime.collector.ingest_messages(source(runtime), list(messages))
    runtime.processor.run_until_idle()
    return result


def import_text(runtime: Runtime, tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + text, encoding="utf-8")
    return import_file(runtime, ImportRequest(path, parse_mapping(ORDERS)))


def test_a_message_sent_again_fixed_closes_its_quarantine_row(runtime: Runtime) -> None:
    # Given a track without an event name, quarantined under its message id
    assert send(runtime, {"type": "track", "userId": "u1", "messageId": "m1"}).quarantined == 1
    [row] = runtime.quarantine.list(WS)
    # When the sender fixes it and sends it again with the same message id
    send(runtime, {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1"})
    # Then the row is closed (the stored event is its replay), not left open for ever
    closed = runtime.quarantine.get(WS, row.id)
    assert closed is not None and closed.resolved_us is not None
    assert closed.resolution == "replayed"
    assert runtime.quarantine.counts(WS) == {}


def test_a_later_import_closes_rows_of_the_same_records(runtime: Runtime, tmp_path: Path) -> None:
    # Given an import with two bad amounts
    import_text(
        runtime, tmp_path, "o1,c1,2024-01-01,10\no2,c2,2024-01-02,ten\no3,c3,2024-01-03,x\n"
    )
    bad = runtime.quarantine.list(WS)
    assert len(bad) == 2 and {r.reason for r in bad} == {"invalid_row"}
    assert all(r.import_run_id and r.import_run_id.startswith("imp_") for r in bad)
    # When a file with one of them fixed is imported
    report = import_text(runtime, tmp_path, "o2,c2,2024-01-02,12.5\no3,c3,2024-01-03,x\n")
    # Then that row is closed as imported, the other stays open
    assert report["imported"]["new_events"] == 1
    [still] = runtime.quarantine.list(WS)
    assert "o3" in still.payload
    closed = runtime.quarantine.list(
        WS, where=gov.quarantine_filter(runtime, WS, status="resolved")
    )
    assert [(r.resolution, r.resolved_us is not None) for r in closed] == [("imported", True)]


def test_replay_of_an_import_row_with_a_fixed_mapping(runtime: Runtime, tmp_path: Path) -> None:
    import_text(runtime, tmp_path, 'o1,c1,2024-01-01,"1.234,50"\n')
    [row] = runtime.quarantine.list(WS)
    where = gov.quarantine_filter(runtime, WS, ids=[row.id])
    # Replayed as imported: it still fails, and keeps the converter's diagnostic
    still = gov.replay_quarantine(runtime, where)
    assert still.to_dict()["still_failing_by_reason"] == {"invalid_row": 1}
    again = runtime.quarantine.get(WS, row.id)
    assert again is not None and again.detail == row.detail and again.replays == 1
    # A dry run with a mapping that reads German amounts says it would pass, and changes nothing
    german = parse_mapping("locale: de_DE\n" + ORDERS)
    dry = gov.replay_quarantine(runtime, where, dry_run=True, mapping=german)
    assert (dry.replayed, dry.still_failing.total()) == (1, 0)
    assert runtime.quarantine.counts(WS) == {"invalid_row": 1}
    # Replayed with it, the order is stored and the row closed as replayed
    done = gov.replay_quarantine(runtime, where, mapping=german)
    assert done.replayed == 1
    closed = runtime.quarantine.get(WS, row.id)
    assert closed is not None and closed.resolution == "replayed"
    assert runtime.profiles.count_profiles(WS) == 1


def test_a_replay_of_invalid_rows_never_reads_them_as_segment_messages(runtime: Runtime) -> None:
    # Given an invalid_row without a run (stored before runs were recorded)
    with runtime.db.write() as conn:
        runtime.quarantine.add(
            conn,
            [
                {
                    "workspace_id": WS,
                    "source_id": source(runtime).id,
                    "message_id": "imp-legacy",
                    "stage": "import",
                    "reason": "invalid_row",
                    "detail": "old.csv: row 7, column 'total': 'ten' is not a number",
                    "event_type": "track",
                    "event_name": "Order Completed",
                    "payload": '{"order_id": "o7", "total": "ten"}',
                    "created_us": runtime.now_us(),
                }
            ],
        )
    # When everything is replayed
    result = gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS))
    # Then it still fails with its own diagnostic
    assert result.to_dict()["still_failing_by_reason"] == {"invalid_row": 1}
    [row] = runtime.quarantine.list(WS)
    assert row.detail == "old.csv: row 7, column 'total': 'ten' is not a number"


# -- POST /api/quarantine/dismiss -----------------------------------------------------------------
@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime, start_worker=False))


def quarantined(runtime: Runtime, n: int) -> list[int]:
    send(runtime, *({"type": "track", "userId": "u", "messageId": f"m{i}"} for i in range(n)))
    return sorted(r.id for r in runtime.quarantine.list(WS))


def test_dismiss_over_the_api(runtime: Runtime, client: TestClient) -> None:
    first, second = quarantined(runtime, 2)
    # When one row (and one unknown id) is dismissed with a reason
    r = client.post(
        "/api/quarantine/dismiss",
        json={"ids": [first, 987654], "reason": "load test traffic"},
        headers=basic(TOKEN),
    )
    # Then the answer says what happened to each id
    assert r.status_code == 200, r.text
    assert r.json() == {"dismissed": [first], "not_found": [987654], "closed": []}
    one = client.get(f"/api/quarantine/{first}", headers=basic(TOKEN)).json()
    assert (one["resolution"], one["resolution_note"]) == ("dismissed", "load test traffic")
    assert one["resolved_at"] is not None
    listed = client.get("/api/quarantine", headers=basic(TOKEN)).json()
    assert [row["id"] for row in listed["data"]] == [second]
    every = client.get("/api/quarantine", params={"status": "all"}, headers=basic(TOKEN)).json()
    assert {row["id"]: row["resolution"] for row in every["data"]} == {
        first: "dismissed",
        second: None,
    }
    # A closed row is not dismissed again
    r = client.post(
        "/api/quarantine/dismiss", json={"ids": [first], "reason": "again"}, headers=basic(TOKEN)
    )
    assert r.json() == {"dismissed": [], "not_found": [], "closed": [first]}


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [1]},
        {"ids": [1], "reason": ""},
        {"ids": [1], "reason": "   "},
        {"ids": [1], "reason": 5},
        {"ids": [], "reason": "x"},
        {"reason": "x"},
        {"ids": "1", "reason": "x"},
        {"ids": [0], "reason": "x"},
        {"ids": [True], "reason": "x"},
        {"ids": [1.5], "reason": "x"},
        {"ids": [1], "reason": "x", "status": "open"},
        ["not", "an", "object"],
    ],
)
def test_dismiss_refuses_bad_input(runtime: Runtime, client: TestClient, body: Any) -> None:
    [row_id] = quarantined(runtime, 1)
    r = client.post("/api/quarantine/dismiss", json=body, headers=basic(TOKEN))
    assert r.status_code == 400, r.text
    assert set(r.json()) >= {"code", "message"}
    assert runtime.quarantine.get(WS, row_id).resolved_us is None  # type: ignore[union-attr]


def test_dismiss_needs_an_admin_token(runtime: Runtime, client: TestClient) -> None:
    [row_id] = quarantined(runtime, 1)
    _tok, secret = runtime.admin.add_token(WS, "support", runtime.now_us(), "read")
    r = client.post(
        "/api/quarantine/dismiss", json={"ids": [row_id], "reason": "x"}, headers=basic(secret)
    )
    assert r.status_code == 403
    assert runtime.quarantine.get(WS, row_id).resolved_us is None  # type: ignore[union-attr]


def test_dismiss_stays_in_its_workspace(runtime: Runtime) -> None:
    [row_id] = quarantined(runtime, 1)
    # An id of another workspace is not found there
    runtime.admin.ensure_workspace("other", "Other", runtime.now_us())
    out = gov.dismiss_quarantine(runtime, "other", [row_id], "not mine")
    assert out == {"dismissed": [], "not_found": [row_id], "closed": []}
    assert runtime.quarantine.get(WS, row_id).resolved_us is None  # type: ignore[union-attr]
