"""Which message fields become identifiers (segment-compat.md §2.3), and how values are normalized."""

from __future__ import annotations

from typing import Any

import pytest

from opencdp.identity import (
    Identifier,
    IdentityConfig,
    coerce_value,
    extract_group_identifiers,
    extract_user_identifiers,
    normalize_email,
    normalize_phone,
)

CONFIG = IdentityConfig()


def ids(message: dict[str, Any], config: IdentityConfig = CONFIG) -> list[str]:
    return [str(i) for i in extract_user_identifiers(message, config)]


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "messageId": "m1", "event": "Viewed", **fields}


# -- Identifier ------------------------------------------------------------------------------------


def test_identifier_str_and_parse_round_trip() -> None:
    identifier = Identifier("email", "jane@example.com")
    assert str(identifier) == "email:jane@example.com"
    assert Identifier.parse("email:jane@example.com") == identifier
    # The type ends at the first ':'; values may contain more.
    assert Identifier.parse("user_id:a:b") == Identifier("user_id", "a:b")


@pytest.mark.parametrize("text", ["", "user_id", ":x", "user_id:"])
def test_identifier_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        Identifier.parse(text)


def test_identifiers_are_ordered_and_hashable() -> None:
    a, b = Identifier("email", "b"), Identifier("anonymous_id", "z")
    assert sorted([a, b]) == [b, a]
    assert len({a, Identifier("email", "b")}) == 1


# -- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("a+tag@mail.example.co.uk", "a+tag@mail.example.co.uk"),
        ("jane", None),
        ("jane@", None),
        ("@example.com", None),
        ("jane@localhost", None),
        ("jane@@example.com", None),
        ("ja@ne@example.com", None),
        ("jane@.example.com", None),
        ("jane@example.com.", None),
        ("ja ne@example.com", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_email(raw: object, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 201 555 0123", "US", "+12015550123"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        (2015550123, "US", "+12015550123"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("030 123456", "DE", "+4930123456"),
        ("020 7946 0958", "US", None),  # not a US number
        ("12345", "US", None),
        ("call me", "US", None),
        ("", "US", None),
        (True, "US", None),
        (None, "US", None),
    ],
)
def test_normalize_phone(raw: object, region: str, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  u1 ", "u1"),
        (42, "42"),
        (42.0, "42"),
        (4.5, "4.5"),
        ("", None),
        ("   ", None),
        (True, None),
        (None, None),
        ({"id": 1}, None),
        (["u1"], None),
        (float("nan"), None),
        ("x" * 500, "x" * 500),
        ("x" * 501, None),
    ],
)
def test_coerce_value(raw: object, expected: str | None) -> None:
    assert coerce_value(raw) == expected


# -- users collection: one test per source in §2.3 ------------------------------------------------


def test_user_id_and_anonymous_id() -> None:
    assert ids(track(userId="u1", anonymousId="a1")) == ["user_id:u1", "anonymous_id:a1"]


def test_numeric_ids_are_coerced_and_other_types_ignored() -> None:
    assert ids(track(userId=123, anonymousId={"nested": "object"})) == ["user_id:123"]
    assert ids(track(userId=True, anonymousId=["a"])) == []


def test_values_are_stripped_and_empty_or_overlong_values_dropped() -> None:
    assert ids(track(userId="  u1  ", anonymousId="   ")) == ["user_id:u1"]
    assert ids(track(userId="u" * 501, anonymousId="a1")) == ["anonymous_id:a1"]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "identify", "messageId": "m", "userId": "u1", "traits": {"email": "J@x.io"}},
        track(userId="u1", context={"traits": {"email": "J@x.io"}}),
        track(userId="u1", properties={"email": "J@x.io"}),
    ],
    ids=["traits", "context.traits", "properties"],
)
def test_email_sources(message: dict[str, Any]) -> None:
    assert ids(message) == ["user_id:u1", "email:j@x.io"]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "identify", "messageId": "m", "userId": "u1", "traits": {"phone": "201-555-0123"}},
        track(userId="u1", context={"traits": {"phone": "(201) 555 0123"}}),
        track(userId="u1", properties={"phone": "+1 201 555 0123"}),
    ],
    ids=["traits", "context.traits", "properties"],
)
def test_phone_sources_normalized_to_e164(message: dict[str, Any]) -> None:
    assert ids(message) == ["user_id:u1", "phone:+12015550123"]


def test_phone_uses_the_configured_default_region() -> None:
    config = IdentityConfig(default_phone_region="GB")
    message = track(userId="u1", properties={"phone": "020 7946 0958"})
    assert ids(message, config) == ["user_id:u1", "phone:+442079460958"]
    assert ids(message) == ["user_id:u1"]  # not a valid US number


