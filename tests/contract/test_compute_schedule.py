"""Time passing: a windowed audience loses a member when the window passes without any new
event, by durable scheduled work driven by the injected clock — after a restart too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.services import compute
from tests.conftest import make_settings
from tests.contract.test_storage_contract import source

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
RECENT = "event('Order Completed').within(1 days).count() >= 1"


def test_members_leave_a_window_on_time_and_after_a_restart(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = FrozenClock(NOW)
    settings = make_settings(tmp_path, database_url)
    rt = Runtime(settings, clock)
    try:
        rt.collector.ingest_messages(
            source(rt),
            [
                {
                    "type": "track",
                    "userId": "ann",
                    "event": "Order Completed",
                    "messageId": "o1",
                    "timestamp": NOW.isoformat(),
                },
                {
                    "type": "track",
                    "userId": "bob",
                    "event": "Order Completed",
                    "messageId": "o2",
                    "timestamp": (NOW - timedelta(hours=2)).isoformat(),
                },
            ],
        )
        rt.processor.run_until_idle()
        body = {"definition": {"query": RECENT}}
        assert compute.put_definition(rt, "default", "audience", "recent", body)["size"] == 2
        # A day later, no new event: both have left the window; the scheduled run sees it
        clock.advance(25 * 3600)
        assert rt.worker.run_scheduled(force=True) == 1
        assert compute.store(rt).count("default", "recent") == 0
        # and is not due again until the refresh interval (an hour) has passed
        assert rt.worker.run_scheduled(force=True) == 0
        ann = rt.profiles.find("default", "users", "user_id", "ann")
        names = [e.event for e in rt.profiles.events("default", ann, limit=10)]
        assert names.count("Audience Exited") == 1
        # Ann orders again: back in, in real time
        rt.collector.ingest_messages(
            source(rt),
            [
                {
                    "type": "track",
                    "userId": "ann",
                    "event": "Order Completed",
                    "messageId": "o3",
                    "timestamp": clock.now().isoformat(),
                }
            ],
        )
        rt.processor.run_until_idle()
        assert compute.store(rt).count("default", "recent") == 1
    finally:
        rt.close()
    # Stopped for two days: the first scheduled run after the restart catches up at once
    clock.advance(2 * 86_400)
    rt = Runtime(settings, clock)
    try:
        assert rt.worker.run_scheduled(force=True) == 1
        assert compute.store(rt).count("default", "recent") == 0
    finally:
        rt.close()


def test_definitions_time_cannot_change_are_not_rescheduled(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = FrozenClock(NOW)
    rt = Runtime(make_settings(tmp_path, database_url), clock)
    try:
        body = {"definition": {"query": "event('Order Completed').count() >= 1"}}
        compute.put_definition(rt, "default", "audience", "buyers", body)
        clock.advance(3 * 86_400)
        assert rt.worker.run_scheduled(force=True) == 0
    finally:
        rt.close()


def test_a_running_worker_sees_a_new_definition_in_its_next_batch(
    tmp_path: Path, database_url: str | None
) -> None:
    # Given an API process and a worker process on one database, the worker having just
    # processed a batch (so it holds the workspace's definitions list, empty)
    clock = FrozenClock(NOW)
    settings = make_settings(tmp_path, database_url)
    api, worker = Runtime(settings, clock), Runtime(settings, clock)
    try:

        def order(n: int) -> dict[str, Any]:
            return {
                "type": "track",
                "userId": f"u{n}",
                "event": "Order Completed",
                "messageId": f"o{n}",
                "timestamp": NOW.isoformat(),
            }

        api.collector.ingest_messages(source(api), [order(1)])
        worker.processor.run_until_idle()
        # When an audience is defined through the API and an order arrives at once (the
        # frozen clock: no cache has expired)
        body = {"definition": {"query": "event('Order Completed').count() >= 1"}}
        assert compute.put_definition(api, "default", "audience", "buyers", body)["size"] == 1
        api.collector.ingest_messages(source(api), [order(2)])
        worker.processor.run_until_idle()
        # Then the worker evaluated it for the new order's profile
        assert compute.store(api).count("default", "buyers") == 2
    finally:
        api.close()
        worker.close()
