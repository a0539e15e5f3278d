"""Quarantine rows of an import are closed when a later import stores their record, keep their
diagnostic when a replay still fails, convert again on replay with a mapping, and can be
dismissed with a reason — end to end through the ``opencdp`` command line."""

from __future__ import annotations

import csv
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
GOOD = [
    ["1", "ann@example.com", "2024-03-01", "12.50"],
    ["2", "bob@example.com", "2024-03-02", "7.00"],
]
MAPPING = """
kind: orders
constants: {currency: EUR}
fields:
  order_id: ID
  user_id: {column: Kunde, type: email}
  timestamp: {column: Datum, type: datetime}
  total: {column: Summe, type: decimal}
"""


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def run(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data")])


def ok(tmp_path: Path, *args: str) -> str:
    result = run(tmp_path, *args)
    assert result.exit_code == 0, result.output
    return str(result.output)


def rows(tmp_path: Path, status: str = "open") -> list[dict[str, Any]]:
    out = ok(tmp_path, "quarantine", "list", "--json", "--status", status)
    return list(orjson.loads(out))


def show(tmp_path: Path, row_id: int) -> dict[str, Any]:
    return dict(orjson.loads(ok(tmp_path, "quarantine", "show", str(row_id))))


def stored_totals(tmp_path: Path) -> dict[str, float]:
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            payloads = conn.execute(select(events.c.payload)).scalars().all()
    finally:
        runtime.close()
    props = [orjson.loads(p)["properties"] for p in payloads]
    return {p["order_id"]: p["total"] for p in props}


def import_orders(tmp_path: Path, data: Path, mapping: Path) -> str:
    return ok(tmp_path, "import", "orders", str(data), "--mapping", str(mapping))


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_a_fixed_file_closes_the_rows_its_first_import_quarantined(
    tmp_path: Path, mapping: Path
) -> None:
    # Given an import whose third order has an amount that does not parse
    bad = write_csv(tmp_path / "orders.csv", [*GOOD, ["3", "cid@example.com", "2024-03-03", "ten"]])
    import_orders(tmp_path, bad, mapping)
    [row] = rows(tmp_path)
    assert row["reason"] == "invalid_row"
    assert "row 4, column 'Summe'" in row["detail"]
    # The quarantine keeps the original row, where it was, and the run that read it
    whole = show(tmp_path, row["id"])
    assert whole["payload"]["rows"] == [
        {
            "number": 4,
            "values": dict(zip(HEADER, ["3", "cid@example.com", "2024-03-03", "ten"], strict=True)),
        }
    ]
    assert whole["payload"]["import"]["column"] == "Summe"
    assert whole["import_run_id"].startswith("imp_")
    # When the fixed file is imported
    fixed = write_csv(
        tmp_path / "orders.csv", [*GOOD, ["3", "cid@example.com", "2024-03-03", "10.00"]]
    )
    import_orders(tmp_path, fixed, mapping)
    # Then the row is closed as imported, and nothing is open any more
    assert rows(tmp_path) == []
    closed = show(tmp_path, row["id"])
    assert closed["resolution"] == "imported"
    assert closed["resolved_at"] is not None
    assert [r["id"] for r in rows(tmp_path, "resolved")] == [row["id"]]


def test_replaying_a_still_bad_row_keeps_its_diagnostic(tmp_path: Path, mapping: Path) -> None:
    # Given a quarantined import row
    bad = write_csv(tmp_path / "orders.csv", [["3", "cid@example.com", "2024-03-03", "ten"]])
    import_orders(tmp_path, bad, mapping)
    [row] = rows(tmp_path)
    # When it is replayed with the run's own mapping (the row is still bad)
    out = ok(tmp_path, "quarantine", "replay", "--id", str(row["id"]), "--json")
    assert orjson.loads(out)["still_failing_by_reason"] == {"invalid_row": 1}
    # Then it stays open with the conversion error naming row and column, not a Segment one
    after = show(tmp_path, row["id"])
    assert after["resolved_at"] is None
    assert after["reason"] == "invalid_row"
    assert "row 2, column 'Summe'" in after["detail"] and "'ten'" in after["detail"]
    assert "invalid_type" not in after["detail"] and "None" not in after["detail"]
    assert after["replays"] == 1
    assert after["payload"]["rows"][0]["values"]["Summe"] == "ten"


def test_replay_with_a_fixed_mapping_converts_the_original_row(
    tmp_path: Path, mapping: Path
) -> None:
    # Given a row refused because the mapping did not know German amounts
    bad = write_csv(tmp_path / "orders.csv", [["3", "cid@example.com", "2024-03-03", "1.234,50"]])
    import_orders(tmp_path, bad, mapping)
    [row] = rows(tmp_path)
    # When it is replayed with a mapping that reads them
    fixed = tmp_path / "mapping-de.yaml"
    fixed.write_text("locale: de_DE\n" + MAPPING, encoding="utf-8")
    out = ok(
        tmp_path, "quarantine", "replay", "--id", str(row["id"]), "--mapping", str(fixed), "--json"
    )
    assert orjson.loads(out)["replayed"] == 1
    # Then the row is closed as replayed and the order is on the customer's profile
    closed = show(tmp_path, row["id"])
    assert closed["resolution"] == "replayed"
    assert stored_totals(tmp_path) == {"3": 1234.5}


def test_replay_with_a_mapping_that_finds_another_problem_says_that_one(
    tmp_path: Path, mapping: Path
) -> None:
    # Given a row refused for its German amount
    bad = write_csv(tmp_path / "orders.csv", [["3", "cid@example.com", "2024-03-03", "1.234,50"]])
    import_orders(tmp_path, bad, mapping)
    [row] = rows(tmp_path)
    # When it is replayed with a mapping that reads the amount but expects German dates
    other = tmp_path / "mapping-de-dates.yaml"
    other.write_text(
        "locale: de_DE\n"
        + MAPPING.replace(
            "{column: Datum, type: datetime}",
            '{column: Datum, type: datetime, format: "%d.%m.%Y"}',
        ),
        encoding="utf-8",
    )
    out = ok(
        tmp_path, "quarantine", "replay", "--id", str(row["id"]), "--mapping", str(other), "--json"
    )
    assert orjson.loads(out)["still_failing_by_reason"] == {"invalid_row": 1}
    # Then it stays open at the import stage, with the new problem as its detail
    after = show(tmp_path, row["id"])
    assert after["resolved_at"] is None
    assert (after["stage"], after["reason"]) == ("import", "invalid_row")
    assert "column 'Datum'" in after["detail"] and "Summe" not in after["detail"]
    assert after["plan_id"] is None and after["replays"] == 1


def test_an_operator_dismisses_a_row_with_a_reason(tmp_path: Path, mapping: Path) -> None:
    bad = write_csv(tmp_path / "orders.csv", [["3", "cid@example.com", "2024-03-03", "ten"]])
    import_orders(tmp_path, bad, mapping)
    [row] = rows(tmp_path)
    # A reason is required
    refused = run(tmp_path, "quarantine", "dismiss", str(row["id"]))
    assert refused.exit_code != 0
    assert show(tmp_path, row["id"])["resolved_at"] is None
    # When the operator dismisses it (and an id that does not exist)
    out = ok(
        tmp_path,
        "quarantine",
        "dismiss",
        str(row["id"]),
        "999",
        "--reason",
        "test order, never shipped",
        "--json",
    )
    assert orjson.loads(out) == {"dismissed": [row["id"]], "not_found": [999], "closed": []}
    # Then it is closed as dismissed with the reason, and gone from the open list
    after = show(tmp_path, row["id"])
    assert after["resolution"] == "dismissed"
    assert after["resolution_note"] == "test order, never shipped"
    assert rows(tmp_path) == []
    # Dismissing it again changes nothing: it is already closed
    again = ok(tmp_path, "quarantine", "dismiss", str(row["id"]), "--reason", "x", "--json")
    assert orjson.loads(again) == {"dismissed": [], "not_found": [], "closed": [row["id"]]}
    assert show(tmp_path, row["id"])["resolution_note"] == "test order, never shipped"
