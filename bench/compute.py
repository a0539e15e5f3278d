"""Compute benchmark (issue 9 §6): batch computation and real-time upkeep of computed traits
and audiences, on SQLite and PostgreSQL.

* **Batch on CDNOW**: the real CDNOW history imported (``opencdp import``'s path), then the
  retail preset (or ``--preset``: a preset name or a definitions file) plus the 10 audiences of
  :data:`bench.definitions.BATCH_AUDIENCES` computed over every profile, each definition after
  what it reads. Target: <= 2 s.
* **Batch at scale**: a generated store (profiles and events bulk-inserted through the storage
  layer's writers, no HTTP, no resolution) of ``--compute-profiles`` profiles and
  ``--compute-events`` events shaped like the retail preset reads them; the same definitions.
  Target: <= 60 s for 1,000,000 profiles with 10,000,000 events. Opt-in sizes: the default
  run uses what ``--compute-events`` says (``--quick``: 10,000 / 100,000).
* **Real-time throughput as deployed**: ``opencdp serve`` (its HTTP process and one worker),
  N realistic events over HTTP (``bench/e2e.py``'s loader), without definitions and with the 20
  real-time definitions of :data:`bench.definitions.REALTIME`; events/s = N / the time from the
  first request until the inbox is empty. Target: with >= 80 % of without. Beside it, the same
  in one process (``bench/worker_profile.py``'s fill and drain, no HTTP), as a diagnosis.
* **Event -> membership visible**: ``serve`` with the 20 definitions takes realistic events at
  a steady offered rate (batches of 50); one event of each batch is an order of 150 by a new
  customer, which makes that profile enter ``big_order_recent``; a poller reads the Profile
  API's ``traits`` until the audience shows. Latency counts from each batch's scheduled send
  time (no coordinated omission). Target: p99 <= 1 s.
"""

from __future__ import annotations

import http.client
import queue
import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from tests.support.server import LiveServer

from bench.common import TOKEN, WRITE_KEY, PostgresCluster, basic, bench_server, percentile
from bench.definitions import BATCH_AUDIENCES, LATENCY_AUDIENCE, REALTIME
from bench.e2e import load_inbox
from bench.events import EventFactory, iso

WS = "default"
TARGETS = {
    "batch_cdnow_s": 2.0,
    "batch_scale_s": 60.0,
    "realtime_ratio": 0.8,
    "membership_p99_ms": 1000.0,
}


# -- definitions ----------------------------------------------------------------------------------
def batch_definitions(preset: str | None) -> dict[str, tuple[str, str]]:
    """key -> (kind, query): the traits and audiences of a preset (name) or of a definitions
    file (``traits:`` / ``audiences:``, as ``opencdp traits apply`` reads), then the 10
    audiences."""
    from opencdp.compute import presets

    out: dict[str, tuple[str, str]] = {}
    name = preset or "retail"
    path = Path(name)
    doc = yaml.safe_load(path.read_text()) if path.is_file() else presets.load(name)
    for kind, section in (("trait", "traits"), ("audience", "audiences")):
        for key, entry in (doc.get(section) or {}).items():
            out[key] = (kind, entry["definition"]["query"])
    out.update((k, ("audience", q)) for k, q in BATCH_AUDIENCES.items())
    return out


def store_definitions(rt: Any, defined: dict[str, tuple[str, str]]) -> list[str]:
    """Validate and store the definitions without computing them; returns their keys in
    dependency order (what the batch run computes)."""
    from opencdp.services import compute

    now = rt.now_us()
    for key, (kind, query) in defined.items():
        definition = compute.validate(rt, WS, kind, key, query)  # type: ignore[arg-type]
        compute.store(rt).put(
            {
                "workspace_id": WS,
                "key": key,
                "kind": kind,
                "name": key,
                "type": definition.type,
                "query": definition.query,
                "enabled": True,
                "status": "computing",
                "error": None,
                "created_us": now,
                "updated_us": now,
            }
        )
    rt.compute.forget(WS)
    return list(rt.compute.in_dependency_order(WS, list(defined)))


