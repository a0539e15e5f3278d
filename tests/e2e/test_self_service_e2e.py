"""End-to-end: a customer's "my data" page over a real socket. segment-analytics-python sends
two customers' traffic to the HTTP app served by uvicorn (its worker in the lifespan, as
``opencdp serve`` runs it); the shop issues a self-service link with an access token; the
customer, with httpx and only that link, reads the profile, edits a trait and a consent
category (both applied by the worker as events with provenance), downloads the export (the
shop's admin downloads the same as JSON and ZIP), and asks for deletion. A browser's preflight is answered for the workspace's origin
only; a link one byte off, or expired, or for an erased profile, gets the same answer.

The server runs in this process so that its injected clock can be moved (a link's expiry).
"""

from __future__ import annotations

import io
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from opencdp.clock import FrozenClock
from opencdp.privacy.workspace_settings import WorkspaceSettings
from opencdp.runtime import Runtime
from opencdp.web.app import create_app
from tests.conftest import TOKEN, WRITE_KEY, basic, make_settings
from tests.support.pg import free_port

pytestmark = pytest.mark.e2e

SHOP = "https://shop.example"


@dataclass
class Served:
    url: str
    runtime: Runtime
    clock: FrozenClock


@pytest.fixture
def served(tmp_path: Path, database_url: str | None) -> Iterator[Served]:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    runtime = Runtime(
        make_settings(tmp_path, database_url, worker_poll_interval=0.05, recs_train_every_hours=0),
        clock,
    )
    runtime.admin.set_workspace_settings("default", WorkspaceSettings(self_service_origins=(SHOP,)))
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime, start_worker=True), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: _ready(url), timeout=30), "the server did not start"
    yield Served(url, runtime, clock)
    server.should_exit = True
    thread.join(timeout=20)
    runtime.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    return None