def test_invalid_email_and_phone_are_not_identifiers() -> None:
    message = track(userId="u1", properties={"email": "not-an-email", "phone": "12"})
    assert ids(message) == ["user_id:u1"]


def test_different_emails_from_several_sources_are_all_kept() -> None:
    message = {
        "type": "identify",
        "messageId": "m",
        "userId": "u1",
        "traits": {"email": "a@x.io"},
        "context": {"traits": {"email": "B@x.io"}},
    }
    assert ids(message) == ["user_id:u1", "email:a@x.io", "email:b@x.io"]


def test_group_traits_describe_the_account_not_the_user() -> None:
    message = {
        "type": "group",
        "messageId": "m",
        "userId": "u1",
        "groupId": "g1",
        "traits": {"email": "billing@acme.io"},
        "context": {"traits": {"email": "jane@acme.io"}},
    }
    assert ids(message) == ["user_id:u1", "email:jane@acme.io"]


@pytest.mark.parametrize("platform", ["ios", "android", "iOS", "Android"])
def test_mobile_device_identifiers(platform: str) -> None:
    device = {
        "id": "dev-1",
        "type": platform,
        "advertisingId": "ad-1",
        "adTrackingEnabled": True,
        "token": "push-1",
    }
    p = platform.lower()
    # All unranked types, so they come out alphabetically ("android.id" < "anonymous_id").
    assert ids(track(anonymousId="a1", context={"device": device})) == sorted(
        ["anonymous_id:a1", f"{p}.id:dev-1", f"{p}.idfa:ad-1", f"{p}.push_token:push-1"]
    )


@pytest.mark.parametrize("enabled", [False, None, "true", 1])
def test_advertising_id_only_when_ad_tracking_is_enabled(enabled: object) -> None:
    device = {"id": "dev-1", "type": "ios", "advertisingId": "ad-1", "adTrackingEnabled": enabled}
    assert ids(track(anonymousId="a1", context={"device": device})) == [
        "anonymous_id:a1",
        "ios.id:dev-1",
    ]


@pytest.mark.parametrize("device_type", ["tv", "web", None, 7])
def test_other_device_types_give_a_plain_device_id(device_type: object) -> None:
    device = {
        "id": "dev-1",
        "type": device_type,
        "advertisingId": "ad-1",
        "adTrackingEnabled": True,
        "token": "push-1",
    }
    assert ids(track(anonymousId="a1", context={"device": device})) == [
        "anonymous_id:a1",
        "device_id:dev-1",
    ]


def test_google_analytics_client_id_from_context_or_top_level_integrations() -> None:
    ga = {"Google Analytics": {"clientId": "123.456"}}
    assert ids(track(anonymousId="a1", context={"integrations": ga})) == [
        "anonymous_id:a1",
        "ga_client_id:123.456",
    ]
    assert ids(track(anonymousId="a1", integrations=ga)) == [
        "anonymous_id:a1",
        "ga_client_id:123.456",
    ]
    # The usual boolean flag carries no client id.
    assert ids(track(anonymousId="a1", integrations={"Google Analytics": True})) == [
        "anonymous_id:a1"
    ]


def test_external_ids_of_the_users_collection() -> None:
    external = [
        {"id": "M-1", "type": "Member_Number", "collection": "users", "encoding": "none"},
        {"id": 77, "type": "crm_id", "collection": "users", "encoding": "none"},
        {"id": "Jane@X.io", "type": "email", "collection": "users", "encoding": "none"},
        {"id": "acme", "type": "domain", "collection": "accounts", "encoding": "none"},
    ]
    assert ids(track(userId="u1", context={"externalIds": external})) == [
        "user_id:u1",
        "email:jane@x.io",
        "crm_id:77",
        "member_number:M-1",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        "member:1",
        None,
        {"id": "1", "collection": "users"},
        {"id": "1", "type": 5, "collection": "users"},
        {"id": "1", "type": "member"},
        {"id": None, "type": "member", "collection": "users"},
        {"id": {"x": 1}, "type": "member", "collection": "users"},
        {"id": "1", "type": "has space", "collection": "users"},
        {"id": "1", "type": "a:b", "collection": "users"},
        {"id": "1", "type": "previous_id", "collection": "users"},
    ],
)
def test_malformed_external_ids_are_skipped_one_by_one(entry: object) -> None:
    good = {"id": "M-1", "type": "member", "collection": "users", "encoding": "none"}
    message = track(userId="u1", context={"externalIds": [entry, good]})
    assert ids(message) == ["user_id:u1", "member:M-1"]


