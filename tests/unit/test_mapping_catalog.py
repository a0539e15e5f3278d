"""``@catalog`` (OpenCDP's mapping directive) and ``product(id)`` in e-mail templates: a
product of the workspace's catalog, read through a lookup given at render time (pure: no
database here, a dict stands in for the catalog)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from opencdp.activate.destinations.base import Message
from opencdp.activate.destinations.smtp import Smtp, SmtpSettings
from opencdp.activate.mapping import MappingError, compile_mapping
from opencdp.query.catalog import CatalogUnavailable

CATALOG: dict[str, dict[str, Any]] = {
    "P1": {
        "id": "P1",
        "name": "Trail shoe",
        "brand": "Acme",
        "price": 89.9,
        "url": None,
        "attributes": {"colour": "red", "size": {"eu": 38}, "gift": None},
    },
    "12": {"id": "12", "name": "Cap", "attributes": {}},
}
EVENT = {
    "type": "track",
    "event": "Order Completed",
    "properties": {"product_id": "P1", "number": 12, "other": "P2"},
    "context": {"traits": {"email": "ann@example.com"}},
}


class Lookup:
    """A catalog lookup that counts what it is asked."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def __call__(self, product_id: Any) -> dict[str, Any] | None:
        self.asked.append(product_id)
        return CATALOG.get(str(product_id))


def catalog(product_id: Any, field: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {"id": product_id}
    if field is not None:
        options["field"] = field
    return {"@catalog": options}


def test_catalog_reads_a_products_fields_through_the_lookup() -> None:
    mapping = compile_mapping(
        {
            "name": catalog({"@path": "$.properties.product_id"}, "name"),
            "price": catalog({"@path": "$.properties.product_id"}, "price"),
            "colour": catalog({"@path": "$.properties.product_id"}, "colour"),
            "eu_size": catalog({"@path": "$.properties.product_id"}, "size.eu"),
            "url": catalog({"@path": "$.properties.product_id"}, "url"),  # empty: null
            "gift": catalog({"@path": "$.properties.product_id"}, "gift"),  # null attribute
            "cap": catalog({"@path": "$.properties.number"}, "name"),  # a number names "12"
            "fixed": catalog("12"),  # a raw id, the whole product
            "missing_attribute": catalog("P1", "material"),
            "not_in_catalog": catalog({"@path": "$.properties.other"}, "name"),
            "no_id": catalog({"@path": "$.properties.nothing"}, "name"),
            "uppercase": {"@case": {"operator": "upper", "value": catalog("P1", "brand")}},
        }
    )
    lookup = Lookup()
    assert mapping.apply(EVENT, catalog=lookup) == {
        "name": "Trail shoe",
        "price": 89.9,
        "colour": "red",
        "eu_size": 38,
        "url": None,
        "gift": None,
        "cap": "Cap",
        "fixed": {"id": "12", "name": "Cap", "attributes": {}},
        "uppercase": "ACME",
    }
    assert "P2" in lookup.asked and None not in lookup.asked  # undefined ids are not asked
    # without a lookup (no catalog at hand) every @catalog is undefined: its key left out
    assert mapping.apply(EVENT) == {}


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"@catalog": "P1"}, '$.@catalog: takes an object {"id", "field"}, found a string'),
        ({"@catalog": {"field": "name"}}, '$.@catalog: needs "id"'),
        ({"@catalog": {"id": "P1", "feld": "name"}}, "$.@catalog: takes id and field, not 'feld'"),
        ({"@catalog": {"id": "P1", "field": 3}}, "$.@catalog.field: is a product field"),
        ({"@catalog": {"id": "P1", "field": ""}}, "$.@catalog.field: '' is not a field name"),
        ({"@catalog": {"id": "P1", "field": "quantity"}}, "inventory API"),
        ({"@catalog": {"id": "P1", "field": "name.first"}}, "plain value"),
        (
            {"@catalog": {"id": {"@pth": "$.x"}, "field": "name"}},
            "$.@catalog.id: unknown directive @pth",
        ),
        ({"@catlog": {"id": "P1"}}, "unknown directive @catlog (did you mean @catalog?)"),
    ],
)
def test_a_malformed_catalog_directive_is_refused_when_compiled(
    mapping: dict[str, Any], problem: str
) -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(mapping)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


SENDER = Smtp(
    "mail",
    SmtpSettings.model_validate(
        {
            "host": "smtp.example.com",
            "from": "shop@example.com",
            "subject": "{{ product(properties.product_id).name or 'Your order' }}",
            "text": (
                "{% set p = product(properties.product_id) %}{{ p.brand }} {{ p.price }} "
                "{{ p.attributes.colour }}|{{ product(properties.number).name }}"
                "|{{ product(properties.other).name }}|{{ product(properties.nothing) }}"
            ),
        }
    ),
)


def compose(data: dict[str, Any], lookup: Any) -> tuple[str, str]:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    mail, _to = SENDER.compose(Message("m1", data, data, "orders", 1, at, catalog=lookup))
    body = mail.get_body(("plain",))
    assert body is not None
    return mail["Subject"], str(body.get_content()).strip()


def test_templates_read_a_product_by_id_through_the_lookup() -> None:
    lookup = Lookup()
    assert compose(EVENT, lookup) == ("Trail shoe", "Acme 89.9 red|Cap||")
    # without a catalog, product() is None: its fields render empty
    assert compose(EVENT, None) == ("Your order", "|||")


def test_a_template_cannot_change_what_the_next_one_reads() -> None:
    def lookup(product_id: Any) -> dict[str, Any] | None:
        return CATALOG.get(product_id)

    sender = Smtp(
        "mail",
        SmtpSettings.model_validate(
            {
                "host": "smtp.example.com",
                "from": "shop@example.com",
                "subject": "x",
                "text": "{% set p = product('P1') %}{{ p.update({'name': 'changed'}) }}",
            }
        ),
    )
    data = dict(EVENT)
    sender.compose(
        Message("m1", data, data, "s", 1, datetime(2026, 6, 1, tzinfo=UTC), catalog=lookup)
    )
    assert CATALOG["P1"]["name"] == "Trail shoe"


def unavailable(_product_id: Any) -> dict[str, Any] | None:
    raise CatalogUnavailable("the database is gone")


def test_a_catalog_that_cannot_be_read_is_tried_again_not_failed_for_good() -> None:
    # a mapping lets it through (the dispatcher puts the delivery back for a minute) ...
    mapping = compile_mapping({"name": catalog("P1", "name")})
    with pytest.raises(CatalogUnavailable):
        mapping.apply(EVENT, catalog=unavailable)
    # ... and an e-mail whose template reads a product is retried, not dead
    at = datetime(2026, 6, 1, tzinfo=UTC)
    (attempt,) = SENDER.send([Message("m1", EVENT, EVENT, "orders", 1, at, catalog=unavailable)])
    assert attempt.status is None and (attempt.error or "").startswith("catalog: ")
    assert SENDER.classify(attempt).outcome == "retry"
