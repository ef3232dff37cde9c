/**
 * The `IdempotencyStore` interface: a POST with an Idempotency-Key runs once; its final answer is
 * replayed. Re-exported by src/storage/types.ts, with the default lease of a request in flight
 * (`DEFAULT_IDEMPOTENCY_LEASE_MS`).
 */

/** A final answer as it was sent, replayed byte for byte. */
export interface StoredResponse {
  status: number;
  /** The headers to replay (lower-case names): content-type, x-request-id, x-tollgate-*. */
  headers: Record<string, string>;
  /** The body exactly as sent: a JSON document, or the whole SSE transcript of a stream. */
  body: Uint8Array;
  /** HTTP trailers sent after the body (a stream's x-tollgate-cost-usd); `{}` when none. */
  trailers: Record<string, string>;
}

export type IdempotencyBegin =
  /** The caller owns the key now: run the request, then `complete` or `release`. */
  | { state: 'new' }
  /** Another request with this key and body is running (its lease has not expired). */
  | { state: 'in_progress' }
  /** The key is held (running or done) for a different body. */
  | { state: 'mismatch' }
  /** Done: replay this answer. */
  | { state: 'done'; response: StoredResponse };

/**
 * Idempotency keys: memory | sqlite | postgres. A key lives in a scope (the caller's credential,
 * hashed), so two callers never share keys.
 *
 * Part of the contract:
 * - `begin` is atomic: of concurrent begins of one (scope, key), across processes where the
 *   backend is shared, exactly one gets 'new'. A row whose expiry has passed (an answer older
 *   than its TTL, or an in-flight lease whose owner died) counts as absent.
 * - A different `bodyHash` for a held key is 'mismatch', whether that key is running or done.
 * - `complete` turns the caller's in-flight row into a done one, kept until `ttlMs` after its
 *   `begin`; `release` deletes an in-flight row so a retry can run. Neither touches a done row,
 *   and both are no-ops for an absent one. (A request that outlives its lease may see its key
 *   taken over; its `complete` then stores its own answer in place of the newcomer's. Both are
 *   answers to the same body.)
 * - Times come from the gateway's clock (`Date.now()`), never the database's.
 * Private to adapters: schema, encoding of headers and bodies.
 */
export interface IdempotencyStore {
  begin(scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs?: number): Promise<IdempotencyBegin>;
  complete(scope: string, key: string, response: StoredResponse): Promise<void>;
  release(scope: string, key: string): Promise<void>;
  /** Deletes up to `limit` rows whose expiry is at or before `now`; returns how many it deleted. */
  purgeExpired(now: number, limit: number): Promise<number>;
  close(): Promise<void>;
}
