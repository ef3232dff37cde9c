/**
 * `ExactStore` in process (embedded mode): an LRU bounded by entry count and by bytes
 * (`lru-cache`), each entry with its own TTL. Expired entries are never returned; they are
 * dropped when touched or evicted (no timers), and `size()` purges them first.
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
}

export class MemoryExactStore implements ExactStore {
  readonly #lru: LRUCache<string, string>;
  /** tenant → its keys currently in the LRU (kept in step by `dispose`), for tenant invalidations. */
  readonly #byTenant = new Map<string, Set<string>>();

  constructor(opts: MemoryExactStoreOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    if (!Number.isInteger(opts.maxBytes) || opts.maxBytes < 1) {
      throw new RangeError(`maxBytes must be a positive integer, got ${opts.maxBytes}`);
    }
    this.#lru = new LRUCache<string, string>({
      max: opts.maxEntries,
      maxSize: opts.maxBytes,
      sizeCalculation: (value, key) => Math.max(1, (key.length + value.length) * 2),
      ttlAutopurge: false,
      allowStale: false,
      updateAgeOnGet: false,
      // 'set' is an overwrite (the key stays) or a refused oversized value (set() handles both).
      dispose: (_value, key, reason) => {
        if (reason !== 'set') this.#unindex(key);
      },
    });
  }

  async get(key: string): Promise<string | undefined> {
    return this.#lru.get(key);
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#lru.set(key, value, { ttl: ttlMillis(ttlMs) });
    if (this.#lru.has(key)) this.#index(key);
    else this.#unindex(key); // larger than maxBytes: not stored (and any older value is gone)
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
      this.#byTenant.clear();
      return live;
    }
    const candidates =
      filter.tenantId !== undefined ? [...(this.#byTenant.get(filter.tenantId) ?? [])] : [...this.#lru.keys()];
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

  async close(): Promise<void> {
    this.#lru.clear();
    this.#byTenant.clear();
  }

  #index(key: string): void {
    const parts = keyParts(key);
    if (!parts) return;
    let keys = this.#byTenant.get(parts.tenantId);
    if (!keys) this.#byTenant.set(parts.tenantId, (keys = new Set()));
    keys.add(key);
  }

  #unindex(key: string): void {
    const parts = keyParts(key);
    if (!parts) return;
    const keys = this.#byTenant.get(parts.tenantId);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.#byTenant.delete(parts.tenantId);
  }
}
