"""Erasure on every backend (invariant 7): a person's rows leave every store the registry
lists — profiles merged into theirs, the timeline, the outbox, journeys, audiences, the
quarantine, unprocessed inbox rows, import reports — and nobody else's do. On SQLite no byte
of theirs remains in any file of the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from opencdp.errors import NotFound
from opencdp.imports.mapping import parse_mapping
from opencdp.imports.report import write_html, write_json
from opencdp.privacy.redaction import ERASED
from opencdp.runtime import Runtime
from opencdp.services.compute import put_definition
from opencdp.services.destinations import put_destination
from opencdp.services.erasure import erase, scrub_files
from opencdp.services.import_runs import REPORTS_DIR, ImportRequest, import_file
from opencdp.services.journeys import put_journey
from opencdp.services.loyalty import apply_programme, enrol
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.erasure import count_rows
from opencdp.storage.personal_data import REGISTRY
from opencdp.storage.schema import import_runs, inbox, metadata
from tests.contract.test_storage_contract import source

WS = DEFAULT_WORKSPACE

# What identifies the person to erase, chosen so that no other byte of the database can hold
# them by chance; and the same for the person who stays.
ZOE = {
    "user_id": "zoe-user-7Qx9",
    "anonymous_id": "zoe-anon-4Kp2",
    "email": "zoe.quixote.7qx9@example.org",
    "phone": "+14155550199",
    "name": "Zebulonia Quixote",
    "street": "Xylophone Alley 77",
    "card": "ZOECARD7QX9",
}
MAX = {
    "user_id": "max-user-3Rw8",
    "email": "max.mustermann.3rw8@example.org",
    "name": "Maximilian Mustermann",
    "card": "MAXCARD3RW8",
}

ORDERS = """
kind: orders
fields: {order_id: order_id, user_id: customer_id, email: email, timestamp: ordered_at, total: total}
"""


def send(rt: Runtime, *messages: dict[str, Any], process: bool = True) -> None:
    rt.collector.ingest_messages(source(rt), list(messages))
    if process:
        rt.processor.run_until_idle()


def person_scenario(rt: Runtime, tmp_path: Path) -> tuple[str, str]:
    """Zoe and Max in every store; returns their profile ids."""
    # Given a destination that receives everything (and never answers: deliveries wait),
    put_destination(
        rt,
        WS,
        "warehouse",
        {
            "type": "webhook",
            "settings": {"url": "https://example.com/hook"},
            "subscriptions": [{"name": "all"}],
        },
    )
    # a journey that sign-ups enter, and an audience of buyers,
    put_journey(
        rt,
        WS,
        "signups",
        {"entry": {"event": 'event = "Signed Up"'}, "steps": [{"key": "w", "wait": "1 day"}]},
    )
    put_definition(
        rt, WS, "audience", "buyers", {"definition": {"query": "event('Signed Up').count() >= 1"}}
    )
    # Zoe browses anonymously, identifies, is recognised as one person (a merge), signs up,
    send(rt, {"type": "page", "anonymousId": ZOE["anonymous_id"], "name": "Home"})
    traits = {"email": ZOE["email"], "phone": ZOE["phone"], "name": ZOE["name"]}
    send(rt, {"type": "identify", "userId": ZOE["user_id"], "traits": traits})
    send(rt, {"type": "identify", "anonymousId": ZOE["anonymous_id"], "userId": ZOE["user_id"]})
    send(
        rt,
        {
            "type": "track",
            "userId": ZOE["user_id"],
            "event": "Signed Up",
            "properties": {"street": ZOE["street"]},
        },
    )
    # joins a company, sends a broken event naming her e-mail (quarantined), and one that is
    # stored after a fix (its quarantine row then names her profile),
    send(rt, {"type": "group", "userId": ZOE["user_id"], "groupId": "acme-corp"})
    send(rt, {"type": "track", "userId": ZOE["user_id"], "properties": {"email": ZOE["email"]}})
    send(rt, {"type": "track", "userId": ZOE["user_id"], "messageId": "zoe-fixed"})
    send(rt, {"type": "track", "userId": ZOE["user_id"], "messageId": "zoe-fixed", "event": "Ok"})
    # is in an import whose report quotes her (a row whose columns slipped),
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,customer_id,email,ordered_at,total\n"
        f"o1,{ZOE['user_id']},{ZOE['email']},2021-01-02T10:00:00Z,12.50\n"
        f"o2,{ZOE['user_id']},{ZOE['email']},2021-01-02T11:00:00Z,{ZOE['email']}\n"
        f"o3,{MAX['user_id']},{MAX['email']},2021-01-03T10:00:00Z,30.00\n",
        encoding="utf-8",
    )
    report = import_file(rt, ImportRequest(orders, parse_mapping(ORDERS, name="orders.yaml")))
    # (its report files under the data directory, as `opencdp import` writes them)
    reports = rt.settings.data_dir / REPORTS_DIR / str(report["run"])
    write_json(report, reports / "report.json")
    write_html(report, reports / "report.html")
    # is a loyalty member with a card who earned on an order and waits for a sold-out product,
    apply_programme(rt, WS, {"name": "Rewards", "tiers": [{"name": "Member", "threshold": 0}]})
    enrol(rt, WS, {"user_id": ZOE["user_id"], "card_number": ZOE["card"]}, actor="test")
    send(
        rt,
        {
            "type": "track",
            "userId": ZOE["user_id"],
            "event": "Order Completed",
            "properties": {"order_id": "zoe-order-1", "total": 20},
        },
        {
            "type": "track",
            "userId": ZOE["user_id"],
            "event": "Back In Stock Requested",
            "properties": {"product_id": "P-1"},
        },
    )
    # Max is there too, in the same stores,
    max_traits = {"email": MAX["email"], "name": MAX["name"]}
    send(rt, {"type": "identify", "userId": MAX["user_id"], "traits": max_traits})
    send(rt, {"type": "track", "userId": MAX["user_id"], "event": "Signed Up"})
    enrol(rt, WS, {"user_id": MAX["user_id"], "card_number": MAX["card"]}, actor="test")
    send(
        rt,
        {
            "type": "track",
            "userId": MAX["user_id"],
            "event": "Order Completed",
            "properties": {"order_id": "max-order-1", "total": 30},
        },
        {
            "type": "track",
            "userId": MAX["user_id"],
            "event": "Back In Stock Requested",
            "properties": {"product_id": "P-1"},
        },
    )
    # and one more event of Zoe's has arrived but is not processed yet.
    send(rt, {"type": "track", "userId": ZOE["user_id"], "event": "Late"}, process=False)
    zoe = rt.profiles.find(WS, "users", "user_id", ZOE["user_id"])
    max_ = rt.profiles.find(WS, "users", "user_id", MAX["user_id"])
    assert rt.profiles.absorbed_ids(WS, zoe), "the scenario must merge two of Zoe's profiles"
    return zoe, max_


def table_counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in metadata.tables.items()
        }


def test_erasure_removes_the_person_from_every_store_and_nobody_else(
    runtime: Runtime, tmp_path: Path
) -> None:
    zoe, max_ = person_scenario(runtime, tmp_path)
    with runtime.db.read() as conn:
        zoe_rows = count_rows(conn, WS, zoe)
        max_rows = count_rows(conn, WS, max_)
    # (the scenario reaches every table the registry finds by profile)
    by_profile = {t for t, d in REGISTRY.items() if d.found_by_profile}
    assert set(zoe_rows) == by_profile
    before = table_counts(runtime)

    # When Zoe is erased
    removed = erase(runtime, WS, [zoe], [ZOE["email"]])
    scrub_files(runtime)

    # Then none of her rows is left in any table found by profile, and Max's are all there
    with runtime.db.read() as conn:
        assert count_rows(conn, WS, zoe) == {}
        assert count_rows(conn, WS, max_) == max_rows
    for table, n in zoe_rows.items():
        assert removed[table] >= n, table
    # her unprocessed event went too, and the import report no longer quotes her
    assert removed["inbox"] > zoe_rows["inbox"]
    with runtime.db.read() as conn:
        payloads = conn.execute(select(inbox.c.payload)).scalars().all()
        reports = conn.execute(select(import_runs.c.report)).scalars().all()
    assert not any(ZOE["user_id"] in p for p in payloads)
    assert any(MAX["user_id"] in p for p in payloads)
    assert reports and all(ZOE["email"] not in r for r in reports)
    assert any(ERASED in r for r in reports) and removed["import_runs"] == 1
    assert removed["report_files"] == 2
    # and only her rows went: every table lost exactly what erasure reports
    after = table_counts(runtime)
    lost = {t: before[t] - after[t] for t in before if before[t] != after[t]}
    assert lost == {t: n for t, n in removed.items() if t not in ("import_runs", "report_files")}
    # The person can no longer be found by any of her identifiers.
    for kind in ("user_id", "email", "anonymous_id"):
        with pytest.raises(NotFound):
            runtime.profiles.find(WS, "users", kind, ZOE[kind].lower())

    # When it runs again, nothing more is removed (idempotent)
    assert erase(runtime, WS, [zoe], [ZOE["email"]]) == {}


def test_no_byte_of_an_erased_person_remains_in_the_data_directory(
    sqlite_runtime: Runtime, tmp_path: Path
) -> None:
    rt = sqlite_runtime
    zoe, _max = person_scenario(rt, tmp_path)
    data_dir = rt.settings.data_dir
    # (the scan finds the people before: it can fail)
    assert found_in_files(data_dir, ZOE.values()) and found_in_files(data_dir, MAX.values())
    # and with them updated in place a few times (old copies in freed space)
    for n in range(3):
        send(rt, {"type": "identify", "userId": ZOE["user_id"], "traits": {"visits": n}})

    erase(rt, WS, [zoe], [ZOE["email"]])
    scrub_files(rt)

    assert found_in_files(data_dir, ZOE.values()) == {}
    assert set(found_in_files(data_dir, MAX.values())) == set(MAX.values())


def found_in_files(directory: Path, values: Any) -> dict[str, list[str]]:
    """Which of ``values`` occur in the raw bytes of any file under ``directory`` (as UTF-8,
    in any letter case), and in which files."""
    found: dict[str, list[str]] = {}
    files = [p for p in directory.rglob("*") if p.is_file()]
    contents = {p: p.read_bytes().lower() for p in files}
    for value in values:
        needle = value.lower().encode()
        hits = [p.name for p, data in contents.items() if needle in data]
        if hits:
            found[value] = hits
    return found
