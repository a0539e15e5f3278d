"""Benchmark (recs): the recommendation models' quality on real data, their training cost at
scale, and the recommendations read as deployed.

* **quality** — :func:`opencdp.services.recs_datasets.evaluate_dataset` on Instacart (each
  customer's last basket held out, repeats allowed) and MovieLens (each user's last 10 ratings
  held out, rated films masked): every model and the popularity baseline, NDCG@10's lift.
* **training** — the pure core's :func:`opencdp.recs.training.train` (evaluation, choice, refit)
  on 1,000,000 generated interactions (100,000 customers, 10,000 products) built in numpy, in a
  fresh process: wall seconds, and the peak resident memory of the training alone (the kernel's
  high-water mark, reset just before). The generator is long-tailed: customers' activity is
  log-normal, products' popularity Zipf-like, and each customer comes back to one or two
  "outfits" (groups of 20 products bought together) for most of what they do.
* **from events** — the same generator written as events (one per interaction: ``Order
  Completed`` with one line item, ``Product Added``, ``Product Viewed``) into a migrated
  database beside 100,000 profiles and 10,000 products (set-based, as bench/retail.py), then
  ``services.recs.train`` — the set-based read, the training, the artifact, the
  ``recommended_items`` trait — on SQLite and PostgreSQL.
* **serving** — that database and model behind ``opencdp serve`` as deployed (one worker):
  ``GET /api/profiles/{id}/recommendations?limit=10`` for random profiles at a fixed offered rate
  (500 requests/s), open loop, latency from each request's scheduled time.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import TOKEN, basic, bench_server
from bench.retail import fixed_rate
from bench.retail import product_id as sku

BASE_US = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z
DAY_US = 86_400_000_000
WS = "default"
OUTFIT = 20  # products per co-purchase group
#: Share of interactions of each kind: view, cart add, purchase.
KIND_SHARES = (0.6, 0.2, 0.2)
SERVE_PATH = "/api/profiles/use_bench{n:012d}/recommendations?limit=10"


def profile_id(n: int) -> str:
    return f"use_bench{n:012d}"


# -- the generator --------------------------------------------------------------------------------


def generate(users: int, items: int, rows: int, seed: int = 11, days: int = 180) -> dict[str, Any]:
    """``rows`` interactions as integer columns: ``user``, ``item``, ``kind`` (0 purchase, 1
    cart, 2 view) and ``day`` (0 … days-1, the last day newest)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, users)
    user = rng.choice(users, size=rows, p=activity / activity.sum())
    popularity = 1.0 / np.power(np.arange(items) + 10.0, 1.1)
    popularity /= popularity.sum()
    # outfits: a random partition of the products into groups of OUTFIT
    groups = max(1, items // OUTFIT)
    members = rng.permutation(groups * OUTFIT).reshape(groups, OUTFIT)
    within = 1.0 / np.power(np.arange(OUTFIT) + 1.0, 0.8)
    within /= within.sum()
    favourites = rng.integers(0, groups, size=(users, 2))
    from_outfit = rng.random(rows) < 0.7
    picked = favourites[user, rng.integers(0, 2, size=rows)]
    outfit_item = members[picked, rng.choice(OUTFIT, size=rows, p=within)]
    global_item = rng.choice(items, size=rows, p=popularity)
    item = np.where(from_outfit, outfit_item, global_item)
    kind = rng.choice(3, size=rows, p=(KIND_SHARES[2], KIND_SHARES[1], KIND_SHARES[0]))
    # recent days are busier (a growing shop)
    day = (days - 1 - np.floor(rng.exponential(days / 3, rows)) % days).astype(np.int64)
    return {"user": user, "item": item, "kind": kind.astype(np.int8), "day": day, "days": days}


def as_interactions(data: dict[str, Any]) -> Any:
    """The generated columns as :class:`opencdp.recs.interactions.Interactions` (string ids as
    the database gives them)."""
    import numpy as np

    from opencdp.recs.interactions import Interactions

    users = np.char.add("use_bench", np.char.zfill(data["user"].astype(str), 12))
    items = np.char.add("SKU-", np.char.zfill(data["item"].astype(str), 7))
    start_day = BASE_US // DAY_US - data["days"]
    return Interactions(
        users=users.astype(object),
        items=items.astype(object),
        kinds=data["kind"],
        times_us=(start_day + data["day"]) * DAY_US,
        counts=np.ones(len(data["user"]), dtype=np.float32),
    )


# -- quality --------------------------------------------------------------------------------------


def quality(console: Any) -> dict[str, Any]:
    from opencdp.services.recs_datasets import evaluate_dataset

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="opencdp-bench-recs-") as tmp:
        for name in ("instacart", "movielens"):
            started = time.monotonic()
            report = evaluate_dataset(name, Path(tmp))
            out[name] = {
                **report.to_document(),
                "wall_seconds": round(time.monotonic() - started, 2),
            }
            lift = report.lift
            console.print(
                f"  {name}: chosen {report.chosen}, NDCG@10 lift "
                f"{'n/a' if lift is None else f'{lift * 100:+.0f} %'} over popularity"
            )
    return out


