"""The demo's retail layer on both backends: the generated fashion catalog with its stock, the
programme, the members enrolled from the loyalty-card holders and today's till orders that earn
them points — what the README tour shows (a product sold out on the web, ``cdnow-1``'s card)."""

from __future__ import annotations

from opencdp.demo.data import _holds_loyalty_card
from opencdp.demo.retail import (
    LOCATIONS,
    PROGRAMME,
    SOLD_OUT,
    TILL_SHOPPERS,
    fashion_catalog,
    load_retail,
)
from opencdp.runtime import Runtime
from opencdp.services import catalog, loyalty
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS


def test_the_fashion_catalog_is_fixed_by_its_seed_with_one_product_sold_out_on_the_web() -> None:
    products = fashion_catalog()
    assert [p.body for p in products] == [p.body for p in fashion_catalog()]
    ids = {p.body["id"] for p in products}
    assert 40 <= len(products) <= 100 and len(ids) == len(products)
    # every variant's parent is in the catalog, stock is kept at the demo's locations
    assert {p.body["parent_id"] for p in products if p.body.get("parent_id")} <= ids
    assert all(set(p.stock) <= set(LOCATIONS) for p in products)
    assert sum(1 for p in products if sum(p.stock.values()) > 0) >= len(products) // 2
    [sold_out] = [p for p in products if p.body["id"] == SOLD_OUT]
    assert sold_out.stock["web"] == 0 and sum(sold_out.stock.values()) > 0


def test_the_retail_layer_loads_the_catalog_the_programme_members_and_till_orders(
    runtime: Runtime,
) -> None:
    # Given the demo's source, as the demo makes it before loading
    runtime.admin.add_source(WS, "demo", runtime.now_us())
    # When the retail layer loads for the first 30 customers
    counts = load_retail(runtime, 7, 30)
    # Then the catalog and its stock are there, the tour's product sold out on the web
    view, _etag = catalog.get_product(runtime, WS, SOLD_OUT)
    stock = {s["location"]: s["quantity"] for s in view["stock"]}
    assert stock["web"] == 0 and view["name"]
    assert counts["products"] == len(fashion_catalog())
    # the programme is applied and each card holder among them is a member with the card
    assert loyalty.get_programme(runtime, WS)["programme"]["name"] == PROGRAMME["name"]
    holders = [cid for cid in range(1, 31) if _holds_loyalty_card(7, cid)]
    assert counts["members"] == len(holders) > 0
    for cid in holders:
        member = loyalty.member_view(runtime, WS, f"user_id:cdnow-{cid}")
        assert len(member["cards"]) == 1 and member["profile_id"]
    # and today's till orders earned each shopper's points, once per order
    assert counts["till_orders"] == sum(1 + cid % 3 for cid in holders[:TILL_SHOPPERS])
    sums = runtime.loyalty.ledger_sums(WS)
    for cid in holders[:TILL_SHOPPERS]:
        member = loyalty.member_view(runtime, WS, f"user_id:cdnow-{cid}")
        assert member["balance"] > 0 and sums[member["id"]] == member["balance"]
        earned = loyalty.ledger_of(runtime, WS, member["id"])["data"]
        till = {e["order_id"] for e in earned if (e["order_id"] or "").startswith("demo-till-")}
        assert len(till) == 1 + cid % 3
    assert counts["web_shop_events"] > 0
