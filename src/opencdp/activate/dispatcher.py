"""The dispatcher: sends the outbox's due deliveries and records what happened.

Each round leases the due deliveries (oldest first, in order per destination and profile),
sends each destination's share on its own thread — one slow or dead receiver holds up only
its own deliveries — and stores every outcome: delivered; retrying at the time the policy
(:mod:`opencdp.activate.retry`) sets; or dead, with the last request and answer kept. A
delivery to a profile that does not consent to what the destination serves (the consent
check, :mod:`opencdp.activate.consent`) is not sent: ``suppressed_by_consent``; nor is one
whose promise no longer holds (a back-in-stock e-mail for a product that sold out again:
:class:`PromiseCheck`): ``skipped_out_of_stock``. A
dispatcher killed mid-send loses nothing: its leases run out and the deliveries go again
under the same ids.

A destination's ``rate_limit`` and ``concurrency`` (:mod:`opencdp.activate.throttle`): its
token bucket decides how many of its share go now — the rest stay waiting, unattempted, and
the destination is not claimed again until its bucket can pay — and its share is split into
that many lanes (one profile per lane, in order) sent in parallel, fewer after a 429, 502 or
504 (AIMD).

Runs as a thread beside the worker (``opencdp serve``, ``opencdp worker``) or alone
(``opencdp dispatcher``); several can run against PostgreSQL.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from opencdp.activate.audience_sync import is_removal
from opencdp.activate.consent import AllowAll, ConsentCheck
from opencdp.activate.destinations import registered
from opencdp.activate.destinations.base import Attempt, DestinationType, Message
from opencdp.activate.mapping import CompiledMapping, compile_mapping
from opencdp.activate.retry import next_attempt, retry_after
from opencdp.activate.throttle import Throttle, lanes
from opencdp.errors import loggable
from opencdp.query.catalog import CatalogLookup, CatalogUnavailable
from opencdp.storage.outbox import DEAD, DELIVERED, RETRYING, STALE, SUPPRESSED, DeliveryRow
from opencdp.timeutil import from_us, parse_duration, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.metrics import Metrics
    from opencdp.storage.destinations import DestinationRow, DestinationStore
    from opencdp.storage.outbox import OutboxStore

log = logging.getLogger(__name__)

_KEY = tuple[str, str]  # (workspace, destination)


@dataclass
class _Configured:
    """A destination as the dispatcher sends to it: its type's instance and its
    subscriptions' compiled mappings (built again when the destination changes)."""

    row: DestinationRow
    sender: DestinationType
    mappings: dict[str, CompiledMapping | None]
    initial: timedelta
    max_age: timedelta
    #: subscription -> its own templates (a journey's send steps, e-mail subscriptions)
    templates: dict[str, dict[str, str]]
    #: the version of the journeys' sends it was built with
    sends_version: Any = None
    #: with ``concurrency`` > 1: the senders of the other lanes, and their threads
    lane_senders: list[DestinationType] = field(default_factory=list)
    lane_pool: ThreadPoolExecutor | None = None

    def senders(self, n: int) -> list[DestinationType]:
        """``n`` senders, one per lane: each lane has its own instance (a type need not be
        thread-safe), made when first needed."""
        while len(self.lane_senders) < n - 1:
            self.lane_senders.append(build_sender(self.row))
        return [self.sender, *self.lane_senders][:n]

    def pool(self) -> ThreadPoolExecutor:
        """The threads of this destination's other lanes (not the dispatcher's pool: a
        lane waiting for a thread never holds up another destination)."""
        if self.lane_pool is None:
            workers = max(1, self.sender.settings.concurrency - 1)
            self.lane_pool = ThreadPoolExecutor(
                workers, thread_name_prefix=f"opencdp-lane-{self.row.id}"
            )
        return self.lane_pool

    def close(self) -> None:
        if self.lane_pool is not None:
            self.lane_pool.shutdown(wait=True)
            self.lane_pool = None
        for sender in (self.sender, *self.lane_senders):
            sender.close()
        self.lane_senders.clear()


