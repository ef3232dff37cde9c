/**
 * `SemanticStore` on the embedded SQLite database (table `semantic_cache`, migration 5), sharing
 * the file with the records and the ledger. One process (embedded mode): `subscribe` never
 * reports anything.
 *
 * Expired rows are never returned (`get`, `scan`, `invalidate` compare `expires_at` with
 * `Date.now()`), and are deleted a batch at a time: by `purgeExpired`, and by `put` at most once
 * a minute, so the table does not grow without bound.
 *
 * Fair shares (`maxEntriesPerTenant`, migration 10): `last_use` orders a tenant's rows by last use
 * (the tenant's highest + 1 on a put and on a get that finds the row), `semantic_cache_tenants`
 * counts each tenant's rows (triggers). A put is one IMMEDIATE transaction: the uses seen by `get`
 * since the last put (kept in memory, so a lookup never writes nor waits for the write lock;
 * evictions happen only in puts, so applying them there loses nothing), the upsert, then, when
 * the tenant holds more than its share, the deletion of its rows of lowest `last_use` (index
 * `(tenant_id, last_use)`: O(evicted)). Expired rows still count until purged or evicted.
 *
 * Vectors are stored as the Float32Array's bytes in the machine's order (little-endian on every
 * platform Node supports), and read back into a fresh, aligned Float32Array.
 */
import type { Statement, Transaction } from 'better-sqlite3';
import type { CacheFilter, SemanticChange, SemanticEntry, SemanticStore } from '../../cache/types.js';
import { filterPrefix, isEmptyFilter, matchesFilter } from '../memory/exact-cache.js';
import type { Database } from './database.js';

/* ------------------------------------------------------------------------------------------ */
/* Helpers shared with the Redis adapter                                                       */
/* ------------------------------------------------------------------------------------------ */

/** A copy of the vector's bytes (never a view: the caller may reuse its array). */
export function vectorToBuffer(vector: Float32Array): Buffer {
  return Buffer.from(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength));
}

/**
 * A new Float32Array with the bytes' values, bit for bit. Copies: a driver's Buffer may be a
 * slice of a shared pool, at an offset that is not a multiple of 4.
 */
export function bufferToVector(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`a stored vector has ${bytes.byteLength} bytes, not a multiple of 4`);
  const vector = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(vector.buffer).set(bytes);
  return vector;
}

/** Refuses entries whose id does not start with `<tenantId>/<route>/` (invalidation relies on it). */
export function checkEntry(entry: SemanticEntry): void {
  if (!entry.id.startsWith(`${entry.tenantId}/${entry.route}/`)) {
    throw new RangeError(`semantic entry id '${entry.id}' must start with '<tenantId>/<route>/' ('${entry.tenantId}/${entry.route}/')`);
  }
  if (entry.tenantId.includes('/') || entry.route.includes('/')) {
    throw new RangeError(`semantic entry tenant and route must not contain '/' (${entry.id})`);
  }
  if (!(entry.vector instanceof Float32Array)) throw new TypeError('semantic entry vector must be a Float32Array');
}

/* ------------------------------------------------------------------------------------------ */
/* The store                                                                                   */
/* ------------------------------------------------------------------------------------------ */

interface Row {
  id: string;
  scope: string;
  tenant_id: string;
  route: string;
  embedder: string;
  question: string;
  vector: Buffer;
  answer: string;
  created_at: number;
  expires_at: number;
  threshold: number | null;
}

const COLUMNS = 'id, scope, tenant_id, route, embedder, question, vector, answer, created_at, expires_at, threshold';
const DEFAULT_BATCH = 500;
/** Most rows one put evicts (a lowered share is reached over a few puts, never in one long transaction). */
const TRIM_PER_PUT = 1_000;
/** Most uses remembered between two puts (the oldest are forgotten first). */
const MAX_PENDING_USES = 10_000;

export interface SqliteSemanticStoreOptions {
  /** Entries one tenant may hold; a put beyond it evicts the tenant's least recently used. Default: unbounded. */
  maxEntriesPerTenant?: number;
}
const PURGE_EVERY_MS = 60_000;
const PURGE_LIMIT = 1_000;

