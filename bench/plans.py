"""Benchmark: what a 50-rule tracking plan costs at ingest (target: ≥ 70 % of the throughput
without a plan).

Two measurements, each without and with the plan enforced on the source:

* ``HTTP``: the ingest benchmark's load (``/v1/batch`` from other processes, 100 events per
  request) against ``opencdp serve`` with the worker off;
* ``no HTTP``: ``Collector.prepare`` (decode, normalize, enforce) plus the group commit in one
  process, the collector's own ceiling.

The plan has a rule for each event the load sends (TRACK, PAGE, IDENTIFY) with typed,
required properties, a COMMON rule, and synthetic TRACK rules up to 50; unplanned events are
blocked, so every event is looked up and validated.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import LiveServer

from bench.common import TOKEN, WRITE_KEY, PostgresCluster, basic, bench_server
from bench.events import PAGES, TRACK_EVENTS, EventFactory
from bench.ingest import http_ingest, prepare_and_commit

PRODUCT_PROPS = {
    "product_id": {"type": "string"},
    "sku": {"type": "string", "pattern": "^[A-Z]-[0-9]+$"},
    "category": {"type": "string"},
    "name": {"type": "string", "maxLength": 200},
    "brand": {"type": "string"},
    "price": {"type": "number", "minimum": 0},
    "quantity": {"type": "integer", "minimum": 1},
    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
}


def _wrap(section: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            section: {"type": "object", "properties": props, "required": required},
            "context": {"type": "object"},
        },
        "required": [section],
    }


def fifty_rule_plan() -> dict[str, Any]:
    """A realistic plan of 50 rules covering every event the benchmark load sends."""
    rules: list[dict[str, Any]] = [
        {
            "type": "TRACK",
            "key": name,
            "version": 1,
            "jsonSchema": _wrap("properties", PRODUCT_PROPS, ["product_id", "price"]),
        }
        for name in TRACK_EVENTS
    ]
    page_props = {
        "path": {"type": "string"},
        "title": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
        "referrer": {"type": "string"},
    }
    rules += [
        {
            "type": "PAGE",
            "key": p,
            "version": 1,
            "jsonSchema": _wrap("properties", page_props, ["path"]),
        }
        for p in PAGES
    ]
    rules.append(
        {
            "type": "IDENTIFY",
            "version": 1,
            "jsonSchema": _wrap(
                "traits",
                {
                    "email": {"type": "string", "format": "email"},
                    "firstName": {"type": "string"},
                    "lastName": {"type": "string"},
                    "plan": {"type": "string", "enum": ["free", "plus", "pro"]},
                    "address": {"type": "object"},
                    "createdAt": {"type": "string", "format": "date-time"},
                },
                ["email"],
            ),
        }
    )
    rules.append(
        {
            "type": "COMMON",
            "version": 1,
            "jsonSchema": {
                "type": "object",
                "properties": {"context": {"type": "object", "required": ["library"]}},
                "required": ["context"],
            },
        }
    )
    n = 0
    while len(rules) < 50:
        n += 1
        rules.append(
            {
                "type": "TRACK",
                "key": f"Synthetic Event {n}",
                "version": 1,
                "jsonSchema": _wrap("properties", PRODUCT_PROPS, ["sku"]),
            }
        )
    return {"id": "bench", "name": "Benchmark plan (50 rules)", "rules": rules}


SETTINGS = {"track": {"allowUnplannedEvents": False, "allowEventOnViolations": False}}


def _apply_over_http(server: LiveServer) -> None:
    headers = {"Authorization": basic(TOKEN)}
    r = httpx.put(
        f"{server.url}/api/tracking-plans/bench",
        json=fifty_rule_plan(),
        headers=headers,
        timeout=30,
    )
    r.raise_for_status()
    r = httpx.put(
        f"{server.url}/api/workspaces/default/schema-settings",
        json={"trackingPlanId": "bench", "settings": SETTINGS},
        headers=headers,
        timeout=30,
    )
    r.raise_for_status()


def no_http(spec: dict[str, Any]) -> dict[str, Any]:
    """Collector.prepare + group commit in one process, without and with the plan."""
    from opencdp.runtime import Runtime
    from opencdp.services import governance
    from opencdp.settings import Settings

    out: dict[str, Any] = {}
    for label in ("without_plan", "with_plan"):
        runtime = Runtime(
            Settings(
                data_dir=Path(spec["data_dir"]) / label,
                database_url=spec["database_url"].get(label),
                bootstrap_write_key=WRITE_KEY,
                bootstrap_token=TOKEN,
                worker_in_process=False,
            )
        )
        try:
            if label == "with_plan":
                governance.apply_plan_document(
                    runtime,
                    "default",
                    {**fifty_rule_plan(), "workspace": True, "settings": SETTINGS},
                )
            run_ = prepare_and_commit(
                runtime.collector,
                EventFactory(seed=7, users=100_000).templates(1000),
                prefix=label,
                seconds=spec["seconds"],
                batch_size=spec["batch_size"],
                threads=spec["threads"],
            )
            judged = run_["accepted"] + run_["quarantined"]
            out[label] = {
                "events_per_s": judged / run_["seconds"],
                "prepare_us_per_event": run_["prepare_seconds"] / max(1, judged) * 1e6,
                "quarantined": run_["quarantined"],
            }
        finally:
            runtime.close()
    out["ratio"] = out["with_plan"]["events_per_s"] / out["without_plan"]["events_per_s"]
    return out


def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    duration: float | None,
    console: Any,
) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 15.0)
    warmup = 1.0 if quick else 3.0
    results: dict[str, Any] = {"rules": len(fifty_rule_plan()["rules"]), "backends": {}}
    for backend in backends:
        console.print(f"[bold]plans[/bold] on {backend}: ingest without and with a 50-rule plan")
        cluster = pg if backend == "postgres" else None
        r: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-") as tmp:
            for label in ("without_plan", "with_plan"):
                url = cluster.new_database() if cluster else None
                server = bench_server(Path(tmp) / label, url).start()
                try:
                    if label == "with_plan":
                        _apply_over_http(server)
                    r[label] = http_ingest(
                        server,
                        processes=2,
                        threads=16,
                        batch_size=100,
                        warmup=warmup,
                        duration=duration,
                    )
                finally:
                    server.stop()
            spec = {
                "data_dir": str(Path(tmp) / "no-http"),
                "database_url": {
                    label: cluster.new_database() if cluster else None
                    for label in ("without_plan", "with_plan")
                },
                "batch_size": 100,
                "threads": 32,
                "seconds": min(duration, 10.0),
            }
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                r["no_http"] = pool.apply(no_http, (spec,))
        r["ratio_http"] = r["with_plan"]["events_per_s"] / r["without_plan"]["events_per_s"]
        results["backends"][backend] = r
    return results
