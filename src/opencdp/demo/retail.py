"""The demo's retail layer: a small generated fashion catalog with stock in the web warehouse and
two stores (some sizes sold out), a loyalty programme, members enrolled from the demo's
loyalty-card holders, and today's till orders that earn them points.

The CDNOW history stays as it is (its products are anonymous); this layer is generated, with a
fixed seed, so the README tour can name what it shows: the product ``FW-DRESS-001`` is sold out
on the web (ask for it back in stock, then restock it), and ``user_id:cdnow-1`` is a member
with a card.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

#: the stock locations: the web warehouse and two stores
LOCATIONS = ("web", "store-berlin", "store-hamburg")
#: the product the tour asks to have back in stock (sold out on the web)
SOLD_OUT = "FW-DRESS-001"
PROGRAMME: dict[str, Any] = {
    "name": "OpenCDP Rewards",
    "currency": "USD",
    "points_per_unit": 1,
    "rounding": "floor",
    "multipliers": {"categories": {"Women > Shoes": 2, "Accessories": 3}},
    "bonuses": {"first_order": 50, "birthday_month": 2},
    "tiers": [
        {"name": "Member", "threshold": 0},
        {"name": "Silver", "threshold": 300},
        {"name": "Gold", "threshold": 1000},
    ],
    "qualification_period": "365 days",
    "expiry": "365 days",
}

_LINES = (
    ("Women > Dresses", "DRESS", ("Linen Wrap Dress", "Midi Slip Dress", "Shirt Dress"), 59, 129),
    ("Women > Shoes", "SHOE", ("Leather Ankle Boot", "Canvas Sneaker", "Strappy Sandal"), 45, 149),
    ("Women > Knitwear", "KNIT", ("Merino Cardigan", "Cable Knit Jumper"), 49, 99),
    (
        "Men > Jackets",
        "JKT",
        ("Waxed Field Jacket", "Denim Trucker Jacket", "Quilted Liner"),
        89,
        229,
    ),
    ("Men > Shirts", "SHIRT", ("Oxford Shirt", "Flannel Overshirt"), 35, 79),
    ("Accessories > Bags", "BAG", ("Canvas Tote", "Leather Crossbody"), 29, 189),
    ("Accessories > Scarves", "SCARF", ("Wool Scarf", "Silk Square"), 19, 69),
)
_BRANDS = ("Northwind", "Atelier Nord", "Fjell & Co", "Stadt Studio")
_COLOURS = ("black", "navy", "sand", "olive", "rust")
_SIZES = ("XS", "S", "M", "L", "XL")


@dataclass(frozen=True)
class DemoProduct:
    body: dict[str, Any]
    stock: dict[str, int]


def fashion_catalog(seed: int = 12) -> list[DemoProduct]:
    """About 60 products: for each line a parent product and its colour variants, each with
    stock per location; :data:`SOLD_OUT` has none on the web."""
    rng = random.Random(seed)
    out: list[DemoProduct] = []
    n = 0
    for category, code, names, low, high in _LINES:
        for name in names:
            n += 1
            brand = rng.choice(_BRANDS)
            price = float(rng.randrange(low, high + 1)) - 0.01
            parent = f"FW-{code}-{n:03d}"
            slug = name.lower().replace(" ", "-")
            base = {
                "name": name,
                "brand": brand,
                "category": category,
                "price": price,
                "currency": "USD",
                "url": f"https://shop.example/p/{slug}",
                "image_url": f"https://shop.example/img/{slug}.jpg",
            }
            out.append(DemoProduct({"id": parent, **base}, {}))
            for colour in rng.sample(_COLOURS, 2):
                size = rng.choice(_SIZES)
                variant = f"{parent}-{colour[:3].upper()}-{size}"
                stock = {loc: max(0, rng.randrange(-4, 12)) for loc in LOCATIONS}
                out.append(
                    DemoProduct(
                        {
                            "id": variant,
                            **base,
                            "name": f"{name}, {colour}, {size}",
                            "parent_id": parent,
                            "url": f"https://shop.example/p/{slug}?colour={colour}&size={size}",
                            "attributes": {"colour": colour, "size": size},
                        },
                        stock,
                    )
                )
    # the tour's sold-out product: a parent of its own, sold out on the web
    sold_out = next(
        p for p in out if p.body["id"].startswith("FW-DRESS-") and "parent_id" not in p.body
    )
    out.remove(sold_out)
    out.insert(
        0,
        DemoProduct(
            {**sold_out.body, "id": SOLD_OUT},
            {"web": 0, "store-berlin": 2, "store-hamburg": 0},
        ),
    )
    return out


def till_order(
    member_card: str, order_id: str, products: list[DemoProduct], rng: random.Random
) -> dict[str, Any]:
    """A store's order scanned with the member's card."""
    items = []
    for product in rng.sample(products, rng.randrange(1, 4)):
        items.append(
            {
                "product_id": product.body["id"],
                "name": product.body["name"],
                "price": product.body["price"],
                "quantity": 1,
                "category": product.body["category"],
                "brand": product.body["brand"],
            }
        )
    total = round(sum(i["price"] for i in items), 2)
    return {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": f"till-{order_id}",
        "messageId": f"demo-till-{order_id}",
        "properties": {
            "order_id": order_id,
            "total": total,
            "revenue": total,
            "currency": "USD",
            "products": items,
        },
        "context": {
            "channel": "store",
            "externalIds": [
                {
                    "id": member_card,
                    "type": "loyalty_card",
                    "collection": "users",
                    "encoding": "none",
                }
            ],
        },
    }


#: members: ``cdnow-1`` and the card holders among the first customers
MEMBER_CUSTOMERS = 300
#: of them, how many shop at a till today (their points, tiers and cards show in the tour)
TILL_SHOPPERS = 120
#: customers who browse and buy in the web shop over the last 60 days (what recommendations learn)
WEB_SHOPPERS = 400


def load_retail(runtime: Any, seed: int, customers: int | None) -> dict[str, int]:
    """Write the catalog and its stock, apply the programme, enrol members and send today's
    till orders through the pipeline; returns counts for the summary."""
    from opencdp.demo.data import _holds_loyalty_card, _loyalty_card
    from opencdp.demo.shop_sessions import shop_events
    from opencdp.services import loyalty
    from opencdp.storage.admin import DEFAULT_WORKSPACE as WS

    catalog = fashion_catalog()
    write_catalog(runtime, WS, catalog)
    loyalty.apply_programme(runtime, WS, PROGRAMME)
    limit = min(MEMBER_CUSTOMERS, customers if customers is not None else MEMBER_CUSTOMERS)
    cards = {
        cid: _loyalty_card(seed, cid)
        for cid in range(1, limit + 1)
        if _holds_loyalty_card(seed, cid)
    }
    for cid, card in cards.items():
        body = {"user_id": f"cdnow-{cid}", "card_number": card, "channel": "store"}
        loyalty.enrol(runtime, WS, body, actor="demo")
    runtime.processor.run_until_idle()
    rng = random.Random(seed)
    source = runtime.admin.find_source(WS, "demo")
    orders = [
        till_order(card, f"demo-till-{cid}-{n}", catalog, rng)
        for cid, card in list(cards.items())[:TILL_SHOPPERS]
        for n in range(1 + (cid % 3))
    ]
    if source is not None and orders:
        runtime.collector.ingest_messages(source, orders)
        runtime.processor.run_until_idle()
    shoppers = min(WEB_SHOPPERS, customers if customers is not None else WEB_SHOPPERS)
    shop = list(shop_events(catalog, shoppers, runtime.now_us() // 1_000_000))
    if source is not None and shop:
        runtime.collector.ingest_messages(source, shop)
        runtime.processor.run_until_idle()
    return {
        "products": len(catalog),
        "members": len(cards),
        "till_orders": len(orders),
        "web_shop_events": len(shop),
    }


def write_catalog(runtime: Any, workspace_id: str, catalog: list[DemoProduct]) -> None:
    """The products and their stock per location, written as the catalog API writes them
    (the stock with its history)."""
    from opencdp.services import catalog as service

    service.put_products_batch(runtime, workspace_id, {"products": [p.body for p in catalog]})
    levels = [
        {"product_id": p.body["id"], "location": location, "quantity": quantity}
        for p in catalog
        for location, quantity in p.stock.items()
    ]
    for start in range(0, len(levels), service.MAX_BATCH):
        batch = {"levels": levels[start : start + service.MAX_BATCH]}
        service.set_inventory_batch(runtime, workspace_id, batch, reference="demo")
