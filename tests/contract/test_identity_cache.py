"""The worker's memory of profiles across batches must never differ from the database."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from opencdp.resolve.identity_cache import IdentityCache
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from tests.conftest import make_settings
from tests.e2e.test_worker_partitions import load, outcome, stream


def drain(rt: Runtime, rng: random.Random) -> None:
    while rt.processor.run_once(rng.choice([1, 7, 40, 200])):
        pass


def test_batches_with_the_cache_end_where_batches_without_it_end(
    tmp_path: Path, database_url: str | None
) -> None:
    messages = stream(seed=21)
    url_b = None
    if database_url is not None:  # a second database on the same cluster
        url_b = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_b"
        from sqlalchemy import create_engine, text

        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{url_b.rsplit("/", 1)[1]}"'))
        admin.dispose()
    cached = Runtime(make_settings(tmp_path / "cached", database_url))
    uncached = Runtime(make_settings(tmp_path / "uncached", url_b))
    uncached.processor.cache = IdentityCache(max_profiles=0)  # forgets after every batch
    try:
        load(cached, messages)
        load(uncached, messages)
        # When both drain the inbox in the same uneven batches
        drain(cached, random.Random(5))
        drain(uncached, random.Random(5))
        # Then they hold the same profiles, and the cache was used
        assert outcome(cached) == outcome(uncached)
        assert cached.processor.cache.hits > 0
        assert uncached.processor.cache.hits == 0
    finally:
        cached.close()
        uncached.close()


def test_a_write_by_someone_else_between_batches_is_seen(runtime: Runtime) -> None:
    from tests.contract.test_worker_concurrency import enqueue

    def traits_of(user: str) -> dict[str, Any]:
        pid = runtime.profiles.find(DEFAULT_WORKSPACE, "users", "user_id", user)
        return {k: v.value for k, v in runtime.profiles.traits(DEFAULT_WORKSPACE, pid).items()}

    # Given a profile the worker remembers after its batch
    enqueue(runtime, [{"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"a": 1}}])
    runtime.processor.run_once()
    assert len(runtime.processor.cache) == 1
    # When a Contact API call adds an e-mail and a trait to it between two batches
    runtime.processor.upsert_contact(
        DEFAULT_WORKSPACE, {"user_id": "u1", "email": "u1@x.co"}, {"b": 2}
    )
    # Then the next batch works from the database's state, not from its memory: an older
    # value of b loses to the contact's newer one (last write wins by event time)
    enqueue(
        runtime,
        [
            {
                "type": "identify",
                "userId": "u1",
                "messageId": "m2",
                "timestamp": "2001-01-01T00:00:00Z",
                "traits": {"b": 5, "c": 3},
            }
        ],
    )
    runtime.processor.run_once()
    assert traits_of("u1") == {"a": 1, "b": 2, "c": 3, "email": "u1@x.co"}
    assert runtime.profiles.count_profiles(DEFAULT_WORKSPACE) == 1


def test_the_cache_starts_over_when_full_or_at_another_epoch() -> None:
    from opencdp.identity import Identifier, IdInfo, ProfileNode

    cache = IdentityCache(max_profiles=2).at(5)
    nodes = [
        ProfileNode(f"p{i}", "users", 0, identifiers={Identifier("user_id", f"u{i}"): IdInfo(0, 0)})
        for i in range(2)
    ]
    cache.remember("w", nodes, {"p0": {}}, [])
    assert cache.lookup("w", "users", "user_id", "u1") == "p1"
    assert cache.lookup("other", "users", "user_id", "u1") is None
    assert cache.at(5).take("w", "p0") is not None
    assert cache.at(6).take("w", "p0") is None  # another writer came in between
    cache.at(6).remember("w", [*nodes, ProfileNode("p2", "users", 0)], {}, ["p9"])
    assert len(cache) == 0 and cache.epoch == 6  # over the limit: starts over, same epoch
