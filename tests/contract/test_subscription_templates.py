"""An ``smtp`` destination's subscriptions each bring their own e-mail (``template``), on
both backends, to a real SMTP server on loopback; a template the type cannot use is a 400
naming the subscription."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from opencdp.runtime import Runtime
from tests.conftest import TOKEN, WRITE_KEY, basic
from tests.support.mail import MailServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def mail_destination(port: int, subscriptions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "smtp",
        "settings": {"host": "127.0.0.1", "port": port, "from": "s@x.test", "starttls": False},
        "subscriptions": subscriptions,
    }


def test_each_subscription_mails_with_its_own_template(client: TestClient, rt: Runtime) -> None:
    with MailServer() as server:
        subscriptions = [
            {
                "name": "orders",
                "condition": 'event = "Order Completed"',
                "template": {"subject": "Order {{ properties.order_id }} confirmed"},
            },
            {
                "name": "refunds",
                "condition": 'event = "Order Refunded"',
                "template": {"subject": "Refund for {{ properties.order_id }}", "text": "Done."},
            },
        ]
        body = mail_destination(server.port, subscriptions)
        assert client.put("/api/destinations/mail", json=body, headers=AUTH).status_code == 200
        events = [
            {
                "type": "track",
                "event": name,
                "userId": "ann",
                "messageId": f"m-{name}",
                "properties": {"order_id": "o1"},
                "context": {"traits": {"email": "ann@example.com"}},
            }
            for name in ("Order Completed", "Order Refunded")
        ]
        r = client.post("/v1/batch", json={"batch": events}, headers=basic(WRITE_KEY))
        assert r.status_code == 200
        rt.processor.run_until_idle()
        rt.dispatcher.run_until_idle()
        subjects = sorted(m.message["Subject"] for m in server.mails)
        assert subjects == ["Order o1 confirmed", "Refund for o1"]
        refund = next(m for m in server.mails if m.message["Subject"].startswith("Refund"))
        assert refund.message.get_body(("plain",)).get_content().strip() == "Done."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("destination", "template", "problem"),
    [
        ("smtp", {"subjekt": "x"}, "subscriptions[0].template: unknown templates"),
        ("smtp", {"text": "{% for %}"}, "subscriptions[0].template: text: the template"),
        ("webhook", {"text": "x"}, "subscriptions[0].template: the webhook type takes no"),
    ],
)
def test_a_template_the_type_cannot_use_is_refused(
    client: TestClient, destination: str, template: dict[str, Any], problem: str
) -> None:
    subscription = {"name": "all", "template": template}
    if destination == "smtp":
        body = mail_destination(2525, [subscription])
    else:
        body = {
            "type": "webhook",
            "settings": {"url": "https://example.com/h"},
            "subscriptions": [subscription],
        }
    answer = client.put("/api/destinations/d", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"].startswith(problem), answer.json()
