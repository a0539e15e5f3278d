"""The bulk path (imports): rows processed directly, with the same rules as the inbox path."""

from __future__ import annotations

from typing import Any

import pytest

from opencdp.collect.envelope import Envelope
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from tests.contract.test_storage_contract import source


def rows(rt: Runtime, messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    events, rejected, _ = rt.collector.build_rows(source(rt), Envelope(messages, None))
    return events, rejected


def identify(i: int, email: str) -> dict[str, Any]:
    return {"type": "identify", "userId": f"c{i}", "messageId": f"m{i}", "traits": {"email": email}}


def test_bulk_rows_resolve_identities_once(runtime: Runtime) -> None:
    # Given two customers sharing an e-mail and one invalid row
    messages = [identify(1, "a@x.co"), identify(2, "b@x.co"), {"type": "track", "userId": "u"}]
    events, rejected = rows(runtime, messages)
    # When the rows are processed directly, twice
    first = runtime.processor.ingest_and_process(events, rejected)
    second = runtime.processor.ingest_and_process(events, rejected)
    # Then the first run creates the profiles and the second changes nothing
    assert (first.submitted, first.processed, first.quarantined) == (2, 2, 1)
    assert first.profiles_created == 2
    assert (second.processed, second.duplicates, second.profiles_created) == (0, 2, 0)
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 2
    assert runtime.quarantine.counts(DEFAULT_WORKSPACE) == {"missing_event": 1}
    assert runtime.inbox.pending() == 0


def test_bulk_rows_count_merges(runtime: Runtime) -> None:
    runtime.processor.ingest_and_process(*rows(runtime, [identify(1, "a@x.co")]))
    bridge = {
        "type": "identify",
        "anonymousId": "anon-1",
        "messageId": "m9",
        "traits": {"email": "a@x.co"},
    }
    runtime.processor.ingest_and_process(
        *rows(runtime, [{"type": "track", "event": "E", "anonymousId": "anon-1", "messageId": "t"}])
    )
    summary = runtime.processor.ingest_and_process(*rows(runtime, [bridge]))
    assert summary.merges == 1
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 1


def test_bulk_batch_the_database_refuses_takes_the_inbox_path(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = runtime.profiles.insert_events

    def insert_events(conn: Any, batch: list[dict[str, Any]]) -> None:
        if any(r["message_id"] == "m2" for r in batch):
            raise ValueError("refused")
        original(conn, batch)

    monkeypatch.setattr(runtime.profiles, "insert_events", insert_events)
    summary = runtime.processor.ingest_and_process(
        *rows(runtime, [identify(i, f"{i}@x.co") for i in range(1, 4)])
    )
    assert summary.fell_back
    assert summary.quarantined == 1
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 2
    [row] = runtime.quarantine.list(DEFAULT_WORKSPACE)
    assert (row.message_id, row.reason) == ("m2", "processing_error")
