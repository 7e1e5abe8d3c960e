"""The Lua scripts of the Redis spend store. Each touches the keys of ONE hash slot (one `{...}` hash tag), so
the same scripts run on Redis Cluster.

Slot groups:
  {p:<topic>:<partition>}  per Kafka partition: `applied` offset mark and the `journal` of batches marked applied
                           but not yet fanned out to the scopes.
                           Also `owner` (ownership epoch) and `inflight` (the owner's last INSERT intent): FENCE.
  {dd:<topic>:<bucket>}    event-id dedupe: `seen:g<generation>` hashes, id -> the record that first carried it;
                           bucket = crc32(event_id) % 16, generation = 32 days of arrival (keys.seen_generation):
                           a copy is caught whatever event_time it carries.
  {<kind>:<value>}         per budget scope (org:all, team:payments, model:openai/gpt-4o, ...): one hash per
                           window (`h:..`, `d:..`, `w:..`, `m:..`) with spend / tagged / events / unpriced, and
                           `wm`, the highest offset applied per partition — the per-scope idempotency mark.
  {<kind>#<bucket>}        the same keys (`{user#17}:<value>:<window>`, `...:wm`) of a high-cardinality scope
                           (project, customer, user, api_key): crc32(value) % 64 buckets per kind, so a batch
                           applies every value of one bucket in one APPLY_SLOT call.
"""

__all__ = ["DEDUPE", "JOURNAL", "APPLY_SCOPE", "APPLY_SLOT", "FENCE"]

# KEYS: pairs of the bucket's generation keys (a generation, then the one before it).  ARGV: ttl_s, then three
# \x1f-joined lists of equal length: the index (1-based) of the pair's first key, event_id, record. (Three strings
# instead of 3 x N arguments: packing thousands of arguments cost more client CPU than the script; event ids never
# contain control characters — validation dead-letters them.)
# Records which record ("partition:offset.index") first carried each id, in the newer generation; an id first
# carried by ANOTHER record (in either generation) is a duplicate. Idempotent: a redelivered record is not a
# duplicate of itself. Only the newer keys' TTL is renewed: an older generation ages out.
# Returns the 0-based positions of duplicates.
DEDUPE = """
local ttl = tonumber(ARGV[1])
local function split(s)
  local out = {}
  for part in string.gmatch(s, '[^\\31]+') do out[#out + 1] = part end
  return out
end
local idx, ids, recs = split(ARGV[2]), split(ARGV[3]), split(ARGV[4])
local dups = {}
for n = 1, #ids do
  local i = tonumber(idx[n])
  local first = redis.call('HGET', KEYS[i], ids[n])
  if not first then first = redis.call('HGET', KEYS[i + 1], ids[n]) end
  if not first then
    redis.call('HSET', KEYS[i], ids[n], recs[n])
  elseif first ~= recs[n] then
    dups[#dups + 1] = n - 1
  end
end
for i = 1, #KEYS, 2 do redis.call('EXPIRE', KEYS[i], ttl) end
return dups
"""

# KEYS[1] applied mark, KEYS[2] journal hash.  ARGV: first_offset, last_offset, payload.
# Marks the batch [first, last] applied for its partition and keeps its fan-out payload until the scopes hold it.
# Returns {1, last} when accepted, {0, applied} when the batch overlaps what was applied (a stale or zombie batch),
# {2, last} when this very batch (same last offset, same payload) is journaled and its fan-out not finished: the
# caller's earlier call ran but its reply was lost (a timeout, a connection cut by a failover); the caller finishes
# the fan-out, which every scope's watermark makes idempotent, instead of dropping the partition as stale.
JOURNAL = """
local applied = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= applied then
  if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then return {2, tonumber(ARGV[2])} end
  return {0, applied}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
return {1, tonumber(ARGV[2])}
"""

# KEYS[1] the scope's `wm` hash, KEYS[2..] the scope's window hashes.
# ARGV: wm_field, last_offset, then per window key: expire_at, n_pairs, field, delta, ...
# Applies the deltas unless this scope already holds the batch (wm >= last_offset); either way returns the
# window hashes' `spend` after the call, so budgets are evaluated without another round trip.
APPLY_SCOPE = """
local wm = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local last = tonumber(ARGV[2])
local fresh = wm < last
local i = 3
local out = {}
for k = 2, #KEYS do
  local expire_at = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  if fresh then
    for j = 0, n - 1 do
      redis.call('HINCRBY', KEYS[k], ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
    end
    redis.call('EXPIREAT', KEYS[k], expire_at)
  end
  i = i + 2 * n
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[k], 'spend') or '0')
end
if fresh then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return out
"""

# The APPLY_SCOPE calls of several scopes of ONE slot (a bucket of high-cardinality values), in one call.
# KEYS: per scope: its `wm` hash, then its window hashes.  ARGV: wm_field, last_offset, then per scope: its number
# of window keys followed by that scope's APPLY_SCOPE arguments after (wm_field, last_offset). Same semantics
# per scope (each has its own watermark); returns every scope's window spends, flat, in order.
APPLY_SLOT = """
local last = tonumber(ARGV[2])
local i = 3
local k = 1
local out = {}
while i <= #ARGV do
  local nw = tonumber(ARGV[i])
  i = i + 1
  local wmkey = KEYS[k]
  k = k + 1
  local wm = tonumber(redis.call('HGET', wmkey, ARGV[1]) or '-1')
  local fresh = wm < last
  for w = 1, nw do
    local key = KEYS[k]
    k = k + 1
    local expire_at = ARGV[i]
    local n = tonumber(ARGV[i + 1])
    i = i + 2
    if fresh then
      for j = 0, n - 1 do
        redis.call('HINCRBY', key, ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
      end
      redis.call('EXPIREAT', key, expire_at)
    end
    i = i + 2 * n
    out[#out + 1] = tonumber(redis.call('HGET', key, 'spend') or '0')
  end
  if fresh then redis.call('HSET', wmkey, ARGV[1], ARGV[2]) end
end
return out
"""

# KEYS[1] the partition's `owner` epoch, KEYS[2] its `inflight` intent.  ARGV: the flushing worker's epoch, intent.
# The flush fence and the INSERT intent in one call: when the epoch moved past the worker's (another worker was
# assigned the partition since), records nothing; else records the intent (the ranges and dedup tokens of the
# INSERT about to be sent). Returns the current epoch either way (the caller compares: greater = fenced).
FENCE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur > tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[2], ARGV[2])
return cur
"""
