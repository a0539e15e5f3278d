"""The definitions the compute benchmark evaluates.

* :data:`REALTIME`: 20 computed traits and audiences a retailer keeps up to date in real time,
  over the events :class:`bench.events.EventFactory` sends (``Order Completed``, ``Product
  Viewed``, ``Product Added``, ``Checkout Started``, ``Coupon Applied``, ``Product List
  Viewed``, page calls; properties ``price``, ``quantity``, ``category``, ``brand``; identify
  traits ``plan``, ``address.country``). The generator dates its events in May 2024, so the
  windows are long enough (``within(1000 days)``) to select them: a window that selects
  nothing would flatter the cost.
* :data:`BATCH_AUDIENCES`: 10 audiences over the imported CDNOW history (``Order Completed``
  with ``revenue`` and ``quantity``), evaluated in batch after the retail preset (or what
  ``--preset`` names), whose ``order_count``, ``lifetime_value`` and ``average_order_value``
  several read.
"""

from __future__ import annotations

#: key -> (kind, query); in dependency order (an audience after the traits it reads).
REALTIME: dict[str, tuple[str, str]] = {
    "orders": ("trait", "event('Order Completed').count()"),
    "orders_1000d": ("trait", "event('Order Completed').within(1000 days).count()"),
    "spend": ("trait", "event('Order Completed').sum(property('price'))"),
    "spend_1000d": (
        "trait",
        "event('Order Completed').within(1000 days).sum(property('price'))",
    ),
    "avg_item_price": ("trait", "event('Order Completed').avg(property('price'))"),
    "units": ("trait", "event('Order Completed').sum(property('quantity'))"),
    "favourite_category": ("trait", "event('Order Completed').mode(property('category'), 1)"),
    "last_viewed_brand": ("trait", "event('Product Viewed').last(property('brand'))"),
    "product_views_1000d": ("trait", "event('Product Viewed').within(1000 days).count()"),
    "cart_adds": ("trait", "event('Product Added').count()"),
    "checkouts": ("trait", "event('Checkout Started').count()"),
    "page_views": ("trait", "event('Page Viewed').count()"),
    "coupons_used": ("trait", "event('Coupon Applied').count()"),
    "electronics_spend": (
        "trait",
        "event('Order Completed').where(property('category') = 'Electronics')"
        ".sum(property('price'))",
    ),
    "repeat_buyer": ("audience", "trait('orders') >= 2"),
    "big_spender": ("audience", "trait('spend') >= 300"),
    "big_order_recent": (
        "audience",
        "event('Order Completed').where(property('price') >= 100).within(7 days).count() >= 1",
    ),
    "cart_abandoner": (
        "audience",
        "event('Product Added').within(1000 days).count() >= 1 "
        "AND event('Order Completed').within(1000 days).count() = 0",
    ),
    "coupon_hunter": (
        "audience",
        "trait('coupons_used') >= 2 AND trait('orders') <= 1",
    ),
    "pro_germany": (
        "audience",
        "trait('plan') = 'pro' AND trait('address.country') = 'DE'",
    ),
}
#: The audience the latency run makes profiles enter (an order of 100 or more in 7 days).
LATENCY_AUDIENCE = "big_order_recent"

#: 10 audiences over the CDNOW history (after the traits file, whose keys some read).
BATCH_AUDIENCES: dict[str, str] = {
    "repeat_buyers": "event('Order Completed').count() >= 2",
    "loyal_buyers": "event('Order Completed').count() >= 5",
    "one_time_buyers": "event('Order Completed').count() = 1",
    "big_spenders": "trait('lifetime_value') >= 200",
    "one_time_big_spenders": "trait('order_count') = 1 AND trait('lifetime_value') >= 100",
    "high_aov": "trait('average_order_value') >= 50",
    "bulk_buyers": "event('Order Completed').where(property('quantity') >= 5).count() >= 1",
    "big_basket": "event('Order Completed').max(property('revenue')) >= 100",
    "many_cds": "event('Order Completed').sum(property('quantity')) >= 10",
    "small_orders_only": (
        "event('Order Completed').count() >= 1 "
        "AND event('Order Completed').where(property('revenue') >= 20).count() = 0"
    ),
}
