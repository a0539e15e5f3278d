"""A database that cannot be reached is one clear message and exit code 1, not a traceback."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from opencdp.cli.main import app
from tests.support.pg import free_port

pytestmark = pytest.mark.e2e


def status(url: str) -> Any:
    return CliRunner().invoke(app, ["status", "--database-url", url])


def test_a_missing_postgresql_database_says_how_to_create_it(pg_cluster: Any) -> None:
    url = make_url(pg_cluster.new_database()).set(database="no_such_db")
    result = status(url.render_as_string(hide_password=False))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "database 'no_such_db' does not exist" in text
    assert "createdb -h" in text and "no_such_db" in text
    assert "Traceback" not in result.output and len(result.output.splitlines()) < 10


def test_a_stopped_postgresql_server_says_to_start_it_or_check_the_url() -> None:
    result = status(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/opencdp")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "no PostgreSQL server answers at 127.0.0.1" in text
    assert "OPENCDP_DATABASE_URL" in text
    assert "Traceback" not in result.output
