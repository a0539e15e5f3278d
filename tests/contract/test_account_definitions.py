"""ACCOUNTS definitions: ``ANY`` / ``ALL`` over the users linked to an account by group calls,
compiled to SQL and equal to the reference evaluator (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opencdp.query.evaluate import Evaluator
from opencdp.query.parser import parse
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.storage.definition_sql import DefinitionCompiler, convert
from tests.contract.test_storage_contract import source

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def world(rt: Runtime) -> None:
    """Account a1 has ann (pro, ordered yesterday) and bob (free); a2 has cy (pro); a3 has
    one anonymous visitor, with no trait and no order."""
    at = (NOW - timedelta(days=1)).isoformat()
    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}, "timestamp": at},
        {"type": "identify", "userId": "bob", "traits": {"plan": "free"}, "timestamp": at},
        {"type": "identify", "userId": "cy", "traits": {"plan": "pro"}, "timestamp": at},
        {"type": "group", "userId": "ann", "groupId": "a1", "timestamp": at},
        {"type": "group", "userId": "bob", "groupId": "a1", "timestamp": at},
        {"type": "group", "userId": "cy", "groupId": "a2", "timestamp": at},
        {"type": "group", "anonymousId": "x", "groupId": "a3", "timestamp": at},
        {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": at},
    ]
    for n, message in enumerate(messages):
        message["messageId"] = f"m{n}"
    result = rt.collector.ingest_messages(source(rt), messages)
    assert result.quarantined == 0
    rt.processor.run_until_idle()


def by_group(rt: Runtime, values: dict[str, Any]) -> dict[str, Any]:
    return {
        row.id_value: values[pid]
        for pid in values
        for row in rt.profiles.identifiers("default", pid)
        if row.id_type == "group_id"
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ANY trait('plan') = 'pro'", {"a1": True, "a2": True, "a3": False}),
        ("ALL trait('plan') = 'pro'", {"a1": False, "a2": True, "a3": False}),
        ("ALL NOT trait('plan') = 'free'", {"a1": False, "a2": True, "a3": True}),
        (
            "ANY event('Order Completed').within(7 days).count() >= 1",
            {"a1": True, "a2": False, "a3": False},
        ),
        (
            "ANY trait('plan') = 'pro' AND ALL event('Order Completed').count() = 0",
            {"a1": False, "a2": True, "a3": False},
        ),
    ],
)
def test_any_and_all_in_sql_equal_the_reference(
    runtime: Runtime, query: str, expected: dict[str, bool]
) -> None:
    world(runtime)
    definition = parse(query, "audience", "ACCOUNTS")
    statement = DefinitionCompiler(runtime.db.dialect.name).profile_values(
        definition.root, workspace_id="default", now=NOW, collection="accounts"
    )
    with runtime.db.read() as conn:
        batch = {pid: convert(definition.root, raw) for pid, raw in conn.execute(statement)}
        data = compute.store(runtime).profile_data(conn, "default", sorted(batch))
        evaluator = Evaluator(NOW)
        reference = {}
        for pid, profile in data.items():
            users = compute.store(runtime).users_of(conn, "default", pid)
            members = compute.store(runtime).profile_data(conn, "default", users)
            reference[pid] = evaluator.evaluate(
                definition.root,
                type(profile)(profile.traits, profile.events, list(members.values())),
            )
    assert batch == reference
    assert by_group(runtime, batch) == expected


def test_an_account_audience_follows_its_users_in_real_time(runtime: Runtime) -> None:
    # Given accounts whose users order, and an ACCOUNTS audience over their orders
    world(runtime)
    body = {
        "definition": {
            "type": "ACCOUNTS",
            "query": "ANY event('Order Completed').count() >= 1",
        }
    }
    described = compute.put_definition(runtime, "default", "audience", "buying_accounts", body)
    assert described["status"] == "ready" and described["size"] == 1  # a1, through ann
    # When cy (a2's only user) orders — an event on the user, none on the account
    runtime.collector.ingest_messages(
        source(runtime),
        [
            {
                "type": "track",
                "userId": "cy",
                "event": "Order Completed",
                "messageId": "cy-order",
                "timestamp": runtime.clock.now().isoformat(),
            }
        ],
    )
    runtime.processor.run_until_idle()
    # Then a2 is in at once, and a batch recompute agrees
    members = compute.store(runtime).values_by_key("default", "buying_accounts")
    assert set(by_group(runtime, dict.fromkeys(members, True))) == {"a1", "a2"}
    assert compute.compute(runtime, "default", "buying_accounts").changed == 0
