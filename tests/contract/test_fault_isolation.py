"""One event or request the database refuses must not take others down with it."""

from __future__ import annotations

from typing import Any

import pytest

from opencdp.collect.commit import Ticket
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from tests.contract.test_storage_contract import source


class Refused(Exception):
    """Stands for a row the database will not store (a constraint, a type, a size)."""


def test_worker_isolates_the_event_the_database_refuses(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch in which the database refuses to store one event
    original = runtime.profiles.insert_events

    def insert_events(conn: Any, rows: list[dict[str, Any]]) -> None:
        if any(r["message_id"] == "poison" for r in rows):
            raise Refused("value too long for type character varying(200)")
        original(conn, rows)

    monkeypatch.setattr(runtime.profiles, "insert_events", insert_events)
    messages = [
        {"type": "track", "userId": f"u{i}", "event": "E", "messageId": f"m{i}"} for i in range(5)
    ]
    messages.insert(2, {"type": "track", "userId": "bad", "event": "E", "messageId": "poison"})
    runtime.collector.ingest_messages(source(runtime), messages)
    # When the worker processes the inbox
    processed = runtime.processor.run_until_idle()
    # Then every other event is in a profile, the refused one is in quarantine, nothing is pending
    assert processed == 6
    assert runtime.inbox.pending() == 0
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 5
    rows = runtime.quarantine.list(DEFAULT_WORKSPACE)
    assert [(r.message_id, r.reason, r.stage) for r in rows] == [
        ("poison", "processing_error", "process")
    ]
    assert "character varying(200)" in rows[0].detail
    assert '"poison"' in rows[0].payload


def test_group_commit_falls_back_to_one_request_at_a_time(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer = runtime.collector.committer
    original = committer.store.append

    def append(conn: Any, events: Any, rejected: Any) -> None:
        if any(e["message_id"] == "poison" for e in events):
            raise Refused("refused")
        original(conn, events, rejected)

    monkeypatch.setattr(committer.store, "append", append)

    def pending(message_id: str) -> Ticket:
        row = {
            "workspace_id": DEFAULT_WORKSPACE,
            "source_id": source(runtime).id,
            "message_id": message_id,
            "received_us": 1,
            "payload": "{}",
        }
        return Ticket([row], [])

    # Given three requests that share one group-commit transaction, one of them refused
    group = [pending("ok-1"), pending("poison"), pending("ok-2")]
    # When the group is committed
    committer._commit(group)
    # Then the two good requests are acknowledged and stored, only the bad one fails
    assert group[0].done.result() is None and group[2].done.result() is None
    with pytest.raises(Refused):
        group[1].done.result()
    assert runtime.inbox.pending() == 2
