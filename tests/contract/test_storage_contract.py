"""Contract tests: one body, run against SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from opencdp.runtime import Runtime
from opencdp.storage import migrate
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.schema import metadata
from opencdp.timeutil import isoformat_us
from tests.conftest import WRITE_KEY


def source(rt: Runtime) -> Any:
    found = rt.admin.source_for_key(WRITE_KEY)
    assert found is not None
    return found


def ingest(rt: Runtime, *messages: dict[str, Any]) -> Any:
    result = rt.collector.ingest_messages(source(rt), list(messages))
    rt.processor.run_until_idle()
    return result


def test_migrations_produce_exactly_the_declared_schema(runtime: Runtime) -> None:
    # Given a database migrated by Alembic, Then it matches schema.py with no differences.
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert migrate.current_revision(runtime.db) == migrate.head_revision()


def test_migrating_twice_changes_nothing(runtime: Runtime) -> None:
    migrate.upgrade(runtime.db)
    assert migrate.current_revision(runtime.db) == migrate.head_revision()


def test_default_workspace_source_and_token_exist(runtime: Runtime) -> None:
    assert runtime.admin.workspace_exists(DEFAULT_WORKSPACE)
    assert source(runtime).workspace_id == DEFAULT_WORKSPACE
    assert runtime.admin.source_for_key("nope") is None
    tokens = runtime.admin.list_tokens(DEFAULT_WORKSPACE)
    assert [t.scope for t in tokens] == ["admin"]


def test_write_keys_are_stored_hashed(runtime: Runtime) -> None:
    src, key = runtime.admin.add_source(DEFAULT_WORKSPACE, "web-shop", runtime.now_us())
    from sqlalchemy import select

    from opencdp.storage.schema import sources

    with runtime.db.read() as conn:
        stored = conn.execute(
            select(sources.c.write_key_hash).where(sources.c.id == src.id)
        ).scalar()
    assert stored != key and key not in str(stored)
    assert runtime.admin.source_for_key(key) == src


def test_identify_then_track_builds_one_profile(runtime: Runtime) -> None:
    ingest(
        runtime,
        {"type": "track", "anonymousId": "anon-1", "event": "Product Viewed", "messageId": "m1"},
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "u-1",
            "traits": {"email": " Ann@Example.COM "},
            "messageId": "m2",
        },
        {
            "type": "track",
            "userId": "u-1",
            "event": "Order Completed",
            "properties": {"total": 10},
            "messageId": "m3",
        },
    )
    store = runtime.profiles
    pid = store.find(DEFAULT_WORKSPACE, "users", "email", "ann@example.com")
    assert store.find(DEFAULT_WORKSPACE, "users", "anonymous_id", "anon-1") == pid
    assert store.find(DEFAULT_WORKSPACE, "users", "user_id", "u-1") == pid
    events = store.events(DEFAULT_WORKSPACE, pid, limit=10)
    assert sorted(e.message_id for e in events) == ["m1", "m2", "m3"]
    assert store.count_profiles(DEFAULT_WORKSPACE) == 1


def test_processing_the_same_message_id_twice_changes_nothing(runtime: Runtime) -> None:
    msg = {"type": "identify", "userId": "u-2", "traits": {"plan": "gold"}, "messageId": "dup-1"}
    ingest(runtime, msg)
    ingest(runtime, dict(msg, traits={"plan": "silver"}))  # a retry with the same messageId
    pid = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "u-2")
    assert runtime.profiles.traits(DEFAULT_WORKSPACE, pid)["plan"].value == "gold"
    assert len(runtime.profiles.events(DEFAULT_WORKSPACE, pid)) == 1


def test_traits_resolve_by_event_time_not_arrival(runtime: Runtime) -> None:
    ingest(
        runtime,
        {
            "type": "identify",
            "userId": "u-3",
            "traits": {"city": "Berlin"},
            "timestamp": "2024-05-02T00:00:00Z",
        },
    )
    ingest(
        runtime,
        {
            "type": "identify",
            "userId": "u-3",
            "traits": {"city": "Paris", "age": 40},
            "timestamp": "2024-05-01T00:00:00Z",
        },
    )
    pid = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "u-3")
    traits = runtime.profiles.traits(DEFAULT_WORKSPACE, pid)
    assert traits["city"].value == "Berlin"  # the older event arrived later and loses
    assert traits["age"].value == 40


def test_merge_moves_identifiers_events_and_traits(runtime: Runtime) -> None:
    # Given two profiles built in separate batches
    ingest(
        runtime,
        {
            "type": "identify",
            "anonymousId": "web-1",
            "traits": {"color": "red"},
            "timestamp": "2024-01-01T00:00:00Z",
        },
    )
    ingest(
        runtime,
        {
            "type": "identify",
            "userId": "u-4",
            "traits": {"email": "x@y.org", "color": "blue"},
            "timestamp": "2024-01-02T00:00:00Z",
        },
    )
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 2
    # When an alias links them
    ingest(
        runtime, {"type": "alias", "previousId": "web-1", "userId": "u-4", "messageId": "alias-1"}
    )
    # Then one profile holds everything, and the older profile is the canonical one
    store = runtime.profiles
    pid = store.find(DEFAULT_WORKSPACE, "users", "user_id", "u-4")
    assert store.find(DEFAULT_WORKSPACE, "users", "anonymous_id", "web-1") == pid
    assert store.count_profiles(DEFAULT_WORKSPACE) == 1
    assert store.traits(DEFAULT_WORKSPACE, pid)["color"].value == "blue"
    assert len(store.events(DEFAULT_WORKSPACE, pid, limit=50)) == 3
    merges = store.merges_of(DEFAULT_WORKSPACE, [pid])
    assert [(m.rule, m.message_id) for m in merges] == [("alias", "alias-1")]
    absorbed = merges[0].from_profile_id
    assert store.resolve_id(DEFAULT_WORKSPACE, absorbed).id == pid


def test_group_creates_account_and_link(runtime: Runtime) -> None:
    ingest(
        runtime,
        {
            "type": "group",
            "userId": "u-5",
            "groupId": "acme",
            "traits": {"name": "ACME", "plan": "b2b"},
        },
    )
    store = runtime.profiles
    user = store.find(DEFAULT_WORKSPACE, "users", "user_id", "u-5")
    account = store.find(DEFAULT_WORKSPACE, "accounts", "group_id", "acme")
    assert store.traits(DEFAULT_WORKSPACE, account)["name"].value == "ACME"
    assert "name" not in store.traits(DEFAULT_WORKSPACE, user)
    assert store.links_of(DEFAULT_WORKSPACE, user, "users", 20) == [account]
    assert store.links_of(DEFAULT_WORKSPACE, account, "accounts", 20) == [user]


def test_unplaceable_events_go_to_quarantine_and_the_rest_carry_on(runtime: Runtime) -> None:
    result = ingest(
        runtime,
        {"type": "track", "anonymousId": "anonymous", "event": "E"},  # blocked placeholder value
        {"type": "track", "anonymousId": "real-anon", "event": "E"},
    )
    assert result.accepted == 2
    counts = runtime.quarantine.counts(DEFAULT_WORKSPACE)
    assert counts == {"missing_identity": 1}
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 1


def test_contact_api_never_creates_twice(runtime: Runtime) -> None:
    first = runtime.processor.upsert_contact(
        DEFAULT_WORKSPACE, {"email": "Shop@Example.com"}, {"first_name": "Kim"}
    )
    again = runtime.processor.upsert_contact(
        DEFAULT_WORKSPACE, {"email": "shop@example.com", "user_id": "shop-9"}, {}
    )
    assert first[1] is True and again == (first[0], False)
    assert runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "shop-9") == first[0]


def test_contact_api_events_carry_the_same_timestamp_format_as_collected_ones(
    runtime: Runtime,
) -> None:
    # Given a Contact API call, Then its stored event's times read as every other event's do.
    pid, _ = runtime.processor.upsert_contact(DEFAULT_WORKSPACE, {"user_id": "kim"}, {"a": 1})
    [event] = runtime.profiles.events(DEFAULT_WORKSPACE, pid)
    times = {event.payload[k] for k in ("timestamp", "receivedAt", "originalTimestamp")}
    assert times == {isoformat_us(event.timestamp_us)}


def test_workspaces_are_isolated(runtime: Runtime) -> None:
    runtime.admin.ensure_workspace("brand-b", "Brand B", runtime.now_us())
    other, _key = runtime.admin.add_source("brand-b", "shop-b", runtime.now_us())
    runtime.collector.ingest_messages(
        other, [{"type": "identify", "userId": "same-id", "traits": {"brand": "b"}}]
    )
    ingest(runtime, {"type": "identify", "userId": "same-id", "traits": {"brand": "a"}})
    a = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "same-id")
    b = runtime.profiles.find("brand-b", "users", "user_id", "same-id")
    assert a != b
    assert runtime.profiles.traits(DEFAULT_WORKSPACE, a)["brand"].value == "a"
    assert runtime.profiles.traits("brand-b", b)["brand"].value == "b"


def test_identity_rule_overrides_apply_to_new_events(runtime: Runtime) -> None:
    from opencdp.services.identity import set_identity_rules

    # Given a workspace that allows one anonymous id per profile
    set_identity_rules(runtime, DEFAULT_WORKSPACE, {"limits": {"anonymous_id": {"max_values": 1}}})
    assert runtime.admin.identity_config(DEFAULT_WORKSPACE) == {
        "limits": {"anonymous_id": {"max_values": 1}}
    }
    # When a user shows up with a second anonymous id
    ingest(runtime, {"type": "identify", "userId": "u-7", "anonymousId": "a-1"})
    ingest(runtime, {"type": "identify", "userId": "u-7", "anonymousId": "a-2"})
    # Then the second one is demoted (left off the profile), and the event is explained
    pid = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "u-7")
    assert [
        r.id_value
        for r in runtime.profiles.identifiers(DEFAULT_WORKSPACE, pid)
        if r.id_type == "anonymous_id"
    ] == ["a-1"]
    latest = runtime.profiles.events(DEFAULT_WORKSPACE, pid, limit=1)[0]
    assert latest.resolution is not None
    assert latest.resolution["demoted"] == [
        {"id": "anonymous_id:a-2", "reason": "limit:anonymous_id"}
    ]
    # And resetting restores the defaults
    set_identity_rules(runtime, DEFAULT_WORKSPACE, {})
    assert runtime.admin.identity_config(DEFAULT_WORKSPACE) is None
