"""The demo's web shop: generated browsing and buying over the fashion catalog, so that the
recommendations have something to learn and the tour something to show.

Customers have a side of the shop (women's or men's lines plus accessories) and buy outfits:
a dress with shoes or a scarf, a jacket with a shirt or a bag. They view more than they add,
add more than they buy, over the last 60 days. Fixed seed: the tour can rely on
``user_id:cdnow-1`` having bought a dress and on what goes with it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from opencdp.demo.retail import DemoProduct
from opencdp.timeutil import isoformat_us

DAY_S = 86_400
#: Which lines go together in one outfit (the co-purchase structure the models should find).
OUTFITS = {
    "Women > Dresses": ("Women > Shoes", "Accessories > Scarves"),
    "Women > Knitwear": ("Women > Shoes", "Accessories > Bags"),
    "Men > Jackets": ("Men > Shirts", "Accessories > Bags"),
    "Men > Shirts": ("Men > Jackets", "Accessories > Scarves"),
}
SIDES = {
    "women": ("Women > Dresses", "Women > Knitwear"),
    "men": ("Men > Jackets", "Men > Shirts"),
}


def shop_events(
    catalog: list[DemoProduct], customers: int, now_s: int, seed: int = 21
) -> Iterator[dict[str, Any]]:
    """Track events (Product Viewed, Product Added, Order Completed) of ``customers`` demo
    customers (``cdnow-1`` …) over the 60 days before ``now_s``."""
    rng = random.Random(seed)
    buyable = [p for p in catalog if "parent_id" in p.body]  # variants: what one puts in a bag
    by_category: dict[str, list[DemoProduct]] = {}
    for product in buyable:
        by_category.setdefault(product.body["category"], []).append(product)
    for cid in range(1, customers + 1):
        user = f"cdnow-{cid}"
        side = "women" if cid % 5 != 2 else "men"
        for session in range(rng.randrange(1, 4)):
            at = now_s - rng.randrange(1, 60) * DAY_S - rng.randrange(0, DAY_S)
            main_line = (
                rng.choice(SIDES[side]) if not (cid == 1 and session == 0) else "Women > Dresses"
            )
            main = rng.choice(by_category[main_line])
            partner_line = rng.choice(OUTFITS[main_line])
            partner = rng.choice(by_category[partner_line])
            browsed = [main, partner, *rng.sample(buyable, 2)]
            for step, product in enumerate(browsed):
                yield _track(
                    user, f"{cid}-{session}-v{step}", "Product Viewed", at + step * 40, product
                )
            basket = [main, partner] if rng.random() < 0.8 else [main]
            for step, product in enumerate(basket):
                yield _track(
                    user, f"{cid}-{session}-a{step}", "Product Added", at + 200 + step * 30, product
                )
            if rng.random() < 0.7 or (cid == 1 and session == 0):
                yield _order(user, f"web-{cid}-{session}", at + 400, basket)


def _product(product: DemoProduct) -> dict[str, Any]:
    body = product.body
    return {
        "product_id": body["id"],
        "name": body["name"],
        "category": body["category"],
        "brand": body["brand"],
        "price": body["price"],
    }


def _track(user: str, key: str, event: str, at: int, product: DemoProduct) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": f"demo-shop-{key}",
        "timestamp": isoformat_us(at * 1_000_000),
        "properties": _product(product),
        "context": {"channel": "web"},
    }


def _order(user: str, order_id: str, at: int, basket: list[DemoProduct]) -> dict[str, Any]:
    items = [{**_product(p), "quantity": 1} for p in basket]
    total = round(sum(i["price"] for i in items), 2)
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"demo-shop-{order_id}",
        "timestamp": isoformat_us(at * 1_000_000),
        "properties": {
            "order_id": order_id,
            "total": total,
            "revenue": total,
            "currency": "USD",
            "products": items,
        },
        "context": {"channel": "web"},
    }
