"""Prometheus metrics of one runtime (its own registry, so several runtimes can coexist).

Under ``opencdp serve`` the counters live in several processes (the collector's in the HTTP
processes, the worker's in the worker processes). The supervisor gives its children a shared
directory in ``PROMETHEUS_MULTIPROC_DIR``; prometheus_client then keeps every process's values
in files there, and ``/metrics`` of any HTTP process sums them (prometheus_client's multiprocess
mode).

The outbox's gauges (deliveries waiting and dead, the age of the oldest waiting one, per
destination) are not kept by any process: they are read from the database when ``/metrics``
is scraped (:meth:`Metrics.render`'s ``backlog``), so every process answers the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from opencdp.storage.outbox import Backlog

#: The environment variable prometheus_client reads (at import) for its multiprocess mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_COUNTERS = {
    "opencdp_events_accepted_total": "Events committed to the inbox by the collector.",
    "opencdp_events_quarantined_total": "Events put in quarantine (collection or processing).",
    "opencdp_events_suppressed_total": (
        "Events refused at collection because they name a suppressed person (never stored)."
    ),
    "opencdp_events_processed_total": "Events processed by workers into profiles.",
    "opencdp_profiles_created_total": "Profiles created by identity resolution.",
    "opencdp_profiles_merged_total": "Profiles merged into another by identity resolution.",
    "opencdp_worker_batches_redone_total": (
        "Batches a worker resolved again because another identity writer came in between."
    ),
    "opencdp_computed_values_changed_total": (
        "Profiles whose computed trait or audience membership changed (batch and real time)."
    ),
    "opencdp_deliveries_enqueued_total": "Deliveries to destinations written to the outbox.",
    "opencdp_journey_entries_total": "Journey instances started (a profile entered a journey).",
    "opencdp_journey_sends_total": "Deliveries that journeys' send steps wrote to the outbox.",
    "opencdp_journey_sends_skipped_total": (
        "Journey send steps not sent: their destination is missing or switched off."
    ),
}

#: seconds from enqueueing to acceptance: a live receiver (50 ms to a few seconds), then
#: about the retry steps with the default backoff (5 s, 20 s, 80 s, 5 min, 21 min, 85 min,
#: 5.7 h); longer counts in +Inf
DELIVERY_LATENCY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
)

#: the outcomes :attr:`Metrics.deliveries` counts
OUTCOMES = ("delivered", "retry", "dead")


class Metrics:
    """Counters and gauges exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters = {
            name: Counter(name.removesuffix("_total"), doc, registry=self.registry)
            for name, doc in _COUNTERS.items()
        }
        self.quarantined_by_reason = Counter(
            "opencdp_events_quarantined_by_reason",
            "Events put in quarantine, by typed reason (e.g. schema_violation, unplanned_event).",
            ["reason"],
            registry=self.registry,
        )
        self.delivery_attempts = Counter(
            "opencdp_delivery_attempts",
            "Attempts to deliver, by destination and verdict (delivered, retry, dead).",
            ["destination", "verdict"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "opencdp_deliveries",
            "Delivery outcomes stored by the dispatcher, by workspace, destination and outcome "
            "(delivered; retry: a failed attempt to be repeated; dead: a dead letter).",
            ["workspace", "destination", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "opencdp_delivery_latency_seconds",
            "From enqueueing to the receiver's acceptance, by workspace and destination.",
            ["workspace", "destination"],
            buckets=DELIVERY_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inbox_pending = Gauge(
            "opencdp_inbox_pending",
            "Events waiting in the inbox.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.worker_lag = Gauge(
            "opencdp_worker_lag_seconds",
            "Age of the oldest unprocessed event.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def add(self, name: str, n: int = 1) -> None:
        """Increase a counter by ``n``."""
        if n:
            self._counters[name].inc(n)

    def quarantined(self, reasons: dict[str, int]) -> None:
        """Count quarantined events per reason (and in the total)."""
        for reason, n in reasons.items():
            if n:
                self.quarantined_by_reason.labels(reason=reason).inc(n)
                self._counters["opencdp_events_quarantined_total"].inc(n)

    def outcomes(self, workspace: str, destination: str, counts: Mapping[str, int]) -> None:
        """Count a destination's stored outcomes (``delivered``, ``retry``, ``dead``); its
        three series exist, at 0, from its first outcome (so ``rate()`` sees the first
        dead letter)."""
        for outcome in OUTCOMES:
            child = self.deliveries.labels(workspace, destination, outcome)
            if counts.get(outcome):
                child.inc(counts[outcome])

    def latencies(self, workspace: str, destination: str, seconds: Iterable[float]) -> None:
        """Observe delivered deliveries' times from enqueueing to acceptance."""
        child = self.delivery_latency.labels(workspace, destination)
        for s in seconds:
            child.observe(max(0.0, s))

    def render(self, backlog: Sequence[Backlog] = (), now_us: int = 0) -> bytes:
        """The Prometheus text exposition: of every process of this deployment when they
        share a multiprocess directory, else of this runtime; then the outbox's gauges from
        ``backlog`` (read at ``now_us``)."""
        directory = os.environ.get(MULTIPROCESS_DIR)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        if not backlog:
            return text
        gauges = CollectorRegistry()
        gauges.register(_BacklogGauges(backlog, now_us))
        return text + generate_latest(gauges)


class _BacklogGauges(Collector):
    """The outbox per destination, as read once for one scrape."""

    def __init__(self, backlog: Sequence[Backlog], now_us: int) -> None:
        self.backlog = backlog
        self.now_us = now_us

    def collect(self) -> Iterator[Metric]:
        labels = ["workspace", "destination"]
        waiting = GaugeMetricFamily(
            "opencdp_deliveries_waiting",
            "Deliveries waiting to be sent, by workspace, destination and status "
            "(pending: not tried yet; retrying: waiting for their next attempt).",
            labels=[*labels, "status"],
        )
        dead = GaugeMetricFamily(
            "opencdp_deliveries_dead",
            "Dead letters kept in the outbox, by workspace and destination.",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "opencdp_delivery_oldest_waiting_seconds",
            "Age of the destination's oldest waiting delivery (since it was enqueued or "
            "replayed); 0 when none waits.",
            labels=labels,
        )
        for b in self.backlog:
            pair = [b.workspace_id, b.destination_id]
            waiting.add_metric([*pair, "pending"], b.pending)
            waiting.add_metric([*pair, "retrying"], b.retrying)
            dead.add_metric(pair, b.dead)
            age = 0.0 if b.oldest_waiting_us is None else (self.now_us - b.oldest_waiting_us)
            oldest.add_metric(pair, max(0.0, age / 1e6))
        yield from (waiting, dead, oldest)
