/**
 * HnswVectorIndex: the in-process approximate nearest-neighbour index of the semantic cache
 * (`VectorIndex`, see types.ts), partitioned by scope and bounded by an LRU over all scopes.
 *
 * Vectors are kept per scope by ScopePartitions (vector-partitions.ts: flat arrays for small
 * scopes, an HNSW graph each for large ones, and the measurements behind that design); this file
 * keeps the entries, their tenants and their recency.
 *
 * Recency: an entry is "used" when added (or replaced) and when it is the TOP hit of a search
 * (only the first neighbour returned; the others were merely looked at). Fair shares: entries
 * belong to a tenant (`tenantOf(id)`, by default the id's text before its first `/`: semantic ids
 * are `<tenant>/<route>/<uuid>`). A tenant holding `maxEntriesPerTenant` entries makes room for a
 * new one by evicting its own least recently used entry; when the whole index holds `maxEntries`,
 * the entry evicted is the least recently used of the tenant holding the most, so a tenant within
 * its share never loses entries to another's traffic. Each tenant's LRU is the insertion order of
 * its id → entry Map (touch = delete + set; evict = first key): O(1); finding the largest tenant
 * walks the tenants, only when the whole index is full.
 *
 * Not thread-safe (nothing in Node needs it). Vectors are copied in; callers keep theirs.
 */
import type { Neighbour, VectorIndex } from './types.js';
import { DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_FLAT_LIMIT, DEFAULT_M, type Placed, ScopePartitions } from './vector-partitions.js';

export interface HnswVectorIndexOptions {
  dimensions: number;
  /** Bound over all scopes; beyond it, the largest tenant's least recently used entry is evicted. */
  maxEntries: number;
  /** Bound per tenant, over all its scopes; beyond it, its own least recently used entry is evicted. Default: `maxEntries`. */
  maxEntriesPerTenant?: number;
  /** The tenant an id belongs to. Default: the id's text before its first `/` ('' when there is none). */
  tenantOf?: (id: string) => string;
  /** HNSW links per node (default 16). */
  m?: number;
  /** HNSW build beam width (default 100). */
  efConstruction?: number;
  /** HNSW search beam width (default 64; the search uses max(efSearch, k)). */
  efSearch?: number;
  /** Scopes up to this many entries are searched exactly, without a graph (default 1024). */
  flatLimit?: number;
}

export interface VectorIndexStats {
  entries: number;
  scopes: number;
  /** Scopes that have an HNSW graph (the others are flat). */
  graphScopes: number;
  /** Sum of the graphs' capacities (getMaxElements), live + deleted + unused slots. */
  graphCapacity: number;
  /** Estimated bytes held (vectors, graphs incl. hnswlib's fixed per-index cost, JS bookkeeping). */
  bytes: number;
}

/** Rough JS cost of one entry: the Entry object, its Map slot, a string header. */
const ENTRY_JS_BYTES = 150;

interface Entry extends Placed<Entry> {
  id: string;
  /** The tenant's entries, least recently used first (this entry among them). */
  share: Map<string, Entry>;
  /** When last used (a counter over the whole index): breaks ties between equally large tenants. */
  used: number;
}

function defaultTenantOf(id: string): string {
  const slash = id.indexOf('/');
  return slash < 0 ? '' : id.slice(0, slash);
}

export class HnswVectorIndex implements VectorIndex {
  readonly dimensions: number;
  readonly maxEntries: number;
  readonly maxEntriesPerTenant: number;
  private readonly tenantOf: (id: string) => string;
  /** id -> entry. */
  private readonly entries = new Map<string, Entry>();
  /** tenant -> its entries, least recently used first. */
  private readonly shares = new Map<string, Map<string, Entry>>();
  private uses = 0;
  private readonly parts: ScopePartitions<Entry>;

