"""Import mappings: presets load, examples match presets, and mistakes name the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencdp.errors import ConfigurationError
from opencdp.imports.mapping import ROW_COLUMN, parse_mapping
from opencdp.imports.presets import PRESETS, preset_text, resolve_mapping

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mappings"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_parse_and_examples_are_the_same_files(name: str) -> None:
    mapping = parse_mapping(preset_text(name), name=name)
    assert mapping.kind in ("customers", "orders")
    assert (EXAMPLES / PRESETS[name]).read_text(encoding="utf-8") == preset_text(name)


def test_cdnow_preset_keys_orders_by_row_number() -> None:
    m = resolve_mapping("cdnow", "orders")
    assert m.key == (ROW_COLUMN,)
    assert m.format == "whitespace"
    assert m.fields["timestamp"].format == "yyyymmdd"
    assert m.constants["currency"] == "USD"


def test_defaults_key_from_the_id_field_and_types_from_the_field() -> None:
    m = parse_mapping(
        "kind: orders\nfields: {order_id: id, user_id: cust, timestamp: at, total: amount}"
    )
    assert m.key == ("id",)
    assert m.fields["timestamp"].type == "datetime"
    assert m.fields["total"].type == "decimal"
    assert m.fields["total"].invalid == "reject"


def test_email_defaults_to_keep_invalid_values() -> None:
    m = parse_mapping("kind: customers\nfields: {user_id: id, email: mail}")
    assert m.fields["email"].type == "email"
    assert m.fields["email"].invalid == "keep"


def test_events_without_fields_pass_through() -> None:
    m = resolve_mapping(None, "events")
    assert m.passthrough


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind: orderz", "kind: must be one of"),
        ("kind: orders\nfields: {order_id: a, user_id: b}", "fields.timestamp"),
        ("kind: orders\nfields: {order_id: a, timestamp: t}", "user_id, email or anonymous_id"),
        ("kind: customers\nfields: {user_id: a, emial: b}", "fields.emial: unknown field"),
        ("kind: customers\nfields: {user_id: {column: a, type: number}}", "fields.user_id.type"),
        ("kind: customers\nfields: {user_id: {column: a, value: b}}", "exactly one of column"),
        (
            "kind: customers\nfields: {user_id: a, created_at: {column: c, format: 3}}",
            "created_at.format",
        ),
        ("kind: customers\nfields: {user_id: a}\nfrobnicate: 1", "frobnicate: unknown key"),
        ("kind: customers\nkey: [a]\nfields: {email: a}", "user_id (or anonymous_id)"),
        ("kind: products\nfields: {name: n}", "fields.id"),
        ("kind: customers\nfields: {user_id: a}\nitems: {sku: s}", "line items belong to orders"),
        ("kind: [", "not valid YAML"),
    ],
)
def test_mistakes_are_named(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_mapping(text, name="m.yaml")
    assert needle in info.value.message
    assert info.value.message.startswith("m.yaml")


def test_a_mapping_for_another_kind_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="imports orders, not customers"):
        resolve_mapping("cdnow", "customers")


def test_missing_mapping_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="needs --mapping"):
        resolve_mapping(None, "orders")


def test_digest_changes_with_content() -> None:
    a = parse_mapping("kind: customers\nfields: {user_id: a}")
    b = parse_mapping("kind: customers\nfields: {user_id: b}")
    assert a.digest != b.digest
