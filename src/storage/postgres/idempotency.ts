/**
 * `IdempotencyStore` on PostgreSQL (table `idempotency_keys`, migration 4), shared by every gateway
 * process of a distributed deployment. `begin` claims a key with one
 * `INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now`: the row lock makes exactly one of
 * any number of concurrent claims (from any process) win, and the WHERE lets a claim take over
 * only a key whose answer or lease has expired. A losing claim then reads the row to say why.
 */
import { type IdempotencyRow, beginAgainst, bodyBuffer } from '../idempotency-rows.js';
import { DEFAULT_IDEMPOTENCY_LEASE_MS, type IdempotencyBegin, type IdempotencyStore, type StoredResponse } from '../types.js';
import { PostgresAdapter, type Sql } from './database.js';

/** JSON columns arrive parsed (postgres.js). */
type Row = IdempotencyRow<unknown>;

type JsonParam = Parameters<Sql['json']>[0];

/** A claim loses and the row it lost to vanishes (released, expired) before it is read: try again, a few times. */
const MAX_CLAIMS = 5;

export class PostgresIdempotencyStore extends PostgresAdapter implements IdempotencyStore {
  async begin(scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs = DEFAULT_IDEMPOTENCY_LEASE_MS): Promise<IdempotencyBegin> {
    const sql = this.sql;
    for (let claim = 0; claim < MAX_CLAIMS; claim++) {
      const now = Date.now();
      const claimed = await sql`
        INSERT INTO idempotency_keys (scope, idempotency_key, body_hash, state, created_at, ttl_ms, expires_at)
        VALUES (${scope}, ${key}, ${bodyHash}, 'in_progress', ${now}, ${ttlMs}, ${now + leaseMs})
        ON CONFLICT (scope, idempotency_key) DO UPDATE SET
          body_hash = EXCLUDED.body_hash, state = 'in_progress', created_at = EXCLUDED.created_at,
          ttl_ms = EXCLUDED.ttl_ms, expires_at = EXCLUDED.expires_at,
          status = NULL, headers = NULL, trailers = NULL, body = NULL
        WHERE idempotency_keys.expires_at <= ${now}
        RETURNING 1`;
      if (claimed.length > 0) return { state: 'new' };

      const [row] = await sql<Row[]>`
        SELECT body_hash, state, status, headers, trailers, body FROM idempotency_keys
        WHERE scope = ${scope} AND idempotency_key = ${key} AND expires_at > ${now}`;
      if (row) return beginAgainst(row, bodyHash, (v) => v);
    }
    throw new Error(`idempotency key '${key}' changed hands ${MAX_CLAIMS} times during one begin`);
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    const sql = this.sql;
    await sql`
      UPDATE idempotency_keys
      SET state = 'done', expires_at = created_at + ttl_ms, status = ${response.status},
          headers = ${sql.json(response.headers as JsonParam)}, trailers = ${sql.json(response.trailers as JsonParam)}, body = ${bodyBuffer(response)}
      WHERE scope = ${scope} AND idempotency_key = ${key} AND state = 'in_progress'`;
  }

  async release(scope: string, key: string): Promise<void> {
    await this.sql`DELETE FROM idempotency_keys WHERE scope = ${scope} AND idempotency_key = ${key} AND state = 'in_progress'`;
  }

  async purgeExpired(now: number, limit: number): Promise<number> {
    const deleted = await this.sql`
      DELETE FROM idempotency_keys WHERE ctid IN (
        SELECT ctid FROM idempotency_keys WHERE expires_at <= ${now} LIMIT ${limit})`;
    return deleted.count;
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}