# -- training in a fresh process ------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def train_generated(spec: dict[str, Any]) -> dict[str, Any]:
    """In a spawned process: generate, then train with the default configuration; seconds and
    the training's peak resident memory (VmHWM reset through /proc/self/clear_refs first)."""
    import resource

    from opencdp.recs.training import TrainConfig, train

    started = time.perf_counter()
    interactions = as_interactions(generate(spec["users"], spec["items"], spec["rows"]))
    generated = time.perf_counter() - started
    before = _rss_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark: the peak below is the training's
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    model = train(interactions, {}, BASE_US, TrainConfig())
    seconds = time.perf_counter() - started
    peak = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = model.evaluation
    return {
        "interactions": len(interactions),
        "users": len(model.user_ids),
        "items": len(model.item_ids),
        "generate_seconds": round(generated, 2),
        "train_seconds": round(seconds, 2),
        "fit_seconds": report.get("seconds", {}),
        "rss_before_kib": before,
        "peak_rss_kib": peak,
        "peak_is_training_only": reset,
        "chosen": model.kind,
        "lift": report.get("lift"),
        "models": report.get("models"),
    }


def training(rows: int, users: int, items: int, console: Any) -> dict[str, Any]:
    console.print(
        f"  generated: {rows:,} interactions, {users:,} customers, {items:,} products "
        "(a fresh process)"
    )
    spec = {"rows": rows, "users": users, "items": items}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(train_generated, (spec,))


# -- the database ---------------------------------------------------------------------------------


