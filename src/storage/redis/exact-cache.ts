/**
 * `ExactStore` on Redis (distributed mode): one string key per answer, `<prefix>cx:<cache key>`,
 * written with `SET ... PX <ttl>` so Redis expires it (and evicts it under its own maxmemory
 * policy). Invalidation SCANs the narrowest literal prefix the filter allows (glob
 * metacharacters in tenant ids, routes and prefixes escaped), checks every key against the whole
 * filter in JS, and UNLINKs in batches. `size()` counts keys with SCAN: approximate (SCAN may
 * return a key twice while Redis rehashes, and keys expire or arrive during the walk) and O(n)
 * in the prefix's keys: for metrics and admin, not the hot path.
 *
 * Fair shares (`maxEntriesPerTenant`): each tenant (a key's text before its first `/`) has a sorted
 * set `<prefix>cxt:<tenant>` of its keys by last use (score: a counter, the set's highest score
 * + 1, so uses in the same millisecond, or from processes whose clocks differ, keep their order).
 * `set` is one Lua script: SET ... PX, ZADD, and, when the tenant holds more than its share, UNLINK
 * of its least recently used keys (at most TRIM_PER_WRITE a write) and ZREM of their members;
 * `get` (also a script) moves the key to the top when it exists. The set's TTL is raised to the
 * longest TTL written into it, so it expires after the last of its entries: nothing leaks. A
 * member whose entry has expired still counts until it is trimmed (it is usually the least
 * recently used) or its set expires.
 *
 * The client is the caller's: `close()` does not quit it unless `ownsClient: true` was given.
 */
import type { Redis } from 'ioredis';
import type { CacheFilter, ExactStore } from '../../cache/types.js';
import { filterPrefix, matchesFilter, tenantOfKey, ttlMillis } from '../memory/exact-cache.js';
import { type ScriptCall, defineScripts, exec, quit } from './commands.js';

export interface RedisExactStoreOptions {
  redis: Redis;
  /** Prepended to every key, e.g. `tollgate:` (tests use a unique one). Default `tollgate:`. */
  prefix?: string;
  /** Quit the client on `close()`. Default false: the client belongs to whoever created it. */
  ownsClient?: boolean;
  /** Entries one tenant may hold; beyond it, its least recently used are evicted. Default: unbounded. */
  maxEntriesPerTenant?: number;
}

const SCAN_COUNT = 1_000;
const UNLINK_BATCH = 500;
/** Most keys one write trims (a lowered share is reached over a few writes, never in one long script). */
const TRIM_PER_WRITE = 1_000;

/**
 * KEYS[1] the entry, KEYS[2] its tenant's set; ARGV[1] value, ARGV[2] TTL ms, ARGV[3] the cache key
 * (member), ARGV[4] the share (0: unbounded), ARGV[5] the entries' key namespace, ARGV[6] trim cap.
 * Returns how many entries of the tenant were evicted.
 */
const SET_LUA = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local score = 1
if #top == 2 then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[3])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
local share = tonumber(ARGV[4])
if share <= 0 then return 0 end
local over = math.min(redis.call('ZCARD', KEYS[2]) - share, tonumber(ARGV[6]))
if over <= 0 then return 0 end
local evicted = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, over)) do
  if evicted == over then break end
  if member ~= ARGV[3] then
    redis.call('UNLINK', ARGV[5] .. member)
    redis.call('ZREM', KEYS[2], member)
    evicted = evicted + 1
  end
end
return evicted`;

/** KEYS[1] the entry, KEYS[2] its tenant's set; ARGV[1] the cache key. A hit makes it the tenant's most recently used. */
const GET_LUA = `
local value = redis.call('GET', KEYS[1])
if value then
  local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('ZADD', KEYS[2], 1, ARGV[1])
    redis.call('PEXPIRE', KEYS[2], math.max(1, redis.call('PTTL', KEYS[1])))
  elseif top[1] ~= ARGV[1] then
    redis.call('ZADD', KEYS[2], tonumber(top[2]) + 1, ARGV[1])
  end
