"""Historical import on every backend: formats, idempotency, resume, quarantine, products."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from opencdp.imports.mapping import ImportMapping, parse_mapping
from opencdp.runtime import Runtime
from opencdp.services.import_runs import ImportRequest, import_file, write_events
from opencdp.storage.import_runs import ImportRunStore
from opencdp.storage.products import ProductStore
from opencdp.storage.schema import events, profiles, quarantine, traits

ORDERS = """
kind: orders
constants: {currency: EUR}
fields:
  order_id: order_id
  user_id: customer_id
  email: email
  timestamp: ordered_at
  total: total
"""
CUSTOMERS = """
kind: customers
fields: {user_id: customer_id, email: email, first_name: first_name, created_at: created_at}
"""


def order_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "order_id": f"o{i}",
            "customer_id": f"c{i % 17}",
            "email": f"c{i % 17}@example.com",
            "ordered_at": f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
            "total": f"{10 + i % 50}.25",
        }
        for i in range(n)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".csv":
        cols = list(rows[0])
        lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=40)
    return path


def counts(rt: Runtime, ws: str = "default") -> dict[str, Any]:
    with rt.db.read() as conn:

        def n(table: Any, *where: Any) -> int:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.workspace_id == ws, *where)
                ).scalar_one()
            )

        revenue = sum(
            orjson.loads(p)["properties"].get("revenue", 0)
            for p in conn.execute(
                select(events.c.payload).where(
                    events.c.workspace_id == ws, events.c.event == "Order Completed"
                )
            ).scalars()
        )
        return {
            "events": n(events),
            "orders": n(events, events.c.event == "Order Completed"),
            "profiles": n(profiles, profiles.c.merged_into.is_(None)),
            "traits": n(traits),
            "quarantine": n(quarantine),
            "revenue": round(revenue, 2),
        }


def mapping(text: str) -> ImportMapping:
    return parse_mapping(text, name="test.yaml")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_orders_import_from_each_format(runtime: Runtime, tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"orders{suffix}", order_rows(120))
    report = import_file(runtime, ImportRequest(path, mapping(ORDERS), chunk_size=50))
    c = counts(runtime)
    assert c["orders"] == 120
    assert c["profiles"] == 17
    assert c["revenue"] == round(sum(10 + i % 50 + 0.25 for i in range(120)), 2)
    assert report["imported"]["new_events"] == 120
    assert report["imported"]["profiles_created"] == 17
    assert report["rows"] == 120 and report["status"] == "completed"
    # Historical time is kept, and the event says where it came from.
    with runtime.db.read() as conn:
        payload = orjson.loads(
            conn.execute(
                select(events.c.payload).where(events.c.event == "Order Completed").limit(1)
            ).scalar_one()
        )
    assert payload["timestamp"].startswith("2021-")
    assert payload["context"]["library"]["name"] == "opencdp-import"
    assert payload["context"]["import"]["file"] == path.name
    assert payload["properties"]["currency"] == "EUR"


def test_an_import_leaves_the_planner_statistics_of_what_it_filled(
    runtime: Runtime, tmp_path: Path
) -> None:
    if runtime.db.dialect.is_sqlite:
        pytest.skip("PostgreSQL's planner statistics")
    path = write(tmp_path / "orders.csv", order_rows(40))
    import_file(runtime, ImportRequest(path, mapping(ORDERS), chunk_size=25))
    with runtime.db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('events', 'profiles')"
        ).all()
    # reltuples is -1 (never analysed) until ANALYZE or autovacuum counts the rows
    assert {name: tuples > 0 for name, tuples in rows} == {"events": True, "profiles": True}


def test_rerun_changes_nothing(runtime: Runtime, tmp_path: Path) -> None:
    path = write(
        tmp_path / "orders.csv",
        [*order_rows(60), {**order_rows(1)[0], "order_id": "bad", "total": "x"}],
    )
    request = ImportRequest(path, mapping(ORDERS), chunk_size=25)
    import_file(runtime, request)
    first = counts(runtime)
    again = import_file(runtime, request)
    assert again["status"] == "already_imported"
    forced = import_file(runtime, ImportRequest(path, mapping(ORDERS), chunk_size=7, force=True))
    assert counts(runtime) == first
    assert forced["imported"]["new_events"] == 0
    assert forced["imported"]["profiles_created"] == 0
    assert first["quarantine"] == 1


def test_interrupted_import_resumes_to_the_same_result(runtime: Runtime, tmp_path: Path) -> None:
    # Given the same file imported into two workspaces, one without interruption
    rows = order_rows(200)
    path = write(tmp_path / "orders.csv", rows)
    runtime.admin.ensure_workspace("other", "other", runtime.now_us())
    import_file(runtime, ImportRequest(path, mapping(ORDERS), workspace_id="other", chunk_size=30))
    expected = counts(runtime, "other")

    # When the other import dies after three chunks
    calls = {"n": 0}

    def dying(rt: Runtime, ev: list[dict[str, Any]], rej: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("killed")
        write_events(rt, ev, rej)

    request = ImportRequest(path, mapping(ORDERS), chunk_size=30)
    with pytest.raises(RuntimeError):
        import_file(runtime, request, sink=dying)
    assert counts(runtime)["orders"] == 90

    # Then running it again resumes after the last checkpoint and ends the same
    notes: list[str] = []

    class Notes:
        def start(self, *a: Any) -> None: ...
        def advance(self, *a: Any) -> None: ...
        def note(self, text: str) -> None:
            notes.append(text)

    report = import_file(runtime, request, progress=Notes())
    assert any("resuming orders.csv at row 92" in n for n in notes)
    assert report["resumed_at"] == 92
    assert counts(runtime) == expected
    assert report["imported"]["new_events"] == 200  # counted against the first attempt's start


def test_bad_rows_are_quarantined_with_row_and_column(runtime: Runtime, tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,email,ordered_at,total\n"
        "o1,c1,c1@example.com,2022-01-01,10\n"
        "o2,c2,c2@example.com,2022-02-30,10\n"  # no 30 February
        "o3,c3,c3@example.com,2022-01-03\n"  # a field short
        "o4,c4,c4@example.com,2022-01-04,ten\n"
        "o5,c5,c5@example.com,2022-01-05,12.5\n"
    )
    path = tmp_path / "orders.csv"
    path.write_text(text, encoding="utf-8")
    report = import_file(runtime, ImportRequest(path, mapping(ORDERS)))
    assert counts(runtime)["orders"] == 2
    rows = runtime.quarantine.list("default")
    details = sorted(r.detail for r in rows)
    assert details == [
        "orders.csv: row 3, column 'ordered_at': '2022-02-30' is not a date in the format "
        "ISO 8601 (2024-03-04 or 2024-03-04T10:15:00Z)",
        "orders.csv: row 4: expected 5 fields, found 4",
        "orders.csv: row 5, column 'total': 'ten' is not a number written as 1,234.56 (decimal '.', thousands ','); set locale, or decimal and thousands, in the mapping",
    ]
    assert {r.reason for r in rows} == {"invalid_row"}
    assert {r.stage for r in rows} == {"import"}
    assert report["imported"]["quarantined"] == 3
    assert report["rows_unreadable"] == 1


def test_customers_then_orders_join_one_profile(runtime: Runtime, tmp_path: Path) -> None:
    customers = write(
        tmp_path / "customers.jsonl",
        [
            {
                "customer_id": "c1",
                "email": "ANN@example.com",
                "first_name": "Ann",
                "created_at": "2020-01-01",
            },
            {
                "customer_id": "c2",
                "email": "bob@example.com",
                "first_name": "Bob",
                "created_at": "2020-01-02",
            },
        ],
    )
    import_file(runtime, ImportRequest(customers, mapping(CUSTOMERS)))
    orders = write(tmp_path / "orders.csv", order_rows(3)[1:3])  # c1 and c2
    report = import_file(runtime, ImportRequest(orders, mapping(ORDERS)))
    assert counts(runtime)["profiles"] == 2
    assert report["customer_refs"]["unknown_customers"] == 0
    assert (
        runtime.profiles.traits(
            "default", runtime.profiles.find("default", "users", "email", "ann@example.com")
        )["first_name"].value
        == "Ann"
    )


def test_products_are_upserted(runtime: Runtime, tmp_path: Path) -> None:
    m = mapping(
        "kind: products\nconstants: {currency: USD}\n"
        "fields: {id: sku, name: title, price: {column: price, type: decimal}, category: cat}"
    )
    first = write(
        tmp_path / "p1.csv",
        [
            {"sku": "S1", "title": "Shirt", "price": "9.50", "cat": "tops", "color": "red"},
            {"sku": "S2", "title": "Socks", "price": "3", "cat": "feet", "color": "blue"},
        ],
    )
    import_file(runtime, ImportRequest(first, m))
    second = write(
        tmp_path / "p2.csv",
        [{"sku": "S1", "title": "Shirt v2", "price": "11", "cat": "tops", "color": "green"}],
    )
    report = import_file(runtime, ImportRequest(second, m))
    store = ProductStore(runtime.db)
    assert store.count("default") == 2
    s1 = store.get("default", "S1")
    assert s1 is not None
    assert (s1["name"], s1["price"], s1["currency"]) == ("Shirt v2", 11.0, "USD")
    assert orjson.loads(s1["attributes"]) == {"color": "green"}
    assert report["imported"]["products"] == 1


def test_segment_jsonl_events_pass_through(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}, "timestamp": "2020-05-01T00:00:00Z"}\n'
        '{"type": "track", "event": "Viewed", "userId": "u1", "timestamp": "2020-05-02T00:00:00Z"}\n'
        "not json\n"
        '{"type": "track", "userId": "u1"}\n',
        encoding="utf-8",
    )
    from opencdp.imports.presets import resolve_mapping

    report = import_file(runtime, ImportRequest(path, resolve_mapping(None, "events")))
    c = counts(runtime)
    assert c["events"] == 2
    assert c["quarantine"] == 2  # the line that is not JSON, the track without an event name
    reasons = {r.reason for r in runtime.quarantine.list("default")}
    assert reasons == {"invalid_row", "missing_event"}
    assert report["imported"]["quarantined"] == 2


def test_import_goes_through_the_source_tracking_plan(runtime: Runtime, tmp_path: Path) -> None:
    from opencdp.services import governance
    from opencdp.services.import_runs import resolve_source

    # Given an import source whose plan wants order totals of at least 30, else blocks
    source = resolve_source(runtime, "default", None)
    rule = {
        "type": "TRACK",
        "key": "Order Completed",
        "version": 1,
        "jsonSchema": {
            "type": "object",
            "properties": {
                "properties": {
                    "type": "object",
                    "properties": {"revenue": {"type": "number", "minimum": 30}},
                }
            },
        },
    }
    governance.apply_plan_document(
        runtime,
        "default",
        {
            "id": "imports",
            "rules": [rule],
            "sources": [source.id],
            "settings": {"track": {"allowEventOnViolations": False}},
        },
    )
    rows = order_rows(50)
    path = write(tmp_path / "orders.csv", rows)
    # When the file is imported
    report = import_file(runtime, ImportRequest(path, parse_mapping(ORDERS)))
    # Then orders under 30 are quarantined with the plan's reason, the rest are events
    low = sum(1 for r in rows if float(r["total"]) < 30)
    assert 0 < low < 50
    assert report["imported"]["new_events"] == 50 - low
    assert runtime.quarantine.counts("default") == {"schema_violation": low}
    [row] = runtime.quarantine.list("default", limit=1)
    assert (row.plan_id, row.stage) == ("imports", "govern")


def test_a_run_keeps_the_mapping_it_used(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,email,ordered_at,total\no1,c1,c1@example.com,2022-01-01,10\n",
        encoding="utf-8",
    )
    report = import_file(runtime, ImportRequest(path, mapping(ORDERS)))
    run = ImportRunStore(runtime.db).get("default", report["run"])
    assert run is not None and run.mapping is not None
    # The stored document compiles to the same mapping
    again = parse_mapping(run.mapping, name="stored")
    assert again.fields == mapping(ORDERS).fields and again.kind == "orders"
