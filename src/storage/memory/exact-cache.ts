/**
 * `ExactStore` in process (embedded mode): an LRU bounded by entry count and by bytes
 * (`lru-cache`), each entry with its own TTL. Expired entries are never returned; they are
 * dropped when touched or evicted (no timers), and `size()` purges them first. Each tenant has a
 * fair share of both bounds (see the class).
 *
 * Also home to the key-filter helpers every cache adapter shares (`matchesFilter`,
 * `filterPrefix`): cache keys and semantic ids are `<tenant>/<route>/<rest>`.
 */
import { LRUCache } from 'lru-cache';
import type { CacheFilter, ExactStore } from '../../cache/types.js';

/* ------------------------------------------------------------------------------------------ */
/* Filters (shared with the Redis and SQLite cache adapters)                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * The tenant and route of a `<tenant>/<route>/<rest>` key: the text before the first `/`, and
 * between the first and the second. Undefined when the key does not have two separators.
 */
export function keyParts(key: string): { tenantId: string; route: string } | undefined {
  const first = key.indexOf('/');
  if (first < 0) return undefined;
  const second = key.indexOf('/', first + 1);
  if (second < 0) return undefined;
  return { tenantId: key.slice(0, first), route: key.slice(first + 1, second) };
}

/** Whether `key` matches every field the filter gives (an empty filter matches everything). */
export function matchesFilter(key: string, filter: CacheFilter): boolean {
  if (filter.keyPrefix !== undefined && !key.startsWith(filter.keyPrefix)) return false;
  if (filter.tenantId === undefined && filter.route === undefined) return true;
  const parts = keyParts(key);
  if (!parts) return false;
  if (filter.tenantId !== undefined && parts.tenantId !== filter.tenantId) return false;
  if (filter.route !== undefined && parts.route !== filter.route) return false;
  return true;
}

/**
 * The longest literal text every matching key starts with ('' when nothing narrows it), or
 * undefined when the fields contradict each other and nothing can match (tenant `a` with key
 * prefix `b/`). A route without a tenant does not narrow the prefix.
 */
export function filterPrefix(filter: CacheFilter): string | undefined {
  const fromFields =
    filter.tenantId === undefined ? '' : `${filter.tenantId}/${filter.route === undefined ? '' : `${filter.route}/`}`;
  const keyPrefix = filter.keyPrefix ?? '';
  if (keyPrefix.startsWith(fromFields)) return keyPrefix;
  if (fromFields.startsWith(keyPrefix)) return fromFields;
  return undefined;
}

export function isEmptyFilter(filter: CacheFilter): boolean {
  return filter.tenantId === undefined && filter.route === undefined && filter.keyPrefix === undefined;
}

/** A TTL for the backends: a positive integer of milliseconds. */
export function ttlMillis(ttlMs: number): number {
  if (!(ttlMs > 0)) throw new RangeError(`cache ttlMs must be a positive number, got ${ttlMs}`);
  return Math.max(1, Math.ceil(ttlMs));
}

/* ------------------------------------------------------------------------------------------ */
/* The store                                                                                   */
/* ------------------------------------------------------------------------------------------ */

export interface MemoryExactStoreOptions {
  /** At most this many entries. */
  maxEntries: number;
  /** At most this many bytes, counted as UTF-16 (key + value length × 2). A larger value is not stored. */
  maxBytes: number;
  /**
   * At most this many entries per tenant (a key's text before its first `/`): a tenant at its
   * share makes room by evicting its own least recently used entry. Default: `maxEntries`.
   */
  maxEntriesPerTenant?: number;
  /** At most this many bytes per tenant, counted like `maxBytes`; a larger value is not stored. Default: `maxBytes`. */
  maxBytesPerTenant?: number;
  /** The clock TTLs are measured on, in ms (tests: expiry without waiting). Default: `performance.now()`. */
  now?: () => number;
}

/** One tenant's entries in the LRU: key → bytes and last use, least recently used first. */
interface Share {
  keys: Map<string, { bytes: number; used: number }>;
  bytes: number;
}

