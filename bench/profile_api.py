"""Benchmark (c): Profile API latency at a fixed request rate over a large profile store.

The profiles are written straight into a migrated SQLite database through SQLAlchemy (building a
million profiles through the pipeline would take longer than the benchmark): per profile one
``profiles`` row, two identifiers (``user_id``, ``email``) and six traits, shaped like what the
worker writes. Then ``opencdp serve`` as deployed (its worker writing profiles for a stream of new events
meanwhile, 1,000 events/s by default) answers
``GET …/profiles/user_id:<id>/traits`` for random users at a fixed offered rate from another
process; latency counts from each request's scheduled time.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from tests.support.server import LiveServer

from bench.common import TOKEN, WRITE_KEY, basic, bench_server, open_loop_summary
from bench.loadgen import ack_to_visible, open_loop_profiles

USER_PREFIX = "pu"
TRAIT_KEYS = ("email", "firstName", "lastName", "plan", "city", "lifetime_value")
BASE_US = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z


def profile_id(n: int) -> str:
    return "use_" + hashlib.blake2b(n.to_bytes(8, "little"), digest_size=12).hexdigest()


def build_store(data_dir: Path, profiles: int, console: Any) -> dict[str, Any]:
    """A migrated SQLite database holding ``profiles`` users; returns build facts."""
    from sqlalchemy import insert

    from opencdp.settings import Settings
    from opencdp.storage import migrate
    from opencdp.storage.db import Database
    from opencdp.storage.schema import identifiers, traits
    from opencdp.storage.schema import profiles as profiles_t

    settings = Settings(data_dir=data_dir)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db)
    started = time.monotonic()
    sql = {
        t.name: str(insert(t).compile(dialect=db.engine.dialect))
        for t in (profiles_t, identifiers, traits)
    }
    chunk = 50_000
    plans = ("free", "plus", "pro")
    cities = ("Berlin", "Lyon", "Austin", "Leeds", "Porto")
    raw = db.engine.raw_connection()  # the engine's pysqlite connection, BEGIN is ours to emit
    try:
        cur = raw.cursor()
        # A fixture load: durability of the build does not matter, speed does.
        cur.execute("PRAGMA synchronous=OFF")
        for lo in range(0, profiles, chunk):
            p_rows, i_rows, t_rows = [], [], []
            for n in range(lo, min(profiles, lo + chunk)):
                pid = profile_id(n)
                created = BASE_US - n * 1_000_000
                user = f"{USER_PREFIX}{n:08d}"
                email = f"{user}@example.com"
                msg = f"bench-{n}"
                p_rows.append(
                    ("default", pid, "users", None, created, created, msg, "src", msg, "src", 0)
                )
                for id_type, value in (("user_id", user), ("email", email)):
                    i_rows.append(
                        (
                            "default",
                            "users",
                            id_type,
                            value,
                            pid,
                            "src",
                            msg,
                            "co-occurrence",
                            created,
                            created,
                        )
                    )
                values = (
                    email,
                    "Ada",
                    "Lovelace",
                    plans[n % 3],
                    cities[n % 5],
                    round((n % 1000) * 1.37, 2),
                )
                for key, value in zip(TRAIT_KEYS, values, strict=True):
                    t_rows.append(
                        ("default", pid, key, orjson.dumps(value).decode(), "src", msg, created)
                    )
            cur.execute("BEGIN")
            cur.executemany(sql["profiles"], p_rows)
            cur.executemany(sql["identifiers"], i_rows)
            cur.executemany(sql["traits"], t_rows)
            cur.execute("COMMIT")
            if (lo // chunk) % 4 == 3:
                console.print(f"  {lo + chunk:,} profiles written")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()
    db.dispose()
    path = Path(settings.resolved_database_url().removeprefix("sqlite:///"))
    return {
        "profiles": profiles,
        "build_seconds": round(time.monotonic() - started, 1),
        "db_bytes": path.stat().st_size,
    }


def writer_spec(server: LiveServer, rate: float, duration: float, start: float) -> dict[str, Any]:
    """Identify events with fresh userIds at ``rate`` events/s while the reads run, so that the
    worker writes profiles throughout (``ack_to_visible`` with no sampled read-backs)."""
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "auth": basic(WRITE_KEY),
        "read_auth": basic(TOKEN),
        "batch_size": 50,
        "rate": rate,
        "duration": duration,
        "send_threads": 4,
        "poll_threads": 1,
        "sample_every": 10**9,
        "poll_interval": 0.05,
        "visible_timeout": 1.0,
        "grace": 5.0,
        "seed": 77,
        "prefix": f"pw{int(start)}",
        "start_at": start,
    }


def fixed_rate(
    server: LiveServer, profiles: int, rate: float, duration: float, write_rate: float = 0.0
) -> dict[str, Any]:
    """Offer ``rate`` requests/s of random users' traits for ``duration`` s (and, with
    ``write_rate``, that many new events/s for the worker to write meanwhile); latency stats."""
    processes, threads = 2, 16
    start = time.monotonic() + 2.0
    specs = [
        {
            "host": "127.0.0.1",
            "port": server.port,
            "auth": basic(TOKEN),
            "rate": rate / processes,
            "threads": threads,
            "duration": duration,
            "grace": 5.0,
            # Offset the second process by one slot so the two schedules interleave.
            "start_at": start + p / rate,
            "seed": 300 + p,
            "profiles": profiles,
            "user_prefix": USER_PREFIX,
        }
        for p in range(processes)
    ]
    cpu0 = server.cpu_seconds()
    with multiprocessing.get_context("spawn").Pool(processes + 1) as pool:
        writes = (
            pool.apply_async(ack_to_visible, (writer_spec(server, write_rate, duration, start),))
            if write_rate
            else None
        )
        outs = pool.map(open_loop_profiles, specs)
        written = writes.get() if writes is not None else None
    return {
        **open_loop_summary(outs, rate, start, server.cpu_seconds() - cpu0),
        "duration_s": duration,
        "offered_write_events_per_s": write_rate,
        "written_events": written["acked"].get("events", 0) if written else 0,
        "write_statuses": (
            {k: v for k, v in written["acked"].items() if k.startswith("status_")}
            if written
            else {}
        ),
    }


def run(
    *,
    profiles: int,
    quick: bool,
    duration: float | None,
    rate: float,
    low_rate: float,
    console: Any,
    write_rate: float = 1000.0,
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 15.0)
    with tempfile.TemporaryDirectory(prefix="opencdp-bench-") as tmp:
        data = Path(tmp) / "profiles"
        console.print(f"[bold]profile-api[/bold]: building {profiles:,} profiles (SQLite)")
        build = build_store(data, profiles, console)
        console.print(f"  built in {build['build_seconds']} s ({build['db_bytes'] / 1e9:.2f} GB)")
        # As deployed: `serve` with its worker, which writes the new events meanwhile.
        server = bench_server(data, None, workers=1).start()
        runs = []
        try:
            for offered in (rate,) if quick else (rate, low_rate):
                console.print(
                    f"[bold]profile-api[/bold]: {offered:,.0f} requests/s for {duration:g} s, "
                    f"{write_rate:,.0f} new events/s written meanwhile"
                )
                runs.append(fixed_rate(server, profiles, offered, duration, write_rate))
            memory = server.memory()
        finally:
            server.stop()
    return {**build, "runs": runs, "server_memory_kib": memory}
