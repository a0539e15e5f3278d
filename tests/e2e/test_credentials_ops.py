"""Credentials: stored as keyed hashes (legacy rows upgraded on use), and rotated, revoked and
disabled through the command line while a server keeps running."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from opencdp.cli.main import app
from opencdp.clock import FrozenClock
from opencdp.runtime import Runtime
from opencdp.storage.schema import access_tokens, sources
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings

pytestmark = pytest.mark.e2e


def cli(tmp_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    return result


def secret_from(output: str, label: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return line[len(label) :].split()[0]


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a Rich table, as cells."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


@pytest.fixture
def server(tmp_path: Path) -> Any:
    clock = FrozenClock()
    runtime = Runtime(make_settings(tmp_path), clock)
    client = TestClient(create_app(runtime, start_worker=False))
    yield runtime, client, clock
    client.close()
    runtime.close()


def test_secrets_are_stored_as_keyed_hashes(tmp_path: Path, database_url: str | None) -> None:
    runtime = Runtime(make_settings(tmp_path, database_url))
    try:
        with runtime.db.read() as conn:
            stored = conn.execute(select(access_tokens.c.token_hash)).scalars().all()
        # Not the plain SHA-256 a stolen database would let anyone test guesses against
        assert hashlib.sha256(TOKEN.encode()).hexdigest() not in stored
        assert runtime.admin.token_for_secret(TOKEN) is not None
        key_file = tmp_path / "data" / "secret.key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    finally:
        runtime.close()
    # With another server secret, the same database authenticates nobody
    other = Runtime(
        make_settings(
            tmp_path,
            database_url,
            secret_key="another-secret",
            bootstrap_token=None,
            bootstrap_write_key=None,
        )
    )
    try:
        assert other.admin.token_for_secret(TOKEN) is None
        assert other.admin.source_for_key(WRITE_KEY) is None
    finally:
        other.close()


def test_legacy_unkeyed_hashes_still_work_and_are_upgraded(
    tmp_path: Path, database_url: str | None
) -> None:
    runtime = Runtime(make_settings(tmp_path, database_url))
    try:
        # Given rows stored by an earlier version (plain SHA-256)
        with runtime.db.write() as conn:
            conn.execute(
                update(access_tokens).values(token_hash=hashlib.sha256(TOKEN.encode()).hexdigest())
            )
            conn.execute(
                update(sources).values(
                    write_key_hash=hashlib.sha256(WRITE_KEY.encode()).hexdigest()
                )
            )
        # Then they still authenticate, and are stored keyed from then on
        assert runtime.admin.token_for_secret(TOKEN) is not None
        assert runtime.admin.source_for_key(WRITE_KEY) is not None
        with runtime.db.read() as conn:
            assert conn.execute(select(access_tokens.c.token_hash)).scalar_one() != (
                hashlib.sha256(TOKEN.encode()).hexdigest()
            )
        assert runtime.admin.token_for_secret("wrong") is None
    finally:
        runtime.close()


def test_token_rotate_and_revoke(server: Any, tmp_path: Path) -> None:
    _runtime, client, clock = server
    traits = "/v1/spaces/default/collections/users/profiles/user_id:nobody/traits"
    assert client.get(traits, headers=basic(TOKEN)).status_code == 404
    # When the token is rotated from the command line
    [[token_id, name, *_]] = table_rows(cli(tmp_path, "token", "list").output)
    assert token_id.startswith("tok_")
    new = secret_from(cli(tmp_path, "token", "rotate", name).output, "secret:")
    clock.advance(11)  # the server's token cache
    # Then the old secret is refused and the new one works
    assert client.get(traits, headers=basic(TOKEN)).status_code == 401
    assert client.get(traits, headers=basic(new)).status_code == 404
    # When it is revoked, nothing works any more
    cli(tmp_path, "token", "revoke", name)
    clock.advance(11)
    assert client.get(traits, headers=basic(new)).status_code == 401
    assert name not in cli(tmp_path, "token", "list").output


def test_source_disable_enable_and_rotate_key(server: Any, tmp_path: Path) -> None:
    _runtime, client, clock = server
    event = {"userId": "u-1", "event": "Clicked"}

    def track(key: str) -> int:
        return client.post("/v1/track", json=event, headers=basic(key)).status_code

    assert track(WRITE_KEY) == 200
    [[_id, source, *_]] = table_rows(cli(tmp_path, "source", "list").output)
    cli(tmp_path, "source", "disable", source)
    clock.advance(11)
    response = client.post("/v1/track", json=event, headers=basic(WRITE_KEY))
    assert (response.status_code, response.json()["code"]) == (401, "source_disabled")
    cli(tmp_path, "source", "enable", source)
    clock.advance(11)
    assert track(WRITE_KEY) == 200
    new = secret_from(cli(tmp_path, "source", "rotate-key", source).output, "write key:")
    clock.advance(11)
    assert track(WRITE_KEY) == 401
    assert track(new) == 200


def test_unknown_names_say_what_to_do(tmp_path: Path) -> None:
    cli(tmp_path, "token", "list")
    result = CliRunner().invoke(
        app, ["token", "revoke", "nope", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 1 and "opencdp token list" in result.output


def test_tables_are_not_cut_when_piped(tmp_path: Path) -> None:
    # CliRunner's output is not a terminal, as in `opencdp token list | grep …`
    cli(tmp_path, "token", "add", "a-token-with-a-rather-long-descriptive-name-for-the-shop")
    rows = table_rows(cli(tmp_path, "token", "list").output)
    assert "a-token-with-a-rather-long-descriptive-name-for-the-shop" in [r[1] for r in rows]
    assert all(len(r[0]) == 26 for r in rows)  # tok_ + 22 characters, never cut