/** The tenant a key's entry counts against: its text before the first `/` ('' when there is none). */
export function tenantOfKey(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}

const entryBytes = (key: string, value: string): number => Math.max(1, (key.length + value.length) * 2);

/** The first key of `keys` (least recently used) other than `except`. */
function oldestOther(keys: Share['keys'], except: string): string | undefined {
  for (const key of keys.keys()) if (key !== except) return key;
  return undefined;
}

/**
 * Fair shares: each tenant holds at most `maxEntriesPerTenant` entries and `maxBytesPerTenant`
 * bytes; a set over its share evicts that tenant's least recently used entries (a get is a use).
 * When the whole store is full, the entry evicted is the least recently used of the tenant holding
 * the most entries (or bytes, for the byte bound), never one of a smaller tenant: a tenant within
 * its share keeps its entries whatever the others send. (Finding that tenant walks the tenants:
 * O(tenants with entries), only when the whole store is full.)
 */
export class MemoryExactStore implements ExactStore {
  readonly #lru: LRUCache<string, string>;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #tenantEntries: number;
  readonly #tenantBytes: number;
  /** tenant → its entries in the LRU (kept in step by `dispose`): fair shares and tenant invalidations. */
  readonly #shares = new Map<string, Share>();
  /** Uses so far (a clock for the ties between equally large tenants). */
  #uses = 0;