def build_store(
    data_dir: Path, url: str | None, profiles: int, products: int, rows: int
) -> dict[str, Any]:
    """A migrated database with ``profiles`` profiles, ``products`` products and the events of
    ``rows`` generated interactions of those profiles."""
    from opencdp.settings import Settings
    from opencdp.storage import migrate
    from opencdp.storage.db import Database
    from opencdp.storage.schema import events, inventory
    from opencdp.storage.schema import products as products_t
    from opencdp.storage.schema import profiles as profiles_t

    settings = Settings(data_dir=data_dir, database_url=url)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db)
    data = generate(profiles, products, rows)
    start_day = BASE_US // DAY_US - data["days"]
    categories = ("Women > Dresses", "Women > Shoes", "Men > Jackets", "Accessories > Bags")
    started = time.monotonic()
    chunk = 20_000
    with db.engine.begin() as conn:
        for lo in range(0, products, chunk):
            p_rows, stock = [], []
            for n in range(lo, min(products, lo + chunk)):
                pid = sku(n)
                p_rows.append(
                    {
                        "workspace_id": WS,
                        "id": pid,
                        "sku": pid,
                        "name": f"Product {n}",
                        "category": categories[(n // OUTFIT) % 4],
                        "brand": f"Brand {n % 50}",
                        "price": 10.0 + n % 190,
                        "currency": "EUR",
                        "url": f"https://shop.example/p/{pid}",
                        "image_url": f"https://shop.example/img/{pid}.jpg",
                        "quantity": None,
                        "attributes": "{}",
                        "source_id": None,
                        "created_us": BASE_US,
                        "updated_us": BASE_US,
                        "parent_id": None,
                    }
                )
                stock.append(
                    {
                        "workspace_id": WS,
                        "product_id": pid,
                        "location": "web",
                        "quantity": 1 + n % 7,
                        "updated_us": BASE_US,
                    }
                )
            conn.execute(products_t.insert(), p_rows)
            conn.execute(inventory.insert(), stock)
        for lo in range(0, profiles, chunk):
            conn.execute(
                profiles_t.insert(),
                [
                    {
                        "workspace_id": WS,
                        "id": profile_id(n),
                        "collection": "users",
                        "merged_into": None,
                        "created_us": BASE_US,
                        "updated_us": BASE_US,
                        "first_message_id": None,
                        "first_source_id": None,
                        "last_message_id": None,
                        "last_source_id": None,
                        "merge_count": 0,
                    }
                    for n in range(lo, min(profiles, lo + chunk))
                ],
            )
        names = ("Order Completed", "Product Added", "Product Viewed")
        user, item, kind, day = (data[k].tolist() for k in ("user", "item", "kind", "day"))
        for lo in range(0, rows, chunk):
            e_rows = []
            for i in range(lo, min(rows, lo + chunk)):
                at = (start_day + day[i]) * DAY_US + (i % 86_400) * 1_000_000
                pid = sku(item[i])
                properties: dict[str, Any] = (
                    {"order_id": f"o{i}", "products": [{"product_id": pid, "quantity": 1}]}
                    if kind[i] == 0
                    else {"product_id": pid}
                )
                message = f"bench-recs-{i}"
                e_rows.append(
                    {
                        "workspace_id": WS,
                        "message_id": message,
                        "profile_id": profile_id(user[i]),
                        "source_id": None,
                        "type": "track",
                        "event": names[kind[i]],
                        "timestamp_us": at,
                        "received_us": at,
                        "payload": orjson.dumps(
                            {
                                "type": "track",
                                "event": names[kind[i]],
                                "messageId": message,
                                "properties": properties,
                            }
                        ).decode(),
                        "resolution": None,
                        "import_run_id": None,
                    }
                )
            conn.execute(events.insert(), e_rows)
    db.dispose()
    return {
        "profiles": profiles,
        "products": products,
        "events": rows,
        "build_seconds": round(time.monotonic() - started, 1),
    }


def train_from_events(data_dir: Path, url: str | None) -> dict[str, Any]:
    """``services.recs.train`` on the built database, as ``opencdp recs train`` runs it."""
    from opencdp.runtime import build_runtime
    from opencdp.services import recs as recs_service
    from opencdp.settings import Settings

    rt = build_runtime(Settings(data_dir=data_dir, database_url=url))
    try:
        started = time.monotonic()
        read_started = time.monotonic()
        interactions = rt.recs.interactions(WS)
        read = time.monotonic() - read_started
        version = recs_service.train(rt, WS, source="bench")
        total = time.monotonic() - started - read
    finally:
        rt.close()
    return {
        "interaction_rows": len(interactions),
        "read_seconds": round(read, 2),
        "train_seconds": version["seconds"],  # read + train + artifact, as recorded
        "with_trait_seconds": round(total, 2),  # … plus the recommended_items trait
        "kind": version["kind"],
        "users": version["users"],
        "items": version["items"],
        "lift": (version["evaluation"] or {}).get("lift"),
    }


# -- the whole benchmark --------------------------------------------------------------------------


def warm_up(server: Any, profiles: int, requests: int = 50) -> float:
    """A few sequential reads before the measurement (the first loads the model's arrays and
    the catalog snapshot); their mean seconds."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Authorization": basic(TOKEN)}
    started = time.perf_counter()
    try:
        for n in range(requests):
            conn.request("GET", SERVE_PATH.format(n=(n * 7919) % profiles), headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"warm-up read answered {response.status}")
    finally:
        conn.close()
    return (time.perf_counter() - started) / requests


def run(
    backends: list[str],
    *,
    pg: Any,
    quick: bool,
    duration: float | None,
    rate: float,
    console: Any,
    parts: tuple[str, ...] = ("quality", "training", "serving"),
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 15.0)
    train_rows, train_users, train_items = (
        (100_000, 10_000, 2_000) if quick else (1_000_000, 100_000, 10_000)
    )
    profiles, products, event_rows = (
        (10_000, 2_000, 20_000) if quick else (100_000, 10_000, 300_000)
    )
    out: dict[str, Any] = {"targets": {"recommendations_p99_ms": 50.0, "lift": 0.2}}
    if "quality" in parts:
        console.print("[bold]recs[/bold]: quality on Instacart and MovieLens")
        out["quality"] = quality(console)
    if "training" in parts:
        console.print("[bold]recs[/bold]: training")
        out["training"] = training(train_rows, train_users, train_items, console)
    if "serving" not in parts:
        return out
    for backend in backends:
        url = pg.new_database() if backend == "postgres" and pg is not None else None
        if backend == "postgres" and url is None:
            continue
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-recs-") as tmp:
            data = Path(tmp) / "recs"
            console.print(
                f"[bold]recs[/bold] ({backend}): {profiles:,} profiles, {products:,} products, "
                f"{event_rows:,} product events"
            )
            build = build_store(data, url, profiles, products, event_rows)
            console.print(f"  built in {build['build_seconds']} s; training from the events")
            trained = train_from_events(data, url)
            console.print(
                f"  trained ({trained['kind']}) in {trained['train_seconds']} s; "
                f"{rate:,.0f} requests/s for {duration:g} s"
            )
            server = bench_server(data, url, workers=1).start()
            try:
                warm = warm_up(server, profiles)
                serving = fixed_rate(server, SERVE_PATH, profiles, rate, duration)
                memory = server.memory()
            finally:
                server.stop()
        out[backend] = {
            **build,
            "from_events": trained,
            "serving": {**serving, "warm_up_mean_ms": round(warm * 1000, 2)},
            "server_memory_kib": memory,
        }
    return out