@dataclass
class _Lane:
    """What one lane of a share did."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    #: messages it had a token for but did not send (held back behind a retry, a 410, the
    #: lease running out)
    unsent: int = 0
    attempted: int = 0
    throttled: bool = False


#: (workspace, destination) -> (a version, {subscription: {"mapping", "template"}}): the sends
#: that journeys address to a destination besides its own subscriptions
SendsOf = Callable[[str, str], tuple[Any, dict[str, dict[str, Any]]]]


class PromiseCheck(Protocol):
    def broken(
        self, workspace_id: str, deliveries: Sequence[tuple[int, str | None, str]]
    ) -> dict[int, str]:
        """Of ``(seq, profile id, payload)``, the deliveries whose message announces what no
        longer holds, with the reason; they are not sent."""
        ...


class Dispatcher:
    def __init__(
        self,
        outbox: OutboxStore,
        destinations: DestinationStore,
        clock: Clock,
        metrics: Metrics | None = None,
        *,
        consent: ConsentCheck | None = None,
        promises: PromiseCheck | None = None,
        catalog: Callable[[str], CatalogLookup] | None = None,
        lease_seconds: float = 300.0,
        claim_limit: int = 1000,
        poll_interval: float = 0.2,
        threads: int = 8,
    ) -> None:
        self.outbox = outbox
        self.destinations = destinations
        self.clock = clock
        self.metrics = metrics
        self.consent: ConsentCheck = consent or AllowAll()
        self.promises = promises
        #: a workspace's products for one share's templates and @catalog directives
        self.catalog = catalog
        self.lease_seconds = lease_seconds
        self.claim_limit = claim_limit
        self.poll_interval = poll_interval
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="opencdp-dispatch")
        self._configured: dict[_KEY, _Configured] = {}
        self._failing: set[_KEY] = set()
        self._throttles: dict[_KEY, Throttle] = {}
        self._busy: dict[_KEY, Future[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: set when a share finishes: the loop claims that destination's next share at once
        #: instead of sleeping out the poll interval (which halved a busy destination's rate)
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        #: the journeys' sends (set by the composition root)
        self.sends_of: SendsOf | None = None

    # -- rounds -----------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Send everything due now and wait for it; returns how many deliveries were
        attempted (or settled without an attempt)."""
        futures = self._dispatch(exclude=())
        return sum(f.result() for f in futures)

    def run_until_idle(self, rounds: int = 1000) -> int:
        """Rounds until nothing is due (by the injected clock); for tests and the CLI."""
        total = 0
        for _ in range(rounds):
            done = self.run_once()
            total += done
            if not done:
                break
        return total

    def _dispatch(self, exclude: Sequence[_KEY]) -> list[Future[int]]:
        now = to_us(self.clock.now())
        mono = self.clock.monotonic()
        with self._lock:  # a destination whose bucket cannot pay is not claimed (no churn)
            waiting = [k for k, t in self._throttles.items() if not t.ready(mono)]
        rows = self.outbox.claim(
            now, int(self.lease_seconds * 1e6), self.claim_limit, exclude=[*exclude, *waiting]
        )
        groups: dict[_KEY, list[DeliveryRow]] = {}
        for r in rows:
            groups.setdefault((r.workspace_id, r.destination_id), []).append(r)
        futures: list[Future[int]] = []
        for key, share in groups.items():
            future = self._pool.submit(self._send_share, key, share)
            with self._lock:
                self._busy[key] = future
            future.add_done_callback(partial(self._done, key))
            futures.append(future)
        return futures

    def _done(self, key: _KEY, _future: Future[int]) -> None:
        with self._lock:
            future = self._busy.get(key)
            if future is not None and future.done():
                del self._busy[key]
        self._finished.set()

    # -- one destination's share ------------------------------------------------------------------
    def _send_share(self, key: _KEY, rows: list[DeliveryRow]) -> int:
        try:
            return self._send(key, rows)
        except Exception as exc:  # a bug must not kill the dispatcher: leases run out, retried
            log.error("dispatching to %s failed: %s", key[1], loggable(exc))
            return 0

    def _send(self, key: _KEY, rows: list[DeliveryRow]) -> int:
        now = self.clock.now()
        try:
            configured = self._configure(key)
        except Exception as exc:  # its type is gone, or its settings no longer validate
            log.error("destination %s cannot be set up: %s", key[1], loggable(exc))
            self.outbox.record([_release(r, to_us(now) + 60_000_000) for r in rows])
            return 0
        outcomes: list[dict[str, Any]] = []
        if configured is None:  # deleted or disabled since it was claimed: wait for it
            self.outbox.record([_release(r, to_us(now)) for r in rows])
            return 0
        denied = self.consent.denied(
            key[0], configured.row, sorted({r.profile_id for r in rows if r.profile_id})
        )
        broken = (
            self.promises.broken(key[0], [(r.seq, r.profile_id, r.payload) for r in rows])
            if self.promises is not None
            else {}
        )
        sendable: list[tuple[DeliveryRow, Message]] = []
        # one lookup per share (one workspace): each product it names is read once
        lookup = self.catalog(key[0]) if self.catalog is not None else None
        for r in rows:
            if r.profile_id in denied and not is_removal(orjson.loads(r.payload)):
                outcomes.append(_suppressed(r, to_us(now)))
                continue
            if r.seq in broken:
                outcomes.append(_settled(r, to_us(now), STALE, broken[r.seq]))
                continue
            try:
                message = self._message(configured, r, lookup)
            except CatalogUnavailable as exc:  # @catalog could not read: a minute later
                log.warning("destination %s: %s", key[1], loggable(exc))
                outcomes.append(_release(r, to_us(now) + 60_000_000))
                continue
            except Exception as exc:  # the mapping cannot shape this event: no attempt
                outcomes.append(
                    _dead(r, to_us(now), f"payload_invalid: {loggable(exc)}", counted=False)
                )
                continue
            sendable.append((r, message))
        throttle = self._throttle(key, configured)
        granted = throttle.take(len(sendable), self.clock.monotonic())
        # past the rate limit: still waiting, not attempted, due now (a later round)
        held = [_release(r, to_us(now)) for r, _m in sendable[granted:]]
        parts = lanes(sendable[:granted], throttle.concurrency, lambda rm: rm[0].profile_id)
        deadline = time.monotonic() + self.lease_seconds / 2
        gone = threading.Event()  # a 410 in one lane stops the others
        senders = configured.senders(len(parts))
        if len(parts) > 1:
            futures = [
                configured.pool().submit(
                    self._send_lane, key, configured, sender, part, now, deadline, gone
                )
                for sender, part in zip(senders[1:], parts[1:], strict=True)
            ]
            done = [self._send_lane(key, configured, senders[0], parts[0], now, deadline, gone)]
            done += [f.result() for f in futures]
        else:
            done = [
                self._send_lane(key, configured, sender, part, now, deadline, gone)
                for sender, part in zip(senders, parts, strict=True)
            ]
        for lane in done:
            outcomes.extend(lane.outcomes)
        throttle.give_back(sum(lane.unsent for lane in done))
        was = throttle.concurrency
        after = throttle.finished(
            sum(lane.attempted for lane in done), any(lane.throttled for lane in done)
        )
        if after < was:
            log.info("destination %s asks to slow down: %d parallel sends now", key[1], after)
        self._record(key, [*outcomes, *held], {r.seq: r.created_us for r in rows})
        self._after(key, configured, outcomes)
        return len(rows) - len(held)

    def _send_lane(
        self,
        key: _KEY,
        configured: _Configured,
        sender: DestinationType,
        sendable: list[tuple[DeliveryRow, Message]],
        now: datetime,
        deadline: float,
        gone: threading.Event,
    ) -> _Lane:
        """Send one lane's messages in batches, in order; a delivery waiting for a retry
        holds back the later ones of its profile."""
        lane = _Lane()
        outcomes = lane.outcomes
        blocked: dict[str, int] = {}  # profile -> when its failed delivery is tried again
        size = max(1, sender.batch_size)
        i = 0
        while i < len(sendable):
            if time.monotonic() > deadline or gone.is_set():  # the lease runs out, or a 410
                outcomes.extend(_release(r, to_us(now)) for r, _m in sendable[i:])
                lane.unsent += len(sendable) - i
                break
            chunk: list[tuple[DeliveryRow, Message]] = []
            while i < len(sendable) and len(chunk) < size:
                r, m = sendable[i]
                i += 1
                if r.profile_id is not None and r.profile_id in blocked:  # keep the order
                    outcomes.append(_release(r, blocked[r.profile_id]))
                    lane.unsent += 1
                    continue
                chunk.append((r, m))
            if not chunk:
                continue
            try:
                attempts = sender.send([m for _r, m in chunk])
            except Exception as exc:  # a type's bug: counted as a failed attempt, retried
                log.error("destination %s: send failed: %s", key[1], loggable(exc))
                attempts = [Attempt(None, f"internal: {loggable(exc)}")] * len(chunk)
            lane.attempted += len(chunk)
            shared: dict[int, int] = {}  # one request: its messages retry together
            for (r, _m), attempt in zip(chunk, attempts, strict=True):
                try:
                    outcome, throttled = self._outcome(key, configured, r, attempt)
                except Exception as exc:  # pragma: no cover - a bug: retried, not lost
                    log.error("destination %s: outcome failed: %s", key[1], loggable(exc))
                    outcome, throttled = _release(r, to_us(now) + 60_000_000), False
                lane.throttled |= throttled
                if outcome.get("status") == RETRYING:
                    outcome["next_attempt_us"] = shared.setdefault(
                        id(attempt), outcome["next_attempt_us"]
                    )
                outcomes.append(outcome)
                if outcome.get("status") == RETRYING and r.profile_id is not None:
                    blocked[r.profile_id] = outcome["next_attempt_us"]
            if any(a.status == 410 for a in attempts):  # gone: the rest waits, switched off
                gone.set()
                outcomes.extend(_release(r, to_us(now)) for r, _m in sendable[i:])
                lane.unsent += len(sendable) - i
                break
        return lane

    def _record(
        self, key: _KEY, outcomes: Sequence[dict[str, Any]], created: dict[int, int]
    ) -> None:
        """Store a share's outcomes, then count them (and the delivered ones' latency)."""
        # accepted deliveries are stored by one statement per answer code (most are)
        accepted: dict[int | None, list[int]] = {}
        kept: list[dict[str, Any]] = []
        for o in outcomes:
            if o.get("status") == DELIVERED:
                accepted.setdefault(o["last_status_code"], []).append(o["seq"])
            else:
                kept.append(o)
        codes = list(accepted.items()) or [(None, [])]
        now_us = to_us(self.clock.now())
        for n, (code, seqs) in enumerate(codes):
            self.outbox.record(kept if n == 0 else [], seqs, now_us=now_us, status_code=code)
        if self.metrics is None:
            return
        counts = {"delivered": 0, "retry": 0, "dead": 0}
        for o in kept:
            status = o.get("status")
            if status == RETRYING:
                counts["retry"] += 1
            elif status == DEAD:
                counts["dead"] += 1
        delivered = [seq for seqs in accepted.values() for seq in seqs]
        counts["delivered"] = len(delivered)
        self.metrics.outcomes(key[0], key[1], counts)
        self.metrics.latencies(key[0], key[1], ((now_us - created[q]) / 1e6 for q in delivered))

    def _throttle(self, key: _KEY, configured: _Configured) -> Throttle:
        """The destination's throttle, made again when its rate limit or concurrency
        changed (else it keeps its bucket and its AIMD state)."""
        settings = configured.sender.settings
        wanted = (settings.rate_limit, settings.concurrency)
        with self._lock:
            throttle = self._throttles.get(key)
            if throttle is None or throttle.settings != wanted:
                throttle = self._throttles[key] = Throttle(*wanted)
            return throttle

    def _message(
        self, configured: _Configured, r: DeliveryRow, catalog: CatalogLookup | None = None
    ) -> Message:
        event = orjson.loads(r.payload)
        mapping = configured.mappings.get(r.subscription)
        data = event if mapping is None else mapping.apply(event, catalog=catalog)
        return Message(
            r.id,
            data,
            event,
            r.subscription,
            r.attempts + 1,
            self.clock.now(),
            configured.templates.get(r.subscription),
            catalog,
        )

    def _outcome(
        self, key: _KEY, configured: _Configured, r: DeliveryRow, attempt: Attempt
    ) -> tuple[dict[str, Any], bool]:
        """The delivery's row after ``attempt``, and whether the receiver asked to slow
        down (429, 502, 504)."""
        verdict = configured.sender.classify(attempt)
        now = self.clock.now()
        now_us = to_us(now)
        row: dict[str, Any] = {
            "seq": r.seq,
            "attempts": r.attempts + 1,
            "updated_us": now_us,
            "last_status_code": attempt.status,
            "last_error": None,
            "last_request": None,
            "last_response": None,
            "delivered_us": None,
            "next_attempt_us": r.next_attempt_us,
        }
        if self.metrics is not None:
            self.metrics.delivery_attempts.labels(key[1], verdict.outcome).inc()
        if verdict.outcome == "delivered":
            return {**row, "status": DELIVERED, "delivered_us": now_us}, False
        kept = {
            "last_error": verdict.reason if attempt.error is None else attempt.error,
            "last_request": orjson.dumps(attempt.request).decode() if attempt.request else None,
            "last_response": orjson.dumps(attempt.response).decode() if attempt.response else None,
        }
        if verdict.outcome == "retry":
            when = next_attempt(
                now,
                from_us(r.created_us),
                r.attempts + 1,
                initial=configured.initial,
                max_age=configured.max_age,
                asked=retry_after(attempt.retry_after, now),
            )
            if when is not None:
                retrying = {**row, **kept, "status": RETRYING, "next_attempt_us": to_us(when)}
                return retrying, verdict.throttled
            kept["last_error"] = f"expired after {r.attempts + 1} attempts: {kept['last_error']}"
        return {**row, **kept, "status": DEAD}, verdict.throttled

    def _after(
        self, key: _KEY, configured: _Configured, outcomes: Sequence[dict[str, Any]]
    ) -> None:
        """The destination's health from its answers: a 410 switches it off, a 401/403 flags
        its credentials; the first success after failures makes its waiting retries due."""
        statuses = {o.get("last_status_code") for o in outcomes}
        now_us = to_us(self.clock.now())
        if 410 in statuses:
            self.destinations.set_state(key[0], key[1], now_us, enabled=False, health="gone")
            switched_off = self._configured.pop(key, None)
            if switched_off is not None:
                switched_off.close()
            return
        if statuses & {401, 403}:
            self.destinations.set_state(key[0], key[1], now_us, health="auth_failing")
            return
        delivered = any(o.get("status") == DELIVERED for o in outcomes)
        if any(o.get("status") == RETRYING for o in outcomes):
            self._failing.add(key)
        elif delivered and key in self._failing:
            self._failing.discard(key)
            woken = self.outbox.wake(key[0], key[1], now_us)
            if woken:
                log.info("destination %s answers again: %d deliveries due now", key[1], woken)
        if delivered and configured.row.health != "ok":
            self.destinations.set_state(key[0], key[1], now_us, health="ok")

    # -- configuration ----------------------------------------------------------------------------
    def _configure(self, key: _KEY) -> _Configured | None:
        """The destination's sender and mappings, built again when it changed."""
        try:
            row = self.destinations.get(*key)
        except Exception:
            row = None
        cached = self._configured.get(key)
        if row is None or not row.enabled:
            if cached is not None:
                cached.close()
                del self._configured[key]
            with self._lock:
                self._throttles.pop(key, None)
            return None
        version, sends = self.sends_of(*key) if self.sends_of is not None else (None, {})
        if (
            cached is not None
            and cached.row.updated_us == row.updated_us
            and cached.sends_version == version
        ):
            return cached
        if cached is not None:
            cached.close()
        sender = build_sender(row)
        subscriptions = [*row.subscriptions, *({"name": n, **s} for n, s in sends.items())]
        mappings = {
            str(s["name"]): compile_mapping(s["mapping"]) if s.get("mapping") is not None else None
            for s in subscriptions
        }
        templates = {str(s["name"]): s["template"] for s in subscriptions if s.get("template")}
        retry = sender.settings.retry
        configured = _Configured(
            row,
            sender,
            mappings,
            parse_duration(retry.initial_backoff),
            parse_duration(retry.max_age),
            templates,
            version,
        )
        self._configured[key] = configured
        return configured

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Dispatch in a background thread until :meth:`stop` (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="opencdp-dispatcher", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Claim and send until stopped; a destination still sending is left out of the next
        claims, so the others go on."""
        while not self._stop.is_set():
            try:
                with self._lock:
                    busy = [k for k, f in self._busy.items() if not f.done()]
                started = self._dispatch(exclude=busy)
            except Exception as exc:  # the database is away: try again shortly
                log.warning("dispatcher: %s", loggable(exc))
                started = []
            if not started:
                self._finished.wait(self.poll_interval)
                self._finished.clear()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        self._stop.set()
        self._finished.set()

    def run_until_terminated(self) -> None:
        """:meth:`run` in this (main) thread until SIGTERM or Ctrl-C; the sends under way
        finish first (``opencdp dispatcher``)."""
        previous = signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        try:
            self.run()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        """Stop claiming, let the sends under way finish, release the senders."""
        self._stop.set()
        self._finished.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._pool.shutdown(wait=True)
        for configured in self._configured.values():
            configured.close()
        self._configured.clear()


def build_sender(row: DestinationRow) -> DestinationType:
    """An instance of the destination's type with its settings validated."""
    kind = registered()[row.type]
    return kind(row.id, kind.Settings.model_validate(row.settings))


def _release(r: DeliveryRow, next_us: int) -> dict[str, Any]:
    """Not attempted: back to waiting, due at ``next_us`` (after what holds it back)."""
    return {"seq": r.seq, "next_attempt_us": max(next_us, r.next_attempt_us)}


def _suppressed(r: DeliveryRow, now_us: int) -> dict[str, Any]:
    """Not sent: the profile does not consent to what the destination serves. Settled
    without an attempt, not a failure (a replay checks consent again)."""
    return _settled(r, now_us, SUPPRESSED, SUPPRESSED)


def _settled(r: DeliveryRow, now_us: int, status: str, reason: str) -> dict[str, Any]:
    """Settled without an attempt, not a failure: ``status`` says why."""
    return {
        "seq": r.seq,
        "status": status,
        "attempts": r.attempts,
        "updated_us": now_us,
        "last_error": reason,
    }


def _dead(r: DeliveryRow, now_us: int, reason: str, *, counted: bool) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "status": DEAD,
        "attempts": r.attempts + (1 if counted else 0),
        "updated_us": now_us,
        "last_error": reason,
    }