  constructor(opts: MemoryExactStoreOptions) {
    const positive = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
      return v;
    };
    this.#maxEntries = positive('maxEntries', opts.maxEntries);
    this.#maxBytes = positive('maxBytes', opts.maxBytes);
    this.#tenantEntries = positive('maxEntriesPerTenant', opts.maxEntriesPerTenant ?? opts.maxEntries);
    this.#tenantBytes = positive('maxBytesPerTenant', opts.maxBytesPerTenant ?? opts.maxBytes);
    this.#lru = new LRUCache<string, string>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (value, key) => entryBytes(key, value),
      ttlAutopurge: false,
      // An injected clock is read at every call (no cached reading: it may jump).
      ...(opts.now ? { perf: { now: opts.now }, ttlResolution: 0 } : {}),
      allowStale: false,
      updateAgeOnGet: false,
      // 'set' is an overwrite (the key stays) or a refused oversized value (set() handles both).
      dispose: (_value, key, reason) => {
        if (reason !== 'set') this.#unindex(key);
      },
    });
  }

  async get(key: string): Promise<string | undefined> {
    const value = this.#lru.get(key);
    if (value !== undefined) this.#touch(key);
    return value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    const ttl = ttlMillis(ttlMs);
    const bytes = entryBytes(key, value);
    if (bytes > this.#maxBytes || bytes > this.#tenantBytes) {
      this.#lru.delete(key); // larger than the store or a tenant's share: not stored (and any older value is gone)
      return;
    }
    const tenant = tenantOfKey(key);
    const old = this.#shares.get(tenant)?.keys.get(key)?.bytes; // bytes of the entry this one replaces
    const replaces = old === undefined ? 0 : 1;
    // The tenant's own share first: its least recently used entries make room.
    for (;;) {
      const share = this.#shares.get(tenant);
      if (!share) break;
      if (share.keys.size - replaces + 1 <= this.#tenantEntries && share.bytes - (old ?? 0) + bytes <= this.#tenantBytes) break;
      const victim = oldestOther(share.keys, key);
      if (victim === undefined) break;
      this.#evict(victim);
    }
    // Then the whole store: the largest tenant gives way (the LRU would evict whoever is oldest).
    for (;;) {
      const overEntries = this.#lru.size - replaces + 1 > this.#maxEntries;
      if (!overEntries && this.#lru.calculatedSize - (old ?? 0) + bytes <= this.#maxBytes) break;
      const victim = this.#largestTenantsOldest(key, overEntries ? 'entries' : 'bytes');
      if (victim === undefined) break;
      this.#evict(victim);
    }
    this.#lru.set(key, value, { ttl });
    if (this.#lru.has(key)) this.#index(key, bytes);
    else this.#unindex(key);
  }

  async delete(key: string): Promise<void> {
    this.#lru.delete(key);
  }

  async invalidate(filter: CacheFilter): Promise<number> {
    if (filterPrefix(filter) === undefined) return 0;
    if (isEmptyFilter(filter)) {
      let live = 0;
      for (const _ of this.#lru.keys()) live++; // keys() skips expired entries
      this.#lru.clear();
      this.#shares.clear();
      return live;
    }
    const candidates =
      filter.tenantId !== undefined ? [...(this.#shares.get(filter.tenantId)?.keys.keys() ?? [])] : [...this.#lru.keys()];
    let removed = 0;
    for (const key of candidates) {
      if (!matchesFilter(key, filter)) continue;
      const live = this.#lru.has(key);
      this.#lru.delete(key);
      if (live) removed++;
    }
    return removed;
  }

  /** Live entries (expired ones are purged first: O(n), meant for metrics and admin). */
  async size(): Promise<number> {
    this.#lru.purgeStale();
    return this.#lru.size;
  }

  /** Bytes held, as counted against maxBytes. */
  get calculatedSize(): number {
    return this.#lru.calculatedSize;
  }

  /** Entries and bytes `tenant` holds (expired entries not yet dropped included). */
  tenantUsage(tenant: string): { entries: number; bytes: number } {
    const share = this.#shares.get(tenant);
    return { entries: share?.keys.size ?? 0, bytes: share?.bytes ?? 0 };
  }

  async close(): Promise<void> {
    this.#lru.clear();
    this.#shares.clear();
  }

  /**
   * The least recently used key of the tenant holding the most (entries or bytes), `except` aside;
   * of equally large tenants, the one whose least recently used entry is the oldest.
   */
  #largestTenantsOldest(except: string, by: 'entries' | 'bytes'): string | undefined {
    let victim: string | undefined;
    let most = 0;
    let oldest = 0;
    for (const share of this.#shares.values()) {
      const own = share.keys.get(except);
      const held = by === 'entries' ? share.keys.size - (own === undefined ? 0 : 1) : share.bytes - (own?.bytes ?? 0);
      if (held <= 0 || held < most) continue;
      const candidate = oldestOther(share.keys, except);
      if (candidate === undefined) continue;
      const used = share.keys.get(candidate)!.used;
      if (held > most || used < oldest) {
        victim = candidate;
        most = held;
        oldest = used;
      }
    }
    return victim;
  }

  #evict(key: string): void {
    this.#lru.delete(key);
    this.#unindex(key); // already done by dispose, unless the LRU had lost the key: never loop on it
  }

  #index(key: string, bytes: number): void {
    const tenant = tenantOfKey(key);
    let share = this.#shares.get(tenant);
    if (!share) this.#shares.set(tenant, (share = { keys: new Map(), bytes: 0 }));
    const old = share.keys.get(key);
    if (old !== undefined) {
      share.keys.delete(key);
      share.bytes -= old.bytes;
    }
    share.keys.set(key, { bytes, used: ++this.#uses });
    share.bytes += bytes;
  }

  /** A use: the key becomes its tenant's most recently used. */
  #touch(key: string): void {
    const share = this.#shares.get(tenantOfKey(key));
    const entry = share?.keys.get(key);
    if (!share || entry === undefined) return;
    entry.used = ++this.#uses;
    share.keys.delete(key);
    share.keys.set(key, entry);
  }

  #unindex(key: string): void {
    const tenant = tenantOfKey(key);
    const share = this.#shares.get(tenant);
    const entry = share?.keys.get(key);
    if (!share || entry === undefined) return;
    share.keys.delete(key);
    share.bytes -= entry.bytes;
    if (share.keys.size === 0) this.#shares.delete(tenant);
  }
}
