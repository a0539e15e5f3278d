"""The outbox on both backends: idempotent enqueueing, leases, order per destination and
profile, outcomes, replay, waking a destination's retries, and its backlog per destination."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from opencdp.runtime import Runtime
from opencdp.storage.outbox import DEAD, DELIVERED, PENDING, RETRYING, STALE, SUPPRESSED, Backlog

NOW = 1_800_000_000_000_000
SECOND = 1_000_000


def delivery(n: int, profile: str = "p1", destination: str = "erp", **extra: Any) -> dict[str, Any]:
    return {
        "workspace_id": "default",
        "id": f"msg_{destination}_{n}",
        "destination_id": destination,
        "subscription": "all",
        "profile_id": profile,
        "message_id": f"m{n}",
        "payload": '{"type": "track", "event": "X"}',
        "status": PENDING,
        "attempts": 0,
        "next_attempt_us": NOW,
        "created_us": NOW,
        "updated_us": NOW,
        **extra,
    }


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    for destination in ("erp", "crm"):
        runtime.destinations.put(
            {
                "workspace_id": "default",
                "id": destination,
                "type": "webhook",
                "enabled": True,
                "settings": {},
                "subscriptions": [],
                "health": "ok",
                "created_us": NOW,
                "updated_us": NOW,
            }
        )
    return runtime


def enqueue(rt: Runtime, rows: list[dict[str, Any]]) -> None:
    with rt.db.write() as conn:
        rt.outbox.enqueue(conn, rows)


def test_enqueueing_the_same_delivery_twice_keeps_one(rt: Runtime) -> None:
    enqueue(rt, [delivery(1), delivery(2)])
    enqueue(rt, [delivery(1, payload='{"changed": true}')])
    rows = rt.outbox.page("default", destination_id="erp", status=None, limit=10, after=None)
    assert [r.id for r in rows] == ["msg_erp_1", "msg_erp_2"]
    assert rows[0].payload == '{"type": "track", "event": "X"}'


def test_a_claim_leases_due_deliveries_oldest_first(rt: Runtime) -> None:
    enqueue(rt, [delivery(1), delivery(2, profile="p2"), delivery(3, next_attempt_us=NOW + SECOND)])
    claimed = rt.outbox.claim(NOW, 60 * SECOND, 10)
    assert [r.id for r in claimed] == ["msg_erp_1", "msg_erp_2"]
    # leased: not claimed again until the lease runs out (a dispatcher died mid-send)
    assert rt.outbox.claim(NOW + SECOND, 60 * SECOND, 10) == []
    again = rt.outbox.claim(NOW + 61 * SECOND, 60 * SECOND, 10)
    assert [r.id for r in again] == ["msg_erp_1", "msg_erp_2", "msg_erp_3"]


def test_a_retrying_delivery_holds_back_later_ones_of_its_profile_only(rt: Runtime) -> None:
    enqueue(
        rt,
        [
            delivery(1, status=RETRYING, attempts=1, next_attempt_us=NOW + 60 * SECOND),
            delivery(2),  # same destination and profile: waits for 1
            delivery(3, profile="p2"),  # another profile: goes
            delivery(4, destination="crm"),  # another destination: goes
        ],
    )
    claimed = rt.outbox.claim(NOW, 60 * SECOND, 10)
    assert sorted(r.id for r in claimed) == ["msg_crm_4", "msg_erp_3"]


def test_excluded_and_disabled_destinations_are_not_claimed(rt: Runtime) -> None:
    enqueue(rt, [delivery(1), delivery(2, destination="crm")])
    assert [r.id for r in rt.outbox.claim(NOW, SECOND, 10, exclude=[("default", "erp")])] == [
        "msg_crm_2"
    ]
    rt.destinations.set_state("default", "erp", NOW, enabled=False)
    # crm's lease ran out: it goes again; erp's delivery waits while erp is off
    assert [r.id for r in rt.outbox.claim(NOW + 2 * SECOND, SECOND, 10)] == ["msg_crm_2"]


def test_outcomes_replay_and_wake(rt: Runtime) -> None:
    enqueue(rt, [delivery(1), delivery(2, profile="p2"), delivery(3, profile="p3")])
    claimed = rt.outbox.claim(NOW, 60 * SECOND, 10)
    common = {"updated_us": NOW, "last_error": None}
    rt.outbox.record(
        [
            {**common, "seq": claimed[0].seq, "status": DELIVERED, "attempts": 1},
            {**common, "seq": claimed[1].seq, "status": DEAD, "attempts": 1},
            {
                **common,
                "seq": claimed[2].seq,
                "status": RETRYING,
                "attempts": 1,
                "next_attempt_us": NOW + 3600 * SECOND,
            },
        ]
    )
    status = {
        r.id: (r.status, r.attempts, r.leased_until_us)
        for r in rt.outbox.page("default", destination_id=None, status=None, limit=10, after=None)
    }
    assert status == {
        "msg_erp_1": (DELIVERED, 1, None),
        "msg_erp_2": (DEAD, 1, None),
        "msg_erp_3": (RETRYING, 1, None),
    }
    assert rt.outbox.summary("default", "erp")["counts"] == {
        PENDING: 0,
        RETRYING: 1,
        DELIVERED: 1,
        DEAD: 1,
        SUPPRESSED: 0,
        STALE: 0,
    }
    # the receiver answers again: its retries are due now
    assert rt.outbox.wake("default", "erp", NOW + SECOND) == 1
    assert [r.id for r in rt.outbox.claim(NOW + SECOND, SECOND, 10)] == ["msg_erp_3"]
    # dead letters go again under the same id, their age counted afresh
    assert rt.outbox.replay("default", NOW + 5 * SECOND, destination_id="erp") == 1
    replayed = rt.outbox.get("default", "msg_erp_2")[0]
    assert (replayed.status, replayed.created_us, replayed.next_attempt_us) == (
        PENDING,
        NOW + 5 * SECOND,
        NOW + 5 * SECOND,
    )
    assert rt.outbox.replay("default", NOW, destination_id="crm") == 0


def test_deleting_a_destination_removes_its_deliveries(rt: Runtime) -> None:
    enqueue(rt, [delivery(1), delivery(2, destination="crm")])
    rt.destinations.delete("default", "erp")
    left = rt.outbox.page("default", destination_id=None, status=None, limit=10, after=None)
    assert [r.destination_id for r in left] == ["crm"]


def test_the_backlog_is_every_destination_in_one_grouped_query(rt: Runtime) -> None:
    rt.destinations.put(
        {
            "workspace_id": "other",
            "id": "erp",
            "type": "webhook",
            "enabled": True,
            "settings": {},
            "subscriptions": [],
            "health": "ok",
            "created_us": NOW,
            "updated_us": NOW,
        }
    )
    enqueue(
        rt,
        [
            delivery(1, created_us=NOW - 10 * SECOND),
            delivery(2, status=RETRYING, attempts=2, created_us=NOW - 20 * SECOND),
            # not waiting: older, but neither counts in the oldest waiting
            delivery(3, status=DELIVERED, attempts=1, created_us=NOW - 99 * SECOND),
            delivery(4, status=DEAD, attempts=1, created_us=NOW - 98 * SECOND),
            delivery(5, status=DEAD, attempts=3, created_us=NOW - 97 * SECOND),
            delivery(6, status=RETRYING, attempts=1, profile="p2", created_us=NOW - 5 * SECOND),
            {**delivery(7, created_us=NOW - 1 * SECOND), "workspace_id": "other"},
        ],
    )
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        backlog = rt.outbox.backlog()
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)
    assert len(selects) == 1
    assert backlog == [
        Backlog("default", "crm", pending=0, retrying=0, dead=0, oldest_waiting_us=None),
        Backlog(
            "default", "erp", pending=1, retrying=2, dead=2, oldest_waiting_us=NOW - 20 * SECOND
        ),
        Backlog("other", "erp", pending=1, retrying=0, dead=0, oldest_waiting_us=NOW - SECOND),
    ]
