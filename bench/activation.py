"""Activation benchmarks (``--only activation``), each through ``opencdp serve`` as deployed
(its worker process runs the dispatcher), on each backend, to webhook receivers on loopback:

* **Deliveries per second**: 50,000 track events are processed by ``serve`` with no
  dispatcher (``OPENCDP_DISPATCHER_IN_WORKER=false``: their deliveries wait in the outbox),
  then ``opencdp dispatcher`` starts; deliveries/s = N ÷ the time from its start until every
  one has reached the receiver (batches of 500 per request). Target ≥ 5,000/s.
* **Event → delivery**: 1,000 events/s offered in batches of 50 (open loop, four sender
  threads), a destination subscribed to every track (batches of up to 100); latency from each
  batch's *scheduled* send time until its events reach the receiver; after 3 s of warm-up.
  Target p99 ≤ 2 s.
* **Worker throughput with 5 destinations**: 60,000 realistic events (``bench/e2e.py``'s
  loader) drained by ``serve``'s worker with no destination, then with five subscribed
  (every track, orders, identifies, pages, product views; batches of 100), the dispatcher
  sending beside the worker. Target: with ≥ 80 % of without.
* **Worker throughput with the journeys on** (no target in the issue; reported): the same
  60,000 events with the ``abandoned-cart`` and ``welcome`` presets on, mailing a local SMTP
  server; the ratio to the run without. The events are dated May 2024, older than the
  triggers' ``max_event_age``, so this measures checking events against the triggers, not
  instances and timers (``journey_entries`` in the results says how many started).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import TOKEN, WRITE_KEY, PostgresCluster, basic, bench_server, percentile
from bench.e2e import load_inbox
from bench.events import EventFactory, iso

TARGETS = {"deliveries_per_s": 5_000, "p99_ms": 2_000, "ratio": 0.8}
AUTH = {"Authorization": basic(TOKEN)}


class _Sink:
    """A fast receiver: answers 200 and records when each message id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.requests = 0
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.monotonic()
                data = orjson.loads(body)
                items = data if isinstance(data, list) else [data]
                with lock:
                    sink.requests += 1
                    for item in items:
                        if isinstance(item, dict) and "messageId" in item:
                            sink.arrivals.setdefault(item["messageId"], now)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _destination(
    server: Any, name: str, url: str, conditions: dict[str, str], batch: int, enabled: bool = True
) -> None:
    body = {
        "type": "webhook",
        "enabled": enabled,
        "settings": {
            "url": url,
            "allow_http": True,
            "allow_private_targets": True,
            "batch_size": batch,
        },
        "subscriptions": [{"name": k, "condition": v} for k, v in conditions.items()],
    }
    r = httpx.put(f"{server.url}/api/destinations/{name}", json=body, headers=AUTH, timeout=60)
    r.raise_for_status()


