"""What the security and reliability probe found (issue 7 §3), each pinned by a test.

Every request here is a client's mistake or an attack: the answer is a 4xx in the documented
shape (``{"code","message"}``; Segment's ``{"error":{…}}`` on the Profile API), never a 500, and
nothing of the request's personal data reaches the log. Run on both backends: PostgreSQL refuses
what SQLite lets pass (NUL characters, 64-bit overflows).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from opencdp.identity.identifiers import Identifier
from opencdp.identity.rules import IdentityConfig
from tests.conftest import TOKEN, basic
from tests.e2e.test_bad_input import Cdp, fresh_cdp

pytestmark = pytest.mark.e2e

PROFILE = "/v1/spaces/default/collections/users/profiles"


@pytest.fixture
def cdp(tmp_path: Path, database_url: str | None) -> Iterator[Cdp]:
    yield from fresh_cdp(tmp_path, database_url)


def api(cdp: Cdp, method: str, path: str, body: Any = None, **params: Any) -> Any:
    content = None if body is None else orjson.dumps(body)
    return cdp.client.request(method, path, content=content, params=params, headers=basic(TOKEN))


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def a_profile(cdp: Cdp) -> str:
    assert cdp.post(
        "/v1/identify", {"userId": "u-1", "traits": {"email": "a@example.com"}}
    ).is_success
    cdp.drain()
    return f"{PROFILE}/user_id:u-1"


# -- 500s that must be 4xx ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resource", "forged"),
    [
        ("events", [1 << 63, "m"]),
        ("events", [-(1 << 64), "m"]),
        ("external_ids", 1 << 63),
        ("events", [10**30, "m"]),
    ],
)
def test_a_forged_cursor_is_a_400_in_the_profile_api_shape(
    cdp: Cdp, resource: str, forged: Any
) -> None:
    base = a_profile(cdp)
    response = cdp.client.get(
        f"{base}/{resource}", params={"next": cursor(forged)}, headers=basic(TOKEN)
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "overrides",
    [
        {"limits": {"email": {"max_values": 0}}},
        {"limits": {"email": {"max_values": 1, "colour": "red"}}},
        {"no_such_rule": True},
        {"priority": [1, 2]},
        {"priority": ["email", "email"]},
        {"blocked_patterns": ["(a)\\1"]},  # a backreference: RE2 cannot run it
        {"blocked_patterns": ["x" * 5000]},
        {"max_merges": -1},
    ],
)
def test_invalid_identity_rules_are_a_400_that_names_the_problem(
    cdp: Cdp, overrides: dict[str, Any]
) -> None:
    response = api(cdp, "PUT", "/api/workspaces/default/identity-rules", overrides)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_rules"
    # Nothing was stored: the rules in force are still the defaults.
    assert api(cdp, "GET", "/api/workspaces/default/identity-rules").json()["overrides"] is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"{PROFILE}/user_id:u-1/no-such-resource", 404),
        ("DELETE", f"{PROFILE}/user_id:u-1/traits", 405),
        ("GET", f"{PROFILE}/user_id:nobody/traits", 404),
        ("GET", "/v1/spaces/default/collections/users/profiles/user_id:u-1/traits", 401),
    ],
)
def test_profile_api_errors_keep_segments_error_shape(
    cdp: Cdp, method: str, path: str, status: int
) -> None:
    headers = {} if status == 401 else basic(TOKEN)
    response = cdp.client.request(method, path, headers=headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}


# -- NUL characters -------------------------------------------------------------------------------
NUL = "a\x00b"


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/api/contacts", {"identifiers": {"email": f"{NUL}@example.com"}}, {}),
        ("POST", "/api/contacts", {"identifiers": {"user_id": "u"}, "traits": {"x": NUL}}, {}),
        ("GET", f"{PROFILE}/{quote('email:' + NUL)}/traits", None, {}),
        ("GET", f"{PROFILE}/{quote('user_id:' + NUL)}/events", None, {}),
        ("GET", "/api/quarantine", None, {"reason": NUL}),
        ("GET", "/api/quarantine", None, {"source": NUL}),
        ("GET", "/api/quarantine/stats", None, {"event": NUL}),
        ("GET", f"/api/tracking-plans/{quote(NUL)}", None, {}),
        ("PUT", f"/api/tracking-plans/{quote(NUL)}", {"rules": []}, {}),
        ("PUT", "/api/tracking-plans/p1", {"name": NUL, "rules": []}, {}),
        ("PUT", "/api/sources/bootstrap/schema-settings", {"trackingPlanId": NUL}, {}),
        ("GET", f"/api/sources/{quote(NUL)}/schema-settings", None, {}),
        ("POST", "/api/quarantine/replay", {"reason": NUL}, {}),
        ("PUT", "/api/workspaces/default/identity-rules", {"blocked_exact": [NUL]}, {}),
    ],
)
def test_a_nul_character_anywhere_is_a_400_never_a_500(
    cdp: Cdp, method: str, path: str, body: Any, params: dict[str, str]
) -> None:
    response = api(cdp, method, path, body, **params)
    assert response.status_code == 400, response.text
    payload = response.json()
    error = payload["error"] if path.startswith("/v1/spaces/") else payload
    assert "NUL" in error["message"]


def test_sql_parameters_and_personal_data_never_reach_the_log(
    cdp: Cdp, caplog: pytest.LogCaptureFixture
) -> None:
    """A database error (here: a value PostgreSQL cannot store, forced past the edge checks)
    is logged without its parameters."""
    from sqlalchemy import insert

    from opencdp.storage.schema import inbox

    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as raised, cdp.runtime.db.write() as conn:
        conn.execute(
            insert(inbox),
            [
                {
                    "workspace_id": "default",
                    "source_id": None,
                    "message_id": "secret.person@example.com",
                    "received_us": "not a number",
                    "payload": "{}",
                }
            ],
        )
    assert "secret.person@example.com" not in str(raised.value)
    assert "secret.person@example.com" not in caplog.text


# -- schema settings: a key left out keeps its value ----------------------------------------------
@pytest.mark.parametrize(
    "path", ["/api/sources/bootstrap/schema-settings", "/api/workspaces/default/schema-settings"]
)
def test_put_schema_settings_keeps_what_it_does_not_name(cdp: Cdp, path: str) -> None:
    first = {"settings": {"track": {"allowUnplannedEvents": False}}}
    assert api(cdp, "PUT", path, first).status_code == 200
    second = {"settings": {"track": {"commonEventOnViolations": "BLOCK"}}}
    response = api(cdp, "PUT", path, second)
    assert response.status_code == 200, response.text
    track = api(cdp, "GET", path).json()["settings"]["track"]
    assert track["allowUnplannedEvents"] is False  # kept
    assert track["commonEventOnViolations"] == "BLOCK"  # changed
    # settings: null is an explicit reset to Segment's defaults.
    assert api(cdp, "PUT", path, {"settings": None}).status_code == 200
    assert api(cdp, "GET", path).json()["settings"]["track"]["allowUnplannedEvents"] is True


# -- ReDoS ----------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
def test_a_catastrophic_pattern_cannot_freeze_the_process() -> None:
    """With Python's backtracking ``re``, 30 characters of this take minutes (each one more
    doubles it); RE2 matches in time linear in the value."""
    config = IdentityConfig.from_dict({"blocked_patterns": ["^(a+)+$"]}, base=IdentityConfig())
    assert not config.is_blocked(Identifier("user_id", "a" * 10_000 + "!"))
    assert config.is_blocked(Identifier("user_id", "a" * 10_000))


def test_a_catastrophic_pattern_over_http_and_an_event_that_would_trigger_it(cdp: Cdp) -> None:
    rules = {"blocked_patterns": ["^(a+)+$", "^[0-]*$"]}
    assert api(cdp, "PUT", "/api/workspaces/default/identity-rules", rules).status_code == 200
    crafted = "a" * 400 + "!"
    assert cdp.post("/v1/identify", {"userId": crafted, "traits": {"plan": "x"}}).is_success
    assert cdp.post("/v1/identify", {"userId": "a" * 400, "anonymousId": "anon-1"}).is_success
    cdp.drain()
    found = cdp.client.get(f"{PROFILE}/user_id:{crafted}/traits", headers=basic(TOKEN))
    assert found.status_code == 200 and found.json()["traits"] == {"plan": "x"}
    blocked = cdp.client.get(f"{PROFILE}/user_id:{'a' * 400}/traits", headers=basic(TOKEN))
    assert blocked.status_code == 404  # blocked: never used as an identifier
