"""Computed traits and audiences on the real CDNOW history: sizes and sums equal what the file
itself says, read without OpenCDP (both backends)."""

from __future__ import annotations

import bisect
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opencdp.clock import FrozenClock
from opencdp.datasets import cdnow_path
from opencdp.imports.presets import resolve_mapping
from opencdp.query.functions import rfm_segment
from opencdp.runtime import Runtime
from opencdp.services import clv, compute
from opencdp.services.import_runs import ImportRequest, import_file
from tests.conftest import BACKENDS, make_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: The day after CDNOW's last order.
TODAY = datetime(1998, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def cdnow_imported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str | None]:
    """CDNOW_master.txt imported once per backend (on the day after its last order): the data
    dir and database URL that each test of this module copies (:func:`cdnow`)."""
    root = tmp_path_factory.mktemp(f"cdnow-{request.param}")
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("pg_cluster").new_database()
    rt = Runtime(make_settings(root, url), FrozenClock(TODAY))
    try:
        import_file(rt, ImportRequest(cdnow_path(), resolve_mapping("cdnow", "orders")))
    finally:
        rt.close()  # no connection left open: a copy needs none
    if url is not None:
        # Statistics for the planner, as autovacuum would gather them a while after an import:
        # on tables never analysed, PostgreSQL plans the CLV fit's order history as nested
        # loops (estimating one row) and the fit takes minutes instead of seconds.
        request.getfixturevalue("pg_cluster").execute("ANALYZE", url)
    return root, url


@pytest.fixture
def cdnow(
    request: pytest.FixtureRequest, cdnow_imported: tuple[Path, str | None], tmp_path: Path
) -> tuple[Path, str | None]:
    """A copy of :func:`cdnow_imported` of the test's own (its data dir, its database)."""
    root, url = cdnow_imported
    shutil.copytree(root / "data", tmp_path / "data")
    if url is not None:
        url = request.getfixturevalue("pg_cluster").new_database(template=url)
    return tmp_path, url


@pytest.fixture
def runtime(cdnow: tuple[Path, str | None]) -> Iterator[Runtime]:
    """A runtime (the real clock) on a copy of the imported CDNOW history."""
    rt = Runtime(make_settings(*cdnow))
    yield rt
    rt.close()


def from_the_file() -> tuple[Counter[str], dict[str, Decimal]]:
    """Orders and spend per customer of CDNOW_master.txt, read by hand."""
    orders: Counter[str] = Counter()
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for line in cdnow_path().read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if fields:
            orders[fields[0]] += 1
            spend[fields[0]] += Decimal(fields[3])
    return orders, spend


def test_the_example_definitions_on_cdnow(runtime: Runtime) -> None:
    # CDNOW is imported (the runtime fixture)
    compute.apply_file(runtime, "default", "trait", _yaml("traits.yaml"))
    done = {
        d["key"]: d
        for d in compute.apply_file(runtime, "default", "audience", _yaml("audiences.yaml"))
    }
    orders, spend = from_the_file()
    assert done["repeat_buyers"]["size"] == sum(1 for n in orders.values() if n >= 2) == 11_662
    assert done["big_spenders"]["size"] == sum(1 for v in spend.values() if v >= 200)
    assert done["one_time_big_spenders"]["size"] == sum(
        1 for c in orders if orders[c] == 1 and spend[c] >= 100
    )
    values = compute.store(runtime).values_by_key("default", "lifetime_value")
    assert len(values) == len(orders) == 23_570
    assert round(sum(Decimal(str(v)) for v in values.values()), 2) == sum(spend.values())
    counts = compute.store(runtime).values_by_key("default", "order_count")
    assert sorted(counts.values()) == sorted(orders.values())


def _yaml(name: str) -> object:
    import yaml

    return yaml.safe_load((ROOT / "examples" / "compute" / name).read_text())


def from_the_file_by_customer() -> dict[str, tuple[int, Decimal, date, date]]:
    """Customer → (orders, spend, first order date, last order date), read by hand."""
    out: dict[str, tuple[int, Decimal, date, date]] = {}
    for line in cdnow_path().read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        day = datetime.strptime(fields[1], "%Y%m%d").date()
        n, spent, first, last = out.get(fields[0], (0, Decimal(0), day, day))
        out[fields[0]] = (n + 1, spent + Decimal(fields[3]), min(first, day), max(last, day))
    return out


