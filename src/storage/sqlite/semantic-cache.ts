/**
 * `SemanticStore` on the embedded SQLite database (table `semantic_cache`, migration 5), sharing
 * the file with the records and the ledger. One process (embedded mode): `subscribe` never
 * reports anything.
 *
 * Expired rows are never returned (`get`, `scan`, `invalidate` compare `expires_at` with
 * `Date.now()`), and are deleted a batch at a time: by `purgeExpired`, and by `put` at most once
 * a minute, so the table does not grow without bound.
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
const PURGE_EVERY_MS = 60_000;
const PURGE_LIMIT = 1_000;

export class SqliteSemanticStore implements SemanticStore {
  readonly #db: Database;
  readonly #put: Statement;
  readonly #get: Statement<[string, number], Row>;
  readonly #delete: Statement<[string]>;
  readonly #setThreshold: Statement<[number | null, string]>;
  readonly #firstPage: Statement<[number, number], Row>;
  readonly #nextPage: Statement<[number, number, number, string, number], Row>;
  readonly #purge: Statement<[number, number]>;
  readonly #deleteMany: Transaction<(ids: string[]) => void>;
  readonly #invalidate: Transaction<(filter: CacheFilter, now: number) => string[]>;
  #lastPurge = 0;

  constructor(db: Database) {
    this.#db = db;
    this.#put = db.prepare(
      `INSERT OR REPLACE INTO semantic_cache (${COLUMNS})
       VALUES (@id, @scope, @tenantId, @route, @embedder, @question, @vector, @answer, @createdAt, @expiresAt, @threshold)`,
    );
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

  async put(entry: SemanticEntry): Promise<void> {
    checkEntry(entry);
    const now = Date.now();
    this.#put.run({
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
    if (now - this.#lastPurge >= PURGE_EVERY_MS) {
      this.#lastPurge = now;
      this.#purge.run(now, PURGE_LIMIT);
    }
  }

  async get(id: string): Promise<SemanticEntry | undefined> {
    const row = this.#get.get(id, Date.now());
    return row && toEntry(row);
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
