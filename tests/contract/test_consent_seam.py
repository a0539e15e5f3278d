"""The consent seam, on both backends: a destination declares the purposes it serves, and
every delivery passes the runtime dispatcher's consent check. The runtime's check reads
consent on the profiles (``ProfileConsent``; its behaviour: ``test_consent.py``); a check that
denies keeps a delivery from being sent and ends it ``suppressed_by_consent``, without an
attempt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient

from opencdp.activate.consent import ProfileConsent, purposes_of
from opencdp.runtime import Runtime
from opencdp.storage.destinations import DestinationRow
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.receiver import Receiver

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class DenyWithoutConsent:
    """Denies every profile but ``consenting`` for a destination that serves purposes."""

    def __init__(self, consenting: set[str]) -> None:
        self.consenting = consenting
        self.asked: list[tuple[str, list[str]]] = []

    def denied(
        self, workspace_id: str, destination: DestinationRow, profile_ids: Sequence[str]
    ) -> set[str]:
        self.asked.append((destination.id, purposes_of(destination)))
        if not purposes_of(destination):
            return set()
        return {p for p in profile_ids if p not in self.consenting}


def hook(receiver: Receiver, **settings: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "settings": {
            "url": receiver.url,
            "allow_http": True,
            "allow_private_targets": True,
            **settings,
        },
        "subscriptions": [{"name": "orders", "condition": 'event = "Order Completed"'}],
    }


def order(user: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "messageId": f"o-{user}",
        "properties": {"order_id": user},
    }


def test_the_runtime_checks_consent_on_profiles(client: TestClient, rt: Runtime) -> None:
    assert isinstance(rt.dispatcher.consent, ProfileConsent)
    with Receiver() as receiver:
        body = hook(receiver, purposes=["Advertising"])
        view = client.put("/api/destinations/ads", json=body, headers=AUTH).json()
        assert view["settings"]["purposes"] == ["Advertising"]
        client.post("/v1/batch", json={"batch": [order("ann")]}, headers=basic(WRITE_KEY))
        rt.processor.run_until_idle()
        rt.dispatcher.run_until_idle()
        # opt-in by default: ann never consented to Advertising
        assert receiver.requests == []


def test_a_denied_delivery_is_suppressed_not_sent(client: TestClient, rt: Runtime) -> None:
    with Receiver() as ads_receiver, Receiver() as erp_receiver:
        # Given an ad tool that serves Advertising and an ERP that serves no purpose
        ads = hook(ads_receiver, purposes=["Advertising"])
        assert client.put("/api/destinations/ads", json=ads, headers=AUTH).status_code == 200
        erp = hook(erp_receiver)
        assert client.put("/api/destinations/erp", json=erp, headers=AUTH).status_code == 200
        # And a consent check in which only ann consents
        client.post(
            "/v1/batch", json={"batch": [order("ann"), order("bob")]}, headers=basic(WRITE_KEY)
        )
        rt.processor.run_until_idle()
        ann = rt.profiles.find("default", "users", "user_id", "ann")
        assert ann is not None
        check = DenyWithoutConsent({ann})
        rt.dispatcher.consent = check
        # When the dispatcher sends
        rt.dispatcher.run_until_idle()
        # Then the ad tool got ann's order only; bob's is suppressed, never attempted
        assert [r.json()["userId"] for r in ads_receiver.requests] == ["ann"]
        assert sorted(r.json()["userId"] for r in erp_receiver.requests) == ["ann", "bob"]
        params = {"destination": "ads", "status": "suppressed_by_consent"}
        held = client.get("/api/deliveries", params=params, headers=AUTH).json()["data"]
        assert len(held) == 1 and held[0]["attempts"] == 0
        assert held[0]["status"] == "suppressed_by_consent"
        dead = client.get(
            "/api/deliveries", params={"destination": "ads", "status": "dead"}, headers=AUTH
        ).json()["data"]
        assert dead == []
        assert ("ads", ["Advertising"]) in check.asked and ("erp", []) in check.asked


def test_purposes_are_checked(client: TestClient) -> None:
    with Receiver() as receiver:
        body = hook(receiver, purposes=["  "])
        answer = client.put("/api/destinations/ads", json=body, headers=AUTH)
        assert answer.status_code == 400 and "purposes" in answer.json()["message"]
