"""Lua of the online counter repair (sinks/redis/repair.py). Each call touches the keys of ONE scope slot, like the
stream's APPLY_SCOPE, so it runs on a Redis Cluster and is atomic against the workers' bookings of that scope."""

__all__ = ["SNAPSHOT", "REPAIR"]

# KEYS[1] the scope's `wm` hash, KEYS[2..] window hashes.  Returns {HGETALL wm, HGETALL window, ...}: the
# watermarks and the counters they account for, read at ONE instant (a booking is one atomic call in this slot).
SNAPSHOT = """
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
"""

# KEYS[1] the repair's guard key (one per repair run and scope), KEYS[2..] window hashes.
# ARGV: guard_ttl_s, then per window key: expire_at, n_pairs, field, delta, ...  (a delta may be negative)
# Adds the deltas once: a re-sent call (a timeout whose first call did run) finds the guard and changes nothing.
# Returns 1 when applied, 0 when this repair was already applied to the scope.
REPAIR = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) == false then return 0 end
local i = 2
for k = 2, #KEYS do
  local expire_at = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for j = 0, n - 1 do
    redis.call('HINCRBY', KEYS[k], ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
  end
  redis.call('EXPIREAT', KEYS[k], expire_at)
  i = i + 2 * n
end
return 1
"""