def _wait(check: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(poll)
    return False


def _counts(server: Any, name: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/api/destinations/{name}", headers=AUTH, timeout=30)
    return r.json()["deliveries"]  # type: ignore[no-any-return]


def deliveries_per_second(tmp: Path, url: str | None, events: int, console: Any) -> dict[str, Any]:
    """The worker fills the outbox with no dispatcher running; then ``opencdp dispatcher``
    (a process of its own, as deployed at scale) sends it."""
    sink = _Sink()
    data = tmp / "dps"
    quiet = {"OPENCDP_DISPATCHER_IN_WORKER": "false"}
    server = bench_server(data, url, workers=1, **quiet).start()
    dispatcher = None
    try:
        _destination(server, "bulk", sink.url(), {"tracks": 'type = "track"'}, 500)
        factory = EventFactory(seed=7, users=5_000, prefix="dps")
        sent = 0
        with httpx.Client(timeout=60) as client:
            while sent < events:
                batch = [factory.event(f"dps-{sent + i}", kind="track") for i in range(500)]
                client.post(
                    f"{server.url}/v1/batch",
                    json={"batch": batch},
                    headers={"Authorization": basic(WRITE_KEY)},
                ).raise_for_status()
                sent += len(batch)
        if server.wait_drained(600.0) is None:
            raise RuntimeError("the worker did not drain the inbox")
        waiting = _counts(server, "bulk")["pending"]
        started = time.monotonic()
        dispatcher = bench_server(data, url, dispatcher=True).start()
        done = _wait(lambda: len(sink.arrivals) >= waiting, 600.0, poll=0.05)
        seconds = time.monotonic() - started
        counts = _counts(server, "bulk")
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        server.stop()
        sink.close()
    rate = waiting / seconds if done and seconds > 0 else None
    console.print(f"  {waiting:,} deliveries in {seconds:.1f} s = {rate or 0:,.0f}/s")
    return {
        "deliveries": waiting,
        "all_delivered": done,
        "seconds": round(seconds, 2),
        "deliveries_per_s": rate,
        "requests": sink.requests,
        "counts_at_end": counts,
        "includes": "the dispatcher process's start (about 1 s)",
    }


def event_to_delivery(
    tmp: Path, url: str | None, rate: float, duration: float, console: Any, warmup: float = 3.0
) -> dict[str, Any]:
    sink = _Sink()
    server = bench_server(tmp / "latency", url, workers=1).start()
    batch_size, senders = 50, 4
    scheduled: dict[str, float] = {}
    lock = threading.Lock()
    try:
        _destination(server, "live", sink.url(), {"tracks": 'type = "track"'}, 100)
        time.sleep(1.0)
        batches = int(rate * duration / batch_size)
        interval = batch_size / rate
        start = time.monotonic() + 1.0
        headers = {"Content-Type": "application/json", "Authorization": basic(WRITE_KEY)}

        def send(thread: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            factory = EventFactory(seed=900 + thread, users=5_000, prefix=f"lat{thread}")
            for k in range(thread, batches, senders):
                due = start + k * interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stamp = iso(datetime.now(UTC))
                batch = [
                    {**factory.event(f"lat-{k}-{i}", kind="track"), "timestamp": stamp}
                    for i in range(batch_size)
                ]
                conn.request("POST", "/v1/batch", orjson.dumps({"batch": batch}), headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    with lock:
                        for e in batch:
                            scheduled[e["messageId"]] = due

        threads = [threading.Thread(target=send, args=(t,)) for t in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _wait(lambda: len(sink.arrivals) >= len(scheduled), 60.0)
    finally:
        server.stop()
        sink.close()
    latencies = [
        sink.arrivals[m] - due
        for m, due in scheduled.items()
        if m in sink.arrivals and due >= start + warmup
    ]
    missing = sum(1 for m in scheduled if m not in sink.arrivals)
    p99 = percentile(latencies, 99)
    console.print(
        f"  {len(latencies):,} deliveries measured, p99 {_ms(p99)} ms ({missing} not delivered)"
    )
    return {
        "offered_events_per_s": rate,
        "samples": len(latencies),
        "not_delivered": missing,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p90_ms": _ms(percentile(latencies, 90)),
        "p99_ms": _ms(p99),
        "max_ms": _ms(max(latencies) if latencies else None),
        "duration_s": duration,
        "warmup_s": warmup,
    }


FIVE = {
    "all_tracks": {"tracks": 'type = "track"'},
    "orders": {"orders": 'type = "track" and event = "Order Completed"'},
    "crm": {"identifies": 'type = "identify"'},
    "analytics": {"pages": 'type = "page"'},
    "recs": {"views": 'event = "Product Viewed"'},
}


def _journeys(server: Any, mail_port: int) -> None:
    smtp = {
        "type": "smtp",
        "settings": {"host": "127.0.0.1", "port": mail_port, "from": "b@x.test", "starttls": False},
    }
    r = httpx.put(f"{server.url}/api/destinations/mail", json=smtp, headers=AUTH, timeout=60)
    r.raise_for_status()
    for key in ("abandoned-cart", "welcome"):
        body = {"preset": key, "settings": {"destination": "mail"}}
        r = httpx.put(f"{server.url}/api/journeys/{key}", json=body, headers=AUTH, timeout=60)
        r.raise_for_status()


def throughput(
    tmp: Path,
    url: str | None,
    events: int,
    destinations: bool,
    console: Any,
    journeys: bool = False,
) -> dict[str, Any]:
    from opencdp.demo.mailbox import Mailbox

    sink = _Sink() if destinations else None
    label = f"tp-{int(destinations)}{'-j' if journeys else ''}"
    server = bench_server(tmp / label, url, workers=1).start()
    mailbox = Mailbox(tmp / f"{label}-mail").__enter__() if journeys else None
    try:
        if sink is not None:
            for name, conditions in FIVE.items():
                _destination(server, name, sink.url(name), conditions, 100)
            time.sleep(1.0)
        if mailbox is not None:
            _journeys(server, mailbox.port)
            time.sleep(1.0)
        started = time.monotonic() + 2.0  # load_inbox's senders start 2 s from now
        load_inbox(server, events, users=max(100, events // 12))
        took = server.wait_drained(900.0)
        seconds = time.monotonic() - started
        delivered = None
        if sink is not None:
            _wait(lambda: all(_counts(server, n)["pending"] == 0 for n in FIVE), 300.0, 0.5)
            delivered = sum(_counts(server, n)["delivered"] for n in FIVE)
        entered = None
        if mailbox is not None:
            entered = sum(
                httpx.get(f"{server.url}/api/journeys/{k}", headers=AUTH, timeout=30).json()[
                    "entered"
                ]
                for k in ("abandoned-cart", "welcome")
            )
    finally:
        server.stop()
        if sink is not None:
            sink.close()
        if mailbox is not None:
            mailbox.__exit__(None, None, None)
    rate = events / seconds if took is not None else None
    what = "5 destinations" if destinations else "the journeys on" if journeys else "no destination"
    console.print(f"  {events:,} events drained in {seconds:.1f} s ({what})")
    return {
        "events": events,
        "destinations": 5 if destinations else 0,
        "drained": took is not None,
        "seconds": round(seconds, 2),
        "events_per_s": rate,
        "deliveries_delivered": delivered,
        "journeys": journeys,
        "journey_entries": entered,
    }


def run(
    backends: list[str],
    *,
    pg: PostgresCluster | None,
    quick: bool,
    console: Any,
    events: int | None = None,
    duration: float | None = None,
    rate: float = 1000.0,
) -> dict[str, Any]:
    import tempfile

    n_deliveries = 10_000 if quick else 50_000
    n_events = events or (10_000 if quick else 60_000)
    seconds = duration or (5.0 if quick else 20.0)
    results: dict[str, Any] = {"targets": TARGETS, "backends": {}}
    for backend in backends:
        cluster = pg if backend == "postgres" else None
        if backend == "postgres" and cluster is None:
            continue

        def url() -> str | None:
            return cluster.new_database() if cluster else None  # noqa: B023

        r: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="opencdp-bench-activation-") as tmp:
            t = Path(tmp)
            console.print(f"[bold]activation[/bold] on {backend}: deliveries per second")
            r["deliveries"] = deliveries_per_second(t, url(), n_deliveries, console)
            console.print(f"[bold]activation[/bold] on {backend}: event -> delivery")
            r["latency"] = event_to_delivery(t, url(), rate, seconds, console)
            console.print(f"[bold]activation[/bold] on {backend}: worker throughput")
            r["throughput"] = [throughput(t, url(), n_events, d, console) for d in (False, True)]
            console.print(f"[bold]activation[/bold] on {backend}: worker throughput, journeys on")
            r["throughput"].append(throughput(t, url(), n_events, False, console, journeys=True))
        without, with_five, with_journeys = (x.get("events_per_s") or 0 for x in r["throughput"])
        r["ratio"] = with_five / without if without else None
        r["journeys_ratio"] = with_journeys / without if without else None
        results["backends"][backend] = r
    return results


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)
