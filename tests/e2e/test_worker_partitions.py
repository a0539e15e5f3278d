"""Several worker processes on one PostgreSQL inbox give the same profiles as one worker.

The stream bridges identifiers that first arrive apart (two devices, a login, an e-mail seen on
the second device), so merges join profiles that other workers are touching at the same time.
Identity rules without limit conflicts and last-write-wins traits make the result independent
of processing order: four concurrent workers must end exactly where one worker ends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from opencdp.collect.envelope import Envelope
from opencdp.runtime import Runtime
from opencdp.storage.schema import events, identifiers, profiles, traits
from tests.conftest import make_settings
from tests.contract.test_storage_contract import source

pytestmark = pytest.mark.e2e

PEOPLE = 150


def stream(seed: int = 8) -> list[dict[str, Any]]:
    """Each person: two anonymous devices, a login on the first, the e-mail on the second."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    n = 0

    def add(message: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        day = 1 + rng.randrange(27)
        message |= {
            "messageId": f"m{n}",
            "timestamp": f"2026-02-{day:02d}T{rng.randrange(24):02d}:00:{n % 60:02d}Z",
        }
        out.append(message)

    for p in range(PEOPLE):
        a1, a2, user, email = f"a1-{p}", f"a2-{p}", f"u{p}", f"p{p}@example.com"
        for _ in range(2):
            add({"type": "page", "anonymousId": a1, "name": "Home"})
            add({"type": "page", "anonymousId": a2, "name": "Home"})
        add(
            {
                "type": "identify",
                "anonymousId": a1,
                "userId": user,
                "traits": {"plan": rng.choice(["free", "pro"]), "visits": rng.randrange(9)},
            }
        )
        add(
            {
                "type": "track",
                "anonymousId": a2,
                "event": "Signed Up",
                "context": {"traits": {"email": email, "plan": rng.choice(["free", "pro"])}},
            }
        )
        add({"type": "identify", "userId": user, "traits": {"email": email}})
        add({"type": "identify", "anonymousId": a2, "traits": {"visits": rng.randrange(9)}})
    rng.shuffle(out)
    return out


def load(rt: Runtime, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 100):
        rows, rejected, _ = rt.collector.build_rows(
            source(rt), Envelope(messages[start : start + 100], None)
        )
        rt.collector.commit(rows, rejected)


def outcome(rt: Runtime) -> tuple[set[Any], dict[str, Any]]:
    """Live profiles as their identifier sets with traits, and each event's identifier set:
    comparable across databases (profile ids are random)."""
    with rt.db.read() as conn:
        live = {
            r.id
            for r in conn.execute(select(profiles.c.id).where(profiles.c.merged_into.is_(None)))
        }
        groups: dict[str, set[str]] = {}
        for r in conn.execute(select(identifiers)):
            groups.setdefault(r.profile_id, set()).add(f"{r.id_type}:{r.id_value}")
        values: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(traits)):
            values.setdefault(r.profile_id, {})[r.key] = r.value
        placed = {r.message_id: r.profile_id for r in conn.execute(select(events))}
    assert set(groups) == live, "identifiers point at absorbed profiles"
    key = {pid: frozenset(ids) for pid, ids in groups.items()}
    state = {(key[pid], frozenset(values.get(pid, {}).items())) for pid in live}
    return state, {message: key[pid] for message, pid in placed.items()}


@pytest.mark.parametrize("slotted", [True, False], ids=["slots", "shared"])
def test_four_workers_end_where_one_worker_ends(
    pg_cluster: Any, tmp_path: Path, slotted: bool
) -> None:
    messages = stream()
    # Given the same stream in two inboxes
    single = Runtime(make_settings(tmp_path / "one", pg_cluster.new_database()))
    url = pg_cluster.new_database()
    many = Runtime(make_settings(tmp_path / "four", url))
    try:
        load(single, messages)
        load(many, messages)
        # When one worker drains the first, and four worker processes drain the second
        single.processor.run_until_idle()
        env = {
            **os.environ,
            "OPENCDP_DATA_DIR": str(tmp_path / "four" / "data"),
            "OPENCDP_DATABASE_URL": url,
            "OPENCDP_WORKER_BATCH_SIZE": "20",
            "OPENCDP_LOG_LEVEL": "WARNING",
        }
        workers = [
            subprocess.Popen([sys.executable, "-m", "opencdp", "worker"], env=env) for _ in range(4)
        ]
        try:
            deadline = time.monotonic() + 120
            while many.inbox.pending() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                assert proc.wait(60) == 0
        assert many.inbox.pending() == 0
        # Then both hold the same profiles, traits and event placements
        expected_state, expected_events = outcome(single)
        state, placed = outcome(many)
        assert len(expected_state) == PEOPLE
        assert state == expected_state
        assert placed == expected_events
    finally:
        single.close()
        many.close()
