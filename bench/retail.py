"""Benchmark (retail): the headless catalog's single-product read and the till's token lookup, as
deployed, at a fixed offered rate.

The store is written straight into a migrated database through SQLAlchemy Core (going through
the API would only measure the writes): 100,000 products (each with stock in the web warehouse
and a store), and 100,000 loyalty members, each with a digital token and a ledger entry. Then
``opencdp serve`` as deployed (one worker process) answers ``GET /api/products/{id}`` (target:
p99 ≤ 5 ms at 1,000 requests/s) and ``GET /api/loyalty/tokens/{token}`` (target: p99 ≤ 10 ms) for
random ids from load-generator processes; latency counts from each request's scheduled time.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from tests.support.server import LiveServer

from bench.common import TOKEN, basic, bench_server, open_loop_summary
from bench.loadgen import open_loop_get

BASE_US = 1_714_521_600_000_000
WS = "default"


def product_id(n: int) -> str:
    return f"SKU-{n:07d}"


def member_token(n: int) -> str:
    """A token of the real ones' shape (20 characters of Crockford's base32), made from n."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    out = []
    x = n * 2654435761 + 97
    for _ in range(20):
        out.append(alphabet[x % 32])
        x //= 32
        x += n + 7
    return "".join(out)


def build_store(data_dir: Path, url: str | None, products: int, members: int) -> dict[str, Any]:
    """A migrated database with ``products`` products (stock in two locations) and ``members``
    members with a token and one ledger entry each."""
    from opencdp.settings import Settings
    from opencdp.storage import migrate
    from opencdp.storage.db import Database
    from opencdp.storage.schema import inventory, loyalty_ledger, loyalty_members, loyalty_tokens
    from opencdp.storage.schema import products as products_t

    settings = Settings(data_dir=data_dir, database_url=url)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db)
    started = time.monotonic()
    categories = ("Women > Dresses", "Women > Shoes", "Men > Jackets", "Accessories > Bags")
    chunk = 20_000
    with db.engine.begin() as conn:
        for lo in range(0, products, chunk):
            rows, stock = [], []
            for n in range(lo, min(products, lo + chunk)):
                pid = product_id(n)
                rows.append(
                    {
                        "workspace_id": WS,
                        "id": pid,
                        "sku": pid,
                        "name": f"Product {n}",
                        "category": categories[n % 4],
                        "brand": f"Brand {n % 50}",
                        "price": 10.0 + n % 190,
                        "currency": "EUR",
                        "url": f"https://shop.example/p/{pid}",
                        "image_url": f"https://shop.example/img/{pid}.jpg",
                        "quantity": None,
                        "attributes": orjson.dumps({"colour": "black", "size": "M"}).decode(),
                        "source_id": None,
                        "created_us": BASE_US,
                        "updated_us": BASE_US,
                        "parent_id": None,
                    }
                )
                for loc in ("web", "store-1"):
                    stock.append(
                        {
                            "workspace_id": WS,
                            "product_id": pid,
                            "location": loc,
                            "quantity": n % 7,
                            "updated_us": BASE_US,
                        }
                    )
            conn.execute(products_t.insert(), rows)
            conn.execute(inventory.insert(), stock)
        for lo in range(0, members, chunk):
            m_rows, t_rows, l_rows = [], [], []
            for n in range(lo, min(members, lo + chunk)):
                mid = f"mem_{n:020d}"
                pid = f"use_bench{n:012d}"
                m_rows.append(
                    {
                        "workspace_id": WS,
                        "id": mid,
                        "profile_id": pid,
                        "status": "active",
                        "merged_into": None,
                        "balance": n % 1000,
                        "tier": "Member",
                        "tier_since_us": BASE_US,
                        "channel": "store",
                        "store_id": None,
                        "enrolled_us": BASE_US,
                        "updated_us": BASE_US,
                    }
                )
                t_rows.append(
                    {
                        "workspace_id": WS,
                        "token": member_token(n),
                        "member_id": mid,
                        "profile_id": pid,
                        "kind": "digital",
                        "status": "active",
                        "created_us": BASE_US,
                        "revoked_us": None,
                    }
                )
                l_rows.append(
                    {
                        "workspace_id": WS,
                        "member_id": mid,
                        "profile_id": pid,
                        "kind": "earn",
                        "points": n % 1000,
                        "dedup_key": f"earn:bench-{n}",
                        "order_id": f"bench-{n}",
                        "reason": "order",
                        "expires_us": None,
                        "message_id": None,
                        "actor": "bench",
                        "at_us": BASE_US,
                        "recorded_us": BASE_US,
                    }
                )
            conn.execute(loyalty_members.insert(), m_rows)
            conn.execute(loyalty_tokens.insert(), t_rows)
            conn.execute(loyalty_ledger.insert(), l_rows)
    db.dispose()
    return {
        "products": products,
        "members": members,
        "build_seconds": round(time.monotonic() - started, 1),
    }


def fixed_rate(
    server: LiveServer, path_format: str, count: int, rate: float, duration: float
) -> dict[str, Any]:
    """Offer ``rate`` GETs/s of ``path_format`` with a random n below ``count``."""
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
            "start_at": start + p / rate,
            "seed": 500 + p,
            "count": count,
            "path_format": path_format,
        }
        for p in range(processes)
    ]
    cpu0 = server.cpu_seconds()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        outs = pool.map(open_loop_get, specs)
    return {
        **open_loop_summary(outs, rate, start, server.cpu_seconds() - cpu0),
        "duration_s": duration,
    }


def run(
    backends: list[str],
    *,
    pg: Any,
    quick: bool,
    duration: float | None,
    rate: float,
    console: Any,
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 15.0)
    products = 10_000 if quick else 100_000
    members = 10_000 if quick else 100_000
    out: dict[str, Any] = {"targets": {"product_p99_ms": 5.0, "token_p99_ms": 10.0}}
    for backend in backends:
        url = pg.new_database() if backend == "postgres" and pg is not None else None
        if backend == "postgres" and url is None:
            continue
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-retail-") as tmp:
            data = Path(tmp) / "retail"
            console.print(
                f"[bold]retail[/bold] ({backend}): {products:,} products, {members:,} members"
            )
            build = build_store(data, url, products, members)
            server = bench_server(data, url, workers=1).start()
            try:
                runs = {}
                for name, path, count in (
                    ("product", "/api/products/SKU-{n:07d}", products),
                    ("token", "/api/loyalty/tokens/{token}", members),
                ):
                    console.print(f"  {name}: {rate:,.0f} requests/s for {duration:g} s")
                    runs[name] = fixed_rate(server, path, count, rate, duration)
                memory = server.memory()
            finally:
                server.stop()
        out[backend] = {**build, "runs": runs, "server_memory_kib": memory}
    return out