def scores_by_hand(values: dict[str, Any]) -> dict[str, int]:
    """1 + the fifths of the customers strictly below each value."""
    ordered = sorted(values.values())
    return {c: 1 + 5 * bisect.bisect_left(ordered, v) // len(ordered) for c, v in values.items()}


def test_the_retail_preset_on_cdnow(cdnow: tuple[Path, str | None]) -> None:
    # Given CDNOW imported, on the day after its last order
    today = TODAY
    rt = Runtime(make_settings(*cdnow), FrozenClock(today))
    try:
        clv.fit(rt, "default", date(1998, 6, 30))  # the preset's clv() traits read the model
        # When the retail preset is applied
        traits = compute.apply_preset(rt, "default", "trait", "retail")
        audiences = compute.apply_preset(rt, "default", "audience", "retail")
        assert {d["status"] for d in traits + audiences} == {"ready"}

        # Then each customer's values are what the file says
        customers = from_the_file_by_customer()
        assert len(customers) == 23_570

        def by_customer(key: str) -> dict[str, Any]:
            values = compute.store(rt).values_by_key("default", key)
            ids = compute.store(rt).identifiers_of("default", sorted(values))
            return {
                next(v for t, v in external if t == "user_id"): values[pid] for pid, external in ids
            }

        def midnight(day: date) -> str:
            return f"{day.isoformat()}T00:00:00.000Z"

        assert by_customer("order_count") == {c: n for c, (n, *_) in customers.items()}
        lifetime = by_customer("lifetime_value")
        assert {c: round(Decimal(str(v)), 2) for c, v in lifetime.items()} == {
            c: spent for c, (_, spent, *_) in customers.items()
        }
        assert by_customer("first_order_at") == {
            c: midnight(f) for c, (*_, f, _) in customers.items()
        }
        assert by_customer("last_order_at") == {
            c: midnight(last) for c, (*_, last) in customers.items()
        }
        assert by_customer("days_since_last_order") == {
            c: (today.date() - last).days for c, (*_, last) in customers.items()
        }

        # RFM: recency ranks the last order dates into fifths, equal dates equal scores
        recency = by_customer("rfm_recency")
        last_orders = {c: last for c, (*_, last) in customers.items()}
        assert recency == scores_by_hand(last_orders)
        sizes = Counter(recency.values())
        biggest_tie = max(Counter(last_orders.values()).values())
        assert set(sizes) == {1, 2, 3, 4, 5}
        assert all(abs(size - 23_570 / 5) <= biggest_tie for size in sizes.values()), sizes
        # scores follow the dates: every customer of a higher score ordered later
        for q in range(1, 5):
            assert max(last_orders[c] for c, s in recency.items() if s == q) < min(
                last_orders[c] for c, s in recency.items() if s == q + 1
            )
        frequency = by_customer("rfm_frequency")
        assert frequency == scores_by_hand({c: n for c, (n, *_) in customers.items()})
        monetary = by_customer("rfm_monetary")
        assert monetary == scores_by_hand({c: s for c, (_, s, *_) in customers.items()})

        # Every customer has a segment, the one of their two scores
        segments = by_customer("rfm_segment")
        assert segments == {c: rfm_segment(recency[c], frequency[c]) for c in customers}
        counts = Counter(segments.values())
        assert sum(counts.values()) == 23_570
        assert None not in counts
        sizes_of = {d["key"]: d["size"] for d in audiences}
        assert sizes_of["champions"] == counts["Champions"]
        assert sizes_of["at_risk"] == counts["At risk"] + counts["Can't lose them"]
        assert sizes_of["high_value"] == sum(1 for _, s, *_ in customers.values() if s >= 500)
        assert sizes_of["recent_buyers"] == sum(
            1 for *_, last in customers.values() if (today.date() - last).days <= 30
        )
        assert sizes_of["lapsed_customers"] == sum(
            1 for *_, last in customers.values() if (today.date() - last).days > 90
        )
    finally:
        rt.close()
