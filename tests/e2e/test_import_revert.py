"""A wrong import can be undone and redone: ``opencdp import runs | revert`` and ``--replace``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from opencdp.runtime import Runtime
from opencdp.storage.schema import events, identifiers, profiles
from tests.conftest import make_settings
from tests.e2e.test_import_cli import ROWS, run, write

pytestmark = pytest.mark.e2e


def totals(tmp_path: Path) -> dict[str, Decimal]:
    """Order id -> total of the stored orders."""
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            payloads = conn.execute(
                select(events.c.payload).where(events.c.event == "Order Completed")
            ).scalars()
            found = [orjson.loads(p)["properties"] for p in payloads]
    finally:
        runtime.close()
    return {p["order_id"]: Decimal(str(p["total"])) for p in found}


def state(tmp_path: Path) -> tuple[set[str], int, dict[str, object]]:
    """Identifier values with a profile, live profiles, and Ann's traits."""
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            emails = set(conn.execute(select(identifiers.c.id_value)).scalars())
            live = conn.execute(
                select(func.count()).where(profiles.c.merged_into.is_(None))
            ).scalar_one()
        ann = runtime.profiles.find_profile("default", "users", "email", "ann@example.com")
        traits = {k: v.value for k, v in runtime.profiles.traits("default", ann.id).items()}
    finally:
        runtime.close()
    return emails, int(live), traits


def test_a_wrong_import_is_reverted_and_imported_again_fixed(tmp_path: Path) -> None:
    # Given a customer the shop created before the import (a live contact with a trait)
    runtime = Runtime(make_settings(tmp_path))
    runtime.processor.upsert_contact("default", {"email": "ann@example.com"}, {"name": "Ann"})
    runtime.close()
    before = state(tmp_path)
    # And an import whose mapping read the wrong column as the total
    data, wrong = write(tmp_path, ROWS, extra="locale: de_DE", total="ID")
    assert run(tmp_path, "import", "orders", str(data), "-m", str(wrong)).exit_code == 0
    assert totals(tmp_path) == {"1": 1, "2": 2, "3": 3}
    assert state(tmp_path)[0] == {"ann@example.com", "bob@example.com", "cid@example.com"}

    # When the run is listed and reverted
    listed = run(tmp_path, "import", "runs")
    assert listed.exit_code == 0 and "orders.csv" in listed.output, listed.output
    run_id = next(line.split()[1] for line in listed.output.splitlines() if "orders.csv" in line)
    reverted = run(tmp_path, "import", "revert", run_id[:10], "--yes")
    assert reverted.exit_code == 0, reverted.output
    assert "3 events removed" in reverted.output

    # Then its events and the profiles only it created are gone; Ann is as she was
    assert totals(tmp_path) == {}
    assert state(tmp_path) == before
    assert "reverted" in run(tmp_path, "import", "runs").output
    again = run(tmp_path, "import", "revert", run_id, "--yes")
    assert again.exit_code == 1 and "already" in again.output and "reverted" in again.output

    # And the fixed mapping imports the file anew
    _, fixed = write(tmp_path, ROWS, extra="locale: de_DE")
    assert run(tmp_path, "import", "orders", str(data), "-m", str(fixed)).exit_code == 0
    assert totals(tmp_path) == {"1": Decimal("1234.5"), "2": Decimal("12.99"), "3": Decimal("1.5")}


def test_replace_reverts_earlier_runs_of_the_file_first(tmp_path: Path) -> None:
    data, wrong = write(tmp_path, ROWS, extra="locale: de_DE", total="ID")
    assert run(tmp_path, "import", "orders", str(data), "-m", str(wrong)).exit_code == 0
    _, fixed = write(tmp_path, ROWS, extra="locale: de_DE")
    # Without --replace the fixed mapping changes nothing (the message ids are taken) …
    assert run(tmp_path, "import", "orders", str(data), "-m", str(fixed)).exit_code == 0
    assert totals(tmp_path)["1"] == 1
    # … with it, the earlier runs are undone first.
    result = run(tmp_path, "import", "orders", str(data), "-m", str(fixed), "--replace")
    assert result.exit_code == 0, result.output
    assert "replaced run" in result.output
    assert totals(tmp_path) == {"1": Decimal("1234.5"), "2": Decimal("12.99"), "3": Decimal("1.5")}


def test_an_unknown_run_says_where_to_look(tmp_path: Path) -> None:
    result = run(tmp_path, "import", "revert", "nope", "--yes")
    assert result.exit_code == 1 and "opencdp import runs" in result.output


def test_reverting_undoes_a_merge_the_run_bridged(tmp_path: Path) -> None:
    # Given two live profiles, then an import whose rows link them (user id + e-mail)
    runtime = Runtime(make_settings(tmp_path))
    try:
        runtime.processor.upsert_contact("default", {"user_id": "u-1"}, {"plan": "gold"})
        runtime.processor.upsert_contact("default", {"email": "ann@example.com"}, {"name": "Ann"})
    finally:
        runtime.close()
    before = state(tmp_path)
    data = tmp_path / "customers.csv"
    data.write_text("id,email\nu-1,ann@example.com\n", encoding="utf-8")
    spec = tmp_path / "customers.yaml"
    spec.write_text("kind: customers\nfields:\n  user_id: id\n  email: email\n", encoding="utf-8")
    result = run(tmp_path, "import", "customers", str(data), "-m", str(spec))
    assert result.exit_code == 0, result.output
    assert state(tmp_path)[1] == 1  # merged into one
    run_id = next(
        line.split()[1]
        for line in run(tmp_path, "import", "runs").output.splitlines()
        if "customers.csv" in line
    )
    assert run(tmp_path, "import", "revert", run_id, "--yes").exit_code == 0
    assert state(tmp_path) == before and before[1] == 2
    runtime = Runtime(make_settings(tmp_path))
    try:
        with runtime.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 2
    finally:
        runtime.close()
