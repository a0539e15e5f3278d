"""The Profile API's one-statement read, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from opencdp.errors import StorageUnavailable
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from tests.contract.test_worker_concurrency import enqueue


def test_it_finds_the_profile_and_every_trait(runtime: Runtime) -> None:
    enqueue(
        runtime,
        [
            {
                "type": "identify",
                "userId": "u1",
                "messageId": "m1",
                "traits": {"email": "A@X.co", "plan": "pro", "score": 3},
            },
            {"type": "track", "userId": "u2", "messageId": "m2", "event": "Seen"},
        ],
    )
    runtime.processor.run_until_idle()
    reads = runtime.profile_reads
    found = reads.profile_traits(DEFAULT_WORKSPACE, "users", "email", "a@x.co")
    assert found is not None and found.merged_into is None
    assert found.profile_id == runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", "u1")
    assert {k: v.value for k, v in found.traits.items()} == {
        "email": "A@X.co",
        "plan": "pro",
        "score": 3,
    }
    assert found.traits["plan"].message_id == "m1"
    # A profile without traits is found, with none; an unknown identifier is not
    bare = reads.profile_traits(DEFAULT_WORKSPACE, "users", "user_id", "u2")
    assert bare is not None and bare.traits == {}
    assert reads.profile_traits(DEFAULT_WORKSPACE, "users", "user_id", "nobody") is None
    assert reads.profile_traits("other", "users", "user_id", "u1") is None
    assert reads.profile_traits(DEFAULT_WORKSPACE, "accounts", "user_id", "u1") is None


def test_a_dropped_connection_is_one_error_then_a_new_connection(runtime: Runtime) -> None:
    if runtime.db.dialect.is_sqlite:
        pytest.skip("a server that drops connections is PostgreSQL's case")
    reads = runtime.profile_reads

    def served() -> Any:
        """The read as the server makes it: on its event loop's thread (which keeps its
        connection from one read to the next)."""

        async def read() -> Any:
            return reads.profile_traits(DEFAULT_WORKSPACE, "users", "user_id", "x")

        return asyncio.run(read())

    assert served() is None
    # When the server terminates the reader's session
    with runtime.db.write() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND state = 'idle'"
            )
        )
    # Then one read fails as unavailable (503) and the next one works again
    with pytest.raises(StorageUnavailable):
        served()
    assert served() is None
