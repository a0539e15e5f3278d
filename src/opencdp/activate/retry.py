"""What an attempt's outcome means for a delivery, and when to try again (pure).

=============================================  =========================================
outcome                                        verdict
=============================================  =========================================
2xx                                            delivered
408, 423, 429, 5xx but 501; a timeout, a       retry with backoff (``Retry-After``
connection refused or reset, DNS, TLS          honoured, at most a day)
3xx                                            dead: a redirect (update the URL)
410                                            dead, and the destination is disabled
401, 403                                       dead; the destination's credentials fail
other 4xx, 501                                 dead
the payload cannot be built (mapping)          dead, not counted as an attempt
=============================================  =========================================

Backoff: ``min(cap, initial * 4^(n-1)) * U(0.8, 1.2)``, about 5 s, 20 s, 80 s, 5 min, 21 min,
85 min, 5.7 h, then every 6 h with the defaults, until the delivery's maximum age (7 days by
default), after which it is dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from opencdp.resolve.backoff import compute_backoff

Outcome = Literal["delivered", "retry", "dead"]

#: answers worth another try although they are 4xx
RETRYABLE_4XX = frozenset({408, 423, 429})
#: answers that ask the sender to slow down
THROTTLING = frozenset({429, 502, 504})
#: the longest wait a ``Retry-After`` can impose
MAX_RETRY_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    #: why, in a word a user can filter on (``http_503``, ``timeout``, ``redirect`` …)
    reason: str
    #: the destination should be switched off (410 Gone)
    disable: bool = False
    #: the destination's credentials are refused (401, 403)
    auth_failing: bool = False
    #: the receiver asks to slow down (429, 502, 504)
    throttled: bool = False


def classify(status: int | None, error: str | None = None) -> Verdict:
    """The verdict on one attempt: an HTTP(-like) ``status``, or no status and the transport
    ``error`` class (``timeout``, ``connection``, ``dns``, ``tls``) that prevented one."""
    if status is None:
        return Verdict("retry", error or "connection")
    if 200 <= status < 300:
        return Verdict("delivered", f"http_{status}")
    reason = f"http_{status}"
    if 300 <= status < 400:
        return Verdict("dead", "redirect")
    if status == 410:
        return Verdict("dead", reason, disable=True)
    if status in (401, 403):
        return Verdict("dead", reason, auth_failing=True)
    if status in RETRYABLE_4XX or (status >= 500 and status != 501):
        return Verdict("retry", reason, throttled=status in THROTTLING)
    return Verdict("dead", reason)


def backoff(
    attempt: int,
    initial: timedelta = timedelta(seconds=5),
    cap: timedelta = timedelta(hours=6),
    rng: random.Random | None = None,
) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1-based)."""
    seconds = compute_backoff(
        attempt,
        base=initial.total_seconds(),
        cap=cap.total_seconds(),
        jitter=0.2,
        factor=4.0,
        rng=rng,
    )
    return timedelta(seconds=seconds)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as a wait from ``now``, at most
    :data:`MAX_RETRY_AFTER`; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = int(text) if len(text) <= 9 else 10**9  # past any cap: the cap
        wait = timedelta(seconds=min(seconds, int(MAX_RETRY_AFTER.total_seconds())))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        wait = when - now
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


def next_attempt(
    now: datetime,
    created: datetime,
    attempt: int,
    *,
    initial: timedelta,
    max_age: timedelta,
    asked: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try a delivery again after failed attempt ``attempt``, or None when that would
    pass its maximum age (counted from ``created``): then it is dead."""
    wait = backoff(attempt, initial, rng=rng)
    if asked is not None:
        wait = max(wait, asked)
    when = now + wait
    if when - created > max_age:
        return None
    return when
