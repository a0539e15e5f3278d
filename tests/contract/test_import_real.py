"""Import on real and realistic files: the CDNOW history (exact counts and revenue), Magento 2
exports with planted defects (the check report finds exactly them), and the CLI end to end."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from opencdp.demo.data import CDNOW_CUSTOMERS, CDNOW_ORDERS, cdnow_path
from opencdp.identity import IdentityConfig
from opencdp.imports.presets import resolve_mapping
from opencdp.runtime import Runtime
from opencdp.services.import_runs import (
    ImportRequest,
    check_file,
    import_file,
    read_known_customers,
)
from opencdp.storage.schema import events
from tests.support.magento import write_magento_exports


def cdnow_revenue(path: Path) -> tuple[int, Decimal, int]:
    """Orders, revenue and customers of CDNOW_master.txt, read independently of the importer."""
    orders, total, customers = 0, Decimal(0), set()
    for line in path.read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if fields:
            orders += 1
            total += Decimal(fields[3])
            customers.add(fields[0])
    return orders, total, len(customers)


@pytest.mark.slow
def test_cdnow_imports_exactly(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    path = cdnow_path()
    orders, revenue, customers = cdnow_revenue(path)
    assert (orders, customers) == (CDNOW_ORDERS, CDNOW_CUSTOMERS)
    assert Decimal("2_400_000") < revenue < Decimal("2_600_000")  # "$2.50M"

    report = import_file(rt, ImportRequest(path, resolve_mapping("cdnow", "orders")))

    with rt.db.read() as conn:
        stored = conn.execute(
            select(func.count()).select_from(events).where(events.c.event == "Order Completed")
        ).scalar_one()
        total = sum(
            (
                Decimal(str(orjson.loads(p)["properties"]["revenue"]))
                for p in conn.execute(select(events.c.payload)).scalars()
            ),
            Decimal(0),
        )
    assert stored == 69_659
    assert rt.profiles.count_profiles("default") == 23_570
    assert total == revenue
    assert report["imported"]["new_events"] == 69_659
    assert report["imported"]["profiles_created"] == 23_570
    assert report["imported"]["quarantined"] == 0
    assert report["identity"]["simulated"] is False  # the real counts are under "imported"
    cols = {c["column"]: c for c in report["columns"]}
    assert Decimal(str(cols["amount"]["sum"])) == revenue
    assert cols["date"]["min"].startswith("1997-01-01") and cols["date"]["max"].startswith(
        "1998-06-30"
    )


def test_magento_check_finds_the_planted_defects(tmp_path: Path) -> None:
    ex = write_magento_exports(tmp_path)
    e = ex.expected
    customers = check_file(
        ImportRequest(ex.customers_csv, resolve_mapping("magento2-customers", "customers")),
        IdentityConfig(),
    )
    assert customers["rows"] == e["customer_rows"] == 304
    assert customers["emails"]["invalid"] == e["bad_emails"] == 6
    assert customers["keys"]["duplicates"] == e["duplicate_customers"] == 4
    assert customers["identity"]["profiles"] == e["customers"] == 300
    assert customers["rows_rejected"] == 0
    assert customers["dates"]["invalid"] == 0

    m = resolve_mapping("magento2-orders", "orders")
    orders = check_file(
        ImportRequest(ex.orders_csv, m),
        IdentityConfig(),
        known_customers=read_known_customers(ex.known_customers, m),
    )
    assert orders["rows"] == e["order_rows"] == 900
    assert orders["dates"]["invalid"] == e["broken_dates"] == 5
    assert orders["amounts"]["invalid"] == e["bad_amounts"] == 3
    assert orders["rows_rejected"] == 8
    assert orders["rejected_by_column"] == {"Purchase Date": 5, "Grand Total (Purchased)": 3}
    assert orders["customer_refs"]["unknown_customers"] == e["orphan_orders"] == 7
    assert orders["customer_refs"]["orphan_rows"] == 7
    assert orders["keys"]["duplicates"] == 0
    assert "7 rows point to 7 unknown customers" in orders["issues"]


def test_magento_import_report_matches_the_check(runtime: Runtime, tmp_path: Path) -> None:
    ex = write_magento_exports(tmp_path, customers=120, orders=300)
    import_file(
        runtime, ImportRequest(ex.customers_csv, resolve_mapping("magento2-customers", "customers"))
    )
    assert runtime.profiles.count_profiles("default") == 120
    report = import_file(
        runtime, ImportRequest(ex.orders_csv, resolve_mapping("magento2-orders", "orders"))
    )
    imported = report["imported"]
    assert imported["quarantined"] == 8
    assert imported["new_quarantine_by_reason"] == {"invalid_row": 8}
    assert imported["new_events"] == ex.expected["valid_orders"]
    # The orphans existed only in the orders file: their profiles are new.
    assert report["customer_refs"]["unknown_customers"] == 7
    assert imported["profiles_created"] == 7
    with runtime.db.read() as conn:
        revenue = sum(
            (
                Decimal(str(orjson.loads(p)["properties"]["revenue"]))
                for p in conn.execute(
                    select(events.c.payload).where(events.c.event == "Order Completed")
                ).scalars()
            ),
            Decimal(0),
        )
    assert revenue == ex.expected["revenue"]


def test_cli_check_then_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opencdp.cli.main import app

    ex = write_magento_exports(tmp_path / "in", customers=60, orders=150)
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["import", "orders", str(ex.orders_csv), "-m", "magento2-orders", "--check",
         "--known-customers", str(ex.known_customers), "--report", str(tmp_path / "check"), *data],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    check = orjson.loads((tmp_path / "check" / "report.json").read_bytes())
    assert check["mode"] == "check" and check["customer_refs"]["unknown_customers"] == 7
    page = (tmp_path / "check" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"""(src|href)=["']https?://""", page)

    result = runner.invoke(
        app, ["import", "orders", str(ex.orders_csv), "-m", "magento2-orders", *data]
    )
    assert result.exit_code == 0, result.output
    reports = list((tmp_path / "data" / "reports").glob("imp_*/report.html"))
    assert len(reports) == 1
    done = orjson.loads((reports[0].parent / "report.json").read_bytes())
    assert done["imported"]["quarantined"] == 8
    assert "<svg" in reports[0].read_text(encoding="utf-8")

    again = runner.invoke(
        app, ["import", "orders", str(ex.orders_csv), "-m", "magento2-orders", *data]
    )
    assert again.exit_code == 0 and "already imported" in again.output

    bad = runner.invoke(app, ["import", "orders", str(ex.orders_csv), *data])
    assert bad.exit_code == 1 and "needs --mapping" in bad.output
