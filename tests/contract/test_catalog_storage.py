"""The catalog's storage on both backends: stock writes return exactly the restocks (0 or none
→ above 0) and append one history row per change; list filters; keyset pages that never
repeat or skip; workspaces never see each other's products or stock; concurrent writers of one
level report its restock once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from opencdp.catalog import product_from
from opencdp.catalog.inventory import Restock, StockLevel, StockRow
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from opencdp.storage.catalog import ProductFilter

OTHER = "other-shop"


def put(rt: Runtime, *bodies: dict[str, Any], ws: str = WS) -> None:
    with rt.db.write() as conn:
        rt.catalog.upsert_products(conn, ws, [product_from(b) for b in bodies], rt.now_us())


def stock(
    rt: Runtime, *levels: tuple[str, str, int], ws: str = WS, ref: str = "t"
) -> list[Restock]:
    with rt.db.write() as conn:
        return rt.inventory.set_levels(
            conn, ws, [StockLevel(*lv) for lv in levels], "api", ref, rt.now_us()
        )


def history(rt: Runtime, product: str, ws: str = WS) -> list[tuple[str, int, int, str | None]]:
    rows = rt.inventory.history(ws, product, 100)
    return [(r["location"], r["quantity"], r["delta"], r["reference"]) for r in rows]


def ids(rt: Runtime, ws: str = WS, **where: Any) -> list[str]:
    return [r["id"] for r in rt.catalog.list_page(ws, ProductFilter(**where), limit=500).rows]


def test_restocks_are_returned_exactly_when_stock_goes_from_zero_or_none_above_zero(
    rt: Runtime,
) -> None:
    put(rt, {"id": "a"}, {"id": "b"}, {"id": "c"})
    # a new level at 0 is no change: no restock, no history
    assert stock(rt, ("a", "web", 0)) == []
    assert history(rt, "a") == []
    assert stock(rt, ("a", "web", 5), ref="r1") == [Restock("a", "web", 0, 5)]
    assert stock(rt, ("a", "web", 5)) == []  # unchanged: nothing
    assert stock(rt, ("a", "web", 2), ref="r2") == []  # still in stock
    assert stock(rt, ("a", "web", 0), ref="r3") == []  # sold out
    assert stock(rt, ("a", "web", 4), ref="r4") == [Restock("a", "web", 0, 4)]
    # none before is 0 before; a repeated level in one write: the last wins
    assert stock(rt, ("b", "s1", 3), ("c", "web", 0), ("c", "web", 2)) == [
        Restock("b", "s1", 0, 3),
        Restock("c", "web", 0, 2),
    ]
    # newest first: quantity after, delta, reference
    assert history(rt, "a") == [
        ("web", 4, 4, "r4"),
        ("web", 0, -2, "r3"),
        ("web", 2, -3, "r2"),
        ("web", 5, 5, "r1"),
    ]
    assert history(rt, "c") == [("web", 2, 2, "t")]
    assert [r["channel"] for r in rt.inventory.history(WS, "a", 2)] == ["api", "api"]
    assert rt.inventory.levels(WS, "a") == [StockRow("web", 4, rt.now_us())]


def test_an_unknown_channel_is_a_programming_error(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="channel"), rt.db.write() as conn:
        rt.inventory.set_levels(conn, WS, [StockLevel("a", "web", 1)], "fax", None, 0)


def test_filters(rt: Runtime) -> None:
    put(
        rt,
        {
            "id": "w-shoe",
            "name": "Leather Ankle Boot",
            "brand": "Northwind",
            "category": "Women > Shoes",
        },
        {"id": "w-top", "name": "Linen Top", "brand": "Atelier", "category": "Women"},
        {
            "id": "women2",
            "name": "Wool Scarf",
            "brand": "Atelier",
            "category": "Womenswear > Scarves",
        },
        {"id": "m-shoe", "name": "Derby", "brand": "northwind", "category": "Men > Shoes"},
        {"id": "pct", "name": "Tee", "category": "100% > Cotton"},
        {"id": "us", "name": "Tee", "category": "100_ > Cotton"},
        {"id": "BOOT-9", "name": None},
    )
    stock(rt, ("w-shoe", "web", 2), ("w-top", "web", 0), ("m-shoe", "s1", 0), ("m-shoe", "web", 1))
    # a category is a path prefix of whole names
    assert ids(rt, category="Women") == ["w-shoe", "w-top"]
    assert ids(rt, category="Women > Shoes") == ["w-shoe"]
    assert ids(rt, category="Wom") == []
    assert ids(rt, category="100%") == ["pct"]  # LIKE's wildcards are text
    assert ids(rt, brand="Northwind") == ["w-shoe"]
    # q: any part of the name, brand or id, any case
    assert ids(rt, q="BOOT") == ["BOOT-9", "w-shoe"]
    assert ids(rt, q="atelier") == ["w-top", "women2"]
    assert ids(rt, q="%") == []
    assert ids(rt, in_stock=True) == ["m-shoe", "w-shoe"]
    assert ids(rt, in_stock=False) == ["BOOT-9", "pct", "us", "w-top", "women2"]
    assert ids(rt, category="Women", in_stock=False) == ["w-top"]


@pytest.mark.parametrize("limit", [1, 3, 7, 500])
def test_pages_never_repeat_or_skip(rt: Runtime, limit: int) -> None:
    names = [f"p{i:03d}" for i in range(0, 40, 2)]
    put(rt, *({"id": n} for n in names))
    seen: list[str] = []
    after = None
    added = iter(f"p{i:03d}" for i in range(1, 40, 2))
    while True:
        page = rt.catalog.list_page(WS, ProductFilter(), limit=limit, after=after)
        rows, after = page.rows, page.after
        seen.extend(r["id"] for r in rows)
        assert len(rows) <= limit
        # products written behind the cursor while paging: never shown, never disturb it
        behind = next(added, None)
        if behind is not None and rows and behind < rows[-1]["id"]:
            put(rt, {"id": behind})
        if after is None:
            break
    assert len(seen) == len(set(seen))
    assert [s for s in seen if s in names] == names


def test_the_last_page_has_no_next(rt: Runtime) -> None:
    put(rt, {"id": "a"}, {"id": "b"})
    stock(rt, ("b", "web", 1))
    assert rt.catalog.list_page(WS, ProductFilter(), limit=2).after is None
    page = rt.catalog.list_page(WS, ProductFilter(), limit=1)
    assert [r["id"] for r in page.rows] == ["a"] and page.after == "a"
    page = rt.catalog.list_page(WS, ProductFilter(), limit=1, after="a")
    assert page.stock == {"b": [StockRow("web", 1, rt.now_us())]} and page.after is None


def test_workspaces_never_see_each_other(rt: Runtime) -> None:
    rt.admin.add_workspace(OTHER, "Other", rt.now_us())
    put(rt, {"id": "p", "name": "ours"}, {"id": "v", "parent_id": "p"})
    put(rt, {"id": "p", "name": "theirs"}, ws=OTHER)
    assert stock(rt, ("p", "web", 1)) == [Restock("p", "web", 0, 1)]
    # the same level elsewhere is its own: restocked there too
    assert stock(rt, ("p", "web", 1), ws=OTHER) == [Restock("p", "web", 0, 1)]
    assert stock(rt, ("p", "web", 9), ws=OTHER) == []
    ours = rt.catalog_reads.product(WS, "p")
    assert ours is not None
    assert ours.product["name"] == "ours" and ours.variants == ["v"]
    assert [s.quantity for s in ours.stock] == [1]
    theirs = rt.catalog_reads.product(OTHER, "p")
    assert theirs is not None and theirs.variants == [] and theirs.stock[0].quantity == 9
    assert ids(rt, OTHER) == ["p"] and ids(rt, OTHER, q="ours") == []
    assert [h[1] for h in history(rt, "p", OTHER)] == [9, 1]
    assert rt.catalog_reads.product(OTHER, "v") is None
    with rt.db.write() as conn:
        assert rt.catalog.existing_ids(conn, OTHER, {"p", "v"}) == {"p"}


def test_the_hot_read(rt: Runtime) -> None:
    assert rt.catalog_reads.product(WS, "nope") is None
    put(rt, {"id": "p", "attributes": {"fit": "slim"}}, {"id": "p-s", "parent_id": "p"})
    put(rt, {"id": "p-m", "parent_id": "p"})
    stock(rt, ("p", "web", 2), ("p", "s1", 0))
    found = rt.catalog_reads.product(WS, "p")
    assert found is not None
    assert found.product["attributes"] == '{"fit":"slim"}'
    assert [s.location for s in found.stock] == ["s1", "web"]
    assert found.variants == ["p-m", "p-s"]
    plain = rt.catalog_reads.product(WS, "p-s")
    assert plain is not None and plain.stock == [] and plain.variants == []
    assert plain.product["parent_id"] == "p"


def test_a_product_write_keeps_its_creation_and_its_stock(rt: Runtime) -> None:
    put(rt, {"id": "p", "name": "one"})
    created = rt.catalog.get(WS, "p")
    stock(rt, ("p", "web", 3))
    rt.clock.advance(seconds=5)  # type: ignore[attr-defined]
    put(rt, {"id": "p", "name": "two"})
    again = rt.catalog.get(WS, "p")
    assert created is not None and again is not None
    assert again["name"] == "two" and again["created_us"] == created["created_us"]
    assert again["updated_us"] > created["updated_us"]
    assert [s.quantity for s in rt.inventory.levels(WS, "p")] == [3]


def test_concurrent_writers_of_a_level_report_its_restock_once(rt: Runtime) -> None:
    put(rt, {"id": "p"})
    stock(rt, ("p", "web", 0))
    found: list[Restock] = []
    start = threading.Barrier(6)

    def write(quantity: int) -> None:
        start.wait()
        found.extend(stock(rt, ("p", "web", quantity)))

    threads = [threading.Thread(target=write, args=(q,)) for q in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 1 and found[0].before == 0
    # every change is in the history, each delta from the level before it
    rows = list(reversed(rt.inventory.history(WS, "p", 100)))
    level = 0
    for row in rows:
        assert row["delta"] == row["quantity"] - level
        level = row["quantity"]
    assert level == rt.inventory.levels(WS, "p")[0].quantity
