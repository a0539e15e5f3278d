"""End to end, on each backend: a person is erased through the regulations API while
everything the platform does is happening to them — events from the real Segment SDK, an
import with its report, a computed trait, an audience, a journey waiting for them, and a
destination that keeps failing. After the regulation finishes nothing about them can be read
through any API, and on SQLite no byte of theirs remains in any file of the data directory (its
logs included); the other customer is untouched; the suppressed person sending again does not
come back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opencdp.cli.main import app as cli
from tests.conftest import basic
from tests.contract.test_erasure import found_in_files
from tests.e2e.test_audience_membership import wait_for
from tests.e2e.test_sdks import segment_client
from tests.support.receiver import Answer, Received, Receiver
from tests.support.server import LiveServer

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]
ZOE = {
    "user_id": f"zoe-{RUN}-user",
    "anonymous_id": f"zoe-{RUN}-anon",
    "email": f"zoe.quixote.{RUN}@example.org",
    "phone": "+14155550199",
    "name": f"Zebulonia Quixote {RUN}",
}
MAX = {"user_id": f"max-{RUN}-user", "email": f"max.{RUN}@example.org"}

MAPPING = """
kind: orders
fields: {order_id: order_id, user_id: customer_id, email: email, timestamp: ordered_at, total: total}
"""


def answer(request: Received) -> Answer:
    """The failing destination: every event gets a 500; a deletion is acknowledged."""
    body = request.json()
    return Answer(200) if body.get("type") == "delete" else Answer(500)


def put(server: LiveServer, path: str, body: dict[str, Any]) -> None:
    r = httpx.put(f"{server.url}{path}", json=body, headers=basic(server.token))
    assert r.status_code == 200, r.text


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=basic(server.token))


def traits(server: LiveServer, kind: str, value: str) -> httpx.Response:
    return get(server, f"/v1/spaces/default/collections/users/profiles/{kind}:{value}/traits")


def test_a_person_is_erased_completely_while_everything_happens_to_them(
    live_server_any: LiveServer, tmp_path: Path
) -> None:
    server = live_server_any
    errors: list[Any] = []
    with Receiver() as receiver:
        receiver.answer = answer
        # Given a destination that fails every delivery, a computed trait, an audience and a
        # journey that waits a day,
        put(
            server,
            "/api/destinations/crm",
            {
                "type": "webhook",
                "settings": {
                    "url": receiver.url,
                    "allow_http": True,
                    "allow_private_targets": True,
                    "retry": {"initial_backoff": "1 second", "max_age": "7 days"},
                },
                "subscriptions": [{"name": "everything"}],
            },
        )
        put(
            server,
            "/api/computed-traits/order_count",
            {"definition": {"query": "event('Order Completed').count()"}},
        )
        put(
            server,
            "/api/audiences/signed_up",
            {"definition": {"query": "event('Signed Up').count() >= 1"}},
        )
        put(
            server,
            "/api/journeys/nurture",
            {"entry": {"event": 'event = "Signed Up"'}, "steps": [{"key": "w", "wait": "1 day"}]},
        )
        # when Zoe and Max send events through the Segment SDK,
        client = segment_client(server, lambda *a: errors.append(a))
        now = datetime.now(UTC)
        client.page(anonymous_id=ZOE["anonymous_id"], name="Home", timestamp=now)
        client.identify(
            ZOE["user_id"],
            {"email": ZOE["email"], "phone": ZOE["phone"], "name": ZOE["name"]},
            anonymous_id=ZOE["anonymous_id"],
            timestamp=now,
        )
        client.track(ZOE["user_id"], "Signed Up", {"plan": "gold"}, timestamp=now)
        client.track(ZOE["user_id"], "Order Completed", {"order_id": "z1"}, timestamp=now)
        client.identify(MAX["user_id"], {"email": MAX["email"]}, timestamp=now)
        client.track(MAX["user_id"], "Signed Up", timestamp=now)
        client.flush()
        # and an import brings their order history (one row's columns slipped: its report
        # quotes Zoe's e-mail),
        orders = tmp_path / "orders.csv"
        orders.write_text(
            "order_id,customer_id,email,ordered_at,total\n"
            f"h1,{ZOE['user_id']},{ZOE['email']},2021-01-02T10:00:00Z,12.50\n"
            f"h2,{ZOE['user_id']},{ZOE['email']},2021-01-03T10:00:00Z,{ZOE['email']}\n"
            f"h3,{MAX['user_id']},{MAX['email']},2021-01-04T10:00:00Z,30.00\n",
            encoding="utf-8",
        )
        mapping = tmp_path / "orders.yaml"
        mapping.write_text(MAPPING, encoding="utf-8")
        args = ["import", "orders", str(orders), "-m", str(mapping)]
        args += ["--data-dir", str(server.data_dir)]
        if server.database_url:
            args += ["--database-url", server.database_url]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        server.wait_idle()
        assert not errors
        assert wait_for(lambda: get(server, "/api/journeys/nurture/instances").json()["data"], 30)
        assert wait_for(lambda: receiver.requests, 30), "the destination was tried"
        max_before = traits(server, "user_id", MAX["user_id"]).json()
        assert traits(server, "email", ZOE["email"]).status_code == 200

        # When her deletion and suppression is requested by e-mail
        r = httpx.post(
            f"{server.url}/api/regulations",
            json={
                "regulationType": "SUPPRESS_WITH_DELETE",
                "subjectType": "EMAIL",
                "subjectIds": [ZOE["email"]],
            },
            headers=basic(server.token),
        )
        assert r.status_code == 200, r.text
        regulation = r.json()["data"]["regulateId"]

        last: list[dict[str, Any]] = []

        def finished() -> dict[str, Any] | None:
            body = get(server, f"/api/regulations/{regulation}").json()["data"]["regulation"]
            last.append(body)
            return body if body["overallStatus"] in ("FINISHED", "FAILED") else None

        status = wait_for(finished, timeout=60) or last[-1]

        # Then it finished, and the destination was told to delete her
        assert status["overallStatus"] == "FINISHED", (status, receiver.requests[-3:])
        deletions = [q.json() for q in receiver.requests if q.json().get("type") == "delete"]
        assert deletions and deletions[0]["userId"] == ZOE["user_id"]

    # and nothing about her can be read through any API
    for kind in ("user_id", "email", "anonymous_id"):
        assert traits(server, kind, ZOE[kind]).status_code == 404
    listings = [
        get(server, "/api/deliveries", limit=500),
        get(server, "/api/deliveries", destination="crm", status="dead", limit=500),
        get(server, "/api/journeys/nurture/instances"),
        get(server, "/api/audiences/signed_up/members"),
        get(server, "/api/quarantine"),
        get(server, "/api/audit"),
        get(server, "/api/regulations"),
        get(server, f"/api/regulations/{regulation}"),
        get(server, "/api/suppressions"),
    ]
    for response in listings:
        assert response.status_code == 200, (response.url, response.text)
        leaked = [v for v in ZOE.values() if v.lower() in response.text.lower()]
        assert not leaked, (response.url, leaked)
    # while Max is untouched
    assert traits(server, "user_id", MAX["user_id"]).json() == max_before

    # When she sends again, she does not come back (suppressed)
    client = segment_client(server, lambda *a: errors.append(a))
    client.identify(ZOE["user_id"], {"email": ZOE["email"]}, timestamp=datetime.now(UTC))
    client.flush()
    server.wait_idle()
    assert traits(server, "user_id", ZOE["user_id"]).status_code == 404

    # And on SQLite no byte of hers is in any file of the data directory, its logs included
    if server.database_url is None:
        assert found_in_files(server.data_dir, ZOE.values()) == {}
        assert found_in_files(server.data_dir, MAX.values())
