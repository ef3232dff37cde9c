/**
 * The Lua scripts of the Redis semantic store (src/storage/redis/semantic-cache.ts, where the key
 * layout is described): each runs atomically, so an entry, its sets and the announcement of the
 * change are written together.
 */

/**
 * Removes from both sets, and from their tenants' sets (ARGV[3] .. tenant), up to ARGV[2] members
 * whose expiry (sc:exp score) is <= ARGV[1].
 */
const PURGE_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
  for _, id in ipairs(ids) do
    redis.call('ZREM', ARGV[3] .. (string.match(id, '^([^/]*)/') or ''), id)
  end
end
return #ids`;

/**
 * Writes an entry and holds its tenant to its share. KEYS: the entry's hash, sc:idx, sc:exp, the
 * tenant's set. ARGV: [1] id, [2] TTL ms, [3] createdAt, [4] expiresAt, [5] share (0: unbounded),
 * [6] the hashes' key namespace, [7] channel, [8] the put message, [9] origin, [10] trim cap,
 * [11..] the hash's fields and values. Returns the evicted ids (announced as one delete).
 */
const PUT_LUA = `
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
redis.call('UNLINK', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 11, #ARGV))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('ZADD', KEYS[3], ARGV[4], id)
local top = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
local score = 1
if #top == 2 then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[4], score, id)
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
local share = tonumber(ARGV[5])
if share <= 0 then return {} end
local over = math.min(redis.call('ZCARD', KEYS[4]) - share, tonumber(ARGV[10]))
if over <= 0 then return {} end
local evicted = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, over)) do
  if #evicted == over then break end
  if member ~= id then evicted[#evicted + 1] = member end
end
for _, member in ipairs(evicted) do
  redis.call('UNLINK', ARGV[6] .. member)
  redis.call('ZREM', KEYS[4], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
end
redis.call('PUBLISH', ARGV[7], cjson.encode({origin = ARGV[9], kind = 'delete', ids = evicted}))
return evicted`;

/** A get that found the entry (KEYS[1], its hash) makes it its tenant's (KEYS[2]) most recently used. ARGV[1]: the id. */
const TOUCH_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #top == 2 and top[1] == ARGV[1] then return 1 end
local score = 1
if #top == 2 then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1`;

/** Sets the threshold only on an existing entry (HSET would create a bare hash), and announces it. */
const THRESHOLD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'threshold', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

export const SEMANTIC_SCRIPTS = {
  purge: { name: 'tollgateSemanticPurge', lua: PURGE_LUA },
  threshold: { name: 'tollgateSemanticThreshold', lua: THRESHOLD_LUA },
  put: { name: 'tollgateSemanticPut', lua: PUT_LUA },
  touch: { name: 'tollgateSemanticTouch', lua: TOUCH_LUA },
};
