"""``product('field')`` in definitions: an event's (a line item's) product in the catalog,
on both backends — batch equals real time, the catalog wins over the event, the event's own
property stands in for a product the catalog lacks, and another workspace's catalog is never
read."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.services import compute
from opencdp.storage.products import ProductStore
from tests.conftest import make_settings

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
_messages = itertools.count()


@pytest.fixture
def frozen(tmp_path: Path, database_url: str | None) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path, database_url), FrozenClock(NOW))
    yield rt
    rt.close()


def product(workspace_id: str, product_id: str, **fields: Any) -> dict[str, Any]:
    """A catalog row as ``ProductStore.upsert`` takes it."""
    row: dict[str, Any] = dict.fromkeys(
        ("sku", "name", "category", "brand", "price", "currency", "url", "image_url")
    )
    row |= {"quantity": None, "attributes": "{}", "source_id": None}
    return {"workspace_id": workspace_id, "id": product_id, **row, **fields}


def order(user: str, *items: dict[str, Any], hours_ago: float = 1) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"m{next(_messages)}",
        "timestamp": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "properties": {"products": list(items)},
    }


class Shop:
    """A workspace with a source, a catalog, and a neighbour workspace whose catalog holds
    the same ids with other brands."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.ws = "shop"
        for ws in (self.ws, "neighbour"):
            rt.admin.ensure_workspace(ws, ws, rt.now_us())
        self.source, _key = rt.admin.add_source(self.ws, "web", rt.now_us())
        ProductStore(rt.db).upsert(
            [
                product(self.ws, "P1", brand="Acme", category="Women > Shoes", price=59.9),
                product(self.ws, "P2", sku="S-2", brand="Zeta", category="Men > Shirts"),
                product(self.ws, "P3", brand=None, attributes='{"colour": "red"}'),
                product(self.ws, "3", brand="Three", attributes='{"colour": "red"}'),
                product("neighbour", "P1", brand="Foreign"),
                product("neighbour", "P9", brand="Foreign", attributes='{"colour": "blue"}'),
            ],
            rt.now_us(),
        )

    def define(self, key: str, query: str, kind: str = "trait") -> None:
        body = {"definition": {"type": "USERS", "query": query}}
        described = compute.put_definition(self.rt, self.ws, kind, key, body)  # type: ignore[arg-type]
        assert described["status"] == "ready", described

    def send(self, *messages: dict[str, Any]) -> None:
        self.rt.collector.ingest_messages(self.source, list(messages))
        self.rt.processor.run_until_idle()

    def by_user(self, key: str) -> dict[str, Any]:
        values = compute.store(self.rt).values_by_key(self.ws, key)
        return {
            row.id_value: value
            for pid, value in values.items()
            for row in self.rt.profiles.identifiers(self.ws, pid)
            if row.id_type == "user_id"
        }

    def real_time_equals_batch(self, *keys: str) -> dict[str, dict[str, Any]]:
        """The values real time kept, checked against a batch computation of each key."""
        incremental = {key: self.by_user(key) for key in keys}
        for key in keys:
            done = self.rt.compute.compute(self.ws, key)
            assert (done.changed, done.entered, done.exited) == (0, 0, 0), key
            assert self.by_user(key) == incremental[key], key
        return incremental


def test_favorite_brand_reads_the_catalog_in_real_time_and_in_batch(frozen: Runtime) -> None:
    shop = Shop(frozen)
    # Given the retail trait on the catalog's brand, defined before any order arrives
    shop.define(
        "favorite_brand", "event('Order Completed').items('products').mode(product('brand'), 1)"
    )
    items = "event('Order Completed').items('products')"
    shop.define("acme_items", f"{items}.where(product('brand') = 'Acme').count()")
    shop.define("foreign_items", f"{items}.where(product('brand') = 'Foreign').count()")
    # When tills send only product ids, a web shop sends brands of products the catalog
    # lacks, and one item names a neighbour workspace's product
    shop.send(
        order("till", {"product_id": "P1"}, {"product_id": "P1", "brand": "Wrong"}),
        order("till", {"product_id": "P2"}, hours_ago=2),
        order("web", {"product_id": "NOT-IN-CATALOG", "brand": "Local"}),
        order("web", {"sku": "P2"}, {"product_id": "P9", "brand": "Own"}, {"brand": "Own"}),
        order("web", {"product_id": 404, "brand": "Local"}, hours_ago=3),
    )
    values = shop.real_time_equals_batch("favorite_brand", "acme_items", "foreign_items")
    # Then the catalog's brand wins (even over the item's own), items not in the catalog
    # keep their own, and the neighbour's P1 and P9 are never read
    assert values["favorite_brand"] == {"till": "Acme", "web": "Local"}
    assert values["acme_items"] == {"till": 2, "web": 0}
    assert values["foreign_items"] == {"till": 0, "web": 0}


