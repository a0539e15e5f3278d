"""Identity settings: defaults, blocked values, limits, priority and their JSON form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opencdp.errors import ConfigurationError
from opencdp.identity import DEFAULT_LIMITS, Identifier, IdentityConfig, Limit

DAY_US = 86_400 * 1_000_000


# -- Limit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "days"),
    [("ever", None), ("daily", 1), ("weekly", 7), ("monthly", 30), ("annually", 365)],
)
def test_limit_windows(window: str, days: int | None) -> None:
    expected = None if days is None else days * DAY_US
    assert Limit(5, window).window_us == expected


def test_limit_defaults_to_ever() -> None:
    assert Limit(1) == Limit(1, "ever")
    assert Limit(1).window_us is None


@pytest.mark.parametrize(
    ("max_values", "window", "message"),
    [
        (0, "ever", "max_values"),
        (-1, "ever", "max_values"),
        (True, "ever", "max_values"),
        (1.5, "ever", "max_values"),
        (1, "hourly", "use one of ever, daily, weekly, monthly, annually"),
        (1, "Weekly", "use one of"),
    ],
)
def test_limit_validation(max_values: Any, window: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Limit(max_values, window)


# -- defaults ----------------------------------------------------------------------------------------


def test_default_limits_follow_segment() -> None:
    config = IdentityConfig()
    assert config.limit_for("user_id") == Limit(1, "ever")
    assert config.limit_for("anonymous_id") == Limit(5, "weekly")
    assert config.limit_for("email") == Limit(5, "annually")
    assert config.limit_for("ga_client_id") == Limit(5, "ever")
    assert config.limit_for("anything.else") == config.default_limit == Limit(5, "ever")
    assert (config.max_merges, config.max_identifiers) == (100, 1000)
    assert config.default_phone_region == "US"


def test_limit_overrides_keep_the_defaults_they_do_not_mention() -> None:
    # A partial override must not silently lift the user_id limit of 1.
    config = IdentityConfig(limits={"email": Limit(2, "monthly")})
    assert config.limit_for("email") == Limit(2, "monthly")
    assert config.limit_for("user_id") == Limit(1, "ever")
    assert config.limit_for("anonymous_id") == DEFAULT_LIMITS["anonymous_id"]


def test_default_limit_can_be_changed() -> None:
    config = IdentityConfig(default_limit=Limit(3, "daily"))
    assert config.limit_for("ios.id") == Limit(3, "daily")
    assert config.limit_for("user_id") == Limit(1, "ever")


# -- blocked values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        *("-1", "null", "NULL", "Null", "anonymous", "undefined", "None"),
        *("nil", "void", "abc123", "test", "TEST", "0"),
    ],
)
def test_default_blocked_exact_values_case_insensitive(value: str) -> None:
    assert IdentityConfig().is_blocked(Identifier("user_id", value))


@pytest.mark.parametrize("value", ["00000", "---", "0-0-0", "00000000-0000-0000-0000-000000000000"])
def test_default_blocked_pattern_zeroes_and_dashes(value: str) -> None:
    assert IdentityConfig().is_blocked(Identifier("ios.idfa", value))


@pytest.mark.parametrize("value", ["u1", "10", "a0", "-1-", "null1", "testing", "0x0", "jane@x.io"])
def test_real_values_are_not_blocked(value: str) -> None:
    assert not IdentityConfig().is_blocked(Identifier("user_id", value))


def test_custom_blocked_values_and_patterns() -> None:
    config = IdentityConfig(blocked_exact=frozenset({"Guest"}), blocked_patterns=(r"^tmp-",))
    assert config.is_blocked(Identifier("user_id", "guest"))
    assert config.is_blocked(Identifier("user_id", "tmp-42"))
    assert not config.is_blocked(Identifier("user_id", "null"))  # defaults replaced
    assert not config.is_blocked(Identifier("user_id", "my-tmp-42"))


# -- priority ----------------------------------------------------------------------------------------


def test_default_rank_user_id_then_email_then_alphabetical() -> None:
    config = IdentityConfig()
    types = ["phone", "anonymous_id", "email", "user_id", "android.id"]
    assert sorted(types, key=config.rank) == [
        "user_id",
        "email",
        "android.id",
        "anonymous_id",
        "phone",
    ]


def test_custom_priority() -> None:
    config = IdentityConfig(priority=("member_number", "email", "user_id"))
    types = ["user_id", "anonymous_id", "email", "member_number"]
    assert sorted(types, key=config.rank) == [
        "member_number",
        "email",
        "user_id",
        "anonymous_id",
    ]


# -- JSON ---------------------------------------------------------------------------------------------


def custom_config() -> IdentityConfig:
    return IdentityConfig(
        blocked_exact=frozenset({"guest", "null"}),
        blocked_patterns=(r"^0+$", r"^tmp-"),
        limits={"email": Limit(3, "monthly"), "member": Limit(1)},
        default_limit=Limit(10, "annually"),
        priority=("member", "user_id", "email"),
        max_merges=7,
        max_identifiers=50,
        trait_keys={"memberNumber": "member"},
        default_phone_region="DE",
    )


@pytest.mark.parametrize("config", [IdentityConfig(), custom_config()], ids=["default", "custom"])
def test_to_dict_from_dict_round_trip_through_json(config: IdentityConfig) -> None:
    stored = json.dumps(config.to_dict())
    assert IdentityConfig.from_dict(json.loads(stored)) == config


def test_from_dict_applies_overrides_on_base() -> None:
    base = custom_config()
    config = IdentityConfig.from_dict(
        {"max_merges": 3, "limits": {"anonymous_id": {"max_values": 2, "window": "daily"}}},
        base=base,
    )
    assert config.max_merges == 3
    assert config.limit_for("anonymous_id") == Limit(2, "daily")
    # limits are applied type by type; everything not mentioned comes from base
    assert config.limit_for("email") == Limit(3, "monthly")
    assert config.limit_for("member") == Limit(1)
    assert config.priority == base.priority
    assert config.trait_keys == base.trait_keys


def test_from_dict_empty_is_the_default() -> None:
    assert IdentityConfig.from_dict({}) == IdentityConfig()


def test_limit_window_defaults_to_ever_in_json() -> None:
    config = IdentityConfig.from_dict({"limits": {"member": {"max_values": 2}}})
    assert config.limit_for("member") == Limit(2, "ever")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"max_merge": 3}, r"unknown identity settings \['max_merge'\]"),
        ({"limits": []}, "limits must be an object"),
        ({"limits": {"email": 3}}, r"limits\['email'\] must be an object like"),
        ({"limits": {"email": {"window": "weekly"}}}, "needs max_values"),
        ({"limits": {"email": {"max_values": 0}}}, r"limits\['email'\]: .*>= 1"),
        ({"limits": {"email": {"max_values": 2, "window": "hourly"}}}, "use one of"),
        ({"limits": {"email": {"max_values": 2, "window": 7}}}, "window must be a string"),
        ({"limits": {"email": {"max_values": 2, "every": "day"}}}, "unknown keys"),
        ({"limits": {"Bad Type": {"max_values": 2}}}, "not a valid identifier type"),
        ({"default_limit": {"max_values": "5"}}, "default_limit: .*whole number"),
        ({"blocked_exact": "null"}, "blocked_exact must be a list of strings"),
        ({"blocked_exact": ["null", 0]}, "blocked_exact must be a list of strings"),
        ({"blocked_patterns": ["("]}, "not a valid regular expression"),
        ({"priority": ["user_id", "user_id"]}, "lists a type twice"),
        ({"priority": ["User Id"]}, "not a valid identifier type"),
        ({"max_merges": -1}, "max_merges must be a whole number >= 0"),
        ({"max_merges": "10"}, "max_merges must be a whole number"),
        ({"max_identifiers": 0}, "max_identifiers must be a whole number >= 1"),
        ({"max_identifiers": True}, "max_identifiers must be a whole number"),
        ({"trait_keys": ["member"]}, "trait_keys must be an object"),
        ({"trait_keys": {"member": "Member Number"}}, "not a valid identifier type"),
        ({"trait_keys": {"member": "previous_id"}}, "not previous_id"),
        ({"trait_keys": {"": "member"}}, "not a trait key"),
        ({"default_phone_region": "usa"}, "not a region code"),
        ({"default_phone_region": 1}, "must be a string"),
    ],
)
def test_from_dict_validation_says_what_to_fix(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        IdentityConfig.from_dict(override)


def test_from_dict_rejects_a_non_object() -> None:
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        IdentityConfig.from_dict(["max_merges", 1])  # type: ignore[arg-type]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigurationError, match="not a valid regular expression"):
        IdentityConfig(blocked_patterns=("[",))
    with pytest.raises(ConfigurationError, match="must be a Limit"):
        IdentityConfig(limits={"email": 5})  # type: ignore[dict-item]


def test_config_is_immutable_hashable_and_comparable() -> None:
    a, b = custom_config(), custom_config()
    assert a == b and hash(a) == hash(b)
    assert a != IdentityConfig()
    with pytest.raises(TypeError):
        a.limits["email"] = Limit(1)  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.max_merges = 1  # type: ignore[misc]


def test_accounts_default_ranks_group_id_first_with_one_value() -> None:
    config = IdentityConfig.accounts_default()
    assert config.limit_for("group_id") == Limit(1)
    assert sorted(["domain", "group_id"], key=config.rank) == ["group_id", "domain"]
