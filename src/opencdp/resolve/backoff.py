"""Capped, jittered exponential backoff (pure)."""

from __future__ import annotations

import math
import random


def compute_backoff(
    attempt: int,
    *,
    base: float = 0.1,
    cap: float = 30.0,
    jitter: float = 0.1,
    factor: float = 2.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): ``base·factor^(attempt-1)``
    capped at ``cap``, spread by ±``jitter`` so that many workers do not retry in lockstep."""
    if attempt < 1:
        return 0.0
    delay = min(cap, base * math.pow(factor, min(attempt - 1, 30)))
    spread: float = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1 + spread))
