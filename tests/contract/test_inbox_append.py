"""Bulk appends to the inbox (COPY on PostgreSQL): arrival order kept, retried ids dropped."""

from __future__ import annotations

from opencdp.runtime import Runtime


def row(message_id: str, received_us: int) -> dict[str, object]:
    return {
        "workspace_id": "default",
        "source_id": "src",
        "message_id": message_id,
        "received_us": received_us,
        "payload": '{"type":"track"}',
        "partition": 3,
    }


def test_appends_keep_their_order_and_drop_ids_already_there(runtime: Runtime) -> None:
    inbox = runtime.inbox
    with runtime.db.write() as conn:
        inbox.append(conn, [row(f"m{i}", 100 - i) for i in (5, 1, 9, 2)], [])
        # A second append in the same transaction, with one id retried
        inbox.append(conn, [row("m1", 1), row("m7", 7)], [])
    with runtime.db.write() as conn:
        inbox.append(conn, [row("m9", 9), row("m3", 3)], [])
    with runtime.db.read() as conn:
        claimed = inbox.claim(conn, 100)
        only_three = inbox.claim(conn, 100, partitions=[3])
        none = inbox.claim(conn, 100, partitions=[4])
    assert [r.message_id for r in claimed] == ["m5", "m1", "m9", "m2", "m7", "m3"]
    assert [r.received_us for r in claimed][:4] == [95, 99, 91, 98]  # the first copy of m1 kept
    assert len(only_three) == 6 and none == []
