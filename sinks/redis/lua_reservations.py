"""Lua scripts of reservations and throttling. Each call touches ONE hash slot: the keys of one budget scope
`{<kind>:<value>}` (see sinks/redis/keys.py), so they run unchanged on Redis Cluster.

Per (scope, window) "cell" a script gets three keys of that scope's slot:
  w  the window hash the stream books into (`spend`, ...); these scripts own its `held` field
  z  sorted set reservation id -> expiry (epoch ms): which holds are live
  a  hash reservation id -> held nano-USD
`held` always equals the sum of `a`; every script first prunes holds whose expiry is <= now (bounded per call),
so an expired hold stops counting the next time anyone checks, reserves or reads the scope.

Money crosses into Lua as decimal strings and is added by Redis (HINCRBY, exact int64). Only the admission
comparison `spend + held + estimate > limit` uses Lua numbers (doubles): exact while the operands stay below
2^53 nano-USD (~9.0M USD per window); above that the comparison may be off by a few nano-USD.
"""

__all__ = ["OBSERVE", "RESERVE", "RELEASE", "THROTTLE"]

_PRUNE = """
local function prune(w, z, a, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 512)
  for _, rid in ipairs(gone) do
    local amt = redis.call('HGET', a, rid)
    if amt then
      redis.call('HDEL', a, rid)
      redis.call('HINCRBY', w, 'held', '-' .. amt)
    end
    redis.call('ZREM', z, rid)
  end
end
local function num(v) return tonumber(v or '0') end
"""

# KEYS: cells (w, z, a)...   ARGV[1]: now_ms.
# Prunes expired holds; returns each window hash as a flat HGETALL array.
OBSERVE = _PRUNE + """
local now = tonumber(ARGV[1])
local out = {}
for c = 1, #KEYS, 3 do
  prune(KEYS[c], KEYS[c + 1], KEYS[c + 2], now)
  out[#out + 1] = redis.call('HGETALL', KEYS[c])
end
return out
"""

# KEYS: cells (w, z, a)...   ARGV: now_ms, hold_expiry_ms, reservation_id, estimate, then per cell: limit, expire_at
# (limit -1: no blocking budget on this cell, hold without refusing; expire_at: the window's EXPIREAT, epoch s).
# All-or-nothing within the slot: a cell refuses when spend + held + estimate > limit, or spend + held >= limit
# (the same rule as spendstream.budgets.decide). Idempotent per reservation id: a cell that already holds this
# id admits it again without adding (a pipeline re-sent after a NOSCRIPT reply on another node must not turn an
# admission into a refusal).
# Returns {admitted 0|1, spend_1, held_1, spend_2, held_2, ...} with held BEFORE this reservation.
RESERVE = _PRUNE + """
local now = tonumber(ARGV[1])
local rid = ARGV[3]
local est = ARGV[4]
local e = tonumber(est)
local ok = 1
local out = {0}
for c = 1, #KEYS, 3 do
  prune(KEYS[c], KEYS[c + 1], KEYS[c + 2], now)
  local spend = num(redis.call('HGET', KEYS[c], 'spend'))
  local held = num(redis.call('HGET', KEYS[c], 'held'))
  local mine = redis.call('HGET', KEYS[c + 2], rid)
  if mine then
    held = held - tonumber(mine)
  end
  local limit = tonumber(ARGV[5 + (c - 1) / 3 * 2])
  if limit >= 0 and not mine and (spend + held + e > limit or spend + held >= limit) then ok = 0 end
  out[#out + 1] = spend
  out[#out + 1] = held
end
if ok == 1 then
  for c = 1, #KEYS, 3 do
    local expire_at = ARGV[6 + (c - 1) / 3 * 2]
    if redis.call('HSETNX', KEYS[c + 2], rid, est) == 1 then
      redis.call('HINCRBY', KEYS[c], 'held', est)
      redis.call('ZADD', KEYS[c + 1], ARGV[2], rid)
    end
    redis.call('EXPIREAT', KEYS[c], expire_at)
    redis.call('EXPIREAT', KEYS[c + 1], expire_at)
    redis.call('EXPIREAT', KEYS[c + 2], expire_at)
  end
end
out[1] = ok
return out
"""

# KEYS: cells (w, z, a)...   ARGV: pairs (cell index 1-based, reservation_id).
# Drops each named hold once; returns the nano-USD released per pair (-1 when already gone). Idempotent.
RELEASE = """
local out = {}
for i = 1, #ARGV, 2 do
  local c = (tonumber(ARGV[i]) - 1) * 3 + 1
  local rid = ARGV[i + 1]
  local amt = redis.call('HGET', KEYS[c + 2], rid)
  if amt then
    redis.call('HDEL', KEYS[c + 2], rid)
    redis.call('ZREM', KEYS[c + 1], rid)
    redis.call('HINCRBY', KEYS[c], 'held', '-' .. amt)
    out[#out + 1] = amt
  else
    out[#out + 1] = '-1'
  end
end
return out
"""

# KEYS[1]: the throttle budget's bucket.  ARGV: now_ms, interval_ms (1000 / rate), max_wait_ms.
# A token bucket of burst 1 that hands out retry times: each throttled caller gets the next free slot, one
# interval after the previous one, so retries arrive at the budget's rate instead of all at once.
# When the schedule is max_wait ahead the caller gets max_wait and the schedule is not pushed further.
# Returns the wait in ms.
THROTTLE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local slot = tat + interval
if slot - now > max_wait then return max_wait end
redis.call('SET', KEYS[1], string.format('%d', slot), 'PX', string.format('%d', slot - now + 1000))
return slot - now
"""
