"""The import trial's findings, end to end through the ``opencdp import`` command line."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from opencdp.cli.main import app
from opencdp.runtime import Runtime
from opencdp.storage.schema import events
from tests.conftest import make_settings

pytestmark = pytest.mark.e2e

HEADER = ["ID", "Kunde", "Datum", "Summe"]
ROWS = [
    ["1", "ann@example.com", "2024-03-01", "€1.234,50"],
    ["2", "bob@example.com", "2024-03-02", "12,99 €"],
    ["3", "cid@example.com", "2024-03-03", "1,5"],
]
MAPPING = """
kind: orders
{extra}
constants: {{currency: {currency}}}
fields:
  order_id: ID
  user_id: {{column: Kunde, type: email}}
  timestamp: {{column: Datum, type: datetime}}
  total: {{column: {total}, type: decimal}}
"""


def write(tmp_path: Path, rows: list[list[str]], **mapping: str) -> tuple[Path, Path]:
    data = tmp_path / "orders.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])
    values = {"extra": "", "currency": "EUR", "total": "Summe", **mapping}
    spec = tmp_path / "mapping.yaml"
    spec.write_text(MAPPING.format(**values), encoding="utf-8")
    return data, spec


def run(tmp_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    return result


def totals(tmp_path: Path) -> dict[str, Decimal]:
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            payloads = conn.execute(select(events.c.payload)).scalars().all()
    finally:
        runtime.close()
    out = {}
    for p in payloads:
        props = orjson.loads(p)["properties"]
        out[props["order_id"]] = Decimal(str(props["total"]))
    return out


def test_european_amounts_are_imported_exactly_when_the_mapping_says_so(tmp_path: Path) -> None:
    data, spec = write(tmp_path, ROWS, extra="locale: de_DE")
    result = run(tmp_path, "import", "orders", str(data), "-m", str(spec))
    assert result.exit_code == 0, result.output
    assert totals(tmp_path) == {
        "1": Decimal("1234.5"),
        "2": Decimal("12.99"),
        "3": Decimal("1.5"),
    }


def test_european_amounts_without_a_notation_are_refused_not_misread(tmp_path: Path) -> None:
    # Given the same file, and a mapping that does not say how its numbers are written
    data, spec = write(tmp_path, ROWS)
    report_dir = tmp_path / "report"
    # When it is checked, then every amount is reported as unparseable with row and column
    result = run(
        tmp_path, "import", "orders", str(data), "-m", str(spec), "--check",
        "--report-dir", str(report_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = orjson.loads((report_dir / "report.json").read_bytes())
    assert report["amounts"]["invalid"] == 3
    assert report["rows_rejected"] == 3
    assert "set locale" in report["rejected_examples"][0]["problem"]
    # And an import stores none of them as a wrong number
    result = run(tmp_path, "import", "orders", str(data), "-m", str(spec))
    assert result.exit_code == 0, result.output
    assert totals(tmp_path) == {}


def test_a_currency_sign_that_contradicts_the_currency_is_a_finding(tmp_path: Path) -> None:
    data, spec = write(tmp_path, ROWS[:2], extra="locale: de_DE", currency="USD")
    report_dir = tmp_path / "report"
    result = run(
        tmp_path, "import", "orders", str(data), "-m", str(spec), "--check",
        "--report-dir", str(report_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = orjson.loads((report_dir / "report.json").read_bytes())
    assert report["currency_conflicts"]["count"] == 2
    assert "currency is USD" in report["currency_conflicts"]["examples"][0]["problem"]
    assert "contradicts the currency" in result.output


def test_a_typo_in_a_column_name_is_refused_with_the_columns_the_file_has(tmp_path: Path) -> None:
    data, spec = write(tmp_path, ROWS, extra="locale: de_DE", total="Sume")
    for extra in (["--check"], []):
        result = run(tmp_path, "import", "orders", str(data), "-m", str(spec), *extra)
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())
        assert "has no column 'Sume' (did you mean 'Summe'?)" in text
        assert "'ID', 'Kunde', 'Datum', 'Summe'" in text
    assert totals(tmp_path) == {}


def test_an_unknown_preset_lists_the_presets(tmp_path: Path) -> None:
    data, _ = write(tmp_path, ROWS)
    result = run(tmp_path, "import", "orders", str(data), "-m", "magento-orders")
    assert result.exit_code == 1
    assert "magento2-orders" in result.output and "magento2-customers" in result.output


def test_reports_go_under_the_data_directory(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    data, spec = write(tmp_path, ROWS, extra="locale: de_DE")
    assert run(tmp_path, "import", "orders", str(data), "-m", str(spec)).exit_code == 0
    assert list((tmp_path / "data" / "reports").glob("*/report.html"))
    assert not (tmp_path / "opencdp-reports").exists()


def test_canceled_and_closed_magento_orders_are_no_purchases(tmp_path: Path) -> None:
    from tests.support.magento import write_magento_exports

    ex = write_magento_exports(tmp_path / "in", customers=60, orders=150)
    rows = list(csv.DictReader(ex.orders_csv.open(encoding="utf-8")))
    good = [
        r
        for r in rows
        if r["Purchase Date"][:3].isalpha() and r["Grand Total (Purchased)"][0] == "$"
    ]
    for row, status in zip(good, ("canceled", "closed", "complete"), strict=False):
        row["Status"] = status
    with ex.orders_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(good[:3])
    result = run(tmp_path, "import", "orders", str(ex.orders_csv), "-m", "magento2-orders")
    assert result.exit_code == 0, result.output
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            names = sorted(conn.execute(select(events.c.event)).scalars())
    finally:
        runtime.close()
    assert names == ["Order Cancelled", "Order Completed", "Order Refunded"]
