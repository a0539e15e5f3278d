"""End-to-end: consent as a shop's consent banner sends it. segment-analytics-python sends
``context.consent.categoryPreferences`` (on the ``Segment Consent Preference Updated`` event
and on an identify) over a real socket to the HTTP app served by uvicorn with its worker and
dispatcher; a webhook destination serving ``marketing`` receives the order of the consenting
shopper and not that of the one who declined, whose delivery is ``suppressed_by_consent``; a
change through the consent API lets the next order through."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.e2e.test_journeys_e2e import Served, served, wait_for
from tests.support.receiver import Receiver

__all__ = ["served"]  # the fixture, shared

pytestmark = pytest.mark.e2e

CONSENT_EVENT = "Segment Consent Preference Updated"


def test_the_sdks_consent_gates_a_destination(served: Served) -> None:
    from segment.analytics import Client

    auth = basic(TOKEN)
    with Receiver() as receiver:
        # Given a webhook destination that serves marketing
        hook = {
            "type": "webhook",
            "settings": {
                "url": receiver.url,
                "allow_http": True,
                "allow_private_targets": True,
                "consent_categories": ["marketing"],
            },
            "subscriptions": [{"name": "orders", "condition": 'event = "Order Completed"'}],
        }
        r = httpx.put(f"{served.url}/api/destinations/ads", json=hook, headers=auth)
        assert r.status_code == 200, r.text

        # When the SDK sends ann's consent and bob's refusal, then an order from each
        errors: list[Any] = []
        client = Client(
            WRITE_KEY,
            host=served.url,
            on_error=lambda *a: errors.append(a),
            max_retries=2,
            upload_interval=0.1,
        )
        ann, bob = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("ann", "bob"))
        now = served.clock.now()
        client.track(
            ann,
            CONSENT_EVENT,
            {},
            context={"consent": {"categoryPreferences": {"marketing": True, "analytics": True}}},
            timestamp=now,
        )
        client.identify(
            bob,
            {"email": "bob@example.com"},
            context={"consent": {"categoryPreferences": {"marketing": False}}},
            timestamp=now,
        )
        for user in (ann, bob):
            client.track(user, "Order Completed", {"order_id": f"o-{user}"}, timestamp=now)
        client.flush()
        client.shutdown()
        assert not errors

        def listed(status: str) -> list[dict[str, Any]]:
            answer = httpx.get(
                f"{served.url}/api/deliveries",
                params={"destination": "ads", "status": status},
                headers=auth,
            )
            assert answer.status_code == 200, answer.text
            return list(answer.json()["data"])

        # Then the destination receives ann's order, and bob's is suppressed_by_consent
        assert wait_for(lambda: receiver.requests, timeout=30)
        assert wait_for(lambda: listed("suppressed_by_consent"), timeout=30)
        assert [r.json()["userId"] for r in receiver.requests] == [ann]
        [held] = listed("suppressed_by_consent")
        assert held["attempts"] == 0 and listed("dead") == []

        # And the consent API shows each category with its provenance
        consent_url = f"{served.url}/api/profiles/user_id:{ann}/consent"
        shown = httpx.get(consent_url, headers=auth).json()["categoryPreferences"]
        assert shown["marketing"]["value"] is True and shown["analytics"]["value"] is True
        assert shown["marketing"]["source_id"] and shown["marketing"]["message_id"]

        # When bob consents through the API and orders again, the order goes
        body = {"categoryPreferences": {"marketing": True}}
        r = httpx.put(
            f"{served.url}/api/profiles/email:bob@example.com/consent", json=body, headers=auth
        )
        assert r.status_code == 202, r.text
        bob_url = f"{served.url}/api/profiles/user_id:{bob}/consent"

        def bob_consents() -> bool:
            prefs = httpx.get(bob_url, headers=auth).json()["categoryPreferences"]
            return bool(prefs.get("marketing", {}).get("value"))

        assert wait_for(bob_consents, timeout=30)
        again = Client(WRITE_KEY, host=served.url, on_error=lambda *a: errors.append(a))
        again.track(bob, "Order Completed", {"order_id": "o-2"}, timestamp=served.clock.now())
        again.flush()
        again.shutdown()
        assert wait_for(lambda: len(receiver.requests) == 2, timeout=30)
        assert [r.json()["userId"] for r in receiver.requests] == [ann, bob]
        assert not errors