def compute_all(rt: Any, keys: list[str]) -> dict[str, Any]:
    """Compute every definition over every profile, in dependency order; seconds each."""
    from opencdp.storage.definitions import FAILED

    each: dict[str, float] = {}
    sizes: dict[str, int] = {}
    started = time.perf_counter()
    with rt.compute.shared():  # one round, as the schedule runs it
        for key in keys:
            t = time.perf_counter()
            done = rt.compute.compute(WS, key)
            each[key] = round(time.perf_counter() - t, 3)
            sizes[key] = done.size
    seconds = time.perf_counter() - started
    failed = {r.key: r.error for r in rt.compute.definitions.of_workspace(WS) if r.status == FAILED}
    return {
        "definitions": len(keys),
        "seconds": round(seconds, 2),
        "seconds_each": each,
        "sizes": sizes,
        "failed": failed,
    }


def _runtime(data_dir: Path, url: str | None) -> Any:
    from opencdp.runtime import Runtime
    from opencdp.settings import Settings

    extra = {"database_url": url} if url else {}
    return Runtime(
        Settings(data_dir=data_dir, bootstrap_write_key=WRITE_KEY, bootstrap_token=TOKEN, **extra)
    )


# -- batch on CDNOW ---------------------------------------------------------------------------------
def batch_cdnow(
    data_dir: Path, url: str | None, preset: str | None, console: Any
) -> dict[str, Any]:
    from opencdp.imports.presets import resolve_file, resolve_mapping
    from opencdp.services.import_runs import ImportRequest, import_file

    rt = _runtime(data_dir, url)
    try:
        started = time.perf_counter()
        report = import_file(
            rt, ImportRequest(resolve_file("cdnow"), resolve_mapping("cdnow", "orders"))
        )
        imported = time.perf_counter() - started
        fit_seconds = _fit_clv(rt)
        keys = store_definitions(rt, batch_definitions(preset))
        console.print(
            f"  CDNOW imported in {imported:.1f} s ({report['rows']:,} orders); computing "
            f"{len(keys)} definitions"
        )
        out = compute_all(rt, keys)
        out.update(
            orders=report["rows"], import_seconds=round(imported, 1), clv_fit_seconds=fit_seconds
        )
        return out
    finally:
        rt.close()


def _fit_clv(rt: Any) -> float | None:
    """Fit the CLV model the preset's clv() traits read (not timed with the definitions; None
    when the store cannot give one)."""
    from opencdp.errors import RequestError
    from opencdp.services import clv

    started = time.perf_counter()
    try:
        clv.fit(rt, WS, None)
    except RequestError:
        return None
    return round(time.perf_counter() - started, 2)


# -- batch at scale ---------------------------------------------------------------------------------
CATEGORIES = ("Books", "Games", "Shoes", "Kitchen", "Toys", "Electronics")
BRANDS = ("Hasbro", "Pan Books", "Salomon", "Lodge", "Brio", "Sony")
CHANNELS = ("web", "app", "store")


def _payloads(rng: random.Random, n: int) -> list[tuple[str, str | None, str]]:
    """``n`` (type, event, payload JSON) variants of the events the retail preset reads."""
    out: list[tuple[str, str | None, str]] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            items = [
                {
                    "category": rng.choice(CATEGORIES),
                    "brand": rng.choice(BRANDS),
                    "price": round(rng.uniform(5, 120), 2),
                    "quantity": rng.randrange(1, 4),
                }
                for _ in range(rng.randrange(1, 4))
            ]
            revenue = round(sum(i["price"] * i["quantity"] for i in items), 2)
            message = {
                "type": "track",
                "event": "Order Completed",
                "properties": {
                    "revenue": revenue,
                    "quantity": sum(i["quantity"] for i in items),
                    "products": items,
                },
                "context": {"channel": rng.choice(CHANNELS)},
            }
        elif r < 0.65:
            message = {
                "type": "track",
                "event": "Product Viewed",
                "properties": {"category": rng.choice(CATEGORIES), "price": 19.99},
            }
        elif r < 0.8:
            message = {"type": "track", "event": "Signed In", "properties": {}}
        else:
            message = {"type": "page", "name": "Home", "properties": {"path": "/"}}
        event = message.get("event") or message.get("name")
        out.append((str(message["type"]), event, orjson.dumps(message).decode()))
    return out


