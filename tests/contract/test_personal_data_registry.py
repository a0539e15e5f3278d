"""The registry of personal data on every storage backend: every table is declared, and the
registry's statements find one profile's rows in every table that holds them — and no one
else's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, inspect

from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.personal_data import REGISTRY, Declaration, select_rows
from opencdp.storage.schema import metadata
from tests.contract.test_storage_contract import source

WS = DEFAULT_WORKSPACE


def problems(registry: Mapping[str, Declaration], tables: Iterable[Table]) -> list[str]:
    """What is wrong between the declarations and the tables: undeclared tables, declarations
    of missing tables or columns, tables found by profile without ``workspace_id``."""
    by_name = {t.name: t for t in tables}
    found = [f"{name}: not declared" for name in sorted(by_name.keys() - registry.keys())]
    found += [f"{name}: no such table" for name in sorted(registry.keys() - by_name.keys())]
    for name, declaration in sorted(registry.items()):
        table = by_name.get(name)
        if table is None:
            continue
        for column in declaration.columns + declaration.profile_columns:
            if column not in table.c:
                found.append(f"{name}.{column}: no such column")
        if declaration.found_by_profile and "workspace_id" not in table.c:
            found.append(f"{name}: found by profile but has no workspace_id")
    return found


def test_every_table_is_declared_and_every_declared_column_exists(runtime: Runtime) -> None:
    assert problems(REGISTRY, metadata.tables.values()) == []
    # The migrated database has no table the schema (and so the registry) does not know.
    with runtime.db.engine.connect() as conn:
        stored = set(inspect(conn).get_table_names()) - {"alembic_version"}
    assert stored == set(REGISTRY)
    # Personal data no profile column reaches is a known, named gap — not a silent one.
    unlinked = {t for t, d in REGISTRY.items() if d.holds_personal_data and not d.found_by_profile}
    assert unlinked == {"import_runs", "regulations", "suppressions"}


def test_the_check_fails_for_a_missing_declaration_or_column() -> None:
    without_events = {t: d for t, d in REGISTRY.items() if t != "events"}
    assert problems(without_events, metadata.tables.values()) == ["events: not declared"]
    wrong = dict(REGISTRY)
    wrong["traits"] = Declaration("traits", ("val",), ("profile_id",), "misspelt")
    assert problems(wrong, metadata.tables.values()) == ["traits.val: no such column"]


def send(runtime: Runtime, *messages: dict[str, Any]) -> None:
    """Through the real collector into the inbox, then one worker batch at a time."""
    result = runtime.collector.ingest_messages(source(runtime), list(messages))
    assert result is not None
    while runtime.processor.run_once():
        pass


def rows_of(runtime: Runtime, table: str, workspace_id: str, profile_id: str) -> list[Any]:
    with runtime.db.read() as conn:
        return list(conn.execute(select_rows(table, workspace_id, profile_id)).all())


def test_the_registry_finds_one_profiles_rows_in_every_table(runtime: Runtime) -> None:
    # Given a destination that receives everything (its outbox rows carry the events),
    from opencdp.services.destinations import put_destination

    put_destination(
        runtime,
        WS,
        "everything",
        {
            "type": "webhook",
            "settings": {"url": "https://example.com/h"},
            "subscriptions": [{"name": "all"}],
        },
    )
    # a journey that sign-ups enter (its instances carry the events on their path),
    from opencdp.services.journeys import put_journey

    signups = {"entry": {"event": 'event = "Signed Up"'}, "steps": [{"key": "w", "wait": "1 day"}]}
    put_journey(runtime, WS, "signups", signups)
    # a visitor who browses anonymously, then signs in on another device,
    send(runtime, {"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "ann-1"})
    send(
        runtime,
        {"type": "identify", "userId": "u1", "traits": {"email": "ann@x.co"}, "messageId": "ann-2"},
    )
    # then is recognised as one person (a merge: the earlier inbox rows name absorbed profiles),
    send(runtime, {"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "ann-3"})
    # joins a company, and sends a track first without a name (quarantined) then fixed
    send(runtime, {"type": "group", "userId": "u1", "groupId": "g1", "messageId": "ann-4"})
    send(runtime, {"type": "track", "userId": "u1", "messageId": "ann-5"})
    send(runtime, {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "ann-5"})
    # who is a loyalty member with a card, earns points on an order, and waits for a sold-out
    # product (the loyalty events and traits OpenCDP derives come from its internal source)
    from opencdp.services.loyalty import apply_programme, enrol

    apply_programme(runtime, WS, {"name": "Rewards", "tiers": [{"name": "Member", "threshold": 0}]})
    enrol(runtime, WS, {"user_id": "u1", "card_number": "ANN-CARD-1"}, actor="test")
    send(
        runtime,
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "properties": {"order_id": "o-1", "total": 30},
            "messageId": "ann-6",
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Back In Stock Requested",
            "properties": {"product_id": "P-1"},
            "messageId": "ann-7",
        },
    )
    # and somebody else is in the same database
    send(
        runtime,
        {"type": "identify", "userId": "u2", "traits": {"email": "bob@x.co"}, "messageId": "bob-1"},
        {"type": "track", "userId": "u2", "messageId": "bob-2"},
    )
    # and is in an audience (its membership is a computed value of her profile)
    from opencdp.services.compute import put_definition

    audience = {"definition": {"query": "event('Signed Up').count() >= 1"}}
    assert put_definition(runtime, WS, "audience", "signed_up", audience)["size"] == 1
    ann = runtime.profiles.find(WS, "users", "user_id", "u1")
    bob = runtime.profiles.find(WS, "users", "user_id", "u2")
    assert runtime.profiles.absorbed_ids(WS, ann), "the scenario must merge two profiles"

    # When the registry selects Ann's rows of every table found by profile
    found = {
        table: rows_of(runtime, table, WS, ann)
        for table, declaration in REGISTRY.items()
        if declaration.found_by_profile
    }

    # Then every such table has some, and they are hers
    assert {t for t, rows in found.items() if not rows} == set()
    internal = runtime.admin.find_source(WS, "opencdp")
    assert internal is not None
    derived = {r.message_id for r in found["events"] if r.source_id == internal.id}
    assert len(derived) >= 4  # enrolment, traits, Points Earned, Tier Changed
    ann_messages = {"ann-1", "ann-2", "ann-3", "ann-4", "ann-5", "ann-6", "ann-7"}
    assert {r.message_id for r in found["inbox"]} - derived == ann_messages
    stored = {r.message_id for r in found["events"]} - derived
    entered = {m for m in stored if m.startswith("aud-")}  # her Audience Entered event
    assert stored - entered == ann_messages and len(entered) == 1
    assert [r.product_id for r in found["stock_requests"]] == ["P-1"]
    assert {r.token for r in found["loyalty_tokens"]} >= {"ANN-CARD-1"}
    assert [r.order_id for r in found["loyalty_ledger"]] == ["o-1"]
    assert len(found["loyalty_members"]) == 1
    assert [r.message_id for r in found["quarantine"]] == ["ann-5"]
    assert {r.message_id for r in found["deliveries"]} - derived == stored
    assert [r.message_id for r in found["journey_instances"]] == ["ann-5"]
    assert {r.id for r in found["profiles"]} == {ann, *runtime.profiles.absorbed_ids(WS, ann)}
    assert {(r.id_type, r.id_value) for r in found["identifiers"]} >= {
        ("user_id", "u1"),
        ("anonymous_id", "a1"),
        ("email", "ann@x.co"),
    }
    assert {r.key for r in found["traits"]} == {
        "email",
        "points_balance",
        "loyalty_tier",
        "points_expiring_30d",
        "loyalty_member_id",
    }
    assert [r.into_profile_id for r in found["merges"]] == [ann]
    assert [r.user_profile_id for r in found["links"]] == [ann]
    values = {value for rows in found.values() for row in rows for value in row}
    assert not values & {bob, "bob-1", "bob-2", "u2"}
    assert "bob@x.co" not in repr(found) and '"u2"' not in repr(found)
    # Bob's rows are his: his collection-time quarantine row names no profile (never stored)
    assert {r.message_id for r in rows_of(runtime, "inbox", WS, bob)} == {"bob-1"}
    assert rows_of(runtime, "quarantine", WS, bob) == []
    # And another workspace sees none of it
    assert all(not rows_of(runtime, table, "elsewhere", ann) for table in found)
