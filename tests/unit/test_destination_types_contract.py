"""What every registered destination type promises (OpenCDP's own and those other packages
declare): one body of tests, run against each; a new type is picked up without a line here."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from opencdp.activate.destinations import BUILTIN, registered
from opencdp.activate.destinations.base import DestinationSettings, DestinationType

TYPES = registered()


@pytest.fixture(params=sorted(TYPES))
def kind(request: pytest.FixtureRequest) -> type[DestinationType]:
    return TYPES[request.param]


def build(kind: type[DestinationType]) -> DestinationType:
    return kind("contract", kind.Settings.model_validate(kind.example))


def test_the_builtin_types_are_registered() -> None:
    assert {"webhook", "segment", "smtp", "file"} <= set(BUILTIN) <= set(TYPES)


def test_it_has_a_name_it_is_registered_under_and_a_summary(
    kind: type[DestinationType],
) -> None:
    assert TYPES[kind.name] is kind
    assert kind.name.isidentifier() and kind.name == kind.name.lower()
    assert kind.summary.strip()


def test_its_settings_extend_the_common_ones(kind: type[DestinationType]) -> None:
    assert issubclass(kind.Settings, DestinationSettings)
    assert "retry" in kind.Settings.model_fields


def test_every_setting_is_described(kind: type[DestinationType]) -> None:
    def undescribed(model: type[BaseModel], path: str = "") -> list[str]:
        missing = []
        for name, f in model.model_fields.items():
            if not (f.description or "").strip():
                missing.append(path + name)
            sub = f.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                missing += undescribed(sub, f"{path}{name}.")
        return missing

    assert undescribed(kind.Settings) == []


def test_its_example_validates_and_builds_an_instance(kind: type[DestinationType]) -> None:
    sender = build(kind)
    try:
        assert isinstance(sender, kind)
        assert isinstance(sender.batch_size, int) and sender.batch_size >= 1
    finally:
        sender.close()


def test_unknown_settings_are_refused(kind: type[DestinationType]) -> None:
    with pytest.raises(ValidationError) as caught:
        kind.Settings.model_validate({**kind.example, "colour": "red"})
    assert [e["loc"] for e in caught.value.errors()] == [("colour",)]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"max_age": "forever"}, "max_age"),
        ({"max_age": "90 days"}, "max_age"),
        ({"max_age": "10 seconds"}, "max_age"),
        ({"initial_backoff": "0.1 seconds"}, "initial_backoff"),
        ({"initial_backoff": "2 hours"}, "initial_backoff"),
    ],
)
def test_retry_settings_are_validated(
    kind: type[DestinationType], retry: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        kind.Settings.model_validate({**kind.example, "retry": retry})


def test_secrets_never_show_in_repr(kind: type[DestinationType]) -> None:
    settings = kind.Settings.model_validate(kind.example)
    secrets: list[str] = []
    for name in kind.Settings.model_fields:
        value: Any = getattr(settings, name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, SecretStr):
                secrets.append(v.get_secret_value())
    for secret in secrets:
        assert secret not in repr(settings) and secret not in str(settings)


def test_nothing_to_send_is_no_attempt(kind: type[DestinationType]) -> None:
    sender = build(kind)
    try:
        assert sender.send([]) == []
    finally:
        sender.close()
