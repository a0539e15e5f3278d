"""Workspace privacy settings: what parse_settings accepts, and the field it names otherwise."""

from __future__ import annotations

import pytest

from opencdp.privacy.workspace_settings import WorkspaceSettings, parse_settings


@pytest.mark.parametrize(
    "origin", ["https://shop.example", "http://localhost:8080", "https://a.b-c.example", "*"]
)
def test_an_origin_is_a_scheme_a_host_and_a_port(origin: str) -> None:
    assert parse_settings({"self_service_origins": [origin]}).self_service_origins == (origin,)


@pytest.mark.parametrize(
    ("origin", "says"),
    [
        ("shop.example", "is not an origin"),
        ("https://shop.example/", "must not end with '/'"),
        ("https://shop.example/path", "is not an origin"),
        ("http://[", "is not an origin"),
        ("https://user@shop.example", "is not an origin"),
        ("https://shop example", "is not an origin"),
        ("ftp://shop.example", "is not an origin"),
    ],
)
def test_anything_else_is_refused_naming_the_field(origin: str, says: str) -> None:
    with pytest.raises(ValueError, match="self_service_origins") as raised:
        parse_settings({"self_service_origins": [origin]})
    assert says in str(raised.value)


def test_fields_not_given_keep_their_value() -> None:
    base = parse_settings({"consent_default": "opt-out", "self_service_link_ttl": 600})
    changed = parse_settings({"self_service_traits": ["address"]}, base=base)
    assert changed == WorkspaceSettings("opt-out", ("address",), (), 600)
