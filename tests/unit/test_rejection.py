"""Rejections and the quarantine rows that keep them (opencdp.collect.rejection)."""

from __future__ import annotations

from typing import Any

import orjson

from opencdp.collect.rejection import (
    COLLECT,
    GOVERN,
    IMPORT,
    PROCESS,
    Rejection,
    quarantine_row,
    rejection_fields,
)

NOW_US = 1_767_225_600_000_000


def row(
    rejection: Rejection,
    stage: str = COLLECT,
    *,
    source_id: str | None = "src",
    import_run_id: str | None = None,
) -> dict[str, Any]:
    return quarantine_row(
        rejection,
        stage,
        NOW_US,
        workspace_id="ws",
        source_id=source_id,
        import_run_id=import_run_id,
    )


def test_a_row_keeps_the_message_whole_with_its_reason_and_where_it_came_from() -> None:
    raw = {"type": "track", "messageId": "m-1", "event": "Viewed", "userId": "u"}
    rejection = Rejection("missing_event", "detail", raw, message_id="m-1", type="track")
    assert row(rejection) == {
        "workspace_id": "ws",
        "source_id": "src",
        "message_id": "m-1",
        "stage": COLLECT,
        "reason": "missing_event",
        "detail": "detail",
        "event_type": "track",
        "event_name": None,
        "payload": orjson.dumps(raw).decode(),
        "created_us": NOW_US,
        "plan_id": None,
        "plan_revision": None,
        "violations": None,
        "resolved_us": None,
        "resolution": None,
        "resolution_note": None,
        "import_run_id": None,
    }


def test_write_keys_are_never_kept() -> None:
    raw = {"writeKey": "secret", "context": {"writeKey": "secret", "ip": "1.2.3.4"}, "a": 1}
    payload = orjson.loads(row(Rejection("invalid_type", "d", raw))["payload"])
    assert payload == {"context": {"ip": "1.2.3.4"}, "a": 1}


def test_a_message_json_cannot_hold_is_kept_as_a_storable_copy() -> None:
    raw = {"n": 2**70, "text": "lone \ud800"}
    payload = orjson.loads(row(Rejection("invalid_field", "d", raw))["payload"])
    assert payload == {"n": str(2**70), "text": "lone \ufffd"}


def test_a_message_without_a_usable_id_gets_its_own_and_nul_characters_are_replaced() -> None:
    rejection = Rejection("invalid_field", "has \x00", "not an object", event="E\x00" + "x" * 300)
    out = row(rejection)
    assert out["message_id"].startswith("q-")
    assert out["detail"] == "has \ufffd"
    assert out["event_name"] == "E\ufffd" + "x" * 198


def test_a_rejection_by_a_tracking_plan_is_at_the_govern_stage() -> None:
    violation = {"type": "unplanned_event", "path": "event", "message": "not in the plan"}
    rejection = Rejection(
        "unplanned_event", "d", {}, plan_id="plan-1", plan_revision=3, violations=(violation,)
    )
    out = row(rejection, COLLECT)
    assert out["stage"] == GOVERN
    assert (out["plan_id"], out["plan_revision"]) == ("plan-1", 3)
    assert orjson.loads(out["violations"]) == [violation]


def test_processing_and_import_rows_name_their_stage_and_run() -> None:
    assert row(Rejection("processing_error", "d", {}), PROCESS, source_id=None)["stage"] == PROCESS
    out = row(Rejection("invalid_row", "d", {}), IMPORT, import_run_id="run-1")
    assert (out["stage"], out["import_run_id"]) == (IMPORT, "run-1")


def test_the_fields_a_failed_replay_updates_are_the_rows_own() -> None:
    rejection = Rejection("schema_violation", "d\x00", {}, plan_id="p", plan_revision=1)
    fields = rejection_fields(rejection, COLLECT)
    assert set(fields) == {"stage", "reason", "detail", "plan_id", "plan_revision", "violations"}
    assert fields == {k: v for k, v in row(rejection).items() if k in fields}