export class SqliteSemanticStore implements SemanticStore {
  readonly #db: Database;
  readonly #put: Transaction<(entry: SemanticEntry) => string[]>;
  readonly #get: Statement<[string, number], Row>;
  /** Ids found by `get` since the last put, least recent first (applied by the next put). */
  readonly #uses = new Map<string, string>();
  readonly #share: number | undefined;
  readonly #delete: Statement<[string]>;
  readonly #setThreshold: Statement<[number | null, string]>;
  readonly #firstPage: Statement<[number, number], Row>;
  readonly #nextPage: Statement<[number, number, number, string, number], Row>;
  readonly #purge: Statement<[number, number]>;
  readonly #deleteMany: Transaction<(ids: string[]) => void>;
  readonly #invalidate: Transaction<(filter: CacheFilter, now: number) => string[]>;
  #lastPurge = 0;

  constructor(db: Database, opts: SqliteSemanticStoreOptions = {}) {
    const share = opts.maxEntriesPerTenant;
    if (share !== undefined && (!Number.isInteger(share) || share < 1)) {
      throw new RangeError(`maxEntriesPerTenant must be a positive integer, got ${share}`);
    }
    this.#db = db;
    this.#share = share;
    // An upsert, not INSERT OR REPLACE: REPLACE's implicit delete fires no delete trigger (the count would drift).
    const upsert = db.prepare(
      `INSERT INTO semantic_cache (${COLUMNS}, last_use)
       VALUES (@id, @scope, @tenantId, @route, @embedder, @question, @vector, @answer, @createdAt, @expiresAt, @threshold,
               (SELECT COALESCE(MAX(last_use), 0) + 1 FROM semantic_cache WHERE tenant_id = @tenantId))
       ON CONFLICT (id) DO UPDATE SET scope = excluded.scope, tenant_id = excluded.tenant_id, route = excluded.route,
         embedder = excluded.embedder, question = excluded.question, vector = excluded.vector, answer = excluded.answer,
         created_at = excluded.created_at, expires_at = excluded.expires_at, threshold = excluded.threshold,
         last_use = excluded.last_use`,
    );
    const held = db.prepare<[string], { entries: number }>('SELECT entries FROM semantic_cache_tenants WHERE tenant_id = ?');
    const oldest = db.prepare<[string, string, number], { id: string }>(
      'SELECT id FROM semantic_cache WHERE tenant_id = ? AND id <> ? ORDER BY last_use LIMIT ?',
    );
    const touch = db.prepare<[string, string]>(
      `UPDATE semantic_cache SET last_use = (SELECT MAX(last_use) + 1 FROM semantic_cache WHERE tenant_id = ?)
        WHERE id = ?`,
    );
    this.#put = db.transaction((entry: SemanticEntry): string[] => {
      for (const [id, tenant] of this.#uses) touch.run(tenant, id);
      this.#uses.clear();
      upsert.run({
        id: entry.id,
        scope: entry.scope,
        tenantId: entry.tenantId,
        route: entry.route,
        embedder: entry.embedder,
        question: entry.question,
        vector: vectorToBuffer(entry.vector),
        answer: entry.answer,
        createdAt: entry.createdAt,
        expiresAt: entry.expiresAt,
        threshold: entry.threshold,
      });
      if (share === undefined) return [];
      const over = Math.min((held.get(entry.tenantId)?.entries ?? 0) - share, TRIM_PER_PUT);
      if (over <= 0) return [];
      const evicted = oldest.all(entry.tenantId, entry.id, over).map((row) => row.id);
      for (const id of evicted) this.#delete.run(id);
      return evicted;
    });
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM semantic_cache WHERE id = ? AND expires_at > ?`);
    this.#delete = db.prepare('DELETE FROM semantic_cache WHERE id = ?');
    this.#setThreshold = db.prepare('UPDATE semantic_cache SET threshold = ? WHERE id = ?');
    this.#firstPage = db.prepare(
      `SELECT ${COLUMNS} FROM semantic_cache WHERE expires_at > ? ORDER BY created_at, id LIMIT ?`,
    );
    this.#nextPage = db.prepare(
      `SELECT ${COLUMNS} FROM semantic_cache
        WHERE expires_at > ? AND (created_at > ? OR (created_at = ? AND id > ?))
        ORDER BY created_at, id LIMIT ?`,
    );
    this.#purge = db.prepare(
      'DELETE FROM semantic_cache WHERE rowid IN (SELECT rowid FROM semantic_cache WHERE expires_at <= ? LIMIT ?)',
    );
    this.#deleteMany = db.transaction((ids: string[]) => {
      for (const id of ids) this.#delete.run(id);
    });

    const all = db.prepare<[], { id: string; expires_at: number }>('SELECT id, expires_at FROM semantic_cache');
    const byTenant = db.prepare<[string], { id: string; expires_at: number }>(
      'SELECT id, expires_at FROM semantic_cache WHERE tenant_id = ?',
    );
    const byTenantRoute = db.prepare<[string, string], { id: string; expires_at: number }>(
      'SELECT id, expires_at FROM semantic_cache WHERE tenant_id = ? AND route = ?',
    );
    // Ids starting with a prefix are contiguous in the primary key's (byte) order, from the prefix on.
    const fromId = db.prepare<[string], { id: string; expires_at: number }>(
      'SELECT id, expires_at FROM semantic_cache WHERE id >= ? ORDER BY id',
    );
    const deleteAll = db.prepare('DELETE FROM semantic_cache');
    this.#invalidate = db.transaction((filter: CacheFilter, now: number): string[] => {
      const prefix = filterPrefix(filter);
      if (prefix === undefined) return [];
      let rows: Iterable<{ id: string; expires_at: number }>;
      if (prefix !== '') rows = takeWhilePrefix(fromId.iterate(prefix), prefix);
      else if (filter.tenantId !== undefined) {
        rows = filter.route !== undefined ? byTenantRoute.all(filter.tenantId, filter.route) : byTenant.all(filter.tenantId);
      } else rows = all.all();
      const matched: Array<{ id: string; expires_at: number }> = [];
      for (const row of rows) if (matchesFilter(row.id, filter)) matched.push(row);
      if (isEmptyFilter(filter)) deleteAll.run();
      else for (const row of matched) this.#delete.run(row.id);
      return matched.filter((row) => row.expires_at > now).map((row) => row.id);
    });
  }

  async put(entry: SemanticEntry): Promise<string[]> {
    checkEntry(entry);
    const now = Date.now();
    const evicted = this.#put.immediate(entry);
    if (now - this.#lastPurge >= PURGE_EVERY_MS) {
      this.#lastPurge = now;
      this.#purge.run(now, PURGE_LIMIT);
    }
    return evicted;
  }

  async get(id: string): Promise<SemanticEntry | undefined> {
    const row = this.#get.get(id, Date.now());
    if (!row) return undefined;
    if (this.#share !== undefined) {
      // A use: the tenant's most recent, written by the next put.
      this.#uses.delete(id);
      this.#uses.set(id, row.tenant_id);
      if (this.#uses.size > MAX_PENDING_USES) this.#uses.delete(this.#uses.keys().next().value as string);
    }
    return toEntry(row);
  }

  async delete(ids: string[]): Promise<void> {
    if (ids.length > 0) this.#deleteMany.immediate(ids);
  }

  async setThreshold(id: string, threshold: number | null): Promise<void> {
    this.#setThreshold.run(threshold, id);
  }

  /** Deletes every matching row (expired ones too); returns the ids of those that had not expired. */
  async invalidate(filter: CacheFilter): Promise<string[]> {
    return this.#invalidate.immediate(filter, Date.now());
  }

  /**
   * Every unexpired entry, oldest first (by created_at, then id), `batchSize` rows at a time.
   * Pages by key, so rows added or removed during the scan never shift it; an entry added with
   * an older created_at than the page reached is not seen.
   */
  async scan(onBatch: (entries: SemanticEntry[]) => void | Promise<void>, batchSize = DEFAULT_BATCH): Promise<void> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    let rows = this.#firstPage.all(Date.now(), batchSize);
    while (rows.length > 0) {
      await onBatch(rows.map(toEntry));
      if (rows.length < batchSize) return;
      const last = rows.at(-1)!;
      rows = this.#nextPage.all(Date.now(), last.created_at, last.created_at, last.id, batchSize);
    }
  }

  /** One process: no other process changes this file's cache (embedded mode). */
  subscribe(_listener: (change: SemanticChange) => void): () => void {
    return () => {};
  }

  /** Deletes up to `limit` rows expired at `now`; returns how many. */
  async purgeExpired(now: number = Date.now(), limit: number = PURGE_LIMIT): Promise<number> {
    return this.#purge.run(now, limit).changes;
  }

  /** Closes the database file, shared with the records and the ledger: either may close it. */
  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function* takeWhilePrefix<T extends { id: string }>(rows: IterableIterator<T>, prefix: string): Generator<T> {
  for (const row of rows) {
    if (!row.id.startsWith(prefix)) return; // leaving the loop ends the statement's iteration
    yield row;
  }
}

function toEntry(row: Row): SemanticEntry {
  return {
    id: row.id,
    scope: row.scope,
    tenantId: row.tenant_id,
    route: row.route,
    embedder: row.embedder,
    question: row.question,
    vector: bufferToVector(row.vector),
    answer: row.answer,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    threshold: row.threshold,
  };
}
