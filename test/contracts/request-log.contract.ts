/**
 * Behaviour every `RequestLogStore` adapter must have (src/storage/types.ts). An adapter's test
 * file calls `runRequestLogContract(name, factory)`; `factory` returns an empty store each time,
 * whose `close` releases what it opened.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RequestLogEntry, RequestLogQuery, RequestLogStore } from '../../src/storage/types.js';

const T0 = Date.UTC(2026, 0, 1);

let seq = 0;
export function logEntry(overrides: Partial<RequestLogEntry> = {}): RequestLogEntry {
  const id = overrides.id ?? `req_${String(++seq).padStart(6, '0')}`;
  return {
    id,
    requestId: id,
    ts: T0,
    tenantId: 'ten_a',
    keyId: 'key_a',
    userId: 'alice',
    route: '/v1/chat/completions',
    requestedModel: 'sim-small',
    servedModel: 'sim-small',
    deployment: 'sim-small@sim',
    tier: null,
    status: 200,
    errorCode: null,
    cache: 'miss',
    latencyMs: 12.5,
    ttftMs: null,
    upstreamMs: 10.25,
    attempts: 1,
    promptTokens: 10,
    completionTokens: 20,
    costPico: 1_234_567,
    stream: false,
    traceId: null,
    jobId: null,
    prompt: null,
    answer: null,
    ...overrides,
  };
}

export function runRequestLogContract(name: string, factory: () => Promise<RequestLogStore>): void {
  describe(`RequestLogStore contract: ${name}`, () => {
    let store: RequestLogStore;
    beforeEach(async () => {
      store = await factory();
    });
    afterEach(async () => {
      await store.close();
    });

    const ids = async (q: Partial<RequestLogQuery>) => (await store.query({ limit: 100, ...q })).map((e) => e.id);

    it('stores every field as given and reads it back', async () => {
      const full = logEntry({
        id: 'req_full',
        requestId: 'client-given-id',
        tenantId: 'ten_x',
        keyId: 'key_x',
        userId: 'bob',
        tier: 'small',
        status: 502,
        errorCode: 'upstream_error',
        cache: 'stale',
        latencyMs: 1234.5,
        ttftMs: 88.5,
        upstreamMs: 1200.25,
        attempts: 3,
        promptTokens: 1_000,
        completionTokens: 0,
        costPico: 9_007_199_254,
        stream: true,
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        jobId: 'job_1',
        prompt: 'user: hi [email]',
        answer: 'hello',
      });
      const bare = logEntry({ id: 'req_bare', tenantId: null, keyId: null, userId: null, servedModel: null, deployment: null, cache: 'none', status: 401, errorCode: 'missing_api_key' });
      expect(await store.append([full, bare])).toBe(2);
      const rows = await store.query({ limit: 10 });
      expect(rows.find((r) => r.id === 'req_full')).toEqual(full);
      expect(rows.find((r) => r.id === 'req_bare')).toEqual(bare);
    });

    it('skips an id already stored (a replayed batch counts once)', async () => {
      const e = logEntry();
      expect(await store.append([e])).toBe(1);
      expect(await store.append([e, logEntry()])).toBe(1);
      expect(await store.append([])).toBe(0);
      expect(await ids({})).toHaveLength(2);
    });

    it('lists newest first, ties broken by id descending, up to the limit', async () => {
      await store.append([
        logEntry({ id: 'a', ts: T0 + 1 }),
        logEntry({ id: 'b', ts: T0 + 3 }),
        logEntry({ id: 'c', ts: T0 + 2 }),
        logEntry({ id: 'd', ts: T0 + 2 }),
      ]);
      expect(await ids({})).toEqual(['b', 'd', 'c', 'a']);
      expect(await ids({ limit: 2 })).toEqual(['b', 'd']);
    });

    it('filters by tenant, user, model (requested or served), status, cache, time and latency', async () => {
      await store.append([
        logEntry({ id: 'r1', ts: T0 + 1, tenantId: 'ten_a', userId: 'alice', status: 200, cache: 'hit', latencyMs: 5 }),
        logEntry({ id: 'r2', ts: T0 + 2, tenantId: 'ten_b', userId: 'alice', status: 429, cache: 'none', latencyMs: 1, servedModel: null }),
        logEntry({ id: 'r3', ts: T0 + 3, tenantId: 'ten_a', userId: 'bob', status: 503, cache: 'miss', latencyMs: 900, requestedModel: 'auto', servedModel: 'sim-large' }),
        logEntry({ id: 'r4', ts: T0 + 4, tenantId: 'ten_a', userId: null, status: 502, cache: 'semantic', latencyMs: 300.5 }),
      ]);
      expect(await ids({ tenantId: 'ten_a' })).toEqual(['r4', 'r3', 'r1']);
      expect(await ids({ userId: 'alice' })).toEqual(['r2', 'r1']);
      expect(await ids({ model: 'sim-large' })).toEqual(['r3']);
      expect(await ids({ model: 'auto' })).toEqual(['r3']);
      expect(await ids({ model: 'sim-small' })).toEqual(['r4', 'r2', 'r1']);
      expect(await ids({ status: { min: 429, max: 429 } })).toEqual(['r2']);
      expect(await ids({ status: { min: 500, max: 599 } })).toEqual(['r4', 'r3']);
      expect(await ids({ cache: 'semantic' })).toEqual(['r4']);
      expect(await ids({ cache: 'none' })).toEqual(['r2']);
      expect(await ids({ from: T0 + 2, to: T0 + 4 })).toEqual(['r3', 'r2']);
      expect(await ids({ minLatencyMs: 300.5 })).toEqual(['r4', 'r3']);
      expect(await ids({ tenantId: 'ten_a', status: { min: 500, max: 599 }, minLatencyMs: 400 })).toEqual(['r3']);
      expect(await ids({ tenantId: 'nobody' })).toEqual([]);
    });

    it('pages by the last row (ts, id), stable while newer and older rows arrive', async () => {
      await store.append(Array.from({ length: 7 }, (_, i) => logEntry({ id: `p${i}`, ts: T0 + Math.floor(i / 2) })));
      // Order: p6 (T0+3), p5, p4 (T0+2), p3, p2 (T0+1), p1, p0 (T0)
      const first = await store.query({ limit: 3 });
      expect(first.map((e) => e.id)).toEqual(['p6', 'p5', 'p4']);
      // New rows, one newer than everything and one between pages: neither repeats nor shifts a page.
      await store.append([logEntry({ id: 'new', ts: T0 + 100 }), logEntry({ id: 'p4a', ts: T0 + 2 })]);
      const last = first.at(-1)!;
      const second = await store.query({ limit: 3, after: { ts: last.ts, id: last.id } });
      expect(second.map((e) => e.id)).toEqual(['p3', 'p2', 'p1']);
      const end = second.at(-1)!;
      expect((await store.query({ limit: 3, after: { ts: end.ts, id: end.id } })).map((e) => e.id)).toEqual(['p0']);
      // Filters apply together with the cursor.
      expect((await store.query({ limit: 10, from: T0 + 1, after: { ts: T0 + 2, id: 'p4' } })).map((e) => e.id)).toEqual(['p3', 'p2']);
    });

    it('prunes rows older than a time in bounded batches, oldest first', async () => {
      await store.append(Array.from({ length: 5 }, (_, i) => logEntry({ id: `o${i}`, ts: T0 + i })));
      expect(await store.prune(T0 + 3, 2)).toBe(2);
      expect(await ids({})).toEqual(['o4', 'o3', 'o2']);
      expect(await store.prune(T0 + 3, 100)).toBe(1);
      expect(await store.prune(T0 + 3, 100)).toBe(0);
      expect(await ids({})).toEqual(['o4', 'o3']);
    });
  });
}
