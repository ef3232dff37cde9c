/**
 * The Lua scripts of `RedisCounters`. Each operation is one script, so it is atomic across every
 * gateway process sharing the Redis: it reads all its keys, checks all, then writes all (or
 * nothing). The arithmetic mirrors src/storage/memory/counters.ts.
 *
 * Buckets are hashes {tokens, ts}: `tokens` is a double written with %.17g (exact round trip),
 * `ts` the Redis server's own TIME in ms, so processes with skewed clocks agree. A bucket expires
 * when it would be full again plus a margin (absent and full are the same state).
 * Budgets are plain integer strings (INCRBY), exact up to 2^53 where Lua's doubles compare them.
 *
 * Infinity cannot cross the Lua/Redis boundary: -1 stands for it in millisecond fields.
 */

/** time to hold `needed` units, shared by the bucket scripts (-1 = never). */
const BUCKET_LIB = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local function fmt(x) return string.format('%.17g', x) end

local function wait_ms(cap, rate, tokens, needed)
  if needed <= tokens then return 0 end
  if needed > cap or rate <= 0 then return -1 end
  return math.ceil((needed - tokens) / rate * 1000)
end

local function load(key, cap, rate)
  local h = redis.call('HMGET', key, 'tokens', 'ts')
  if not h[1] or not h[2] then return cap end
  local elapsed = math.max(0, now - tonumber(h[2])) / 1000
  return math.min(cap, tonumber(h[1]) + elapsed * rate)
end

local function store(key, cap, rate, tokens, margin, max_expiry)
  redis.call('HSET', key, 'tokens', fmt(tokens), 'ts', fmt(now))
  local to_full = wait_ms(cap, rate, tokens, cap)
  if to_full >= 0 and to_full + margin <= max_expiry then
    redis.call('PEXPIRE', key, to_full + margin)
  else
    redis.call('PERSIST', key)
  end
end
`;

/**
 * KEYS: bucket keys (a key may repeat: later takes see earlier ones).
 * ARGV: capacity, refillPerSec, amount for each key; then marginMs, maxExpiryMs.
 * Returns {ok, refusedIndex (-1), retryAfterMs, remaining_1, resetMs_1, ..., remaining_n, resetMs_n}.
 */
export const TAKE_LUA = `${BUCKET_LIB}
local n = #KEYS
local margin = tonumber(ARGV[3 * n + 1])
local max_expiry = tonumber(ARGV[3 * n + 2])
local function cap_of(i) return tonumber(ARGV[3 * i - 2]) end
local function rate_of(i) return tonumber(ARGV[3 * i - 1]) end
-- The reply: its head, then each take's remaining tokens and reset time, from the given levels.
local function reply(res, tokens_by_key)
  for j = 1, n do
    local tokens = tokens_by_key[KEYS[j]]
    res[#res + 1] = fmt(tokens)
    res[#res + 1] = wait_ms(cap_of(j), rate_of(j), tokens, cap_of(j))
  end
  return res
end

local before = {}
for i = 1, n do
  if before[KEYS[i]] == nil then before[KEYS[i]] = load(KEYS[i], cap_of(i), rate_of(i)) end
end

local after = {}
for k, v in pairs(before) do after[k] = v end
for i = 1, n do
  local key, cap, rate, amount = KEYS[i], cap_of(i), rate_of(i), tonumber(ARGV[3 * i])
  local available = math.min(cap, after[key])
  if amount > available then
    local needed = amount + (before[key] - available)
    return reply({0, i - 1, wait_ms(cap, rate, math.min(cap, before[key]), needed)}, before)
  end
  after[key] = available - amount
end

local last = {}
for i = 1, n do last[KEYS[i]] = i end
for key, i in pairs(last) do store(key, cap_of(i), rate_of(i), after[key], margin, max_expiry) end

return reply({1, -1, 0}, after)
`;

/** KEYS[1]: bucket. ARGV: capacity, refillPerSec, delta, marginMs, maxExpiryMs. */
export const ADJUST_LUA = `${BUCKET_LIB}
local cap, rate, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = math.min(cap, load(KEYS[1], cap, rate) + delta)
store(KEYS[1], cap, rate, tokens, tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
`;

/**
 * KEYS: budget keys (a key may repeat), then each one's epoch key, in the same order. ARGV: limit,
 * amount, ttlMs for each budget (integer strings).
 * Returns {ok, refusedIndex (-1), {used_1..used_n}, {missingIndex...}, {epoch_1..epoch_n}}.
 */
export const RESERVE_LUA = `
local n = #KEYS / 2
local epochs = {}
for i = 1, n do epochs[i] = redis.call('GET', KEYS[n + i]) or '' end
local before, missing = {}, {}
for i = 1, n do
  local key = KEYS[i]
  if before[key] == nil then
    local v = redis.call('GET', key)
    if v then before[key] = tonumber(v) else before[key] = false; missing[#missing + 1] = i - 1 end
  end
end
local used = {}
for i = 1, n do used[i] = before[KEYS[i]] or 0 end
if #missing > 0 then return {0, -1, used, missing, epochs} end

local after = {}
for k, v in pairs(before) do after[k] = v end
for i = 1, n do
  local key, limit, amount = KEYS[i], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if after[key] + amount > limit then return {0, i - 1, used, {}, epochs} end
  after[key] = after[key] + amount
end

local final = {}
for i = 1, n do
  final[KEYS[i]] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
  if epochs[i] ~= '' then redis.call('PEXPIRE', KEYS[n + i], ARGV[3 * i]) end
end
for i = 1, n do used[i] = final[KEYS[i]] end
return {1, -1, used, {}, epochs}
`;

/**
 * KEYS[1]: budget, KEYS[2]: its epoch key. ARGV: delta (actual - reserved, integer string), ttlMs,
 * then optionally the reservation's epoch and the actual cost: when the counter's epoch is another
 * (seeded anew since the reservation, so it never held it), the actual cost is added instead of
 * the delta. A missing counter stays missing (the next reserve reports it and the caller seeds it
 * from the ledger); `used` never goes below zero.
 */
export const SETTLE_LUA = `
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local delta = ARGV[1]
if ARGV[3] and (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then delta = ARGV[4] end
local v = redis.call('INCRBY', key, delta)
if v < 0 then
  redis.call('INCRBY', key, string.format('%.0f', -v))
  v = 0
end
if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ARGV[2]) end
return v
`;

/**
 * KEYS[1]: budget, KEYS[2]: its epoch key. ARGV: spent (integer string), ttlMs, epoch. Creates the
 * counter with `spent` and its epoch when it does not exist; returns 1 then, 0 when it existed.
 */
export const SEED_LUA = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return 1
`;
