"""How long a message waits before its next attempt."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential from ``base``, capped at
    ``cap``, with "equal jitter" (between half and all of it), never sooner than the
    provider's ``retry_after`` up to the same ``cap`` (a provider asking for an hour, or a
    bogus day, does not park a customer's message longer than the longest backoff)."""
    exponential = min(cap, base * 2.0 ** max(0, attempt - 1))
    jitter = (rng or random).uniform(0, exponential / 2)  # jitter, not a secret
    delay = exponential / 2 + jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
