/**
 * `ExactStore` on Redis (distributed mode): one string key per answer, `<prefix>cx:<cache key>`,
 * written with `SET ... PX <ttl>` so Redis expires it (and evicts it under its own maxmemory
 * policy). Invalidation SCANs the narrowest literal prefix the filter allows (glob
 * metacharacters in tenant ids, routes and prefixes escaped), checks every key against the whole
 * filter in JS, and UNLINKs in batches. `size()` counts keys with SCAN: approximate (SCAN may
 * return a key twice while Redis rehashes, and keys expire or arrive during the walk) and O(n)
 * in the prefix's keys: for metrics and admin, not the hot path.
 *
 * The client is the caller's: `close()` does not quit it unless `ownsClient: true` was given.
 */
import type { Redis } from 'ioredis';
import type { CacheFilter, ExactStore } from '../../cache/types.js';
import { filterPrefix, matchesFilter, ttlMillis } from '../memory/exact-cache.js';

export interface RedisExactStoreOptions {
  redis: Redis;
  /** Prepended to every key, e.g. `tollgate:` (tests use a unique one). Default `tollgate:`. */
  prefix?: string;
  /** Quit the client on `close()`. Default false: the client belongs to whoever created it. */
  ownsClient?: boolean;
}

const SCAN_COUNT = 1_000;
const UNLINK_BATCH = 500;

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
  readonly #ownsClient: boolean;
  #closed = false;

  constructor(opts: RedisExactStoreOptions) {
    this.#redis = opts.redis;
    this.#ns = `${opts.prefix ?? 'tollgate:'}cx:`;
    this.#ownsClient = opts.ownsClient ?? false;
  }

  async get(key: string): Promise<string | undefined> {
    this.#checkOpen();
    return (await this.#redis.get(this.#ns + key)) ?? undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#checkOpen();
    await this.#redis.set(this.#ns + key, value, 'PX', ttlMillis(ttlMs));
  }

  async delete(key: string): Promise<void> {
    this.#checkOpen();
    await this.#redis.unlink(this.#ns + key);
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
      removed += await this.#redis.unlink(...batch);
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
}

/**
 * QUIT (or, with `hard`, drop the connection at once), falling back to a disconnect; resolves
 * once the connection has ended, or after 2 s (a client between reconnection attempts has no
 * socket to close, and may never say 'end').
 */
export async function quit(redis: Redis, hard = false): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  const ended = new Promise<void>((resolve) => {
    redis.once('end', () => resolve());
    timer = setTimeout(resolve, 2_000);
  });
  if (hard) redis.disconnect();
  else await redis.quit().catch(() => redis.disconnect());
  await ended;
  clearTimeout(timer);
}
