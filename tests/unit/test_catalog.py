"""The pure catalog: products and stock levels validated and normalised (errors naming the
field), restocks, ETags and list cursors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.catalog import (
    CatalogError,
    decode_cursor,
    encode_cursor,
    etag_matches,
    list_etag,
    product_etag,
    product_from,
    stock_level,
)
from opencdp.catalog.inventory import Restock, StockLevel, StockRow, restocks
from opencdp.catalog.view import product_view

# -- products ---------------------------------------------------------------------------------


def test_a_product_is_normalised() -> None:
    product = product_from(
        {
            "name": " Linen Wrap Dress ",
            "brand": "Northwind",
            "category": "Women>Dresses > Midi",
            "price": "59.90",
            "currency": "eur",
            "url": "https://shop.example/p/FW-1",
            "image_url": "https://cdn.example/FW-1.jpg",
            "parent_id": "FW",
            "colour": "sand",
            "attributes": {"material": "linen"},
            "stock": [{"location": "web", "quantity": 3}],
            "in_stock": True,
        },
        "FW-1",
    )
    assert product.id == "FW-1" and product.sku == "FW-1"
    assert product.name == "Linen Wrap Dress"
    assert product.category == "Women > Dresses > Midi"
    assert product.price == 59.9 and product.currency == "EUR"
    assert product.parent_id == "FW"
    # every other field is an attribute; what reads answer is not
    assert product.attributes == {"colour": "sand", "material": "linen"}


def test_a_category_list_is_a_path() -> None:
    assert product_from({"id": "a", "category": ["Men", " Shirts "]}).category == "Men > Shirts"
    assert product_from({"id": "a", "category": "  "}).category is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": 5}, "id"),
        ({"id": "x" * 201}, "id"),
        ({"id": "a", "price": -1}, "price"),
        ({"id": "a", "price": True}, "price"),
        ({"id": "a", "price": "1e5"}, "price"),
        ({"id": "a", "currency": "EURO"}, "currency"),
        ({"id": "a", "currency": "€"}, "currency"),
        ({"id": "a", "url": "shop.example/p/1"}, "url"),
        ({"id": "a", "image_url": "javascript:alert(1)"}, "image_url"),
        ({"id": "a", "category": "Women >> Shoes"}, "category"),
        ({"id": "a", "category": ["Women", "Sho>es"]}, "category"),
        ({"id": "a", "category": 7}, "category"),
        ({"id": "a", "parent_id": "a"}, "parent_id"),
        ({"id": "a", "name": 5}, "name"),
        ({"id": "a", "sku": None}, "sku"),
        ({"id": "a", "attributes": [1]}, "attributes"),
        ({"id": "a", "attributes": None}, "attributes"),
        ({"id": "a", "blob": "x" * 40_000}, "attributes"),
        ({"name": "no id"}, "id"),
    ],
)
def test_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogError) as caught:
        product_from(body)
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert caught.value.status == 400


def test_the_body_cannot_name_another_product_than_the_path() -> None:
    with pytest.raises(CatalogError, match="product_id: the body names 'b', the path 'a'"):
        product_from({"product_id": "b"}, "a")
    assert product_from({"id": "a", "sku": "SKU-9"}, "a").sku == "SKU-9"


# -- stock ------------------------------------------------------------------------------------


def test_a_stock_level() -> None:
    assert stock_level({"location": " web ", "quantity": 3}, "p") == StockLevel("p", "web", 3)
    assert stock_level({"product_id": "p", "location": "s1", "quantity": 2.0}) == StockLevel(
        "p", "s1", 2
    )
    # a file's cells are text
    assert stock_level({"product_id": "p", "location": 7, "quantity": " 12 "}, from_file=True) == (
        StockLevel("p", "7", 12)
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"location": "web", "quantity": -1}, "quantity"),
        ({"location": "web", "quantity": 1.5}, "quantity"),
        ({"location": "web", "quantity": "3"}, "quantity"),
        ({"location": "web", "quantity": True}, "quantity"),
        ({"location": "web", "quantity": 2**31}, "quantity"),
        ({"location": "", "quantity": 1}, "location"),
        ({"location": "x" * 101, "quantity": 1}, "location"),
        ({"location": 5, "quantity": 1}, "location"),
        ({"quantity": 1}, "location"),
        ({"location": "web"}, "quantity"),
        ({"location": "web", "quantity": 1, "colour": "red"}, "colour"),
        ({"location": "web", "quantity": 1, "product_id": "other"}, "product_id"),
        ({"location": "web", "quantity": 1, "product_id": None}, "product_id"),
    ],
)
def test_stock_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogError) as caught:
        stock_level(body, "p")
    assert caught.value.field == field and caught.value.code == "invalid_stock"


def test_restocks_are_levels_from_zero_or_none_to_above_zero() -> None:
    before = {("a", "web"): 0, ("b", "web"): 2, ("c", "web"): 0}
    after = {("a", "web"): 5, ("b", "web"): 7, ("c", "web"): 0, ("d", "s1"): 1}
    assert restocks(before, after) == [Restock("a", "web", 0, 5), Restock("d", "s1", 0, 1)]


# -- ETags and cursors ------------------------------------------------------------------------

_ROW: dict[str, Any] = {
    "id": "p",
    "sku": "p",
    "name": "Dress",
    "brand": "Northwind",
    "category": "Women > Dresses",
    "price": 59.0,
    "currency": "EUR",
    "url": None,
    "image_url": None,
    "parent_id": None,
    "attributes": '{"colour":"sand"}',
    "created_us": 1,
    "updated_us": 2,
}
_STOCK = [StockRow("s1", 0, 5), StockRow("web", 3, 6)]
_values = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(-(2**63), 2**63 - 1),  # what a BIGINT column holds
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(key=st.sampled_from(sorted(_ROW)), value=_values)
def test_an_etag_changes_with_any_field(key: str, value: Any) -> None:
    changed = {**_ROW, key: value}
    same = type(value) is type(_ROW[key]) and value == _ROW[key]
    assert (product_etag(changed, _STOCK) == product_etag(_ROW, _STOCK)) == same


@given(
    index=st.integers(0, 1),
    part=st.integers(0, 2),
    value=st.one_of(st.integers(0, 10), st.text(max_size=3)),
)
def test_an_etag_changes_with_any_stock_row(index: int, part: int, value: Any) -> None:
    rows = list(_STOCK)
    fields = list(rows[index])
    fields[part] = value
    rows[index] = StockRow(*fields)
    same = type(value) is type(_STOCK[index][part]) and rows == _STOCK
    assert (product_etag(_ROW, rows) == product_etag(_ROW, _STOCK)) == same


def test_an_etag_is_the_same_for_the_same_content_and_changes_with_variants() -> None:
    assert product_etag(dict(_ROW), list(_STOCK)) == product_etag(_ROW, _STOCK)
    assert product_etag(_ROW, _STOCK, ["p-s"]) != product_etag(_ROW, _STOCK)
    assert product_etag(_ROW, _STOCK).startswith('W/"')
    assert list_etag([{"id": "a"}], None) != list_etag([{"id": "a"}], "YQ")


def test_if_none_match() -> None:
    tag = product_etag(_ROW, _STOCK)
    assert etag_matches(tag, tag)
    assert etag_matches(tag.removeprefix("W/"), tag)  # weak comparison
    assert etag_matches(f'"other", {tag}', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"other"', tag)
    assert not etag_matches(None, tag)


@given(st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
def test_a_cursor_round_trips(last_id: str) -> None:
    cursor = encode_cursor(last_id)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == last_id


@pytest.mark.parametrize("cursor", ["", "!!", "a", "A", "_w", "wA", "AA" * 300])
def test_a_cursor_the_api_did_not_give_is_refused(cursor: str) -> None:
    with pytest.raises(CatalogError, match="next: not a cursor this API returned"):
        decode_cursor(cursor)


def test_the_view() -> None:
    view = product_view(_ROW, _STOCK, ["p-s"])
    assert view["attributes"] == {"colour": "sand"}
    assert view["in_stock"] is True and view["variants"] == ["p-s"]
    assert view["stock"][1] == {
        "location": "web",
        "quantity": 3,
        "updated_at": "1970-01-01T00:00:00.000Z",
    }
    assert "variants" not in product_view(_ROW, [StockRow("web", 0, 1)])
    assert product_view(_ROW, [])["in_stock"] is False