def generate_store(
    rt: Any, profiles: int, events: int, console: Any, chunk: int = 100_000
) -> dict[str, Any]:
    """Bulk-insert ``profiles`` user profiles and ``events`` events (about events/profiles
    each, over the last two years) through the worker's writers, in transactions of
    ``chunk`` events; returns how long it took."""
    from opencdp.storage.statistics import refresh_stale

    rng = random.Random(7)
    variants = _payloads(rng, 997)
    now_us = rt.now_us()
    span_us = 730 * 86_400 * 1_000_000
    started = time.perf_counter()
    per = max(1, events // max(1, profiles))
    written = 0
    profile_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []

    def flush() -> None:
        with rt.db.write() as conn:
            if profile_rows:
                rt.profiles.insert_profiles(conn, profile_rows)
            if event_rows:
                rt.profiles.insert_events(conn, event_rows)
        profile_rows.clear()
        event_rows.clear()

    for n in range(profiles):
        pid = f"gen_{n:09d}"
        created = now_us - span_us + (n * 7919) % span_us
        profile_rows.append(
            {
                "workspace_id": WS,
                "id": pid,
                "collection": "users",
                "merged_into": None,
                "created_us": created,
                "updated_us": created,
                "first_message_id": f"g{n}-0",
                "first_source_id": None,
                "last_message_id": f"g{n}-0",
                "last_source_id": None,
                "merge_count": 0,
            }
        )
        count = per if n >= events - per * profiles else per + 1
        for i in range(min(count, events - written)):
            kind, name, payload = variants[(n * 31 + i * 17) % len(variants)]
            ts = created + (i * 104_729 + n) * 1_000_000 % (now_us - created)
            event_rows.append(
                {
                    "workspace_id": WS,
                    "message_id": f"g{n}-{i}",
                    "profile_id": pid,
                    "source_id": None,
                    "type": kind,
                    "event": name,
                    "timestamp_us": ts,
                    "received_us": ts,
                    "payload": payload,
                    "resolution": None,
                }
            )
        written += min(count, events - written)
        if len(event_rows) >= chunk:
            flush()
            if written % (chunk * 10) < chunk:
                console.print(f"  {written:,} events of {n + 1:,} profiles written")
    flush()
    inserted = time.perf_counter() - started
    t = time.perf_counter()
    refresh_stale(rt.db)  # PostgreSQL: plans from statistics of the loaded store
    return {
        "profiles": profiles,
        "events": written,
        "insert_seconds": round(inserted, 1),
        "analyze_seconds": round(time.perf_counter() - t, 1),
    }


def batch_scale(
    data_dir: Path,
    url: str | None,
    preset: str | None,
    profiles: int,
    events: int,
    console: Any,
) -> dict[str, Any]:
    rt = _runtime(data_dir, url)
    try:
        console.print(f"  generating {profiles:,} profiles with {events:,} events …")
        built = generate_store(rt, profiles, events, console)
        built["clv_fit_seconds"] = _fit_clv(rt)
        console.print(
            f"  generated in {built['insert_seconds']:g} s (+ {built['analyze_seconds']:g} s "
            "statistics); computing"
        )
        keys = store_definitions(rt, batch_definitions(preset))
        out = compute_all(rt, keys)
        out.update(built)
        return out
    finally:
        rt.close()


# -- real time --------------------------------------------------------------------------------------
SEED = {
    "type": "identify",
    "userId": "seed",
    "messageId": "seed",
    "traits": {"plan": "pro", "address": {"country": "DE"}},
}


def define_over_http(server: LiveServer) -> None:
    """One profile that makes the read traits known, then the 20 real-time definitions."""
    httpx.post(
        f"{server.url}/v1/batch",
        json={"batch": [SEED]},
        headers={"Authorization": basic(WRITE_KEY)},
        timeout=30,
    ).raise_for_status()
    if server.wait_drained(60.0) is None:
        raise RuntimeError("the seed event was not processed")
    auth = {"Authorization": basic(TOKEN)}
    for key, (kind, query) in REALTIME.items():
        route = "audiences" if kind == "audience" else "computed-traits"
        body = {"name": key, "definition": {"type": "USERS", "query": query}}
        r = httpx.put(f"{server.url}/api/{route}/{key}", json=body, headers=auth, timeout=60)
        r.raise_for_status()
        if r.json().get("status") != "ready":
            raise RuntimeError(f"definition {key} is not ready: {r.text}")
    # The worker reads the definitions list again at most every 2 s (a cache): events it
    # processes before that are not evaluated against definitions it does not know yet.
    time.sleep(3.0)


def deployed(
    tmp: Path, url: str | None, events: int, users: int, definitions: bool, console: Any
) -> dict[str, Any]:
    """``serve`` as deployed drains ``events`` realistic events sent over HTTP."""
    server = bench_server(tmp / f"rt-{int(definitions)}-{events}", url, workers=1).start()
    try:
        if definitions:
            define_over_http(server)
        cpu0 = server.cpu_seconds()
        started = time.monotonic() + 2.0  # load_inbox's senders start 2 s from now
        load_seconds = load_inbox(server, events, users=users)
        took = server.wait_drained(900.0)
        end = time.monotonic()
        cpu = server.cpu_seconds() - cpu0
    finally:
        server.stop()
    if took is None:
        return {"events": events, "drained": False, "definitions": 20 if definitions else 0}
    seconds = end - started
    console.print(
        f"  {events:,} events on their profiles in {seconds:.1f} s "
        f"({'20 definitions' if definitions else 'no definitions'})"
    )
    return {
        "events": events,
        "users": users,
        "definitions": 20 if definitions else 0,
        "drained": True,
        "seconds": round(seconds, 2),
        "events_per_s": events / seconds,
        "acknowledged_events_per_s": events / load_seconds if load_seconds > 0 else None,
        "opencdp_cpu_cores": cpu / seconds,
    }


def in_process(data_dir: Path, url: str | None, events: int, definitions: bool) -> dict[str, Any]:
    """Diagnosis: fill the inbox without HTTP, then drain it with one in-process worker."""
    from bench.worker_profile import define, fill

    rt = _runtime(data_dir, url)
    try:
        if definitions:
            define(rt)
        fill(rt, events, max(100, events // 12))
        started = time.perf_counter()
        done = rt.processor.run_until_idle()
        seconds = time.perf_counter() - started
    finally:
        rt.close()
    return {
        "events": done,
        "definitions": 20 if definitions else 0,
        "seconds": round(seconds, 2),
        "events_per_s": done / seconds,
    }


def membership_latency(
    tmp: Path,
    url: str | None,
    *,
    rate: float,
    duration: float,
    warmup: float,
    console: Any,
    batch_size: int = 50,
    visible_timeout: float = 30.0,
) -> dict[str, Any]:
    """Offered ``rate`` events/s for ``duration`` s; one entering order per batch, polled."""
    server = bench_server(tmp / f"lat-{int(rate)}", url, workers=1).start()
    try:
        define_over_http(server)
        out = _drive(server, rate, duration, batch_size, visible_timeout)
        after = server.readyz()
    finally:
        server.stop()
    start = out["start"]
    measured = [lat for due, lat in out["visible"] if due >= start + warmup]
    console.print(
        f"  {len(measured)} entries measured, p99 {_ms(percentile(measured, 99))} ms "
        f"({out['acked']:,} events acknowledged)"
    )
    window = out["sent_done"] - start
    return {
        "offered_events_per_s": rate,
        "acked_events_per_s": out["acked"] / window if window > 0 else None,
        "batches_not_sent": out["not_sent"],
        "samples": len(measured),
        "not_visible": out["not_visible"],
        "p50_ms": _ms(percentile(measured, 50)),
        "p90_ms": _ms(percentile(measured, 90)),
        "p99_ms": _ms(percentile(measured, 99)),
        "max_ms": _ms(max(measured) if measured else None),
        "worker_lag_at_end_s": after.get("worker_lag_seconds"),
        "duration_s": duration,
        "warmup_s": warmup,
        "batch_size": batch_size,
        "poll_interval_ms": 20,
        "audience": LATENCY_AUDIENCE,
    }


def _drive(
    server: LiveServer, rate: float, duration: float, batch_size: int, visible_timeout: float
) -> dict[str, Any]:
    """Open loop: a batch every ``batch_size / rate`` s from 4 sender threads; pollers wait
    for each batch's new customer to show in the audience."""
    batches = int(rate * duration / batch_size)
    interval = batch_size / rate
    start = time.monotonic() + 1.0
    headers = {"Content-Type": "application/json", "Authorization": basic(WRITE_KEY)}
    read = {"Authorization": basic(TOKEN)}
    prefix = f"lat{int(time.time())}"
    samples: queue.Queue[tuple[str, float] | None] = queue.Queue()
    lock = threading.Lock()
    totals = {"acked": 0, "not_sent": 0, "not_visible": 0}
    visible: list[tuple[float, float]] = []
    senders, pollers = 4, 16

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def send(thread: int) -> None:
        conn = connect()
        factory = EventFactory(seed=500 + thread, users=5_000, prefix="bg")
        for k in range(thread, batches, senders):
            due = start + k * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() > start + duration + 5.0:
                with lock:
                    totals["not_sent"] += 1
                continue
            user = f"{prefix}-{k}"
            stamp = iso(datetime.now(UTC))
            order = {
                "type": "track",
                "event": "Order Completed",
                "userId": user,
                "messageId": f"{user}-order",
                "timestamp": stamp,
                "properties": {"price": 150, "quantity": 1, "category": "Shoes"},
            }
            batch = [factory.event(f"{user}-{i}") for i in range(batch_size - 1)] + [order]
            conn.request("POST", "/v1/batch", orjson.dumps({"batch": batch}), headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    totals["acked"] += batch_size
                samples.put((user, due))

    def poll() -> None:
        conn = connect()
        while (item := samples.get()) is not None:
            user, due = item
            path = (
                f"/v1/spaces/{WS}/collections/users/profiles/user_id:{user}/traits"
                f"?include={LATENCY_AUDIENCE}"
            )
            seen = None
            while time.monotonic() < due + visible_timeout:
                conn.request("GET", path, headers=read)
                response = conn.getresponse()
                body = response.read()
                if response.status == 200 and orjson.loads(body).get("traits", {}).get(
                    LATENCY_AUDIENCE
                ):
                    seen = time.monotonic()
                    break
                time.sleep(0.02)
            with lock:
                if seen is None:
                    totals["not_visible"] += 1
                else:
                    visible.append((due, seen - due))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(senders)]
    polls = [threading.Thread(target=poll) for _ in range(pollers)]
    for t in threads + polls:
        t.start()
    for t in threads:
        t.join()
    sent_done = time.monotonic()
    for _ in polls:
        samples.put(None)
    for t in polls:
        t.join()
    return {**totals, "visible": visible, "start": start, "sent_done": sent_done}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


# -- the run ----------------------------------------------------------------------------------------
def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    console: Any,
    preset: str | None = None,
    scale_profiles: int | None = None,
    scale_events: int | None = None,
    events: int | None = None,
    duration: float | None = None,
    rate: float = 1000.0,
) -> dict[str, Any]:
    """Every measurement above on each backend; returns the raw figures."""
    profiles = scale_profiles or (10_000 if quick else 1_000_000)
    scale = scale_events if scale_events is not None else (100_000 if quick else 10_000_000)
    events = events or (10_000 if quick else 60_000)
    users = max(100, events // 12)
    duration = duration or (5.0 if quick else 20.0)
    warmup = 1.0 if quick else 3.0
    results: dict[str, Any] = {"targets": TARGETS, "backends": {}}
    for backend in backends:
        cluster = pg if backend == "postgres" else None
        if backend == "postgres" and cluster is None:
            continue

        def url() -> str | None:
            return cluster.new_database() if cluster else None  # noqa: B023

        r: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-compute-") as tmp:
            t = Path(tmp)
            console.print(f"[bold]compute[/bold] on {backend}: batch on CDNOW")
            r["batch_cdnow"] = batch_cdnow(t / "cdnow", url(), preset, console)
            if scale:
                console.print(f"[bold]compute[/bold] on {backend}: batch at scale")
                r["batch_scale"] = batch_scale(t / "scale", url(), preset, profiles, scale, console)
            console.print(f"[bold]compute[/bold] on {backend}: real time, {events:,} events")
            r["deployed"] = [
                deployed(t, url(), events, users, with_defs, console) for with_defs in (False, True)
            ]
            r["in_process"] = [
                in_process(t / f"inproc-{int(d)}", url(), events // 2, d) for d in (False, True)
            ]
            console.print(
                f"[bold]compute[/bold] on {backend}: event -> membership at {rate:,.0f} ev/s"
            )
            r["membership"] = membership_latency(
                t, url(), rate=rate, duration=duration, warmup=warmup, console=console
            )
        without, with_defs = (d.get("events_per_s") or 0 for d in r["deployed"])
        r["realtime_ratio"] = with_defs / without if without else None
        inp = r["in_process"]
        r["in_process_ratio"] = inp[1]["events_per_s"] / inp[0]["events_per_s"]
        results["backends"][backend] = r
    return results
