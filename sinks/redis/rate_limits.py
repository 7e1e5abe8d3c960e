"""Per-minute token / request limits in Redis (implements spendstream.ports.RateLimiter).

One Lua call per scope slot `{kind:value}` (cluster-safe), all in one pipeline. Within a slot the take is
all-or-nothing and atomic; across slots it is not: a call refused in one slot has still been counted in the
slots that admitted it (a false refusal later, never a false admission) — the trade-off reservations make too.
"""

from __future__ import annotations

from typing import Sequence

from sinks.redis.keys import Keys
from sinks.redis.scripts import Call, RedisClient, ScriptRunner
from spendstream.rate_limits import RATE_WINDOW_MS, RateCounter

__all__ = ["RateLimits", "TAKE"]

# KEYS: per counter: current minute, previous minute.  ARGV: now_ms, window_ms, then per counter: limit, amount.
# Sliding window: prev x (share of the previous minute still in the trailing window) + cur + amount <= limit for
# every counter, then add `amount` to each; else add nothing. Returns {admitted 0|1, wait_ms}: the least wait
# after which every refusing counter would admit the same call, if nothing else is taken meanwhile.
TAKE = """
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local elapsed = now % win
local weight = (win - elapsed) / win
local ok = 1
local wait = 0
for i = 1, #KEYS / 2 do
  local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local limit = tonumber(ARGV[1 + 2 * i])
  local amt = tonumber(ARGV[2 + 2 * i])
  if prev * weight + cur + amt > limit then
    ok = 0
    local w = win - elapsed
    if cur + amt <= limit and prev > 0 then w = math.ceil(win * (1 - (limit - cur - amt) / prev)) - elapsed end
    if w > wait then wait = w end
  end
end
if ok == 1 then
  for i = 1, #KEYS / 2 do
    redis.call('INCRBY', KEYS[2 * i - 1], ARGV[2 + 2 * i])
    redis.call('PEXPIRE', KEYS[2 * i - 1], 2 * win + 1000)
  end
end
return {ok, wait}
"""


class RateLimits:
    """Raises StoreUnavailable when Redis does not answer."""

    def __init__(self, redis_client: RedisClient, prefix: str = "ss") -> None:
        self.keys = Keys(prefix)
        self.runner = ScriptRunner(redis_client)

    async def take(self, counters: Sequence[RateCounter], now_ms: int) -> tuple[bool, float]:
        """Take every counter's amount, or none in a slot that refuses. Returns (admitted, retry_after_s)."""
        if not counters:
            return True, 0.0
        minute = now_ms // RATE_WINDOW_MS
        slots: dict[tuple[str, str], list[RateCounter]] = {}
        for c in counters:
            slots.setdefault((c.kind, c.value), []).append(c)
        calls: list[Call] = []
        for members in slots.values():
            keys: list[str] = []
            argv: list[int] = [now_ms, RATE_WINDOW_MS]
            for c in members:
                keys += [self.keys.rate(c.kind, c.value, c.budget_id, c.counter, minute),
                         self.keys.rate(c.kind, c.value, c.budget_id, c.counter, minute - 1)]
                argv += [c.limit, c.amount]
            calls.append((TAKE, keys, argv))
        replies = await self.runner.run(calls)
        admitted = all(int(ok) == 1 for ok, _ in replies)
        return admitted, max(int(wait) for _, wait in replies) / 1000
