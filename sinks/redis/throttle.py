"""Throttling: how long a throttled caller should wait, from a token bucket per (scope, throttle budget)."""

from __future__ import annotations

from sinks.redis import lua_reservations as lua
from sinks.redis.keys import Keys
from sinks.redis.scripts import RedisClient, ScriptRunner
from schemas.models import Budget

__all__ = ["Throttle", "MAX_WAIT_MS"]

MAX_WAIT_MS = 60_000


class Throttle:
    """Hands each throttled caller of a budget the next retry slot at the budget's `throttle_rps`.

    `retry_after` therefore grows with the number of callers waiting (1/rate, 2/rate, ...), capped at
    MAX_WAIT_MS, so retries reach the store at the budget's rate. Raises StoreUnavailable without Redis."""

    def __init__(self, redis_client: RedisClient, prefix: str = "ss") -> None:
        self.keys = Keys(prefix)
        self.runner = ScriptRunner(redis_client)

    async def retry_after_s(self, budget: Budget, now_ms: int) -> float:
        interval_ms = max(1, round(1000 / budget.throttle_rps))
        key = self.keys.throttle(budget.scope.kind, budget.scope.value, budget.id)
        (wait_ms,) = await self.runner.run([(lua.THROTTLE, [key], [now_ms, interval_ms, MAX_WAIT_MS])])
        return int(wait_ms) / 1000