def test_a_customer_sees_edits_exports_and_deletes_their_profile_through_a_link(
    served: Served,
) -> None:
    from segment.analytics import Client

    url, admin = served.url, basic(TOKEN)
    ann, bob = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("ann", "bob"))
    ann_mail, bob_mail = f"{ann}@example.com", f"{bob}@example.com"

    # Given two customers' traffic sent by the real SDK
    errors: list[Any] = []
    sdk = Client(
        WRITE_KEY,
        host=url,
        on_error=lambda *a: errors.append(a),
        max_retries=2,
        upload_interval=0.1,
    )
    now = served.clock.now()
    sdk.identify(ann, {"email": ann_mail, "first_name": "Ann"}, timestamp=now)
    sdk.identify(bob, {"email": bob_mail, "first_name": "Bob"}, timestamp=now)
    sdk.track(ann, "Order Completed", {"order_id": "o-ann", "revenue": 42}, timestamp=now)
    sdk.flush()
    sdk.shutdown()
    assert not errors

    def profile_of(user: str) -> Any:
        r = httpx.get(f"{url}/api/profiles/user_id:{user}/consent", headers=admin)
        return r.json()["profile_id"] if r.status_code == 200 else None

    assert wait_for(lambda: profile_of(ann) and profile_of(bob), timeout=30)

    # When the shop issues ann a link (addressed by her e-mail, as an e-mail link would be)
    issued = httpx.post(
        f"{url}/api/profiles/email:{ann_mail}/self-service-link", json={"ttl": 600}, headers=admin
    )
    assert issued.status_code == 201, issued.text
    link = issued.json()["token"]
    me = {"Authorization": f"Bearer {link}", "Origin": SHOP}

    # Then with the link alone she reads her own profile, and the shop's origin may read it
    mine = httpx.get(f"{url}/api/self/profile", headers=me)
    assert mine.status_code == 200, mine.text
    assert mine.headers["access-control-allow-origin"] == SHOP
    body = mine.json()
    assert body["profile_id"] == issued.json()["profile_id"] == profile_of(ann)
    assert {"type": "email", "value": ann_mail} in body["identifiers"]
    assert body["traits"]["first_name"] == "Ann"
    assert bob_mail not in mine.text
    # a browser's preflight: the workspace's origin yes, another no
    preflight = {"Origin": SHOP, "Access-Control-Request-Method": "PATCH"}
    assert httpx.options(f"{url}/api/self/profile", headers=preflight).status_code == 204
    evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "PATCH"}
    refused = httpx.options(f"{url}/api/self/profile", headers=evil)
    assert "access-control-allow-origin" not in refused.headers
    other_origin = httpx.get(
        f"{url}/api/self/profile", headers={**me, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other_origin.headers

    # When she edits her first name and withdraws marketing consent
    edit = httpx.patch(
        f"{url}/api/self/profile", json={"traits": {"first_name": "Anna"}}, headers=me
    )
    assert edit.status_code == 202, edit.text
    consent = httpx.put(
        f"{url}/api/self/consent", json={"categoryPreferences": {"marketing": False}}, headers=me
    )
    assert consent.status_code == 202, consent.text
    # and tries to change what she may not (her e-mail): refused, naming it, nothing recorded
    bad = httpx.patch(
        f"{url}/api/self/profile", json={"traits": {"email": "x@example.com"}}, headers=me
    )
    assert bad.status_code == 400 and "email" in bad.json()["message"]

    # Then the worker applies both as events with provenance, visible to the shop too
    def applied() -> Any:
        traits = httpx.get(
            f"{url}/v1/spaces/default/collections/users/profiles/user_id:{ann}/traits",
            params={"verbose": "true", "limit": 200},
            headers=admin,
        ).json()["traits"]
        done = traits.get("first_name", {}).get("value") == "Anna"
        return traits if done and "consent.marketing" in traits else None

    traits = wait_for(applied, timeout=30)
    assert traits, "the self-service changes were not applied"
    assert traits["consent.marketing"]["value"] is False
    events = httpx.get(
        f"{url}/v1/spaces/default/collections/users/profiles/user_id:{ann}/events",
        params={"limit": 100},
        headers=admin,
    ).json()["data"]
    channels = [e.get("context", {}).get("opencdp", {}).get("channel") for e in events]
    assert channels.count("self-service") == 2, events

    # When she downloads her export, as JSON and as a ZIP
    exported = httpx.post(f"{url}/api/self/export", headers=me)
    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["profile_id"] == profile_of(ann)
    assert any(i["value"] == ann_mail for i in document["identifiers"])
    assert "o-ann" in exported.text and bob not in exported.text and bob_mail not in exported.text
    # the shop's admin export of the same person matches hers, and comes as a ZIP too
    shop_copy = httpx.get(f"{url}/api/profiles/email:{ann_mail}/export", headers=admin)
    assert shop_copy.status_code == 200
    assert shop_copy.json()["identifiers"] == document["identifiers"]
    archive = httpx.get(
        f"{url}/api/profiles/email:{ann_mail}/export", params={"format": "zip"}, headers=admin
    )
    assert archive.status_code == 200, archive.text
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert "profile.json" in names and any(n.endswith(".csv") for n in names)

    # A link one character off, and any made-up one, get the answer a valid link will get
    # once it expires or its profile is erased
    flipped = link[:-1] + ("A" if link[-1] != "A" else "B")
    refusals = [
        httpx.get(f"{url}/api/self/profile", headers={"Authorization": f"Bearer {t}"})
        for t in (flipped, "sst1.nonsense.token", link.replace(".", "", 1))
    ]
    short = httpx.post(
        f"{url}/api/profiles/user_id:{bob}/self-service-link", json={"ttl": 60}, headers=admin
    ).json()["token"]
    served.clock.advance(61)
    refusals.append(
        httpx.get(f"{url}/api/self/profile", headers={"Authorization": f"Bearer {short}"})
    )

    # When she asks for her deletion
    deletion = httpx.post(f"{url}/api/self/deletion", headers=me)
    assert deletion.status_code == 202, deletion.text
    regulation = deletion.json()["regulateId"]

    def finished() -> bool:
        r = httpx.get(f"{url}/api/regulations/{regulation}", headers=admin)
        return r.json()["data"]["regulation"]["overallStatus"] == "FINISHED"

    assert wait_for(finished, timeout=60), "the deletion did not finish"
    # Then her link opens nothing, with the same answer as every other bad link
    refusals.append(httpx.get(f"{url}/api/self/profile", headers=me))
    assert {(r.status_code, r.text) for r in refusals} == {
        (refusals[0].status_code, refusals[0].text)
    }
    assert refusals[0].status_code == 401
    # and nothing of her can be read, while bob is untouched
    assert profile_of(ann) is None
    assert (
        httpx.get(f"{url}/api/profiles/email:{ann_mail}/export", headers=admin).status_code == 404
    )
    assert profile_of(bob)
