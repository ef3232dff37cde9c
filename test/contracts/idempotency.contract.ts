/**
 * Behaviour every `IdempotencyStore` adapter must have. An adapter's test file calls
 * `runIdempotencyContract(name, factory)`; `factory` must return an empty store each time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_IDEMPOTENCY_LEASE_MS, type IdempotencyStore, type StoredResponse } from '../../src/storage/types.js';

const T0 = Date.UTC(2025, 0, 1);
const DAY = 24 * 3_600_000;
const SCOPE = 'a'.repeat(64);
const OTHER_SCOPE = 'b'.repeat(64);

export function storedResponse(overrides: Partial<StoredResponse> = {}): StoredResponse {
  return {
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'req_1', 'x-tollgate-cost-usd': '0.000012' },
    body: Buffer.from('{"id":"chatcmpl-1","choices":[]}'),
    trailers: {},
    ...overrides,
  };
}

/** Compares answers by value: adapters may hand back a Buffer or a plain Uint8Array. */
function plain(r: StoredResponse) {
  return { ...r, body: Buffer.from(r.body).toString('base64') };
}

export function runIdempotencyContract(name: string, factory: () => Promise<IdempotencyStore>): void {
  describe(`IdempotencyStore contract: ${name}`, () => {
    let store: IdempotencyStore;

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(T0);
      store = await factory();
    });

    afterEach(async () => {
      await store.close();
      vi.useRealTimers();
    });

    it('gives a new key to its first caller, and says it is in progress to the next ones', async () => {
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY)).toEqual({ state: 'new' });
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY)).toEqual({ state: 'in_progress' });
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY)).toEqual({ state: 'in_progress' });
    });

    it('replays a completed answer exactly: status, headers, body bytes and trailers', async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY);
      const response = storedResponse({
        headers: { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': 'req_9', 'x-tollgate-model': 'm' },
        body: Buffer.from('data: {"a":"é ✓"}\n\ndata: [DONE]\n\n'),
        trailers: { 'x-tollgate-cost-usd': '0.5' },
      });
      await store.complete(SCOPE, 'k1', response);
      const again = await store.begin(SCOPE, 'k1', 'h1', DAY);
      expect(again.state).toBe('done');
      if (again.state !== 'done') return;
      expect(plain(again.response)).toEqual(plain(response));
      expect(again.response.body).toBeInstanceOf(Uint8Array);
    });

    it('keeps any bytes, an empty body and a large one', async () => {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const large = Buffer.alloc(1_000_000, 'x');
      for (const [key, body] of [['bin', bytes], ['empty', Buffer.alloc(0)], ['large', large]] as const) {
        await store.begin(SCOPE, key, 'h', DAY);
        await store.complete(SCOPE, key, storedResponse({ body }));
        const r = await store.begin(SCOPE, key, 'h', DAY);
        expect(r.state === 'done' && Buffer.from(r.response.body).equals(body)).toBe(true);
      }
    });

    it('stores error answers like any other (the caller decides what is final)', async () => {
      await store.begin(SCOPE, 'k', 'h', DAY);
      const notFound = storedResponse({ status: 404, body: Buffer.from('{"error":{}}') });
      await store.complete(SCOPE, 'k', notFound);
      const r = await store.begin(SCOPE, 'k', 'h', DAY);
      expect(r.state === 'done' && plain(r.response)).toEqual(plain(notFound));
    });

    it('reports a different body for a held key as a mismatch, running or done', async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY);
      expect(await store.begin(SCOPE, 'k1', 'h2', DAY)).toEqual({ state: 'mismatch' });
      await store.complete(SCOPE, 'k1', storedResponse());
      expect(await store.begin(SCOPE, 'k1', 'h2', DAY)).toEqual({ state: 'mismatch' });
      expect((await store.begin(SCOPE, 'k1', 'h1', DAY)).state).toBe('done');
    });

    it('keeps scopes apart: the same key in another scope is a different key', async () => {
      await store.begin(SCOPE, 'shared', 'h1', DAY);
      await store.complete(SCOPE, 'shared', storedResponse());
      expect(await store.begin(OTHER_SCOPE, 'shared', 'h2', DAY)).toEqual({ state: 'new' });
      expect((await store.begin(SCOPE, 'shared', 'h1', DAY)).state).toBe('done');
      expect(await store.begin(OTHER_SCOPE, 'shared', 'h2', DAY)).toEqual({ state: 'in_progress' });
    });

    it('treats keys as exact strings (case, spaces, 255 characters)', async () => {
      const long = 'K'.repeat(255);
      expect((await store.begin(SCOPE, 'Key 1', 'h', DAY)).state).toBe('new');
      expect((await store.begin(SCOPE, 'key 1', 'h', DAY)).state).toBe('new');
      expect((await store.begin(SCOPE, long, 'h', DAY)).state).toBe('new');
      expect((await store.begin(SCOPE, long, 'h', DAY)).state).toBe('in_progress');
    });

    it('release frees an in-progress key so a retry can run', async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY);
      await store.release(SCOPE, 'k1');
      expect(await store.begin(SCOPE, 'k1', 'h2', DAY)).toEqual({ state: 'new' });
    });

    it('release and a second complete never touch a done answer', async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY);
      await store.complete(SCOPE, 'k1', storedResponse({ status: 201 }));
      await store.release(SCOPE, 'k1');
      await store.complete(SCOPE, 'k1', storedResponse({ status: 400 }));
      const r = await store.begin(SCOPE, 'k1', 'h1', DAY);
      expect(r.state === 'done' && r.response.status).toBe(201);
    });

    it('ignores complete and release of a key nobody holds', async () => {
      await store.complete(SCOPE, 'ghost', storedResponse());
      await store.release(SCOPE, 'ghost');
      expect(await store.begin(SCOPE, 'ghost', 'h', DAY)).toEqual({ state: 'new' });
    });

    it('keeps an answer until ttlMs after the first begin, then forgets it', async () => {
      await store.begin(SCOPE, 'k1', 'h1', 60_000);
      vi.setSystemTime(T0 + 5_000);
      await store.complete(SCOPE, 'k1', storedResponse());
      vi.setSystemTime(T0 + 59_999);
      expect((await store.begin(SCOPE, 'k1', 'h1', 60_000)).state).toBe('done');
      vi.setSystemTime(T0 + 60_000);
      expect(await store.begin(SCOPE, 'k1', 'h2', 60_000)).toEqual({ state: 'new' }); // another body may use it now
      expect(await store.begin(SCOPE, 'k1', 'h2', 60_000)).toEqual({ state: 'in_progress' });
    });

    it('lets a key whose owner died be taken over after its lease', async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY, 30_000);
      vi.setSystemTime(T0 + 29_999);
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY, 30_000)).toEqual({ state: 'in_progress' });
      vi.setSystemTime(T0 + 30_000);
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY, 30_000)).toEqual({ state: 'new' });
      expect(await store.begin(SCOPE, 'k1', 'h1', DAY, 30_000)).toEqual({ state: 'in_progress' });
    });

    it(`leases for ${DEFAULT_IDEMPOTENCY_LEASE_MS / 60_000} minutes by default`, async () => {
      await store.begin(SCOPE, 'k1', 'h1', DAY);
      vi.setSystemTime(T0 + DEFAULT_IDEMPOTENCY_LEASE_MS - 1);
      expect((await store.begin(SCOPE, 'k1', 'h1', DAY)).state).toBe('in_progress');
      vi.setSystemTime(T0 + DEFAULT_IDEMPOTENCY_LEASE_MS);
      expect((await store.begin(SCOPE, 'k1', 'h1', DAY)).state).toBe('new');
    });

    it('gives a key to exactly one of many concurrent callers', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, () => store.begin(SCOPE, 'race', 'h', DAY)));
      expect(results.filter((r) => r.state === 'new')).toHaveLength(1);
      expect(results.filter((r) => r.state === 'in_progress')).toHaveLength(19);
    });

    it('gives an expired key to exactly one of many concurrent callers', async () => {
      await store.begin(SCOPE, 'race', 'h', DAY, 1_000);
      vi.setSystemTime(T0 + 1_000);
      const results = await Promise.all(Array.from({ length: 20 }, () => store.begin(SCOPE, 'race', 'h', DAY, 1_000)));
      expect(results.filter((r) => r.state === 'new')).toHaveLength(1);
    });

    it('purges expired answers and dead leases, up to a limit, and keeps live keys', async () => {
      await store.begin(SCOPE, 'done-old', 'h', 1_000);
      await store.complete(SCOPE, 'done-old', storedResponse());
      await store.begin(SCOPE, 'lease-old', 'h', DAY, 1_000);
      await store.begin(SCOPE, 'done-live', 'h', DAY);
      await store.complete(SCOPE, 'done-live', storedResponse());
      await store.begin(SCOPE, 'running', 'h', DAY);
      vi.setSystemTime(T0 + 1_000);

      expect(await store.purgeExpired(Date.now(), 1)).toBe(1);
      expect(await store.purgeExpired(Date.now(), 100)).toBe(1);
      expect(await store.purgeExpired(Date.now(), 100)).toBe(0);
      expect((await store.begin(SCOPE, 'done-live', 'h', DAY)).state).toBe('done');
      expect((await store.begin(SCOPE, 'running', 'h', DAY)).state).toBe('in_progress');
    });
  });
}
