"""Events OpenCDP derives while it works — ``Points Earned``, ``Tier Changed``, ``Back In
Stock``, a member's loyalty traits — written into the inbox in the transaction of what caused
them, so that they are on the timeline exactly when the cause is committed, never without it.

They come from the workspace's internal source (see :mod:`opencdp.services.internal_events`),
pass the collector's checks like any event (a suppressed person's are refused), and carry
``context.opencdp = {"channel": …, "actor": "worker" | a token id}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opencdp.collect.envelope import Envelope
from opencdp.timeutil import isoformat, to_us

if TYPE_CHECKING:
    from opencdp.clock import Clock
    from opencdp.collect.collector import Collector
    from opencdp.storage.admin import AdminStore
    from opencdp.storage.db import Connection
    from opencdp.storage.inbox import InboxStore


class DerivedEvents:
    """Appends derived messages to the inbox within the caller's transaction."""

    def __init__(
        self, collector: Collector, inbox: InboxStore, admin: AdminStore, clock: Clock
    ) -> None:
        self.collector = collector
        self.inbox = inbox
        self.admin = admin
        self.clock = clock

    def append(
        self,
        conn: Connection,
        workspace_id: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        channel: str,
        actor: str,
    ) -> int:
        """Commit ``messages`` (complete Segment messages with their identifiers and a
        ``messageId``) with ``conn``'s transaction; returns how many the collector accepted
        (a refused one is in the quarantine, with its reason)."""
        if not messages:
            return 0
        now = self.clock.now()
        source = self.admin.internal_source_in(conn, workspace_id, to_us(now))
        stamped = []
        for message in messages:
            context = dict(message.get("context") or {})
            context["opencdp"] = {"channel": channel, "actor": actor}
            context.setdefault("library", {"name": f"opencdp-{channel}"})
            stamped.append(
                {
                    **message,
                    "context": context,
                    "timestamp": message.get("timestamp") or isoformat(now),
                }
            )
        events, rejected, result = self.collector.build_rows(
            source, Envelope(messages=stamped, implied_type=None)
        )
        self.inbox.append(conn, events, rejected)
        return result.accepted


def addressed(address: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` with the identifying part ``address`` (``userId``, ``anonymousId``, or
    traits with an e-mail or phone) merged in."""
    out = {**message, **{k: v for k, v in address.items() if k not in ("context", "traits")}}
    if "context" in address:
        out["context"] = {**address["context"], **(message.get("context") or {})}
    if "traits" in address:
        out["traits"] = {**address["traits"], **(message.get("traits") or {})}
    if message.get("type") == "track" and "traits" in out:
        # a track call carries identifying traits in its context only
        traits = out.pop("traits")
        context = dict(out.get("context") or {})
        context["traits"] = {**(context.get("traits") or {}), **traits}
        out["context"] = context
    return out
