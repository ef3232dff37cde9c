/**
 * `IdempotencyStore` on the embedded SQLite database (table `idempotency_keys`, migration 4),
 * sharing the file with the records and the ledger. `begin` reads and writes in one IMMEDIATE
 * transaction, so it is atomic across processes that open the same file, not only within one.
 */
import type { Statement, Transaction } from 'better-sqlite3';
import { type IdempotencyRow, beginAgainst, bodyBuffer } from '../idempotency-rows.js';
import { DEFAULT_IDEMPOTENCY_LEASE_MS, type IdempotencyBegin, type IdempotencyStore, type StoredResponse } from '../types.js';
import type { Database } from './database.js';

/** JSON columns as text. */
type Row = IdempotencyRow<string> & { expires_at: number };

type Begin = (scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs: number, now: number) => IdempotencyBegin;

export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly #db: Database;
  readonly #begin: Transaction<Begin>;
  readonly #complete: Statement<[number, string, string, Buffer, string, string]>;
  readonly #release: Statement<[string, string]>;
  readonly #purge: Statement<[number, number]>;

  constructor(db: Database) {
    this.#db = db;
    const get = db.prepare<[string, string], Row>(
      `SELECT body_hash, state, expires_at, status, headers, trailers, body
         FROM idempotency_keys WHERE scope = ? AND idempotency_key = ?`,
    );
    // Takes the key over: a new row, or one whose answer or lease has expired.
    const claim = db.prepare<[string, string, string, number, number, number]>(
      `INSERT INTO idempotency_keys (scope, idempotency_key, body_hash, state, created_at, ttl_ms, expires_at)
       VALUES (?, ?, ?, 'in_progress', ?, ?, ?)
       ON CONFLICT (scope, idempotency_key) DO UPDATE SET
         body_hash = excluded.body_hash, state = 'in_progress', created_at = excluded.created_at,
         ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at,
         status = NULL, headers = NULL, trailers = NULL, body = NULL`,
    );
    this.#begin = db.transaction<Begin>((scope, key, bodyHash, ttlMs, leaseMs, now) => {
      const row = get.get(scope, key);
      if (!row || row.expires_at <= now) {
        claim.run(scope, key, bodyHash, now, ttlMs, now + leaseMs);
        return { state: 'new' };
      }
      return beginAgainst(row, bodyHash, (text) => JSON.parse(text));
    });
    this.#complete = db.prepare<[number, string, string, Buffer, string, string]>(
      `UPDATE idempotency_keys
          SET state = 'done', expires_at = created_at + ttl_ms, status = ?, headers = ?, trailers = ?, body = ?
        WHERE scope = ? AND idempotency_key = ? AND state = 'in_progress'`,
    );
    this.#release = db.prepare(`DELETE FROM idempotency_keys WHERE scope = ? AND idempotency_key = ? AND state = 'in_progress'`);
    this.#purge = db.prepare(
      `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)`,
    );
  }

  async begin(scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs = DEFAULT_IDEMPOTENCY_LEASE_MS): Promise<IdempotencyBegin> {
    return this.#begin.immediate(scope, key, bodyHash, ttlMs, leaseMs, Date.now());
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    this.#complete.run(response.status, JSON.stringify(response.headers), JSON.stringify(response.trailers), bodyBuffer(response), scope, key);
  }

  async release(scope: string, key: string): Promise<void> {
    this.#release.run(scope, key);
  }

  async purgeExpired(now: number, limit: number): Promise<number> {
    return this.#purge.run(now, limit).changes;
  }

  /** Closes the database file, shared with the records and the ledger: either may close it. */
  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
