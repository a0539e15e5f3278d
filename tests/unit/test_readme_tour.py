"""The README's tour must work as written against `make demo`: the same credentials and port."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from opencdp.demo.loader import DEMO_SUPPORT_TOKEN, DEMO_TOKEN, DEMO_WRITE_KEY, check_port_free
from opencdp.errors import ConfigurationError
from opencdp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_tour_uses_the_demo_credentials() -> None:
    readme = (ROOT / "README.md").read_text()
    users = set(re.findall(r"curl[^\n]*?-u ([\w-]+):", readme))
    assert users, "the README shows no authenticated curl"
    assert users <= {DEMO_TOKEN, DEMO_WRITE_KEY, DEMO_SUPPORT_TOKEN}, users
    assert {DEMO_TOKEN, DEMO_WRITE_KEY} <= users


def test_the_tour_port_is_the_default_port_of_make_demo_and_serve() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    default = Settings.model_fields["port"].default
    assert re.search(rf"^PORT \?= {default}$", makefile, re.M)
    ports = {int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", readme)}
    assert ports == {default}, ports


def test_a_taken_port_is_reported_before_loading() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"PORT={port + 1}"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again once closed
