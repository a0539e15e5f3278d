"""The worker resolves a batch before it takes the identity lock; a writer that comes in
between (here a Contact API call) must make it resolve the batch again, not write stale state."""

from __future__ import annotations

from typing import Any

import pytest

from opencdp.collect.envelope import Envelope
from opencdp.resolve.processor import PreparedBatch
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.inbox import InboxRow
from tests.contract.test_storage_contract import source


def enqueue(rt: Runtime, messages: list[dict[str, Any]]) -> None:
    events, rejected, _ = rt.collector.build_rows(source(rt), Envelope(messages, None))
    rt.collector.commit(events, rejected)


def redone(rt: Runtime) -> float:
    text = rt.metrics.render().decode()
    line = next(
        line for line in text.splitlines() if line.startswith("opencdp_worker_batches_redone_total")
    )
    return float(line.split()[-1])


def test_a_writer_between_resolving_and_writing_makes_the_batch_resolve_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an event that links user u1 to an e-mail nobody has yet
    enqueue(
        runtime,
        [{"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"email": "e@x.co"}}],
    )
    processor = runtime.processor
    prepare = processor._prepare
    calls: list[int] = []

    def prepare_then_contact(conn: Any, rows: list[InboxRow], cache: Any = None) -> PreparedBatch:
        batch = prepare(conn, rows, cache)
        calls.append(len(rows))
        if len(calls) == 1:
            # When a Contact API call creates that e-mail's profile after the worker read
            processor.upsert_contact(DEFAULT_WORKSPACE, {"email": "e@x.co"}, {"plan": "gold"})
        return batch

    monkeypatch.setattr(processor, "_prepare", prepare_then_contact)
    before = redone(runtime)
    assert processor.run_once() == 1
    # Then the batch was resolved again and joined the contact's profile: one profile, not two
    assert calls == [1, 1]
    assert redone(runtime) == before + 1
    profile = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "email", "e@x.co")
    assert runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "u1") == profile
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 1
    assert {k: v.value for k, v in runtime.profiles.traits(DEFAULT_WORKSPACE, profile).items()} == {
        "email": "e@x.co",
        "plan": "gold",
    }
    assert runtime.inbox.pending() == 0


def test_without_a_writer_in_between_the_batch_is_resolved_once(runtime: Runtime) -> None:
    enqueue(
        runtime, [{"type": "identify", "userId": f"u{i}", "messageId": f"m{i}"} for i in range(5)]
    )
    before = redone(runtime)
    assert runtime.processor.run_once() == 5
    assert redone(runtime) == before
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 5


def test_a_batch_of_many_new_people_takes_the_identity_lock_alone(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's lock table is finite: a batch with more new identifiers than a worker may
    lock one by one takes the identity lock alone instead, and is stored all the same."""
    from opencdp.resolve import processor as processor_module

    monkeypatch.setattr(processor_module, "MAX_IDENTIFIER_LOCKS", 3)
    taken: list[int] = []
    lock_keys = runtime.processor.store.lock_keys
    monkeypatch.setattr(
        runtime.processor.store,
        "lock_keys",
        lambda conn, keys: (taken.append(len(keys)), lock_keys(conn, keys)),
    )
    enqueue(
        runtime,
        [
            {
                "type": "identify",
                "userId": f"u{i}",
                "messageId": f"m{i}",
                "traits": {"email": f"{i}@x.co"},
            }
            for i in range(10)
        ],
    )
    assert runtime.processor.run_once() == 10
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 10
    assert all(n <= 3 for n in taken)  # never more identifier locks than allowed
    # A batch of one new person still locks its identifiers one by one (PostgreSQL)
    enqueue(runtime, [{"type": "identify", "userId": "v1", "messageId": "n1"}])
    assert runtime.processor.run_once() == 1
    if not runtime.db.dialect.is_sqlite:
        assert taken[-1] == 1
