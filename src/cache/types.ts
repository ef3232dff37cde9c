/**
 * The cache's interfaces: embedders, the false-hit guard, the vector index and the two stores
 * (exact answers; semantic entries). Implementations live beside this file (embedders/,
 * vector-index.ts, guard.ts) and under src/storage/{memory,sqlite,redis}/; the services that use
 * them are service.ts (CacheService), semantic.ts and singleflight.ts, and the pipeline stage is
 * src/pipeline/stages/cache.ts.
 */

/* ------------------------------------------------------------------------------------------ */
/* Embedders                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/** What an embedding call cost, when it called a metered model. */
export interface EmbedCost {
  /** The public model that embedded. */
  model: string;
  promptTokens: number;
  /** Integer pico-dollars (0 when the model has no price). */
  costPico: number;
}

export interface EmbedResult {
  /** One unit-length (L2-normalized) vector per text, each of `dimensions` floats. */
  vectors: Float32Array[];
  /** Set by embedders that call a priced model (the request that caused it pays it). */
  cost?: EmbedCost;
}

export interface Embedder {
  /**
   * A stable name of the embedding space (kind, model, version, dimensions), e.g.
   * `builtin:v1:256`. It is part of every semantic scope, so vectors of two embedders (or two
   * versions of one) are never compared with each other.
   */
  readonly id: string;
  readonly dimensions: number;
  embed(texts: string[], opts?: { signal?: AbortSignal }): Promise<EmbedResult>;
  close(): Promise<void>;
}

/* ------------------------------------------------------------------------------------------ */
/* False-hit guard                                                                             */
/* ------------------------------------------------------------------------------------------ */

export type GuardVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Decides whether the answer cached for `cached` may answer `query` when their vectors are close:
 * the details a similarity score overlooks (numbers and amounts, names, negations...) must agree.
 * Pure and synchronous (runs on the hot path for each candidate).
 */
export interface HitGuard {
  check(query: string, cached: string): GuardVerdict;
}

/* ------------------------------------------------------------------------------------------ */
/* Vector index                                                                                */
/* ------------------------------------------------------------------------------------------ */

export interface Neighbour {
  id: string;
  /** Cosine similarity in [-1, 1] (vectors are unit length: the inner product). */
  similarity: number;
}

/**
 * Approximate nearest neighbours, partitioned by scope: a search only ever sees entries added
 * under the same scope. In process; bounded to `maxEntries` over all scopes and to a share per
 * tenant (ids are `<tenant>/...`): a tenant at its share evicts its own least recently used (added
 * or returned first by a search) entry; a full index evicts that of the tenant holding the most.
 */
export interface VectorIndex {
  /** Adds (or replaces) an entry; returns the ids evicted to make room (the caller drops them from its store). */
  add(scope: string, id: string, vector: Float32Array): string[];
  remove(id: string): void;
  /** Up to `k` nearest entries of `scope`, most similar first. */
  search(scope: string, vector: Float32Array, k: number): Neighbour[];
  has(id: string): boolean;
  readonly size: number;
  clear(): void;
}

/* ------------------------------------------------------------------------------------------ */
/* Stores                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/**
 * Which entries an invalidation removes. Every field given must match; none given: everything.
 * `keyPrefix` matches the start of the exact cache key (`<tenant>/<route>/<hash>`, see key.ts)
 * and of the semantic entry's id.
 */
export interface CacheFilter {
  tenantId?: string;
  route?: string;
  keyPrefix?: string;
}

/**
 * Exact answers by cache key, with a TTL. memory (LRU bounded by entries and bytes) | redis.
 * Values are opaque strings (a serialized CachedAnswer).
 *
 * Fair shares: an adapter given a per-tenant bound (`maxEntriesPerTenant`; the tenant is a key's
 * text before its first `/`) holds each tenant to it; a `set` over the share evicts that tenant's
 * least recently used entries (`set` and a `get` that finds the entry are uses), never another
 * tenant's. An overwrite is not a new entry; `delete` and `invalidate` give the slots back.
 */
export interface ExactStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Removes the matching entries; returns how many. */
  invalidate(filter: CacheFilter): Promise<number>;
  /** Entries held (approximate for redis). */
  size(): Promise<number>;
  close(): Promise<void>;
}

/** One semantic cache entry: a question's vector and the answer given to it. */
export interface SemanticEntry {
  /** `<tenant>/<route>/<uuid>`: unique, and prefix-filterable like exact keys. */
  id: string;
  /** Hash of everything that must match besides the question's meaning (see key.ts). */
  scope: string;
  tenantId: string;
  route: string;
  /** The embedder that made `vector` (Embedder.id). */
  embedder: string;
  /** The last user message, as asked (the guard compares it with new questions). */
  question: string;
  vector: Float32Array;
  /** Serialized CachedAnswer. */
  answer: string;
  /** Epoch ms. */
  createdAt: number;
  expiresAt: number;
  /** Learned per-entry threshold (null: the route's). Raised by bad feedback, lowered by verified reuse. */
  threshold: number | null;
}

export type SemanticChange =
  | { kind: 'put'; entry: SemanticEntry }
  | { kind: 'delete'; ids: string[] }
  | { kind: 'threshold'; id: string; threshold: number | null }
  /** Everything matching was removed (invalidation). */
  | { kind: 'invalidate'; filter: CacheFilter };

/**
 * Semantic entries, durable: sqlite (embedded) | redis (distributed). The in-process vector
 * index is rebuilt from `scan` at start and kept in sync with `subscribe`, which reports changes
 * made by other processes (in embedded mode there are none: a no-op).
 *
 * Fair shares: an adapter given `maxEntriesPerTenant` holds each tenant to it (over all routes and
 * scopes): a `put` over the share evicts that tenant's least recently used entries (`put` and a
 * `get` that finds the entry are uses), in the same transaction, and returns their ids; other
 * processes hear of them as a `delete`.
 */
export interface SemanticStore {
  /** Stores (or replaces) the entry; returns the ids of the tenant's entries evicted to keep it within its share. */
  put(entry: SemanticEntry): Promise<string[]>;
  /** The entry, or undefined when absent or expired. */
  get(id: string): Promise<SemanticEntry | undefined>;
  delete(ids: string[]): Promise<void>;
  setThreshold(id: string, threshold: number | null): Promise<void>;
  /** Removes the matching entries; returns their ids. */
  invalidate(filter: CacheFilter): Promise<string[]>;
  /** Every unexpired entry, in batches, oldest first (rebuilding the index at start). */
  scan(onBatch: (entries: SemanticEntry[]) => void | Promise<void>, batchSize?: number): Promise<void>;
  /** Changes made by other processes; returns an unsubscribe function. */
  subscribe(listener: (change: SemanticChange) => void): () => void;
  close(): Promise<void>;
}
