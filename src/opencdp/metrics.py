"""Prometheus metrics of one runtime (its own registry, so several runtimes can coexist).

Under ``opencdp serve`` the counters live in several processes (the collector's in the HTTP
processes, the worker's in the worker processes). The supervisor gives its children a shared
directory in ``PROMETHEUS_MULTIPROC_DIR``; prometheus_client then keeps every process's values
in files there, and ``/metrics`` of any HTTP process sums them (prometheus_client's multiprocess
mode).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

#: The environment variable prometheus_client reads (at import) for its multiprocess mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_COUNTERS = {
    "opencdp_events_accepted_total": "Events committed to the inbox by the collector.",
    "opencdp_events_quarantined_total": "Events put in quarantine (collection or processing).",
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
        self.delivery_latency = Histogram(
            "opencdp_delivery_latency_seconds",
            "From enqueueing to the receiver's acceptance, by destination.",
            ["destination"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 3600, 86400),
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

    def render(self) -> bytes:
        """The Prometheus text exposition: of every process of this deployment when they
        share a multiprocess directory, else of this runtime."""
        directory = os.environ.get(MULTIPROCESS_DIR)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