def test_external_ids_that_are_not_a_list_are_ignored() -> None:
    assert ids(track(userId="u1", context={"externalIds": {"id": "x"}})) == ["user_id:u1"]


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("member_number", "member_number"),
        ("member_number", "memberNumber"),
        ("memberNumber", "member_number"),
        ("memberNumber", "memberNumber"),
    ],
)
def test_configured_trait_keys_in_camel_or_snake_case(configured: str, sent: str) -> None:
    config = IdentityConfig(trait_keys={configured: "member_number"})
    for message in (
        {"type": "identify", "messageId": "m", "userId": "u1", "traits": {sent: "M-1"}},
        track(userId="u1", context={"traits": {sent: "M-1"}}),
        track(userId="u1", properties={sent: "M-1"}),
    ):
        assert ids(message, config) == ["user_id:u1", "member_number:M-1"]


def test_trait_keys_mapped_to_email_or_phone_are_normalized() -> None:
    config = IdentityConfig(trait_keys={"work_email": "email", "mobile": "phone"})
    message = track(userId="u1", properties={"workEmail": " W@X.io", "mobile": "201 555 0123"})
    assert ids(message, config) == ["user_id:u1", "email:w@x.io", "phone:+12015550123"]


def test_alias_previous_id_is_returned_for_the_graph_to_resolve() -> None:
    message = {"type": "alias", "messageId": "m", "userId": "u1", "previousId": "a1"}
    assert ids(message) == ["user_id:u1", "previous_id:a1"]


def test_alias_to_itself_links_nothing_extra() -> None:
    message = {"type": "alias", "messageId": "m", "userId": "u1", "previousId": "u1"}
    assert ids(message) == ["user_id:u1"]


def test_previous_id_outside_alias_is_ignored() -> None:
    assert ids(track(userId="u1", previousId="a1")) == ["user_id:u1"]


def test_nested_nulls_are_absent() -> None:
    message = track(
        userId="u1",
        properties={"email": None, "phone": None},
        context={"traits": None, "device": {"id": None, "type": "ios", "token": None}},
        integrations={"Google Analytics": {"clientId": None}},
    )
    assert ids(message) == ["user_id:u1"]


def test_odd_shapes_never_raise() -> None:
    message: dict[str, Any] = {
        "type": "identify",
        "traits": "not a dict",
        "properties": [1, 2],
        "context": "nope",
        "integrations": 3,
    }
    assert ids(message) == []
    assert ids(track(context={"device": "iphone", "integrations": ["x"]})) == []


def test_blocked_values_are_kept_for_the_graph_to_record() -> None:
    assert ids(track(userId="null", anonymousId="0")) == ["user_id:null", "anonymous_id:0"]


def test_result_is_deduplicated_and_ordered_by_priority_then_type_then_value() -> None:
    message = {
        "type": "identify",
        "messageId": "m",
        "userId": "u1",
        "anonymousId": "a1",
        "traits": {"email": "j@x.io", "phone": "+12015550123"},
        "context": {
            "traits": {"email": "J@X.io"},
            "externalIds": [
                {"id": "a0", "type": "anonymous_id", "collection": "users", "encoding": "none"},
                {"id": "u1", "type": "user_id", "collection": "users", "encoding": "none"},
            ],
        },
    }
    assert ids(message) == [
        "user_id:u1",
        "email:j@x.io",
        "anonymous_id:a0",
        "anonymous_id:a1",
        "phone:+12015550123",
    ]
    custom = IdentityConfig(priority=("phone", "anonymous_id"))
    assert ids(message, custom) == [
        "phone:+12015550123",
        "anonymous_id:a0",
        "anonymous_id:a1",
        "email:j@x.io",
        "user_id:u1",
    ]


# -- accounts collection ---------------------------------------------------------------------------


def test_group_call_gives_group_id_and_account_external_ids() -> None:
    message = {
        "type": "group",
        "messageId": "m",
        "userId": "u1",
        "groupId": "g1",
        "context": {
            "externalIds": [
                {"id": "acme.io", "type": "domain", "collection": "accounts", "encoding": "none"},
                {"id": "M-1", "type": "member", "collection": "users", "encoding": "none"},
            ]
        },
    }
    found = extract_group_identifiers(message, IdentityConfig.accounts_default())
    assert [str(i) for i in found] == ["group_id:g1", "domain:acme.io"]


def test_other_calls_use_context_group_id() -> None:
    message = track(userId="u1", groupId="ignored", context={"groupId": 42})
    assert [str(i) for i in extract_group_identifiers(message, CONFIG)] == ["group_id:42"]
    assert extract_group_identifiers(track(userId="u1"), CONFIG) == []
