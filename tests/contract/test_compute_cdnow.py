"""Computed traits and audiences on the real CDNOW history: sizes and sums equal what the file
itself says, read without OpenCDP (both backends)."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from opencdp.datasets import cdnow_path
from opencdp.imports.presets import resolve_mapping
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.services.import_runs import ImportRequest, import_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


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
    import_file(runtime, ImportRequest(cdnow_path(), resolve_mapping("cdnow", "orders")))
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
