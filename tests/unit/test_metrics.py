"""The Prometheus text of one runtime's metrics: per-destination outcome counters and the
outbox's gauges from a backlog read at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from opencdp.metrics import Metrics
from opencdp.storage.outbox import Backlog

SECOND = 1_000_000


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_a_destinations_outcome_series_exist_at_zero_from_its_first_outcome() -> None:
    metrics = Metrics()
    metrics.outcomes("default", "erp", {"delivered": 3})
    got = samples(metrics.render())
    erp = (("destination", "erp"), ("workspace", "default"))
    for outcome, n in (("delivered", 3), ("retry", 0), ("dead", 0)):
        assert got[("opencdp_deliveries_total", tuple(sorted((*erp, ("outcome", outcome)))))] == n


def test_the_backlog_gauges_age_the_oldest_waiting_delivery_at_the_scrape() -> None:
    metrics = Metrics()
    now = 1_800_000_000 * SECOND
    backlog = [
        Backlog(
            "default", "erp", pending=4, retrying=2, dead=7, oldest_waiting_us=now - 90 * SECOND
        ),
        Backlog("default", "crm", pending=0, retrying=0, dead=1, oldest_waiting_us=None),
    ]
    got = samples(metrics.render(backlog, now))
    erp = (("destination", "erp"), ("workspace", "default"))
    crm = (("destination", "crm"), ("workspace", "default"))
    assert got[("opencdp_deliveries_waiting", tuple(sorted((*erp, ("status", "pending")))))] == 4
    assert got[("opencdp_deliveries_waiting", tuple(sorted((*erp, ("status", "retrying")))))] == 2
    assert got[("opencdp_deliveries_dead", erp)] == 7
    assert got[("opencdp_delivery_oldest_waiting_seconds", erp)] == 90
    assert got[("opencdp_deliveries_dead", crm)] == 1
    assert got[("opencdp_delivery_oldest_waiting_seconds", crm)] == 0
    # without a backlog (the database could not be read) there are no such series at all
    assert not any(
        name.startswith("opencdp_deliveries_waiting") for name, _ in samples(metrics.render())
    )
