"""Tracking-plan enforcement, quarantine and replay on every storage backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from opencdp.errors import NotFound, RequestError
from opencdp.runtime import Runtime
from opencdp.services import governance as gov
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.schema import events
from tests.contract.test_storage_contract import source

WS = DEFAULT_WORKSPACE

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "properties": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "total": {"type": "number"},
                "currency": {"type": "string", "pattern": "^(EUR|USD)$"},
            },
            "required": ["order_id", "total"],
        }
    },
    "required": ["properties"],
}


def plan_doc(**extra: Any) -> dict[str, Any]:
    return {
        "id": "web",
        "name": "Web shop",
        "rules": [
            {"type": "TRACK", "key": "Order Completed", "version": 1, "jsonSchema": ORDER_SCHEMA},
            {"type": "TRACK", "key": "Product Viewed", "version": 1, "jsonSchema": None},
        ],
        **extra,
    }


def order(mid: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": f"user-{mid}",
        "messageId": mid,
        "properties": {"order_id": f"o-{mid}", "total": 10.5, **props},
    }


def enforce_on_source(
    rt: Runtime, settings: dict[str, Any], doc: dict[str, Any] | None = None
) -> None:
    gov.apply_plan_document(
        rt, WS, {**(doc or plan_doc()), "sources": [source(rt).id], "settings": settings}
    )


def processed_ids(rt: Runtime) -> list[str]:
    with rt.db.read() as conn:
        return sorted(conn.execute(select(events.c.message_id)).scalars())


def event_payload(rt: Runtime, mid: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        raw = conn.execute(select(events.c.payload).where(events.c.message_id == mid)).scalar_one()
    return dict(orjson.loads(raw))


def test_without_a_plan_nothing_is_enforced(runtime: Runtime) -> None:
    result = runtime.collector.ingest_messages(source(runtime), [order("a", total="x")])
    assert (result.accepted, result.quarantined) == (1, 0)


def test_unplanned_event_is_blocked_and_kept_with_plan_revision(runtime: Runtime) -> None:
    # Given a source that blocks events missing from its plan
    enforce_on_source(runtime, {"track": {"allowUnplannedEvents": False}})
    # When it sends one planned and one unplanned event
    result = runtime.collector.ingest_messages(
        source(runtime),
        [order("a"), {"type": "track", "event": "Coupon Hacked", "userId": "u", "messageId": "b"}],
    )
    runtime.processor.run_until_idle()
    # Then the unplanned one is quarantined whole, with reason, source and plan version
    assert (result.accepted, result.quarantined) == (1, 1)
    assert result.errors[0]["code"] == "unplanned_event"
    [row] = runtime.quarantine.list(WS)
    assert (row.message_id, row.reason, row.stage) == ("b", "unplanned_event", "govern")
    assert (row.plan_id, row.plan_revision, row.source_id) == ("web", 1, source(runtime).id)
    assert row.event_name == "Coupon Hacked"
    assert orjson.loads(row.payload)["event"] == "Coupon Hacked"
    assert processed_ids(runtime) == ["a"]


def test_violation_blocks_event_when_configured(runtime: Runtime) -> None:
    enforce_on_source(runtime, {"track": {"allowEventOnViolations": False}})
    result = runtime.collector.ingest_messages(source(runtime), [order("a", total="12")])
    assert result.quarantined == 1
    [row] = runtime.quarantine.list(WS)
    assert row.reason == "schema_violation"
    assert row.violation_list == [
        {
            "type": "Invalid Type",
            "field": "properties.total",
            "description": "Invalid type. Expected: number, given: string",
            "rule": 'TRACK "Order Completed" v1',
        }
    ]
    assert "Invalid type" in row.detail


def test_violation_is_recorded_on_the_event_when_allowed(runtime: Runtime) -> None:
    # Given Segment's defaults (allow, record)
    enforce_on_source(runtime, {})
    runtime.collector.ingest_messages(source(runtime), [order("a", currency="GBP")])
    runtime.processor.run_until_idle()
    # Then the event is processed with the violation under context.protocols
    protocols = event_payload(runtime, "a")["context"]["protocols"]
    assert protocols["violations"][0]["type"] == "Invalid Pattern"
    assert protocols["violations"][0]["field"] == "properties.currency"
    assert protocols["trackingPlanId"] == "web"


def test_omitted_properties_and_traits_are_recorded(runtime: Runtime) -> None:
    doc = plan_doc()
    doc["rules"].append(
        {
            "type": "IDENTIFY",
            "version": 1,
            "jsonSchema": {
                "type": "object",
                "properties": {
                    "traits": {"type": "object", "properties": {"email": {"type": "string"}}}
                },
            },
        }
    )
    enforce_on_source(
        runtime,
        {
            "track": {"allowUnplannedEventProperties": False, "allowPropertiesOnViolations": False},
            "identify": {"allowUnplannedTraits": False},
        },
        doc,
    )
    runtime.collector.ingest_messages(
        source(runtime),
        [
            order("a", coupon="X", currency="GBP"),
            {
                "type": "identify",
                "userId": "u1",
                "messageId": "i",
                "traits": {"email": "a@b.co", "ssn": "1"},
            },
        ],
    )
    runtime.processor.run_until_idle()
    a = event_payload(runtime, "a")
    assert "coupon" not in a["properties"] and "currency" not in a["properties"]
    assert a["context"]["protocols"]["omitted"] == ["coupon"]
    assert a["context"]["protocols"]["omitted_on_violation"] == ["currency"]
    i = event_payload(runtime, "i")
    assert i["traits"] == {"email": "a@b.co"}
    assert i["context"]["protocols"]["omitted"] == ["ssn"]
    pid = runtime.profiles.find(WS, "users", "user_id", "u1")
    assert "ssn" not in runtime.profiles.traits(WS, pid)


def test_common_rule_block(runtime: Runtime) -> None:
    doc = plan_doc()
    doc["rules"].append(
        {"type": "COMMON", "version": 1, "jsonSchema": {"type": "object", "required": ["userId"]}}
    )
    enforce_on_source(runtime, {"track": {"commonEventOnViolations": "BLOCK"}}, doc)
    anon = {**order("b"), "anonymousId": "anon"}
    del anon["userId"]
    result = runtime.collector.ingest_messages(source(runtime), [order("a"), anon])
    assert result.quarantined == 1
    [row] = runtime.quarantine.list(WS)
    assert row.violation_list[0]["rule"] == "COMMON v1"
    assert row.violation_list[0]["field"] == "userId"


def test_replay_after_plan_fix_processes_each_event_exactly_once(runtime: Runtime) -> None:
    # Given events blocked because the plan did not know "Coupon Applied"
    enforce_on_source(runtime, {"track": {"allowUnplannedEvents": False}})
    coupons = [
        {"type": "track", "event": "Coupon Applied", "userId": f"u{i}", "messageId": f"c{i}"}
        for i in range(5)
    ]
    bad = {"type": "track", "event": "Coupon Hacked", "userId": "x", "messageId": "h"}
    runtime.collector.ingest_messages(source(runtime), [*coupons, bad])
    runtime.processor.run_until_idle()
    assert runtime.quarantine.counts(WS) == {"unplanned_event": 6}
    # When the plan learns the event and the quarantine is replayed twice
    doc = plan_doc()
    doc["rules"].append(
        {"type": "TRACK", "key": "Coupon Applied", "version": 1, "jsonSchema": None}
    )
    gov.apply_plan_document(runtime, WS, doc)
    where = gov.quarantine_filter(runtime, WS, reason="unplanned_event")
    first = gov.replay_quarantine(runtime, where, process=True)
    second = gov.replay_quarantine(runtime, where, process=True)
    # Then the five pass once, the sixth stays with its reason, and nothing runs twice
    assert (first.selected, first.replayed, first.processed) == (6, 5, 5)
    assert sum(first.still_failing.values()) == 1
    assert (second.selected, second.replayed) == (1, 0)
    assert processed_ids(runtime) == [f"c{i}" for i in range(5)]
    assert runtime.quarantine.counts(WS) == {"unplanned_event": 1}
    resolved = runtime.quarantine.list(
        WS, where=gov.quarantine_filter(runtime, WS, status="resolved")
    )
    assert sorted(r.message_id for r in resolved) == [f"c{i}" for i in range(5)]
    assert {r.resolution for r in resolved} == {"replayed"}
    [left] = runtime.quarantine.list(WS)
    assert (left.message_id, left.replays, left.plan_revision) == ("h", 2, 2)


def test_an_event_resent_fixed_closes_its_row_before_any_replay(runtime: Runtime) -> None:
    enforce_on_source(runtime, {"track": {"allowEventOnViolations": False}})
    runtime.collector.ingest_messages(source(runtime), [order("a", total="x")])
    # The sender fixes the event and sends it again with the same message id
    runtime.collector.ingest_messages(source(runtime), [order("a")])
    runtime.processor.run_until_idle()
    # Storing it closed the row: a replay finds nothing left to do
    assert runtime.quarantine.counts(WS) == {}
    [row] = runtime.quarantine.list(WS, where=gov.quarantine_filter(runtime, WS, status="all"))
    assert row.resolution == "replayed"
    gov.set_schema_config(runtime, WS, source(runtime).id, tracking_plan_id=None)
    result = gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS), process=True)
    assert (result.selected, result.replayed, result.duplicates) == (0, 0, 0)
    assert processed_ids(runtime) == ["a"]


def test_replay_of_an_event_stored_before_it_was_quarantined_is_a_duplicate(
    runtime: Runtime,
) -> None:
    enforce_on_source(runtime, {"track": {"allowEventOnViolations": False}})
    # Stored first, then sent again with a violation (quarantined under the same id)
    runtime.collector.ingest_messages(source(runtime), [order("a")])
    runtime.processor.run_until_idle()
    runtime.collector.ingest_messages(source(runtime), [order("a", total="x")])
    assert runtime.quarantine.counts(WS) == {"schema_violation": 1}
    gov.set_schema_config(runtime, WS, source(runtime).id, tracking_plan_id=None)
    result = gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS), process=True)
    assert (result.replayed, result.duplicates) == (0, 1)
    assert processed_ids(runtime) == ["a"]
    assert runtime.quarantine.counts(WS) == {}


def test_replay_keeps_the_generated_message_id(runtime: Runtime) -> None:
    # A message without messageId and without identity gets an id when quarantined
    runtime.collector.ingest_messages(source(runtime), [{"type": "track", "event": "E"}])
    [row] = runtime.quarantine.list(WS)
    assert row.reason == "missing_identity"
    dry = gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS), dry_run=True)
    assert (dry.selected, dry.replayed, dict(dry.still_failing)) == (1, 0, {"missing_identity": 1})
    assert runtime.quarantine.get(WS, row.id).replays == 0  # a dry run changes nothing


def test_processing_error_is_replayable(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    original = runtime.profiles.insert_events
    broken = {"on": True}

    def insert_events(conn: Any, rows: list[dict[str, Any]]) -> None:
        if broken["on"] and any(r["message_id"] == "p" for r in rows):
            raise ValueError("disk says no")
        original(conn, rows)

    monkeypatch.setattr(runtime.profiles, "insert_events", insert_events)
    runtime.collector.ingest_messages(source(runtime), [order("p")])
    runtime.processor.run_until_idle()
    assert runtime.quarantine.counts(WS) == {"processing_error": 1}
    broken["on"] = False
    result = gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS), process=True)
    assert (result.replayed, result.processed) == (1, 1)
    assert processed_ids(runtime) == ["p"]


def test_violations_forwarded_as_violation_generated(runtime: Runtime) -> None:
    target, _ = runtime.admin.add_source(WS, "violations", runtime.now_us())
    enforce_on_source(runtime, {"forwardingViolationsTo": target.id})
    runtime.collector.ingest_messages(source(runtime), [order("a", total="x")])
    runtime.collector.ingest_messages(source(runtime), [order("a", total="x")])  # a retry
    runtime.processor.run_until_idle()
    with runtime.db.read() as conn:
        rows = (
            conn.execute(select(events.c.payload).where(events.c.event == "Violation Generated"))
            .scalars()
            .all()
        )
    assert len(rows) == 1  # the retry's violation has the same id
    props = orjson.loads(rows[0])["properties"]
    assert props["eventMessageID"] == "a"
    assert props["violationField"] == "properties.total"
    assert props["violationType"] == "Invalid Type"
    assert props["trackingPlanID"] == "web"
    assert props["sourceID"] == source(runtime).id


def test_blocked_events_forwarded_to_another_source(runtime: Runtime) -> None:
    target, _ = runtime.admin.add_source(WS, "blocked", runtime.now_us())
    enforce_on_source(
        runtime, {"track": {"allowUnplannedEvents": False}, "forwardingBlockedEventsTo": target.id}
    )
    result = runtime.collector.ingest_messages(
        source(runtime), [{"type": "track", "event": "X", "userId": "u", "messageId": "x"}]
    )
    runtime.processor.run_until_idle()
    assert (result.accepted, result.quarantined) == (1, 0)
    with runtime.db.read() as conn:
        row = conn.execute(select(events.c.source_id, events.c.payload)).one()
    assert row.source_id == target.id
    assert orjson.loads(row.payload)["context"]["protocols"]["blocked"] == "unplanned_event"


def test_forwarding_never_crosses_workspaces(runtime: Runtime) -> None:
    # Given a source in another workspace
    runtime.admin.ensure_workspace("other", "Other brand", runtime.now_us())
    theirs, _ = runtime.admin.add_source("other", "theirs", runtime.now_us())
    # Then it cannot be set as a forwarding target (and its existence is not confirmed)
    with pytest.raises(NotFound):
        gov.set_schema_config(runtime, WS, "*", changes={"forwardingViolationsTo": theirs.id})
    with pytest.raises(NotFound):
        gov.set_schema_config(runtime, WS, "*", changes={"forwardingViolationsTo": "src_nope"})
    # And one stored anyway (an older version, a direct write) is ignored at ingest
    gov.apply_plan_document(runtime, WS, {**plan_doc(), "sources": [source(runtime).id]})
    settings = gov.EnforcementSettings.from_dict(
        {"track": {"allowUnplannedEvents": False}, "forwardingBlockedEventsTo": theirs.id}
    )
    runtime.plans.set_config(WS, source(runtime).id, "web", settings, runtime.now_us())
    runtime.governance.invalidate()
    result = runtime.collector.ingest_messages(
        source(runtime), [{"type": "track", "event": "X", "userId": "u", "messageId": "x"}]
    )
    runtime.processor.run_until_idle()
    assert result.quarantined == 1
    assert runtime.profiles.count_profiles("other") == 0


def test_quarantine_keeps_one_row_per_message(runtime: Runtime) -> None:
    bad = {"type": "track", "userId": "u", "messageId": "m"}  # no event name
    runtime.collector.ingest_messages(source(runtime), [bad])
    runtime.collector.ingest_messages(source(runtime), [bad])
    assert runtime.quarantine.counts(WS) == {"missing_event": 1}


def test_quarantine_filters_and_stats(runtime: Runtime) -> None:
    enforce_on_source(runtime, {"track": {"allowUnplannedEvents": False}})
    runtime.collector.ingest_messages(
        source(runtime),
        [
            {"type": "track", "event": "A", "userId": "u", "messageId": "1"},
            {"type": "track", "event": "B", "userId": "u", "messageId": "2"},
            {"type": "track", "userId": "u", "messageId": "3"},
        ],
    )
    f = gov.quarantine_filter
    assert len(runtime.quarantine.list(WS, where=f(runtime, WS, event="A"))) == 1
    assert len(runtime.quarantine.list(WS, where=f(runtime, WS, reason="missing_event"))) == 1
    assert len(runtime.quarantine.list(WS, where=f(runtime, WS, since="1h"))) == 3
    assert len(runtime.quarantine.list(WS, where=f(runtime, WS, until="1h"))) == 0
    assert len(runtime.quarantine.list(WS, where=f(runtime, WS, source=source(runtime).name))) == 3
    stats = runtime.quarantine.stats(f(runtime, WS), "hour")
    assert stats["by_reason"] == {"unplanned_event": 2, "missing_event": 1}
    assert stats["total"] == 3
    [(start, counts)] = stats["over_time"]
    assert counts == {"unplanned_event": 2, "missing_event": 1}
    assert start % 3_600_000_000 == 0
    with pytest.raises(RequestError):
        f(runtime, WS, since="yesterday-ish")
    with pytest.raises(NotFound):
        f(runtime, WS, source="nope")


def test_dry_run_reports_without_changing_anything(runtime: Runtime) -> None:
    # Given a week of events sent without a plan
    runtime.collector.ingest_messages(
        source(runtime),
        [
            order("a"),
            order("b", total="x"),
            {"type": "track", "event": "Nope", "userId": "u", "messageId": "c"},
        ],
    )
    runtime.processor.run_until_idle()
    # When a strict plan is tried in a dry run
    out = gov.apply_plan_document(
        runtime,
        WS,
        {
            **plan_doc(),
            "sources": [source(runtime).name],
            "settings": {"track": {"allowUnplannedEvents": False, "allowEventOnViolations": False}},
        },
        dry_run=True,
        days=7,
    )
    report = out["dry_run"]
    # Then it says what would have happened, and nothing was stored
    assert report["events"] == 3
    assert report["would_pass"] == 1
    assert report["would_block"] == {"unplanned_event": 1, "schema_violation": 1}
    assert report["unplanned_events"] == {"Nope": 1}
    assert report["violations"][0]["field"] == "properties.total"
    assert runtime.plans.get(WS, "web") is None
    assert gov.schema_config(runtime, WS, source(runtime).id).tracking_plan_id is None


def test_plan_revisions(runtime: Runtime) -> None:
    first, created = gov.save_plan(runtime, WS, gov.parse_plan_document(plan_doc()))
    same, created_again = gov.save_plan(runtime, WS, gov.parse_plan_document(plan_doc()))
    changed = plan_doc(name="Web shop v2")
    second, _ = gov.save_plan(runtime, WS, gov.parse_plan_document(changed))
    assert (first.revision, created, same.revision, created_again, second.revision) == (
        1,
        True,
        1,
        False,
        2,
    )
    assert gov.get_plan(runtime, WS, "web", 1).name == "Web shop"
    assert [p.revision for p in runtime.plans.list(WS)] == [2]
    gov.delete_plan(runtime, WS, "web")
    assert runtime.plans.list(WS) == []
    with pytest.raises(NotFound):
        gov.get_plan(runtime, WS, "web")
    third, _ = gov.save_plan(runtime, WS, gov.parse_plan_document(plan_doc()))
    assert third.revision == 3


def test_workspace_plan_applies_to_sources_without_their_own(runtime: Runtime) -> None:
    gov.apply_plan_document(
        runtime,
        WS,
        {**plan_doc(), "workspace": True, "settings": {"track": {"allowUnplannedEvents": False}}},
    )
    result = runtime.collector.ingest_messages(
        source(runtime), [{"type": "track", "event": "Nope", "userId": "u", "messageId": "n"}]
    )
    assert result.quarantined == 1
    # A source's own configuration wins over the workspace's
    gov.set_schema_config(runtime, WS, source(runtime).id, tracking_plan_id=None)
    result = runtime.collector.ingest_messages(
        source(runtime), [{"type": "track", "event": "Nope", "userId": "u", "messageId": "n2"}]
    )
    assert result.accepted == 1


def test_settings_errors_are_clear(runtime: Runtime) -> None:
    with pytest.raises(RequestError, match=r"settings\.track\.allowEverything"):
        gov.set_schema_config(runtime, WS, "*", changes={"track.allowEverything": True})
    with pytest.raises(NotFound, match="no tracking plan"):
        gov.set_schema_config(runtime, WS, "*", tracking_plan_id="missing")
    with pytest.raises(RequestError, match=r"rules\[0\]\.key"):
        gov.parse_plan_document({"id": "p", "rules": [{"type": "TRACK"}]})


def test_the_example_plan_file_applies(runtime: Runtime) -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "examples" / "plans" / "web-shop.yaml").read_text())
    runtime.admin.add_source(WS, "web-shop", runtime.now_us())
    dry = gov.apply_plan_document(runtime, WS, doc, dry_run=True)
    assert dry["dry_run"]["events"] == 0 and runtime.plans.get(WS, "web-shop") is None
    out = gov.apply_plan_document(runtime, WS, doc)
    assert (out["revision"], out["created_revision"]) == (1, True)
    web = runtime.admin.find_source(WS, "web-shop")
    assert web is not None
    result = runtime.collector.ingest_messages(
        web,
        [
            {
                **order("v2"),
                "context": {"library": {"name": "x"}, "protocols": {"event_version": 2}},
            },
            {**order("v1"), "context": {"library": {"name": "x"}}},
            {"type": "track", "event": "Unplanned", "userId": "u", "messageId": "u"},
        ],
    )
    # version 2 needs revenue and currency: recorded as violations (allowed); the unplanned is blocked
    assert (result.accepted, result.quarantined) == (2, 1)


def test_dry_run_pages_through_every_event(runtime: Runtime) -> None:
    runtime.collector.ingest_messages(source(runtime), [order(f"m{i:02d}") for i in range(7)])
    runtime.collector.ingest_messages(
        source(runtime), [{"type": "track", "event": "Nope", "userId": "u", "messageId": "n"}]
    )
    runtime.processor.run_until_idle()
    plan = gov.parse_plan_document(plan_doc())
    strict = gov.EnforcementSettings.from_dict({"track": {"allowUnplannedEvents": False}})
    report = gov.dry_run_plan(
        runtime, WS, plan, scopes=[source(runtime).id], settings=strict, page=2
    )
    assert (report["events"], report["would_pass"]) == (8, 7)
    assert report["would_block"] == {"unplanned_event": 1}


def test_resolved_quarantine_rows_are_pruned_open_ones_stay(runtime: Runtime) -> None:
    enforce_on_source(runtime, {"track": {"allowEventOnViolations": False}})
    runtime.collector.ingest_messages(
        source(runtime), [order("a", total="x"), order("b", total="y")]
    )
    gov.set_schema_config(runtime, WS, source(runtime).id, tracking_plan_id=None)
    gov.replay_quarantine(runtime, gov.quarantine_filter(runtime, WS), limit=1)
    assert runtime.quarantine.prune_resolved(runtime.now_us() - 60_000_000) == 0  # too recent
    assert runtime.quarantine.prune_resolved(runtime.now_us() + 1) == 1
    assert [
        r.message_id
        for r in runtime.quarantine.list(WS, where=gov.quarantine_filter(runtime, WS, status="all"))
    ] == ["b"]


def test_replaying_a_row_without_message_id_twice_makes_one_event(
    tmp_path: Path, database_url: str | None
) -> None:
    from tests.conftest import make_settings

    rt = Runtime(make_settings(tmp_path, database_url, max_batch_events=1))
    try:
        batch = [
            {"type": "track", "event": "E1", "userId": "u"},
            {"type": "track", "event": "E2", "userId": "u"},
        ]
        rt.collector.ingest_messages(source(rt), batch)
        [row] = rt.quarantine.list(WS)
        assert row.reason == "batch_limit_exceeded" and row.message_id
        rt.settings.max_batch_events = 10
        first = gov.replay_quarantine(rt, gov.quarantine_filter(rt, WS), process=True)
        again = gov.replay_quarantine(rt, gov.quarantine_filter(rt, WS, status="all"), process=True)
        assert (first.replayed, again.selected) == (1, 0)
        with rt.db.read() as conn:
            names = conn.execute(select(events.c.event)).scalars().all()
        assert sorted(names) == ["E1", "E2"]
    finally:
        rt.close()


def test_long_or_empty_message_ids_do_not_overwrite_other_rows(runtime: Runtime) -> None:
    a = {"type": "track", "event": "A", "userId": "u1", "messageId": "x" * 100 + "-1"}
    b = {"type": "track", "event": "B", "userId": "u2", "messageId": "x" * 100 + "-2"}
    runtime.collector.ingest_messages(source(runtime), [a])
    runtime.collector.ingest_messages(source(runtime), [b])
    big = {
        "type": "track",
        "event": "C",
        "userId": "u",
        "messageId": "",
        "properties": {"p": "y" * 40_000},
    }
    runtime.collector.ingest_messages(source(runtime), [big, big])
    runtime.collector.ingest_messages(source(runtime), [big])
    assert runtime.quarantine.counts(WS) == {"invalid_message_id": 2, "oversize_event": 3}


def test_replay_keeps_the_route_type_and_batch_context(runtime: Runtime) -> None:
    from opencdp.collect.envelope import Envelope

    envelope = Envelope(
        messages=[{"userId": "u", "messageId": "t1"}],  # no event: missing_event
        implied_type="track",
        context={"library": {"name": "batchlib"}},
    )
    _events, rejected, _ = runtime.collector.build_rows(source(runtime), envelope)
    runtime.collector.commit([], rejected)
    [row] = runtime.quarantine.list(WS)
    stored = orjson.loads(row.payload)
    assert stored["type"] == "track" and stored["context"]["library"]["name"] == "batchlib"


def test_plan_text_with_nul_is_refused() -> None:
    with pytest.raises(RequestError, match="name"):
        gov.parse_plan_document({"id": "p", "name": "a\x00b", "rules": []})


def test_filters_reject_times_out_of_range(runtime: Runtime) -> None:
    with pytest.raises(RequestError, match="too far back"):
        gov.quarantine_filter(runtime, WS, since="99999999999d")
    with pytest.raises(RequestError, match="days"):
        gov.dry_run_plan(runtime, WS, gov.parse_plan_document(plan_doc()), days=1e12)
    everything = gov.quarantine_filter(runtime, WS, source="workspace")
    assert everything.source_id is None
