"""The consent seam, on both backends: a destination declares the purposes it serves, and
every delivery passes the runtime dispatcher's consent check. ``AllowAll`` (until the privacy
capability records consent) lets everything through; a check that denies keeps a delivery
from being sent and ends it ``dead`` with ``suppressed_by_consent``, without an attempt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient

from opencdp.activate.consent import AllowAll, purposes_of
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


def test_the_default_check_allows_everything(client: TestClient, rt: Runtime) -> None:
    assert isinstance(rt.dispatcher.consent, AllowAll)
    with Receiver() as receiver:
        body = hook(receiver, purposes=["Advertising"])
        view = client.put("/api/destinations/ads", json=body, headers=AUTH).json()
        assert view["settings"]["purposes"] == ["Advertising"]
        client.post("/v1/batch", json={"batch": [order("ann")]}, headers=basic(WRITE_KEY))
        rt.processor.run_until_idle()
        rt.dispatcher.run_until_idle()
        assert len(receiver.requests) == 1


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
        # Then the ad tool got ann's order only; bob's is dead as suppressed, never attempted
        assert [r.json()["userId"] for r in ads_receiver.requests] == ["ann"]
        assert sorted(r.json()["userId"] for r in erp_receiver.requests) == ["ann", "bob"]
        dead = client.get(
            "/api/deliveries", params={"destination": "ads", "status": "dead"}, headers=AUTH
        ).json()["data"]
        assert len(dead) == 1 and dead[0]["attempts"] == 0
        assert dead[0]["last_error"] == "suppressed_by_consent"
        assert ("ads", ["Advertising"]) in check.asked and ("erp", []) in check.asked


def test_purposes_are_checked(client: TestClient) -> None:
    with Receiver() as receiver:
        body = hook(receiver, purposes=["  "])
        answer = client.put("/api/destinations/ads", json=body, headers=AUTH)
        assert answer.status_code == 400 and "purposes" in answer.json()["message"]
