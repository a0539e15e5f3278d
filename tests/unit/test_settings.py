"""Settings: precedence, secrets masked, every setting documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencdp.settings import Settings, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in Settings.model_fields if f"`OPENCDP_{name.upper()}`" not in text]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "opencdp.toml"
    config.write_text('port = 7000\nhost = "0.0.0.0"\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("OPENCDP_CONFIG_FILE", str(config))
    monkeypatch.setenv("OPENCDP_PORT", "7100")
    monkeypatch.setenv("OPENCDP_HOST", "127.0.0.2")
    s = load_settings(port=7200, host=None)
    assert s.port == 7200  # flag
    assert s.host == "127.0.0.2"  # environment (flag was None)
    assert s.log_level == "DEBUG"  # file


def test_nested_and_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCDP_IDENTITY_TRAIT_KEYS", '{"loyalty_card": "loyalty_card"}')
    assert Settings().identity_trait_keys == {"loyalty_card": "loyalty_card"}


def test_secrets_are_masked() -> None:
    s = Settings(bootstrap_write_key="super-secret-key", bootstrap_token="super-secret-token")
    assert "super-secret" not in repr(s)
    assert "super-secret" not in str(s.model_dump())


def test_default_database_is_sqlite_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/opencdp.db"
    assert (
        Settings(database_url="postgresql+psycopg://x@h/db")
        .resolved_database_url()
        .startswith("postgresql")
    )