  constructor(opts: HnswVectorIndexOptions) {
    const posInt = (name: string, v: number): number => {
      if (!Number.isInteger(v) || v < 1) throw new Error(`HnswVectorIndex: ${name} must be a positive integer (got ${v})`);
      return v;
    };
    this.dimensions = posInt('dimensions', opts.dimensions);
    this.maxEntries = posInt('maxEntries', opts.maxEntries);
    this.maxEntriesPerTenant = posInt('maxEntriesPerTenant', opts.maxEntriesPerTenant ?? opts.maxEntries);
    this.tenantOf = opts.tenantOf ?? defaultTenantOf;
    this.parts = new ScopePartitions<Entry>({
      dimensions: this.dimensions,
      m: posInt('m', opts.m ?? DEFAULT_M),
      efConstruction: posInt('efConstruction', opts.efConstruction ?? DEFAULT_EF_CONSTRUCTION),
      efSearch: posInt('efSearch', opts.efSearch ?? DEFAULT_EF_SEARCH),
      flatLimit: posInt('flatLimit', opts.flatLimit ?? DEFAULT_FLAT_LIMIT),
    });
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  add(scope: string, id: string, vector: Float32Array): string[] {
    this.checkVector(vector);
    const existing = this.entries.get(id);
    if (existing) {
      this.touch(existing);
      if (existing.part.scope === scope) {
        this.parts.overwrite(existing, vector);
      } else {
        this.parts.detach(existing);
        this.parts.insert(this.parts.partition(scope), existing, vector);
      }
      return [];
    }
    const evicted: string[] = [];
    const tenant = this.tenantOf(id);
    // The tenant's own share first: its least recently used entries make room.
    for (let own = this.shares.get(tenant); own && own.size >= this.maxEntriesPerTenant; ) {
      evicted.push(this.evict(own.values().next().value as Entry));
    }
    // Then the whole index: the tenant holding the most gives way.
    while (this.entries.size >= this.maxEntries) {
      evicted.push(this.evict(this.largestShare().values().next().value as Entry));
    }
    let share = this.shares.get(tenant);
    if (!share) this.shares.set(tenant, (share = new Map()));
    const part = this.parts.partition(scope); // after evicting: that may have dropped this very scope
    const entry: Entry = { id, share, used: ++this.uses, part, slot: -1, inGraph: false };
    this.parts.insert(part, entry, vector);
    this.entries.set(id, entry);
    share.set(id, entry);
    return evicted;
  }

  remove(id: string): void {
    const entry = this.entries.get(id);
    if (entry) this.evict(entry);
  }

  /** Entries `tenant` holds. */
  tenantSize(tenant: string): number {
    return this.shares.get(tenant)?.size ?? 0;
  }

  search(scope: string, vector: Float32Array, k: number): Neighbour[] {
    this.checkVector(vector);
    k = Math.floor(k);
    if (!(k > 0)) return [];
    const hits = this.parts.search(scope, vector, k);
    const top = hits[0];
    if (top) this.touch(top.entry);
    return hits.map((h) => ({ id: h.entry.id, similarity: h.similarity }));
  }

  clear(): void {
    this.entries.clear();
    this.shares.clear();
    this.parts.clear();
  }

  stats(): VectorIndexStats {
    const { scopes, graphScopes, graphCapacity, bytes: partBytes } = this.parts.stats();
    let bytes = partBytes;
    for (const id of this.entries.keys()) bytes += ENTRY_JS_BYTES + id.length;
    return { entries: this.entries.size, scopes, graphScopes, graphCapacity, bytes: Math.round(bytes) };
  }

  /* ---------------------------------------------------------------------------------------- */

  /** Takes an entry out of everything; returns its id. */
  private evict(entry: Entry): string {
    this.entries.delete(entry.id);
    entry.share.delete(entry.id);
    if (entry.share.size === 0) {
      const tenant = this.tenantOf(entry.id);
      if (this.shares.get(tenant) === entry.share) this.shares.delete(tenant);
    }
    this.parts.detach(entry);
    return entry.id;
  }

  /**
   * The entries of the tenant holding the most (never empty: called while the index is full); of
   * equally large ones, the one whose least recently used entry is the oldest (one tenant: a plain LRU).
   */
  private largestShare(): Map<string, Entry> {
    let largest: Map<string, Entry> | undefined;
    let oldest = 0;
    for (const share of this.shares.values()) {
      const used = (share.values().next().value as Entry).used;
      if (!largest || share.size > largest.size || (share.size === largest.size && used < oldest)) {
        largest = share;
        oldest = used;
      }
    }
    return largest!;
  }

  /** A use: the entry becomes its tenant's most recently used. */
  private touch(entry: Entry): void {
    entry.used = ++this.uses;
    entry.share.delete(entry.id);
    entry.share.set(entry.id, entry);
  }

  private checkVector(vector: Float32Array): void {
    if (!(vector instanceof Float32Array)) throw new Error('HnswVectorIndex: vector must be a Float32Array');
    if (vector.length !== this.dimensions) {
      throw new Error(`HnswVectorIndex: vector has ${vector.length} dimensions, expected ${this.dimensions}`);
    }
  }
}

/** Estimated bytes held by the index (see `stats()`), for benchmarks ("memory per 100k entries"). */
export function memoryEstimateBytes(index: HnswVectorIndex): number {
  return index.stats().bytes;
}
