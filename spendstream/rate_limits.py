"""Token and request rate limits of budgets: which per-minute counters a call takes from.

A budget may carry `requests_per_minute` and / or `tokens_per_minute` besides its dollar limit (enforce budgets
only). Each is a sliding-window counter per (scope, budget, counter): the current minute's count plus the
previous minute's weighted by the share of it still inside the trailing 60 s (the approximation Cloudflare and
Redis' own rate-limiting patterns use: exact when traffic is uniform, never more than one minute's limit
admitted in any aligned minute). The atomic take-or-refuse lives in the adapter (sinks/redis/rate_limits.py);
this module decides what to take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from schemas.models import Budget

__all__ = ["RateCounter", "rate_counters", "RATE_WINDOW_MS"]

RATE_WINDOW_MS = 60_000


@dataclass(frozen=True, slots=True)
class RateCounter:
    kind: str
    value: str
    budget_id: str
    counter: str  # "rpm" | "tpm"
    limit: int
    amount: int  # what this call takes: 1 request, or its estimated tokens


def rate_counters(budgets: Iterable[Budget], tokens: int) -> list[RateCounter]:
    """The counters a call of `tokens` estimated tokens takes from (requests count 1 each)."""
    out = []
    for b in budgets:
        if b.mode != "enforce":
            continue
        if b.requests_per_minute:
            out.append(RateCounter(b.scope.kind, b.scope.value, b.id, "rpm", b.requests_per_minute, 1))
        if b.tokens_per_minute and tokens:
            out.append(RateCounter(b.scope.kind, b.scope.value, b.id, "tpm", b.tokens_per_minute, tokens))
    return out
