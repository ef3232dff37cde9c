/**
 * `IdempotencyStore` in process memory (single-process tests and tools). Every method runs to
 * completion synchronously, so `begin` is atomic within the process.
 */
import { DEFAULT_IDEMPOTENCY_LEASE_MS, type IdempotencyBegin, type IdempotencyStore, type StoredResponse } from '../types.js';

interface Entry {
  bodyHash: string;
  createdAt: number;
  ttlMs: number;
  /** The lease's end while in flight; createdAt + ttlMs once done. */
  expiresAt: number;
  response: StoredResponse | undefined;
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #entries = new Map<string, Entry>();

  async begin(scope: string, key: string, bodyHash: string, ttlMs: number, leaseMs = DEFAULT_IDEMPOTENCY_LEASE_MS): Promise<IdempotencyBegin> {
    const id = entryId(scope, key);
    const now = Date.now();
    const entry = this.#entries.get(id);
    if (!entry || entry.expiresAt <= now) {
      this.#entries.set(id, { bodyHash, createdAt: now, ttlMs, expiresAt: now + leaseMs, response: undefined });
      return { state: 'new' };
    }
    if (entry.bodyHash !== bodyHash) return { state: 'mismatch' };
    if (!entry.response) return { state: 'in_progress' };
    return { state: 'done', response: copy(entry.response) };
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    const entry = this.#entries.get(entryId(scope, key));
    if (!entry || entry.response) return;
    entry.response = copy(response);
    entry.expiresAt = entry.createdAt + entry.ttlMs;
  }

  async release(scope: string, key: string): Promise<void> {
    const id = entryId(scope, key);
    if (this.#entries.get(id)?.response === undefined) this.#entries.delete(id);
  }

  async purgeExpired(now: number, limit: number): Promise<number> {
    let deleted = 0;
    for (const [id, entry] of this.#entries) {
      if (deleted >= limit) break;
      if (entry.expiresAt <= now) {
        this.#entries.delete(id);
        deleted++;
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}

const entryId = (scope: string, key: string) => `${scope}\n${key}`;

/** Callers get their own copy: a stored answer never changes after the fact. */
function copy(r: StoredResponse): StoredResponse {
  return { status: r.status, headers: { ...r.headers }, body: Uint8Array.from(r.body), trailers: { ...r.trailers } };
}