end
return value`;

const SCRIPTS = { set: { name: 'tollgateExactSet', lua: SET_LUA }, get: { name: 'tollgateExactGet', lua: GET_LUA } };

/** Escapes Redis glob metacharacters (`* ? [ ] \`) so `text` matches literally in MATCH patterns. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * The MATCH pattern (relative to a key namespace) that finds every key the filter can match, or
 * undefined when nothing can match. Always a superset: callers check each key with matchesFilter.
 */
export function filterGlob(filter: CacheFilter): string | undefined {
  const prefix = filterPrefix(filter);
  if (prefix === undefined) return undefined;
  // A route without a tenant: `*/<route>/*` (the tenant never contains `/`, but `*` may span
  // one, so this is still a superset and the JS check decides).
  if (filter.tenantId === undefined && filter.route !== undefined && prefix === '') {
    return `*/${escapeGlob(filter.route)}/*`;
  }
  return `${escapeGlob(prefix)}*`;
}

/** Walks the keys matching `pattern` (a full MATCH pattern), a page at a time. */
export async function* scanKeys(redis: Redis, pattern: string, count = SCAN_COUNT): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', count);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

export class RedisExactStore implements ExactStore {
  readonly #redis: Redis;
  readonly #ns: string;
  /** Namespace of the tenants' sets (`<prefix>cxt:`): outside `cx:`, so SCANs of entries never see them. */
  readonly #sharesNs: string;
  readonly #ownsClient: boolean;
  readonly #share: number;
  readonly #scripts: Record<keyof typeof SCRIPTS, ScriptCall>;
  #closed = false;

  constructor(opts: RedisExactStoreOptions) {
    const share = opts.maxEntriesPerTenant ?? 0;
    if (!Number.isInteger(share) || share < 0) throw new RangeError(`maxEntriesPerTenant must be a positive integer, got ${share}`);
    this.#redis = opts.redis;
    this.#ns = `${opts.prefix ?? 'tollgate:'}cx:`;
    this.#sharesNs = `${opts.prefix ?? 'tollgate:'}cxt:`;
    this.#ownsClient = opts.ownsClient ?? false;
    this.#share = share;
    this.#scripts = defineScripts(this.#redis, SCRIPTS);
  }

  async get(key: string): Promise<string | undefined> {
    this.#checkOpen();
    const value = await this.#scripts.get(2, this.#ns + key, this.#shareKey(key), key);
    return typeof value === 'string' ? value : undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#checkOpen();
    const ttl = ttlMillis(ttlMs);
    await this.#scripts.set(2, this.#ns + key, this.#shareKey(key), value, String(ttl), key, String(this.#share), this.#ns, String(TRIM_PER_WRITE));
  }

  async delete(key: string): Promise<void> {
    this.#checkOpen();
    await exec(this.#redis.multi().unlink(this.#ns + key).zrem(this.#shareKey(key), key));
  }

  /**
   * Returns how many keys UNLINK removed: a key SCAN returns twice is counted once, one that
   * expires during the walk not at all.
   */
  async invalidate(filter: CacheFilter): Promise<number> {
    this.#checkOpen();
    const glob = filterGlob(filter);
    if (glob === undefined) return 0;
    const pattern = escapeGlob(this.#ns) + glob;
    let removed = 0;
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const byTenant = new Map<string, string[]>();
      for (const full of batch) {
        const key = full.slice(this.#ns.length);
        const shareKey = this.#shareKey(key);
        byTenant.set(shareKey, [...(byTenant.get(shareKey) ?? []), key]);
      }
      const pipeline = this.#redis.multi().unlink(...batch);
      for (const [shareKey, keys] of byTenant) pipeline.zrem(shareKey, ...keys);
      removed += Number((await exec(pipeline))[0]);
      batch = [];
    };
    for await (const keys of scanKeys(this.#redis, pattern)) {
      for (const full of keys) {
        if (!matchesFilter(full.slice(this.#ns.length), filter)) continue;
        batch.push(full);
        if (batch.length >= UNLINK_BATCH) await flush();
      }
    }
    await flush();
    // Whole tenants gone: their sets go too (with the members of entries that had expired).
    if (filter.route === undefined && filter.keyPrefix === undefined) {
      if (filter.tenantId !== undefined) await this.#redis.unlink(this.#sharesNs + filter.tenantId);
      else for await (const keys of scanKeys(this.#redis, `${escapeGlob(this.#sharesNs)}*`)) await this.#redis.unlink(...keys);
    }
    return removed;
  }

  /** Approximate (see the header): a SCAN count of the keys under the prefix. */
  async size(): Promise<number> {
    this.#checkOpen();
    let n = 0;
    for await (const keys of scanKeys(this.#redis, `${escapeGlob(this.#ns)}*`)) n += keys.length;
    return n;
  }

  /** Idempotent. Quits the client only when this adapter owns it (`ownsClient: true`). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsClient) await quit(this.#redis);
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('exact cache is closed');
  }

  #shareKey(key: string): string {
    return this.#sharesNs + tenantOfKey(key);
  }
}