def test_fields_columns_attributes_and_keys(frozen: Runtime) -> None:
    shop = Shop(frozen)
    queries = {
        "colour": "event('Order Completed').items('products').last(product('colour'))",
        "spent": "event('Order Completed').items('products').sum(product('price'))",
        "category": "event('Order Completed').items('products').first(product('category'))",
        "ids": "event('Order Completed').items('products').unique(product('id'))",
        "brands": "event('Order Completed').items('products').unique(product('brand')).count()",
    }
    for key, query in queries.items():
        shop.define(key, query)
    shop.send(
        # a whole number is a key by its digits (3.0 is '3'); a boolean is none: sku then
        order("a", {"product_id": True, "sku": "P2"}, hours_ago=2),
        order("a", {"product_id": "P1", "price": 1}, {"product_id": 3.0, "brand": "Ignored"}),
        # the catalog is the authority: the empty brand of P3 stands, its colour is read
        order("b", {"product_id": "P9", "colour": "blue?", "price": "2.5"}, hours_ago=2),
        order("b", {"product_id": "P3", "brand": "Own", "colour": "green", "price": "7"}),
    )
    values = shop.real_time_equals_batch(*queries)
    assert values["colour"] == {"a": "red", "b": "red"}
    assert values["spent"] == {"a": 59.9, "b": 2.5}
    assert values["category"] == {"a": "Men > Shirts"}
    assert values["ids"] == {"a": ["3", "P1", "P2"], "b": ["P3"]}
    assert values["brands"] == {"a": 3, "b": 0}


def test_a_catalog_change_reaches_the_trait_by_the_scheduled_refresh(frozen: Runtime) -> None:
    shop = Shop(frozen)
    shop.define(
        "favorite_brand", "event('Order Completed').items('products').mode(product('brand'), 1)"
    )
    shop.send(order("till", {"product_id": "P2"}))
    assert shop.by_user("favorite_brand") == {"till": "Zeta"}
    # When the catalog renames the brand (no event arrives)
    ProductStore(frozen.db).upsert([product(shop.ws, "P2", brand="Zeta Sport")], frozen.now_us())
    frozen.clock.advance(3_600)  # type: ignore[attr-defined]
    # Then the schedule refreshes what reads the catalog
    assert frozen.compute.refresh_due(60) >= 1
    assert shop.by_user("favorite_brand") == {"till": "Zeta Sport"}


def test_what_sql_does_not_express_reads_the_catalog_too(frozen: Runtime) -> None:
    """A definition the compiler leaves to the reference evaluator (comparing an event's time
    with a constant that is no time) reads the same catalog, of the workspace only, for
    events and their line items."""
    shop = Shop(frozen)
    corner = "event('Refund').last(timestamp()).one_of(2000-01-01, 'x')"  # never true
    orders = f"event('Order Completed').where(NOT {corner})"
    shop.define("favorite_brand", f"{orders}.items('products').mode(product('brand'), 1)")
    shop.define(
        "foreign", f"{orders}.items('products').where(product('brand') = 'Foreign').count()"
    )
    shop.define("viewed", f"event('Product Viewed').where(NOT {corner}).last(product('category'))")
    shop.send(
        order("till", {"product_id": "P1", "brand": "Wrong"}),
        order("web", {"product_id": "P9"}, {"product_id": "P9"}, {"sku": "P2"}),
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "web",
            "messageId": "viewed",
            "timestamp": NOW.isoformat(),
            "properties": {"sku": "S-2", "product_id": "P2"},
        },
    )
    values = shop.real_time_equals_batch("favorite_brand", "foreign", "viewed")
    assert values == {
        "favorite_brand": {"till": "Acme", "web": "Zeta"},
        "foreign": {"till": 0, "web": 0},
        "viewed": {"web": "Men > Shirts"},
    }


def test_the_retail_preset_favourites_come_from_the_catalog(frozen: Runtime) -> None:
    shop = Shop(frozen)
    compute.apply_preset(frozen, shop.ws, "trait", "retail")
    # a till sends product ids only; the web shop sends categories and brands itself
    shop.send(
        order("till", {"product_id": "P1"}, {"product_id": "P1"}, {"product_id": "P2"}),
        order("web", {"product_id": "NOPE", "category": "Kids", "brand": "Own"}),
    )
    values = shop.real_time_equals_batch("favorite_brand", "favorite_category")
    assert values == {
        "favorite_brand": {"till": "Acme", "web": "Own"},
        "favorite_category": {"till": "Women > Shoes", "web": "Kids"},
    }
