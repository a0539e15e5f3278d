"""Events reach the catalog when they are sent (both backends, a real SMTP server on
loopback): an e-mail template's ``product(id)`` and a mapping's ``@catalog`` read the event's
workspace's products — never another workspace's — through one lookup per send that reads
each product once."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from opencdp.clock import FrozenClock
from opencdp.query.catalog import CatalogUnavailable
from opencdp.runtime import Runtime
from opencdp.storage.admin import DEFAULT_WORKSPACE
from opencdp.storage.product_lookup import ProductLookup
from opencdp.storage.products import ProductStore
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.contract.test_product_queries import product
from tests.support.mail import MailServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def stock_catalogs(rt: Runtime) -> None:
    """The shop's catalog, and a neighbour's with the same ids and other names."""
    rt.admin.ensure_workspace("neighbour", "neighbour", rt.now_us())
    ProductStore(rt.db).upsert(
        [
            product(DEFAULT_WORKSPACE, "P1", name="Trail shoe", url="https://shop.test/p1"),
            product(DEFAULT_WORKSPACE, "7", name="Cap", attributes='{"colour": "red"}'),
            product("neighbour", "P1", name="Foreign shoe"),
            product("neighbour", "P9", name="Foreign coat"),
        ],
        rt.now_us(),
    )


def order(n: int, product_id: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": f"u{n}",
        "messageId": f"m{n}",
        "properties": {"product_id": product_id},
        "context": {"traits": {"email": f"u{n}@example.com"}},
    }


def test_templates_and_mappings_read_the_workspaces_catalog(
    client: TestClient, rt: Runtime
) -> None:
    stock_catalogs(rt)
    with MailServer() as server:
        templated = {
            "name": "templated",
            "template": {
                "subject": "T: {{ product(properties.product_id).name or 'unknown' }}",
                "text": "{% set p = product(properties.product_id) %}{{ p.url }}",
            },
        }
        mapped = {
            "name": "mapped",
            "mapping": {
                "email": {"@path": "$.context.traits.email"},
                "subject": {
                    "@catalog": {"id": {"@path": "$.properties.product_id"}, "field": "name"}
                },
                "colour": {
                    "@catalog": {"id": {"@path": "$.properties.product_id"}, "field": "colour"}
                },
            },
            "template": {"subject": "M: {{ subject or 'unknown' }}", "text": "{{ colour }}"},
        }
        body = {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": server.port,
                "from": "s@x.test",
                "starttls": False,
            },
            "subscriptions": [templated, mapped],
        }
        assert client.put("/api/destinations/mail", json=body, headers=AUTH).status_code == 200
        # Given orders of a product in the catalog (by id, and by a number's digits), one of
        # a product only the neighbour has, and one of a product no one has
        events = [order(1, "P1"), order(2, 7), order(3, "P9"), order(4, "P404")]
        r = client.post("/v1/batch", json={"batch": events}, headers=basic(WRITE_KEY))
        assert r.status_code == 200
        rt.processor.run_until_idle()
        rt.dispatcher.run_until_idle()
        mails = {
            (m.rcpt_tos[0], m.message["Subject"]): str(
                m.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            ).strip()
            for m in server.mails
        }
    # Then the shop's products name (and link) the mails; the neighbour's never do
    assert mails == {
        ("u1@example.com", "T: Trail shoe"): "https://shop.test/p1",
        ("u1@example.com", "M: Trail shoe"): "",
        ("u2@example.com", "T: Cap"): "",
        ("u2@example.com", "M: Cap"): "red",
        ("u3@example.com", "T: unknown"): "",
        ("u3@example.com", "M: unknown"): "",
        ("u4@example.com", "T: unknown"): "",
        ("u4@example.com", "M: unknown"): "",
    }


def test_a_lookup_reads_each_product_once_within_its_workspace(rt: Runtime) -> None:
    stock_catalogs(rt)
    lookup = ProductLookup(rt.db, DEFAULT_WORKSPACE)
    first = lookup("P1")
    assert first is not None and first["name"] == "Trail shoe" and first["attributes"] == {}
    first["name"] = "changed by a template"
    assert lookup("P1")["name"] == "Trail shoe"  # type: ignore[index]
    assert lookup(7) == lookup("7") == lookup(7.0)
    assert lookup("7")["attributes"] == {"colour": "red"}  # type: ignore[index]
    assert lookup("P9") is None and lookup("P9") is None  # the neighbour's: not ours
    assert lookup(None) is None and lookup(2.5) is None and lookup(True) is None
    assert lookup.reads == 3  # P1, 7, P9: one query each, however often asked
    assert ProductLookup(rt.db, "neighbour")("P1")["name"] == "Foreign shoe"  # type: ignore[index]


def test_a_catalog_that_cannot_be_read_holds_the_delivery_back(
    client: TestClient, rt: Runtime, clock: FrozenClock
) -> None:
    stock_catalogs(rt)
    with MailServer() as server:
        mapped = {
            "name": "mapped",
            "mapping": {
                "email": {"@path": "$.context.traits.email"},
                "name": {"@catalog": {"id": {"@path": "$.properties.product_id"}, "field": "name"}},
            },
            "template": {"subject": "{{ name }}"},
        }
        body = {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": server.port,
                "from": "s@x.test",
                "starttls": False,
            },
            "subscriptions": [mapped],
        }
        assert client.put("/api/destinations/mail", json=body, headers=AUTH).status_code == 200
        r = client.post("/v1/batch", json={"batch": [order(1, "P1")]}, headers=basic(WRITE_KEY))
        assert r.status_code == 200
        rt.processor.run_until_idle()
        # When the catalog cannot be read, the delivery waits (no attempt, nothing dead)
        working = rt.dispatcher.catalog

        def broken(workspace_id: str) -> Any:
            def lookup(_product_id: Any) -> None:
                raise CatalogUnavailable("the database is gone")

            return lookup

        rt.dispatcher.catalog = broken
        rt.dispatcher.run_once()
        (delivery,) = rt.outbox.page(
            DEFAULT_WORKSPACE, destination_id="mail", status=None, limit=10, after=None
        )
        assert (delivery.status, delivery.attempts) == ("pending", 0) and server.mails == []
        # Then, a minute later with the catalog back, it goes out with the product's name
        rt.dispatcher.catalog = working
        clock.advance(61)
        rt.dispatcher.run_until_idle()
        assert [m.message["Subject"] for m in server.mails] == ["Trail shoe"]
