"""The headless catalog and inventory API through the real app on both backends: products
written one by one and in bulk, the reads with ETag and If-None-Match, filters and cursors,
stock writes with their history and the restock hooks in their transaction, roles, bad input;
``Product Updated`` events of catalog sources; ``opencdp import inventory``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opencdp.catalog.inventory import Restock
from opencdp.cli.main import app
from opencdp.errors import RequestError
from opencdp.runtime import Runtime
from opencdp.services import access
from opencdp.storage.admin import DEFAULT_WORKSPACE as WS
from opencdp.storage.db import Connection
from tests.conftest import TOKEN, WRITE_KEY, basic

H = basic(TOKEN)
DRESS = {
    "name": "Linen Wrap Dress",
    "brand": "Northwind",
    "category": ["Women", "Dresses"],
    "price": 89.5,
    "currency": "eur",
    "url": "https://shop.example/p/FW-DRESS-001",
    "image_url": "https://shop.example/img/FW-DRESS-001.jpg",
    "colour": "sand",
}


def token(rt: Runtime, role: str) -> dict[str, str]:
    return basic(access.add_token(rt, None, WS, f"{role}-app", role)["token"])


def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def test_a_product_is_written_and_read_with_its_stock(client: TestClient, rt: Runtime) -> None:
    written = ok(client.put("/api/products/FW-DRESS-001", json=DRESS, headers=H))
    assert written["category"] == "Women > Dresses" and written["currency"] == "EUR"
    assert written["attributes"] == {"colour": "sand"}
    assert written["stock"] == [] and written["in_stock"] is False
    ok(client.put("/api/products/FW-DRESS-001-S", json={"parent_id": "FW-DRESS-001"}, headers=H))
    level = ok(
        client.put(
            "/api/inventory/FW-DRESS-001", json={"location": "web", "quantity": 4}, headers=H
        )
    )
    assert level == {
        "product_id": "FW-DRESS-001",
        "location": "web",
        "quantity": 4,
        "updated_at": level["updated_at"],
    }
    read = ok(client.get("/api/products/FW-DRESS-001", headers=token(rt, "read")))
    assert read["stock"] == [{"location": "web", "quantity": 4, "updated_at": level["updated_at"]}]
    assert read["in_stock"] is True and read["variants"] == ["FW-DRESS-001-S"]
    assert {k: read[k] for k in ("name", "brand", "price", "url")} == {
        k: DRESS[k] for k in ("name", "brand", "price", "url")
    }
    # what a client read may be sent back as it is: read-only fields are ignored
    again = ok(client.put("/api/products/FW-DRESS-001", json=read, headers=H))
    assert again["attributes"] == {"colour": "sand"} and again["stock"] == read["stock"]


def test_etag_and_if_none_match(client: TestClient) -> None:
    ok(client.put("/api/products/p1", json=DRESS, headers=H))
    first = client.get("/api/products/p1", headers=H)
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    same = client.get("/api/products/p1", headers={**H, "If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    # a stock change is a new ETag
    ok(client.put("/api/inventory/p1", json={"location": "s1", "quantity": 1}, headers=H))
    changed = client.get("/api/products/p1", headers={**H, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    # the list too
    page = client.get("/api/products?category=Women", headers=H)
    again = client.get(
        "/api/products?category=Women", headers={**H, "If-None-Match": page.headers["etag"]}
    )
    assert again.status_code == 304
    ok(client.put("/api/products/p2", json={**DRESS, "name": "Midi"}, headers=H))
    assert (
        client.get(
            "/api/products?category=Women", headers={**H, "If-None-Match": page.headers["etag"]}
        ).status_code
        == 200
    )


def test_a_batch_is_written_whole_or_not_at_all(client: TestClient, rt: Runtime) -> None:
    products = [{"id": f"b{i}", "name": f"Item {i}", "category": "Men > Shirts"} for i in range(5)]
    assert ok(client.post("/api/products:batch", json={"products": products}, headers=H)) == {
        "written": 5
    }
    bad = [{"id": "c0"}, {"id": "c1", "price": -3}, {"name": "no id"}, {"id": "c3"}]
    refused = client.post("/api/products:batch", json={"products": bad}, headers=H)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "invalid_product"
    assert "products[1].price" in body["message"] and "products[2].id" in body["message"]
    assert rt.catalog.count(WS) == 5  # none of the batch
    too_many = [{"id": f"x{i}"} for i in range(1001)]
    assert client.post("/api/products:batch", json={"products": too_many}, headers=H).json()[
        "code"
    ] == ("batch_too_large")


def test_the_list_filters_and_pages(client: TestClient) -> None:
    rows = [
        {
            "id": f"w{i:02d}",
            "name": f"Dress {i}",
            "brand": "Northwind",
            "category": "Women > Dresses",
        }
        for i in range(7)
    ] + [{"id": "m01", "name": "Oxford Shirt", "brand": "Stadt", "category": "Men > Shirts"}]
    ok(client.post("/api/products:batch", json={"products": rows}, headers=H))
    ok(
        client.post(
            "/api/inventory:batch",
            json={"levels": [{"product_id": "w03", "location": "web", "quantity": 2}]},
            headers=H,
        )
    )
    seen: list[str] = []
    url = "/api/products?category=Women&limit=3"
    while True:
        page = ok(client.get(url, headers=H))
        seen += [p["id"] for p in page["data"]]
        if page["next"] is None:
            break
        url = f"/api/products?category=Women&limit=3&next={page['next']}"
    assert seen == [f"w{i:02d}" for i in range(7)]
    assert [p["id"] for p in ok(client.get("/api/products?in_stock=true", headers=H))["data"]] == [
        "w03"
    ]
    assert [p["id"] for p in ok(client.get("/api/products?q=OXFORD", headers=H))["data"]] == ["m01"]
    assert (
        ok(client.get("/api/products?brand=Stadt&in_stock=false", headers=H))["data"][0]["stock"]
        == []
    )


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("GET", "/api/products/nope", None, 404, "not_found"),
        ("GET", "/api/inventory/nope/history", None, 404, "not_found"),
        ("PUT", "/api/inventory/nope", {"location": "web", "quantity": 1}, 404, "not_found"),
        ("PUT", "/api/products/p", {"price": "cheap"}, 400, "invalid_product"),
        ("PUT", "/api/products/p", {"id": "q"}, 400, "invalid_product"),
        ("PUT", "/api/products/p", [1, 2], 400, "invalid_product"),
        ("PUT", "/api/products/p", None, 400, "invalid_json"),
        ("PUT", "/api/inventory/p", {"location": "web", "quantity": -1}, 400, "invalid_stock"),
        ("PUT", "/api/inventory/p", {"location": " ", "quantity": 1}, 400, "invalid_stock"),
        ("POST", "/api/inventory:batch", {"levels": {}}, 400, "invalid_levels"),
        ("GET", "/api/products?limit=501", None, 400, "invalid_request"),
        ("GET", "/api/products?in_stock=maybe", None, 400, "invalid_request"),
        ("GET", "/api/products?next=not-ours", None, 400, "invalid_cursor"),
        ("GET", "/api/products?category=A%20%3E%3E%20B", None, 400, "invalid_product"),
        ("GET", "/api/inventory/p/history?limit=0", None, 400, "invalid_request"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    client: TestClient, method: str, url: str, body: Any, status: int, code: str
) -> None:
    ok(client.put("/api/products/p", json={"name": "P"}, headers=H))
    answer = client.request(method, url, json=body, headers=H)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code and answer.json()["message"]


def test_a_batch_of_levels_naming_an_unknown_product_writes_nothing(
    client: TestClient, rt: Runtime
) -> None:
    ok(client.put("/api/products/p", json={}, headers=H))
    levels = [
        {"product_id": "p", "location": "web", "quantity": 1},
        {"product_id": "ghost", "location": "web", "quantity": 1},
    ]
    answer = client.post("/api/inventory:batch", json={"levels": levels}, headers=H)
    assert answer.status_code == 400 and answer.json()["code"] == "unknown_product"
    assert "levels[1].product_id" in answer.json()["message"]
    assert rt.inventory.levels(WS, "p") == []


def test_roles(client: TestClient, rt: Runtime) -> None:
    ok(client.put("/api/products/p", json={}, headers=token(rt, "write")))
    for role in ("read", "support"):
        headers = token(rt, role)
        ok(client.get("/api/products/p", headers=headers))
        ok(client.get("/api/products", headers=headers))
        ok(client.get("/api/inventory/p/history", headers=headers))
        refused = client.put("/api/products/p", json={}, headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        refused = client.put(
            "/api/inventory/p", json={"location": "web", "quantity": 1}, headers=headers
        )
        assert refused.status_code == 403
    assert client.get("/api/products/p").status_code == 401


def test_stock_writes_keep_a_history_and_tell_the_restock_hooks_in_their_transaction(
    client: TestClient, rt: Runtime
) -> None:
    told: list[tuple[str, list[Restock]]] = []

    def record(conn: Connection, workspace_id: str, restocks: Any) -> int:
        told.append((workspace_id, list(restocks)))
        return 0

    rt.restock_hooks.append(record)
    ok(client.put("/api/products/p", json={}, headers=H))
    ok(client.put("/api/inventory/p", json={"location": "web", "quantity": 0}, headers=H))
    ok(client.put("/api/inventory/p", json={"location": "web", "quantity": 3}, headers=H))
    ok(client.put("/api/inventory/p", json={"location": "web", "quantity": 1}, headers=H))
    assert told == [(WS, [Restock("p", "web", 0, 3)])]
    history = ok(client.get("/api/inventory/p/history", headers=H))["data"]
    assert [(h["quantity"], h["delta"], h["channel"]) for h in history] == [
        (1, -2, "api"),
        (3, 3, "api"),
    ]
    assert history[0]["reference"].startswith("request:")

    # a hook that fails undoes the write: they share its transaction
    def refuse(conn: Connection, workspace_id: str, restocks: Any) -> int:
        raise RequestError("the hook refuses", code="hook_refused")

    rt.restock_hooks.append(refuse)
    ok(client.put("/api/inventory/p", json={"location": "web", "quantity": 0}, headers=H))
    answer = client.put("/api/inventory/p", json={"location": "web", "quantity": 5}, headers=H)
    assert answer.status_code == 400 and answer.json()["code"] == "hook_refused"
    assert [s.quantity for s in rt.inventory.levels(WS, "p")] == [0]
    assert len(ok(client.get("/api/inventory/p/history", headers=H))["data"]) == 3


def test_the_colon_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/products:batch"] and "post" in paths["/api/inventory:batch"]
    get = paths["/api/products/{product_id}"]["get"]
    assert "304" in get["responses"] and "ETag" in get["responses"]["200"]["headers"]
    assert any(p["name"] == "If-None-Match" for p in get["parameters"])


# -- Product Updated events -------------------------------------------------------------------


def send(client: TestClient, key: str, n: int, properties: dict[str, Any]) -> None:
    event = {
        "type": "track",
        "event": "Product Updated",
        "userId": "pim-bot",
        "messageId": f"pu-{key[:6]}-{n}",
        "properties": properties,
    }
    ok(client.post("/v1/track", json=event, headers=basic(key)))


def test_product_updated_events_of_a_catalog_source_write_the_catalog(
    client: TestClient, rt: Runtime
) -> None:
    pim = ok(client.post("/api/sources", json={"name": "pim", "catalog": True}, headers=H), 201)
    assert pim["catalog"] is True
    told: list[Restock] = []
    rt.restock_hooks.append(lambda conn, ws, restocks: told.extend(restocks) or 0)
    send(client, pim["write_key"], 1, {"product_id": 42, "name": "Old", "price": 10})
    send(
        client,
        pim["write_key"],
        2,
        {
            "product_id": 42,
            "name": "Trail Runner",
            "category": "Shoes > Running",
            "stock": [{"location": "web", "quantity": 3}, {"location": "", "quantity": 1}],
        },
    )
    send(client, pim["write_key"], 3, {"product_id": "bad", "currency": "EURO"})
    # the same event from an ordinary source only lands on the timeline
    send(client, WRITE_KEY, 4, {"product_id": "web-made", "name": "Forged"})
    rt.processor.run_until_idle()
    product = ok(client.get("/api/products/42", headers=H))
    assert product["name"] == "Trail Runner" and product["category"] == "Shoes > Running"
    assert product["stock"][0]["quantity"] == 3 and product["in_stock"]
    assert told == [Restock("42", "web", 0, 3)]
    history = ok(client.get("/api/inventory/42/history", headers=H))["data"]
    assert [(h["channel"], h["reference"]) for h in history] == [
        ("event", "pu-" + pim["write_key"][:6] + "-2")
    ]
    assert client.get("/api/products/bad", headers=H).status_code == 404
    assert client.get("/api/products/web-made", headers=H).status_code == 404
    profile = rt.profiles.find(WS, "users", "user_id", "pim-bot")
    assert len([e for e in rt.profiles.events(WS, profile, limit=20)]) == 4


def test_source_add_catalog_on_the_command_line(
    tmp_path: Path, rt: Runtime, database_url: str | None
) -> None:
    result = cli(tmp_path, database_url, "source", "add", "pim", "--catalog")
    assert "catalog source pim" in result.output
    [source] = [s for s in rt.admin.list_sources(WS) if s.name == "pim"]
    assert source.catalog is True


# -- the command line -------------------------------------------------------------------------


def cli(tmp_path: Path, database_url: str | None, *args: str, code: int = 0) -> Any:
    extra = ["--data-dir", str(tmp_path / "data")]
    if database_url is not None:
        extra += ["--database-url", database_url]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == code, result.output
    return result


def refused(output: str) -> list[tuple[str, str]]:
    """The (line, what to fix) rows of the refused-rows table."""
    return [
        (m.group(1), m.group(2).strip())
        for m in re.finditer(r"^│ (\d+)\s+│ (.+?)│$", output, flags=re.MULTILINE)
    ]


def test_import_inventory(
    tmp_path: Path, rt: Runtime, client: TestClient, database_url: str | None
) -> None:
    ok(client.post("/api/products:batch", json={"products": [{"id": "a"}, {"id": "b"}]}, headers=H))
    csv = tmp_path / "stock.csv"
    csv.write_text(
        "product_id,location,quantity,note\n"
        "a,web,5,\n"
        "a,store-1,x,\n"
        "ghost,web,2,\n"
        "b,web,0,\n"
        ",web,1,\n"
        "b,store-1,7,late\n",
        encoding="utf-8",
    )
    result = cli(tmp_path, database_url, "import", "inventory", str(csv), "--chunk-size", "2")
    out = " ".join(result.output.split())
    assert "6 rows, 3 levels written (2 changed, 2 back in stock), 3 refused" in out
    assert refused(result.output) == [
        ("3", "quantity: a whole number of 0 or more, not 'x'"),
        ("4", "product_id: no product 'ghost' in the catalog"),
        ("6", "product_id: a product id cannot be blank"),
    ]
    history = ok(client.get("/api/inventory/a/history", headers=H))["data"]
    assert [(h["channel"], h["reference"]) for h in history] == [("import", "import:stock.csv")]

    lines = tmp_path / "stock.jsonl"
    lines.write_text('{"product_id": "a", "location": "web", "quantity": 9}\nnot json\n')
    result = cli(tmp_path, database_url, "import", "inventory", str(lines))
    assert "1 levels written" in " ".join(result.output.split())
    [(line, message)] = refused(result.output)
    assert line == "2" and message.startswith("line: not JSON")
    bad = tmp_path / "stock.txt"
    bad.write_text("x")
    assert (
        "CSV (.csv) or JSON Lines"
        in cli(tmp_path, database_url, "import", "inventory", str(bad), code=1).output
    )

    shown = cli(tmp_path, database_url, "product", "show", "a", "--json")
    assert '"quantity": 9' in shown.output
    cli(tmp_path, database_url, "inventory", "set", "b", "--location", "web", "--quantity", "2")
    assert [s.quantity for s in rt.inventory.levels(WS, "b") if s.location == "web"] == [2]
    assert "unknown" not in cli(tmp_path, database_url, "inventory", "history", "b").output
    missing = cli(tmp_path, database_url, "product", "show", "ghost", code=1)
    assert "no product 'ghost'" in missing.output


def test_product_updated_events_apply_by_event_time_not_arrival(
    client: TestClient, rt: Runtime
) -> None:
    pim = ok(client.post("/api/sources", json={"name": "pim", "catalog": True}, headers=H), 201)
    told: list[Restock] = []
    rt.restock_hooks.append(lambda conn, ws, restocks: told.extend(restocks) or 0)

    def event(n: int, at: str, name: str, quantity: int) -> dict[str, Any]:
        return {
            "type": "track",
            "event": "Product Updated",
            "userId": "pim-bot",
            "messageId": f"pu-time-{n}",
            "timestamp": at,
            "properties": {
                "product_id": "P-9",
                "name": name,
                "stock": [{"location": "web", "quantity": quantity}],
            },
        }

    def batch(*events: dict[str, Any]) -> None:
        answer = client.post(
            "/v1/batch", json={"batch": list(events)}, headers=basic(pim["write_key"])
        )
        assert answer.status_code == 200, answer.text
        rt.processor.run_until_idle()

    # one batch, out of order: the later event wins
    batch(
        event(2, "2026-03-01T10:00:00Z", "Newer", 4),
        event(1, "2026-03-01T09:00:00Z", "Older", 0),
    )
    product = ok(client.get("/api/products/P-9", headers=H))
    assert product["name"] == "Newer" and product["stock"][0]["quantity"] == 4
    assert told == [Restock("P-9", "web", 0, 4)]
    # a late (replayed) event older than the catalog changes nothing and fakes no restock
    batch(event(3, "2026-03-01T08:00:00Z", "Stale", 0))
    batch(event(4, "2026-03-01T08:30:00Z", "Stale again", 9))
    product = ok(client.get("/api/products/P-9", headers=H))
    assert product["name"] == "Newer" and product["stock"][0]["quantity"] == 4
    assert told == [Restock("P-9", "web", 0, 4)]
    # a newer event applies
    batch(event(5, "2026-03-01T11:00:00Z", "Newest", 0))
    product = ok(client.get("/api/products/P-9", headers=H))
    assert product["name"] == "Newest" and product["stock"][0]["quantity"] == 0
