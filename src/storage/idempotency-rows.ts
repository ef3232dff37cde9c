/**
 * The row of `idempotency_keys` and what a claim that lost to it answers, shared by the SQLite
 * and PostgreSQL `IdempotencyStore` adapters (src/storage/{sqlite,postgres}/idempotency.ts). `J`
 * is how a JSON column arrives: text in SQLite (decoded with JSON.parse), parsed in PostgreSQL.
 */
import type { IdempotencyBegin, StoredResponse } from './types.js';

export interface IdempotencyRow<J> {
  body_hash: string;
  state: 'in_progress' | 'done';
  status: number | null;
  headers: J | null;
  trailers: J | null;
  body: Buffer | null;
}

/** The answer to a `begin` that found `row` live (not expired): mismatch, in progress or done. */
export function beginAgainst<J>(row: IdempotencyRow<J>, bodyHash: string, decode: (v: J) => unknown): IdempotencyBegin {
  if (row.body_hash !== bodyHash) return { state: 'mismatch' };
  if (row.state === 'in_progress') return { state: 'in_progress' };
  const headers = (v: J | null) => (v === null ? {} : (decode(v) as Record<string, string>));
  return {
    state: 'done',
    response: { status: row.status ?? 0, headers: headers(row.headers), body: row.body ?? Buffer.alloc(0), trailers: headers(row.trailers) },
  };
}

/** The stored body as a Buffer (a view of the same bytes, no copy). */
export function bodyBuffer(response: StoredResponse): Buffer {
  return Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
}
