"""Recommendations on both backends: training reads the workspace's events set-based (line
items with quantities, adds, views, a merged profile's events for its survivor), versions and
rollback, serving with the rules against the live catalog (bought, stock at the visitor's
location, catalog, pin, block), an anonymous visitor's session, purchases after the training,
reasons by name, the ``recommended_items`` trait, settings, the schedule, and the HTTP errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.services import catalog, recs
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from opencdp.timeutil import isoformat
from tests.conftest import TOKEN
from tests.contract.test_loyalty import ingest
from tests.e2e.test_audience_membership import wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: pairs bought together: a dress with its shoes, a jacket with its shirt, …
PAIRS = {"DRESS": "SHOE", "JACKET": "SHIRT", "BAG": "SCARF", "KNIT": "BOOT"}
CATEGORIES = {
    "DRESS": "Women > Dresses",
    "SHOE": "Women > Shoes",
    "JACKET": "Men > Jackets",
    "SHIRT": "Men > Shirts",
    "BAG": "Accessories > Bags",
    "SCARF": "Accessories > Scarves",
    "KNIT": "Women > Knitwear",
    "BOOT": "Women > Shoes",
    "SOAP": "Care > Soap",
}


def order(
    user: str, order_id: str, *items: str, quantity: Any = 1, at: str | None = None
) -> dict[str, Any]:
    return {
        **({"timestamp": at} if at else {}),
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"m-{order_id}",
        "properties": {
            "order_id": order_id,
            "products": [{"product_id": i, "quantity": quantity} for i in items],
        },
    }


def viewed(
    who: dict[str, str], key: str, product: str, event: str = "Product Viewed"
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": key,
        "properties": {"product_id": product},
        **who,
    }


def shop(rt: Runtime, customers: int = 40) -> None:
    catalog.put_products_batch(
        rt,
        WS,
        {
            "products": [
                {"id": p, "name": f"The {p.title()}", "category": c, "price": 10.0}
                for p, c in CATEGORIES.items()
            ]
        },
    )
    now = rt.clock.now()
    earlier, later = (isoformat(now - timedelta(days=d)) for d in (20, 5))
    messages = []
    for n in range(customers):
        first = list(PAIRS)[n % 4]
        messages.append(order(f"c{n}", f"o{n}", first, PAIRS[first], at=earlier))
        messages.append({**viewed({"userId": f"c{n}"}, f"v{n}", "SOAP"), "timestamp": earlier})
        messages.append(order(f"c{n}", f"p{n}", "SOAP", at=later))
    ingest(rt, *messages)


def get(client: TestClient, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params, headers=AUTH)
    return answer


def ids(body: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in body["data"]]


def test_interactions_are_read_set_based_with_quantities_views_adds_and_merges(rt: Runtime) -> None:
    ingest(
        rt,
        order("ann", "o1", "DRESS", "SHOE", quantity=3),
        order("ann", "o2", "DRESS", quantity="lots"),
        viewed({"userId": "ann"}, "v1", "BAG"),
        viewed({"anonymousId": "anon-1"}, "v2", "SCARF", "Product Added"),
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "ann",
            "messageId": "nothing",
            "properties": {},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "ann",
            "messageId": "odd",
            "properties": {"products": "DRESS"},
        },
    )
    data = rt.recs.interactions(WS)
    rows = sorted(zip(data.items, data.kinds.tolist(), data.counts.tolist(), strict=True))
    assert rows == [("BAG", 2, 1.0), ("DRESS", 0, 4.0), ("SCARF", 1, 1.0), ("SHOE", 0, 3.0)]
    assert len(set(data.users)) == 2
    # the anonymous visitor identifies as ann: its add now counts for ann's profile
    ingest(rt, {"type": "identify", "userId": "ann", "anonymousId": "anon-1", "messageId": "join"})
    merged = rt.recs.interactions(WS)
    assert len(set(merged.users)) == 1 and len(merged) == len(data)


def test_train_serve_and_roll_back(rt: Runtime, client: TestClient, clock: FrozenClock) -> None:
    shop(rt)
    assert get(client, "/api/profiles/user_id:c0/recommendations").json()["code"] == "no_model"
    trained = client.post("/api/recs/train", headers=AUTH)
    assert trained.status_code == 201, trained.text
    first = trained.json()
    assert first["version"] == "v0001" and first["active"] and first["status"] == "ready"
    assert first["evaluation"]["models"]["popularity"]
    # c1 bought a jacket and a shirt: both excluded as bought; what goes with them first
    body = get(client, "/api/profiles/user_id:c1/recommendations", limit=3).json()
    assert body["model"]["version"] == "v0001"
    assert "JACKET" not in ids(body) and "SHIRT" not in ids(body)
    assert len(body["data"]) == 3 and body["data"][0]["name"]
    by_id = get(client, f"/api/profiles/{body['profile_id']}/recommendations", limit=3).json()
    assert by_id["profile_id"] == body["profile_id"] and ids(by_id) == ids(body)
    # an anonymous visitor looking at a dress: its shoes, with the reason by name
    ingest(rt, viewed({"anonymousId": "visitor"}, "w1", "DRESS"))
    visitor = get(client, "/api/profiles/anonymous_id:visitor/recommendations", limit=2).json()
    shoe = next(i for i in visitor["data"] if i["product_id"] == "SHOE")
    assert shoe["reason"] == "viewed together with The Dress"
    assert shoe["category"] == "Women > Shoes" and shoe["price"] == 10.0
    # bought after the training: left out at once
    ingest(
        rt, order("visitor-buys", "late", "SHOE"), viewed({"userId": "visitor-buys"}, "w2", "DRESS")
    )
    late = get(client, "/api/profiles/user_id:visitor-buys/recommendations").json()
    assert "SHOE" not in ids(late)
    # similar products
    similar = get(client, "/api/products/DRESS/similar", limit=1).json()
    assert (
        ids(similar) == ["SHOE"]
        and similar["data"][0]["reason"] == "bought together with The Dress"
    )
    # a second training, then back to the first
    second = client.post("/api/recs/train", headers=AUTH).json()
    assert second["version"] == "v0002"
    back = client.post("/api/recs/rollback", headers=AUTH, json={})
    assert back.status_code == 200, back.text
    assert back.json()["version"] == "v0001" and back.json()["active"]
    listed = client.get("/api/recs/models", headers=AUTH).json()["data"]
    assert [(m["version"], m["active"]) for m in listed] == [("v0002", False), ("v0001", True)]
    assert (
        client.post("/api/recs/rollback", headers=AUTH, json={"version": "v0009"}).status_code
        == 404
    )


def test_rules_against_the_live_catalog(
    rt: Runtime, client: TestClient, clock: FrozenClock
) -> None:
    shop(rt)
    recs.train(rt, WS)
    ingest(rt, viewed({"anonymousId": "v"}, "x1", "JACKET"))
    path = "/api/profiles/anonymous_id:v/recommendations"
    assert "SHIRT" in ids(get(client, path).json())
    # sold out at the store the visitor shops in: not there, still on the web
    catalog.set_inventory(rt, WS, "SHIRT", {"location": "store-1", "quantity": 0}, reference="t")
    clock.advance(60)  # past the catalog snapshot's few seconds: read again in the background
    assert wait_for(lambda: "SHIRT" not in ids(get(client, path, location="store-1").json()))
    assert "SHIRT" in ids(get(client, path).json())
    # pinned first, blocked never, at most one per category
    settings = {"rules": {"pinned": ["BAG"], "blocked": ["SHIRT"], "max_per_category": 1}}
    put = client.put("/api/recs/settings", headers=AUTH, json=settings)
    assert put.status_code == 200, put.text
    body = get(client, path, limit=5).json()
    assert ids(body)[0] == "BAG" and body["data"][0]["reason"] == "featured"
    assert "SHIRT" not in ids(body)
    categories = [i["category"] for i in body["data"]]
    assert len(categories) == len(set(categories))


def test_the_recommended_items_trait_follows_each_training(rt: Runtime, client: TestClient) -> None:
    shop(rt)
    client.put("/api/recs/settings", headers=AUTH, json={"rules": {"trait_items": 2}})
    recs.train(rt, WS)
    traits = client.get(
        "/v1/spaces/default/collections/users/profiles/user_id:c0/traits", headers=AUTH
    ).json()["traits"]
    items = traits["recommended_items"]
    assert isinstance(items, list) and len(items) == 2
    assert not {"DRESS", "SHOE"} & set(items)  # c0 bought those


def test_bad_requests_name_what_is_wrong(rt: Runtime, client: TestClient) -> None:
    assert client.post("/api/recs/train", headers=AUTH).json()["code"] == "no_interactions"
    shop(rt, 8)
    recs.train(rt, WS)
    for params, code in (({"limit": "0"}, "invalid_limit"), ({"limit": "ten"}, "invalid_limit")):
        answer = get(client, "/api/profiles/user_id:c0/recommendations", **params)
        assert answer.status_code == 400 and answer.json()["code"] == code
    assert get(client, "/api/profiles/user_id:nobody/recommendations").status_code == 404
    missing = get(client, "/api/products/NOPE/similar")
    assert missing.status_code == 404 and missing.json()["code"] == "product_not_found"
    bad = client.put("/api/recs/settings", headers=AUTH, json={"rules": {"max_per_category": 0}})
    assert bad.status_code == 400 and "rules.max_per_category" in bad.json()["message"]
    bad = client.put("/api/recs/settings", headers=AUTH, json={"weights": {"view": -1}})
    assert bad.status_code == 400 and "weights.view" in bad.json()["message"]
    assert (
        client.post("/api/recs/rollback", headers=AUTH).json()["code"] == "nothing_to_roll_back_to"
    )


def test_the_schedule_trains_once_when_due(rt: Runtime, clock: FrozenClock) -> None:
    shop(rt, 8)
    recs.install(rt)
    recs.install(rt)  # once only
    assert recs._scheduled(rt) == 1
    for thread in __import__("threading").enumerate():
        if thread.name == f"recs-{WS}":
            thread.join(60)
    assert [v.version for v in rt.recs.versions(WS)] == ["v0001"]
    assert recs._scheduled(rt) == 0  # trained within the day
    clock.advance(25 * 3600)
    assert rt.recs.claim(WS, rt.now_us(), recs.STALE_CLAIM_US)  # another process is training
    with pytest.raises(Exception, match="running"):
        recs.train(rt, WS)
    rt.recs.release(WS)


def test_the_cli_trains_evaluates_lists_and_rolls_back(rt: Runtime, tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from opencdp.cli.main import app

    shop(rt)
    runner = CliRunner()
    options = ["--data-dir", str(rt.settings.data_dir)]
    options += ["--database-url", rt.settings.resolved_database_url()]

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["recs", *args, *options])
        return result.exit_code, result.output

    code, out = cli("train")
    assert code == 0 and "trained v0001" in out and "it is active" in out, out
    code, out = cli("train", "--json")
    assert code == 0 and json.loads(out)["version"] == "v0002", out
    html_file, json_file = tmp_path / "eval.html", tmp_path / "eval.json"
    code, out = cli("evaluate", "--html", str(html_file), "--out", str(json_file))
    assert code == 0 and "ndcg@10" in out and "popularity" in out, out
    page = html_file.read_text()
    assert "<svg" in page and "NDCG@10 per model" in page and "src=" not in page
    assert set(json.loads(json_file.read_text())["models"]) >= {"popularity", "cooccurrence"}
    code, out = cli("evaluate", "--holdout-days", "7", "--json")
    assert code == 0 and json.loads(out)["holdout"] == "days:7", out
    code, out = cli("models")
    assert code == 0 and "v0002 (active)" in out and "v0001" in out, out
    code, out = cli("rollback")
    assert code == 0 and "v0001" in out and "active again" in out, out
    code, out = cli("rollback", "v0042")
    assert code == 1 and "no version 'v0042'" in out, out
    settings_file = tmp_path / "recs.yaml"
    settings_file.write_text("rules:\n  repeatable_categories: [Care]\n  trait_items: 3\n")
    code, out = cli("settings", "apply", str(settings_file))
    assert code == 0 and json.loads(out)["rules"]["repeatable_categories"] == ["Care"], out
    settings_file.write_text("rules:\n  trait_items: 0\n")
    code, out = cli("settings", "apply", str(settings_file))
    assert code == 1 and "rules.trait_items" in out, out
    code, out = cli("settings", "show")
    assert code == 0 and json.loads(out)["rules"]["trait_items"] == 3, out


def test_a_workspace_that_cannot_train_is_not_tried_every_minute(
    rt: Runtime, clock: FrozenClock
) -> None:
    # product events, none with a product id: nothing to learn from
    ingest(rt, viewed({"userId": "x"}, "bare", ""), order("x", "o-bare"))
    attempted: dict[str, int] = {}
    assert recs._scheduled(rt, attempted) == 1
    for thread in __import__("threading").enumerate():
        if thread.name == f"recs-{WS}":
            thread.join(60)
    assert rt.recs.versions(WS) == []  # no_interactions: nothing recorded
    clock.advance(61)
    assert recs._scheduled(rt, attempted) == 0  # not again before the next period
    clock.advance(25 * 3600)
    assert recs._scheduled(rt, attempted) == 1
    for thread in __import__("threading").enumerate():
        if thread.name == f"recs-{WS}":
            thread.join(60)


def test_serving_answers_the_brief_cases(
    rt: Runtime, client: TestClient, clock: FrozenClock
) -> None:
    """The 404s in their order, a product outside the catalog, a repeatable category, a
    profile with no history, a product the model never saw, the trait after a later training."""
    assert get(client, "/api/products/DRESS/similar").json()["code"] == "no_model"
    unknown = get(client, "/api/profiles/user_id:nobody/recommendations")
    assert unknown.status_code == 404 and unknown.json()["code"] == "profile_not_found"
    assert "user_id:nobody" in unknown.json()["message"]
    shop(rt)
    # GHOST is bought with every dress but is not in the catalog; NEW is, without events
    ingest(rt, *(order(f"g{n}", f"og{n}", "DRESS", "GHOST") for n in range(12)))
    catalog.put_products_batch(
        rt, WS, {"products": [{"id": "NEW", "name": "The New", "category": "Women > Shoes"}]}
    )
    ingest(rt, {"type": "identify", "userId": "newbie", "messageId": "newbie", "traits": {}})
    recs.train(rt, WS)
    assert rt.recs.active(WS) is not None
    assert rt.recommender.models.get(WS).model.item_index("GHOST") is not None  # type: ignore[union-attr]
    dress = get(client, "/api/products/DRESS/similar", limit=9).json()
    assert "SHOE" in ids(dress) and "GHOST" not in ids(dress) and "DRESS" not in ids(dress)
    assert "GHOST" not in ids(get(client, "/api/profiles/user_id:c4/recommendations").json())
    # a product only the catalog knows: the popular ones of its category first
    new = get(client, "/api/products/NEW/similar", limit=2).json()
    assert set(ids(new)) == {"SHOE", "BOOT"}, new
    assert {i["reason"] for i in new["data"]} == {"popular in Women > Shoes"}
    # a profile with no product events: popular products, named by their category
    newbie = get(client, "/api/profiles/user_id:newbie/recommendations", limit=3).json()
    assert newbie["data"][0]["product_id"] == "SOAP"
    assert newbie["data"][0]["reason"] == "popular in Care > Soap"
    assert all(i["reason"].startswith("popular") for i in newbie["data"])
    # c0 bought soap: left out, unless soap may repeat
    path = "/api/profiles/user_id:c0/recommendations"
    assert "SOAP" not in ids(get(client, path, limit=9).json())
    put = client.put(
        "/api/recs/settings", headers=AUTH, json={"rules": {"repeatable_categories": ["Care"]}}
    )
    assert put.status_code == 200, put.text
    assert "SOAP" in ids(get(client, path, limit=9).json())
    for limit in ("101", "-1", "2.5"):
        answer = get(client, path, limit=limit)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_limit"
    # a customer first seen after the training gets its own items at the next one
    ingest(rt, order("late", "o-late", "JACKET"))

    def trait_of(user: str) -> Any:
        answer = client.get(
            f"/v1/spaces/default/collections/users/profiles/user_id:{user}/traits", headers=AUTH
        )
        return answer.json()["traits"].get("recommended_items")

    assert trait_of("late") is None
    clock.advance(3600)
    recs.train(rt, WS)
    items = trait_of("late")
    assert isinstance(items, list) and "SHIRT" in items and "JACKET" not in items, items


def test_the_catalog_snapshot_takes_in_changes_and_reads_everything_now_and_then(
    rt: Runtime, clock: FrozenClock
) -> None:
    from opencdp.catalog.products import product_from
    from opencdp.recommend.catalog_view import FULL_READ_EVERY

    cache = rt.recommender.catalogs
    catalog.put_product(rt, WS, "A", {"name": "Anorak", "category": "Men > Jackets"})
    first = cache.get(WS)
    assert first.name("A") == "Anorak" and not first.known("B")
    # When a product is added, another renamed and sold out on the web
    clock.advance(30)
    catalog.put_product(rt, WS, "B", {"name": "Beanie"})
    catalog.put_product(rt, WS, "A", {"name": "Anorak II", "category": "Men > Jackets"})
    catalog.set_inventory(rt, WS, "A", {"location": "web", "quantity": 0}, reference="t")
    # and a catalog source's event stamps a product with a time long past
    past = rt.now_us() - 3_600_000_000
    with rt.db.write() as conn:
        rt.catalog.upsert_products(
            conn,
            WS,
            [product_from({"id": "OLD", "name": "Old stock"})],
            rt.now_us(),
            times={"OLD": past},
        )
    # Then the next read after the snapshot expired brings in what was written since
    clock.advance(rt.settings.recs_catalog_ttl + 1)
    cache.get(WS)  # answers the snapshot it has and brings it up to date in the background
    assert wait_for(lambda: cache.get(WS).known("B"))
    now = cache.get(WS)
    assert now is first  # updated in place, not read again
    assert now.name("A") == "Anorak II" and not now.in_stock("A", "web")
    assert now.in_stock("A", "store-1") and not now.known("OLD")
    # and the whole catalog, the late-stamped product too, at the next whole read
    clock.advance(FULL_READ_EVERY + 1)
    cache.get(WS)
    assert wait_for(lambda: cache.get(WS).known("OLD"))
    assert cache.get(WS) is not first
    # a forgotten workspace is read whole at its next use
    cache.forget(WS)
    assert cache.get(WS).known("OLD") and cache.get(WS).name("A") == "Anorak II"
