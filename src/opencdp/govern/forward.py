"""Messages that forward governance outcomes to another source, as Segment does (pure)."""

from __future__ import annotations

import hashlib
from typing import Any

from opencdp.govern.enforce import Verdict
from opencdp.govern.plan import TrackingPlan

VIOLATIONS_USER_ID = "schema-violations"


def violation_messages(
    message: dict[str, Any],
    verdict: Verdict,
    *,
    source_id: str,
    source_name: str,
    plan: TrackingPlan,
) -> list[dict[str, Any]]:
    """One ``Violation Generated`` Track message per violation of ``message``.

    The message ids derive from the event's id and the violation, so forwarding the same event
    twice (a retry, a replay) yields the same ids and is deduplicated downstream.
    """
    out = []
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    app = context.get("app") if isinstance(context, dict) else None
    for v in verdict.violations:
        digest = hashlib.sha1(
            f"{message.get('messageId')}|{v.rule}|{v.type}|{v.field}".encode()
        ).hexdigest()
        out.append(
            {
                "type": "track",
                "event": "Violation Generated",
                "userId": VIOLATIONS_USER_ID,
                "messageId": f"sch-{digest}",
                "timestamp": message.get("receivedAt") or message.get("timestamp"),
                "context": {"library": {"name": "opencdp-protocols"}},
                "integrations": {},
                "properties": {
                    "appVersion": (app or {}).get("version", "") if isinstance(app, dict) else "",
                    "eventMessageID": message.get("messageId"),
                    "eventName": message.get("event") or message.get("name") or "",
                    "eventSentAt": message.get("sentAt", ""),
                    "eventTimestamp": message.get("timestamp", ""),
                    "eventType": message.get("type"),
                    "sourceID": source_id,
                    "sourceName": source_name,
                    "sourceSlug": source_name,
                    "trackingPlanID": plan.id,
                    "trackingPlanName": plan.name,
                    "trackingPlanRevision": plan.revision,
                    "violationDescription": v.description,
                    "violationField": v.field,
                    "violationType": v.type,
                    "violationRule": v.rule,
                },
                "forwardedFromProject": source_id,
            }
        )
    return out


def forwarded_blocked(message: dict[str, Any], verdict: Verdict, source_id: str) -> dict[str, Any]:
    """The blocked event as it is re-ingested into the forwarding source, with why it was."""
    out = dict(message)
    context = dict(out["context"]) if isinstance(out.get("context"), dict) else {}
    protocols = dict(context["protocols"]) if isinstance(context.get("protocols"), dict) else {}
    protocols.update(
        {
            "blocked": verdict.blocked,
            "blockedReason": verdict.detail,
            "violations": [v.to_dict() for v in verdict.violations],
            "sourceId": source_id,
        }
    )
    context["protocols"] = protocols
    out["context"] = context
    out["forwardedFromProject"] = source_id
    return out
