"""Lua scripts of reservations and throttling. Each call touches ONE hash slot: the keys of one budget scope
`{<kind>:<value>}` (see sinks/redis/keys.py), so they run unchanged on Redis Cluster.

Per (scope, window) "cell" a script gets three keys of that scope's slot, then the cell's parts:
  w  the window hash the stream books into (`spend`, ...); these scripts own its `held` field
  z  sorted set reservation id -> expiry (epoch ms): which holds are live
  a  hash reservation id -> held nano-USD
  p1..pn  for a quarter or rolling cell: the booked window hashes whose counters sum to its spend (same scope,
     same slot); `w` is then the cell's own hash (`r:24h`, `q:202610`) and carries only `held`.
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
local FIELDS = {'spend', 'tagged', 'events', 'unpriced'}
-- the counters of a cell: its own hash, or (n > 0) its hash's `held` plus the sums of its n part hashes
local function counters(k, n)
  if n == 0 then return redis.call('HGETALL', KEYS[k]) end
  local sums = {0, 0, 0, 0}
  for p = 1, n do
    local v = redis.call('HMGET', KEYS[k + 2 + p], 'spend', 'tagged', 'events', 'unpriced')
    for j = 1, 4 do sums[j] = sums[j] + num(v[j]) end
  end
  local out = {'held', redis.call('HGET', KEYS[k], 'held') or '0'}
  for j = 1, 4 do
    out[#out + 1] = FIELDS[j]
    out[#out + 1] = string.format('%.0f', sums[j])
  end
  return out
end
local function spend_of(k, n)
  if n == 0 then return num(redis.call('HGET', KEYS[k], 'spend')) end
  local s = 0
  for p = 1, n do s = s + num(redis.call('HGET', KEYS[k + 2 + p], 'spend')) end
  return s
end
"""

# KEYS: cells (w, z, a, parts...)...   ARGV[1]: now_ms, then per cell: its number of parts.
# Prunes expired holds; returns each cell's counters as a flat HGETALL array.
OBSERVE = _PRUNE + """
local now = tonumber(ARGV[1])
local out = {}
local k = 1
for c = 2, #ARGV do
  local n = tonumber(ARGV[c])
  prune(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  out[#out + 1] = counters(k, n)
  k = k + 3 + n
end
return out
"""

# KEYS: cells (w, z, a, parts...)...   ARGV: now_ms, hold_expiry_ms, reservation_id, estimate, then per cell:
# limit, expire_at, number of parts (limit -1: no blocking budget on this cell, hold without refusing; expire_at:
# the cell's EXPIREAT, epoch s; a cell's spend is its parts' sum when it has parts).
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
local cells = {}
local k = 1
for a = 5, #ARGV, 3 do
  local n = tonumber(ARGV[a + 2])
  prune(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  local spend = spend_of(k, n)
  local held = num(redis.call('HGET', KEYS[k], 'held'))
  local mine = redis.call('HGET', KEYS[k + 2], rid)
  if mine then
    held = held - tonumber(mine)
  end
  local limit = tonumber(ARGV[a])
  if limit >= 0 and not mine and (spend + held + e > limit or spend + held >= limit) then ok = 0 end
  out[#out + 1] = string.format('%.0f', spend)
  out[#out + 1] = held
  cells[#cells + 1] = {k, ARGV[a + 1]}
  k = k + 3 + n
end
if ok == 1 then
  for _, cell in ipairs(cells) do
    local c, expire_at = cell[1], cell[2]
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
