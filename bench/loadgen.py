"""Load generators. Each function runs inside its own *process* (``multiprocessing`` spawn), with
several threads, each thread holding one keep-alive ``http.client`` connection.

* :func:`closed_loop` sends ``/v1/batch`` requests back to back (saturation throughput).
* :func:`open_loop_profiles` reads the Profile API at a fixed offered rate; latency is measured
  from each request's *scheduled* send time, so a slow server cannot hide its queueing delay
  (no coordinated omission).
* :func:`ack_to_visible` sends identify events at a fixed rate and polls the Profile API for a
  sample of them: the time from the collector's 200 to the profile being readable.

All processes share ``time.monotonic()`` (CLOCK_MONOTONIC is system-wide on Linux), so a
common start time lines them up. Every loop is bounded by a deadline.
"""

from __future__ import annotations

import http.client
import queue
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import count
from typing import Any

import orjson

from bench.events import EventFactory, batch_body, iso

BATCH_HEADERS = {"Content-Type": "application/json"}


def _connect(spec: dict[str, Any]) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(spec["host"], spec["port"], timeout=spec.get("timeout", 60))


def _wait_until(at: float) -> None:
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn.request("POST", path, body, headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


# Saturation ----------------------------------------------------------------------------------
def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Send batches back to back from ``spec['threads']`` threads until the window ends.

    Counts acknowledged events of requests that *complete* inside
    ``[measure_from, measure_to)``; the time before ``measure_from`` is warm-up.
    """
    cpu0 = time.process_time()
    factory = EventFactory(
        seed=spec["seed"],
        users=spec.get("users", 100_000),
        prefix=spec.get("prefix", "") if spec.get("omnichannel") else "",
        omnichannel=spec.get("omnichannel", False),
    )
    templates = factory.templates(spec.get("templates", 1000))
    headers = {**BATCH_HEADERS, "Authorization": spec["auth"]}
    lock = threading.Lock()
    totals: Counter[str] = Counter()
    latencies: list[float] = []
    size = spec["batch_size"]

    def run(thread: int) -> None:
        ids = (f"{spec['prefix']}-{thread}-{n}" for n in count())
        conn = _connect(spec)
        local: Counter[str] = Counter()
        lat: list[float] = []
        _wait_until(spec["start_at"])
        n = 0
        while n < spec.get("max_batches", 10**9):
            now = time.monotonic()
            if now >= spec["measure_to"]:
                break
            body = batch_body(templates, ids, size, start=n * size + thread * 7)
            n += 1
            t0 = time.monotonic()
            try:
                status = _post(conn, spec["path"], body, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connect(spec)
                status = -1
            t1 = time.monotonic()
            if spec["measure_from"] <= t1 < spec["measure_to"]:
                local[f"status_{status}"] += 1
                if status == 200:
                    local["events"] += size
                    local["bytes"] += len(body)
                    lat.append(t1 - t0)
            if status != 200:
                time.sleep(0.01)  # do not spin on a failing server
        conn.close()
        with lock:
            totals.update(local)
            latencies.extend(lat)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "totals": dict(totals),
        "latencies": latencies,
        "cpu_seconds": time.process_time() - cpu0,
        "finished_at": time.monotonic(),
    }


# Profile API at a fixed rate ------------------------------------------------------------------
def open_loop_profiles(spec: dict[str, Any]) -> dict[str, Any]:
    """GET traits of random known users at ``spec['rate']`` requests/s for ``duration`` s.

    Requests still unsent ``grace`` seconds after the schedule ends are counted under status
    ``-2`` and skipped, so an overloaded server cannot stretch the run without bound.
    """

    def path_of(rng: random.Random) -> str:
        user = spec["user_prefix"] + f"{rng.randrange(spec['profiles']):08d}"
        return f"/v1/spaces/default/collections/users/profiles/user_id:{user}/traits"

    return _open_loop(spec, path_of)


def open_loop_get(spec: dict[str, Any]) -> dict[str, Any]:
    """GET ``spec['path_format']`` (``{n}`` a random number below ``count``, ``{token}`` the
    benchmark's member token of it) at ``spec['rate']`` requests/s for ``duration`` s; latency
    from each request's scheduled time, as :func:`open_loop_profiles`."""
    from bench.retail import member_token

    fmt, count = spec["path_format"], spec["count"]

    def path_of(rng: random.Random) -> str:
        n = rng.randrange(count)
        return fmt.format(n=n, token=member_token(n) if "{token}" in fmt else "")

    return _open_loop(spec, path_of)


def _open_loop(spec: dict[str, Any], path_of: Any) -> dict[str, Any]:
    headers = {"Authorization": spec["auth"]}
    rate, threads_n = spec["rate"], spec["threads"]
    total = int(rate * spec["duration"])
    lock = threading.Lock()
    latencies: list[float] = []
    service: list[float] = []
    statuses: Counter[int] = Counter()

    def run(thread: int) -> None:
        rng = random.Random(spec["seed"] * 1000 + thread)
        conn = _connect(spec)
        lat: list[float] = []
        svc: list[float] = []
        st: Counter[int] = Counter()
        stop_at = spec["start_at"] + spec["duration"] + spec["grace"]
        for k in range(thread, total, threads_n):
            due = spec["start_at"] + k / rate
            _wait_until(due)
            if time.monotonic() > stop_at:
                st[-2] += 1  # not sent: the server is too slow for the offered rate
                continue
            path = path_of(rng)
            t0 = time.monotonic()
            try:
                status = _get(conn, path, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connect(spec)
                status = -1
            t1 = time.monotonic()
            st[status] += 1
            lat.append(t1 - due)
            svc.append(t1 - t0)
        conn.close()
        with lock:
            latencies.extend(lat)
            service.extend(svc)
            statuses.update(st)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "latencies": latencies,
        "service": service,
        "statuses": {str(k): v for k, v in statuses.items()},
        "finished_at": time.monotonic(),
    }


# Acknowledgement to visible profile ----------------------------------------------------------
def ack_to_visible(spec: dict[str, Any]) -> dict[str, Any]:
    """Identify events with fresh userIds at ``rate`` events/s; poll a sample until visible."""
    batch_size, rate = spec["batch_size"], spec["rate"]
    batches = int(rate * spec["duration"] / batch_size)
    interval = batch_size / rate
    headers = {**BATCH_HEADERS, "Authorization": spec["auth"]}
    read_headers = {"Authorization": spec["read_auth"]}
    factory = EventFactory(seed=spec["seed"], users=1_000_000, prefix=spec["prefix"])
    samples: queue.Queue[tuple[str, float] | None] = queue.Queue()
    lock = threading.Lock()
    acked = Counter[str]()
    send_lag: list[float] = []
    visible: list[tuple[float, float]] = []  # (ack time, ack -> visible seconds)
    poll_delay: list[float] = []
    timeouts = Counter[str]()
    sample_every = spec["sample_every"]

    def send(thread: int) -> None:
        conn = _connect(spec)
        local: Counter[str] = Counter()
        lags: list[float] = []
        stop_at = spec["start_at"] + spec["duration"] + spec["grace"]
        for k in range(thread, batches, spec["send_threads"]):
            due = spec["start_at"] + k * interval
            _wait_until(due)
            if time.monotonic() > stop_at:
                local["batches_not_sent"] += 1  # the server is too slow for the offered rate
                continue
            lags.append(time.monotonic() - due)
            batch = []
            for i in range(batch_size):
                user = k * batch_size + i
                event = factory.event(f"{spec['prefix']}-m-{user}", kind="identify", user=user)
                event["timestamp"] = iso(datetime.now(UTC))
                batch.append(event)
            body = orjson.dumps({"batch": batch})
            try:
                status = _post(conn, "/v1/batch", body, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connect(spec)
                status = -1
            ack = time.monotonic()
            local[f"status_{status}"] += 1
            if status == 200:
                local["events"] += batch_size
                if k % sample_every == 0:
                    samples.put((factory.user_id(k * batch_size + batch_size - 1), ack))
        conn.close()
        with lock:
            acked.update(local)
            send_lag.extend(lags)

    def poll() -> None:
        conn = _connect(spec)
        while True:
            item = samples.get()
            if item is None:
                break
            user, ack = item
            path = f"/v1/spaces/default/collections/users/profiles/user_id:{user}/traits"
            poll_delay.append(time.monotonic() - ack)
            deadline = ack + spec["visible_timeout"]
            seen = None
            while time.monotonic() < deadline:
                try:
                    status = _get(conn, path, read_headers)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = _connect(spec)
                    status = -1
                if status == 200:
                    seen = time.monotonic()
                    break
                elapsed = time.monotonic() - ack
                time.sleep(spec["poll_interval"] if elapsed < 1.0 else 4 * spec["poll_interval"])
            with lock:
                if seen is None:
                    timeouts["not_visible"] += 1
                else:
                    visible.append((ack, seen - ack))
        conn.close()

    senders = [threading.Thread(target=send, args=(t,)) for t in range(spec["send_threads"])]
    pollers = [threading.Thread(target=poll) for _ in range(spec["poll_threads"])]
    for t in senders + pollers:
        t.start()
    for t in senders:
        t.join()
    sent_done = time.monotonic()
    for _ in pollers:
        samples.put(None)
    for t in pollers:
        t.join()
    return {
        "acked": dict(acked),
        "send_lag": send_lag,
        "visible": visible,
        "poll_delay": poll_delay,
        "timeouts": dict(timeouts),
        "sent_done": sent_done,
    }
