/**
 * Behaviour every `SemanticStore` adapter must have. An adapter's test file calls
 * `runSemanticStoreContract(name, factory)`; `factory` must return an empty store each time.
 * Expiry is judged by the gateway's clock (`Date.now()`), which these tests fake; adapters whose
 * backend also expires entries by itself (Redis) test that beside the contract.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CacheFilter, SemanticChange, SemanticEntry, SemanticStore } from '../../src/cache/types.js';

const T0 = Date.UTC(2025, 0, 1);
const HOUR = 3_600_000;

/** An entry of `tenantId`/`route` created now (the faked clock), living an hour unless told. */
export function semanticEntry(overrides: Partial<SemanticEntry> = {}): SemanticEntry {
  const tenantId = overrides.tenantId ?? 't1';
  const route = overrides.route ?? 'chat';
  const createdAt = overrides.createdAt ?? Date.now();
  return {
    id: `${tenantId}/${route}/${randomUUID()}`,
    scope: 'scope-hash-1',
    tenantId,
    route,
    embedder: 'builtin:v1:4',
    question: 'What is the capital of France?',
    vector: Float32Array.from([0.5, -0.5, 0.5, -0.5]),
    answer: '{"content":"Paris"}',
    createdAt,
    expiresAt: createdAt + HOUR,
    threshold: null,
    ...overrides,
  };
}

/** The vector's bytes, to compare bit for bit (NaN payloads and -0 included). */
export function vectorBytes(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

/** An entry as plain data, its vector as bytes. */
export function plainEntry(e: SemanticEntry) {
  return { ...e, vector: vectorBytes(e.vector) };
}

async function scanAll(store: SemanticStore, batchSize?: number): Promise<{ ids: string[]; batches: number[] }> {
  const ids: string[] = [];
  const batches: number[] = [];
  await store.scan((entries) => {
    batches.push(entries.length);
    ids.push(...entries.map((e) => e.id));
  }, batchSize);
  return { ids, batches };
}

const sorted = (ids: string[]) => [...ids].sort();

export function runSemanticStoreContract(name: string, factory: () => Promise<SemanticStore>): void {
  describe(`SemanticStore contract: ${name}`, () => {
    let store: SemanticStore;

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(T0);
      store = await factory();
    });

    afterEach(async () => {
      await store.close();
      vi.useRealTimers();
    });

    it('gives back what was put, every field, the vector bit for bit', async () => {
      // Awkward floats: -0, a subnormal, the extremes, a NaN with a payload, and a view at an
      // offset into a larger buffer.
      const backing = new ArrayBuffer(64);
      const vector = new Float32Array(backing, 8, 8);
      vector.set([-0, 1.4e-45, 3.4028234663852886e38, -1.1754943508222875e-38, 0.1, Math.PI, Infinity]);
      new DataView(backing).setUint32(8 + 7 * 4, 0x7fc00123, true); // NaN with payload
      const entry = semanticEntry({
        vector,
        question: 'Combien coûte 1 000 € — “vraiment”? 😀',
        answer: JSON.stringify({ content: 'x'.repeat(30_000) }),
        threshold: 0.875,
      });
      await store.put(entry);
      const got = await store.get(entry.id);
      expect(got).toBeDefined();
      expect(got!.vector).toBeInstanceOf(Float32Array);
      expect(got!.vector.length).toBe(8);
      expect(plainEntry(got!)).toEqual(plainEntry(entry));
    });

    it('keeps its own copy of the vector', async () => {
      const entry = semanticEntry();
      const before = vectorBytes(entry.vector);
      await store.put(entry);
      entry.vector.fill(9);
      expect(vectorBytes((await store.get(entry.id))!.vector)).toBe(before);
    });

    it('gives undefined for an id never put; a second put with the same id replaces the entry', async () => {
      expect(await store.get('t1/chat/nope')).toBeUndefined();
      const entry = semanticEntry();
      await store.put(entry);
      const replaced = { ...entry, answer: '{"content":"Lyon"}', vector: Float32Array.from([1, 0, 0, 0]), threshold: 0.9 };
      await store.put(replaced);
      expect(plainEntry((await store.get(entry.id))!)).toEqual(plainEntry(replaced));
      const { ids } = await scanAll(store);
      expect(ids).toEqual([entry.id]);
    });

    it('refuses an entry whose id does not start with <tenant>/<route>/', async () => {
      await expect(store.put(semanticEntry({ id: 't2/chat/x' }))).rejects.toThrow(RangeError);
      await expect(store.put(semanticEntry({ id: 't1/chat2/x' }))).rejects.toThrow(RangeError);
    });

    it('never returns an entry once its expiresAt has passed', async () => {
      const entry = semanticEntry({ expiresAt: T0 + 60_000 });
      const other = semanticEntry({ expiresAt: T0 + HOUR });
      await store.put(entry);
      await store.put(other);
      vi.setSystemTime(T0 + 59_999);
      expect(await store.get(entry.id)).toBeDefined();
      vi.setSystemTime(T0 + 60_000);
      expect(await store.get(entry.id)).toBeUndefined();
      expect((await scanAll(store)).ids).toEqual([other.id]);
    });

    it('deletes by ids; unknown ids and an empty list are harmless', async () => {
      const [a, b, c] = [semanticEntry(), semanticEntry(), semanticEntry({ tenantId: 't2' })];
      for (const e of [a, b, c]) await store.put(e);
      await store.delete([a.id, c.id, 't9/chat/unknown']);
      await store.delete([]);
      expect(await store.get(a.id)).toBeUndefined();
      expect(await store.get(c.id)).toBeUndefined();
      expect(await store.get(b.id)).toBeDefined();
      expect((await scanAll(store)).ids).toEqual([b.id]);
    });

    it('sets and clears the learned threshold; never creates an entry doing so', async () => {
      const entry = semanticEntry();
      await store.put(entry);
      await store.setThreshold(entry.id, 0.93);
      expect((await store.get(entry.id))!.threshold).toBe(0.93);
      await store.setThreshold(entry.id, 0.1 + 0.2); // any double, exactly
      expect((await store.get(entry.id))!.threshold).toBe(0.1 + 0.2);
      await store.setThreshold(entry.id, null);
      expect((await store.get(entry.id))!.threshold).toBeNull();
      expect(plainEntry((await store.get(entry.id))!)).toEqual(plainEntry(entry));

      await store.setThreshold('t1/chat/ghost', 0.9);
      expect(await store.get('t1/chat/ghost')).toBeUndefined();
      expect((await scanAll(store)).ids).toEqual([entry.id]);
    });

    describe('invalidate', () => {
      let all: SemanticEntry[];
      const idsOf = (pred: (e: SemanticEntry) => boolean) => sorted(all.filter(pred).map((e) => e.id));

      beforeEach(async () => {
        all = [
          semanticEntry({ tenantId: 't1', route: 'chat' }),
          semanticEntry({ tenantId: 't1', route: 'chat' }),
          semanticEntry({ tenantId: 't1', route: 'summarize' }),
          semanticEntry({ tenantId: 't10', route: 'chat' }), // tenant id starting like another
          semanticEntry({ tenantId: 't2', route: 'chat2' }), // route name starting like another
          semanticEntry({ tenantId: 't2', route: 'chat' }),
        ];
        for (const e of all) await store.put(e);
      });

      async function expectRemoved(filter: CacheFilter, expected: string[]): Promise<void> {
        expect(sorted(await store.invalidate(filter))).toEqual(expected);
        for (const e of all) expect((await store.get(e.id)) === undefined).toBe(expected.includes(e.id));
        all = all.filter((e) => !expected.includes(e.id));
      }

      it('by tenant, exactly, returning the removed ids', async () => {
        await expectRemoved({ tenantId: 't1' }, idsOf((e) => e.tenantId === 't1'));
        expect(await store.invalidate({ tenantId: 't1' })).toEqual([]);
      });

      it('by route, exactly, across tenants', async () => {
        await expectRemoved({ route: 'chat' }, idsOf((e) => e.route === 'chat'));
      });

      it('by id prefix, partial segments included', async () => {
        await expectRemoved({ keyPrefix: 't1/chat/' }, idsOf((e) => e.id.startsWith('t1/chat/')));
        await expectRemoved({ keyPrefix: 't1' }, idsOf((e) => e.id.startsWith('t1')));
        const one = all[0]!;
        await expectRemoved({ keyPrefix: one.id.slice(0, -4) }, [one.id]);
      });

      it('with several fields: every one must match', async () => {
        await expectRemoved({ tenantId: 't1', keyPrefix: 't2/' }, []);
        await expectRemoved({ tenantId: 't2', route: 'chat' }, idsOf((e) => e.tenantId === 't2' && e.route === 'chat'));
        await expectRemoved({ route: 'chat', keyPrefix: 't10' }, idsOf((e) => e.tenantId === 't10'));
      });

      it('with an empty filter: everything', async () => {
        await expectRemoved({}, idsOf(() => true));
        expect((await scanAll(store)).ids).toEqual([]);
        const again = semanticEntry();
        await store.put(again);
        expect((await scanAll(store)).ids).toEqual([again.id]);
      });

      it('takes glob metacharacters and backslashes in tenant ids literally', async () => {
        const odd = ['a*', 'ab', 'a?', '[a]', 'a\\b', 'a\\\\b'].map((tenantId) => semanticEntry({ tenantId }));
        for (const e of odd) await store.put(e);
        all.push(...odd);
        await expectRemoved({ tenantId: 'a*' }, [odd[0]!.id]);
        await expectRemoved({ tenantId: '[a]' }, [odd[3]!.id]);
        await expectRemoved({ tenantId: 'a?' }, [odd[2]!.id]);
        await expectRemoved({ tenantId: 'a\\b' }, [odd[4]!.id]);
        await expectRemoved({ keyPrefix: 'a\\' }, [odd[5]!.id]);
      });

      it('removes expired entries too, but returns only the ids of those still live', async () => {
        const short = semanticEntry({ tenantId: 't7', expiresAt: T0 + 1_000 });
        const long = semanticEntry({ tenantId: 't7' });
        await store.put(short);
        await store.put(long);
        vi.setSystemTime(T0 + 1_000);
        expect(await store.invalidate({ tenantId: 't7' })).toEqual([long.id]);
        vi.setSystemTime(T0);
        expect(await store.get(short.id)).toBeUndefined();
      });
    });

    describe('scan', () => {
      it('calls nothing on an empty store', async () => {
        expect(await scanAll(store)).toEqual({ ids: [], batches: [] });
      });

      it('gives every unexpired entry once, oldest first (ties by id), in batches of at most batchSize', async () => {
        const entries: SemanticEntry[] = [];
        // Created out of order, some at the same millisecond, some expired by scan time.
        const offsets = [50, 10, 30, 30, 30, 0, 70, 20, 30, 60, 40];
        for (const [i, offset] of offsets.entries()) {
          const expiresAt = i % 4 === 3 ? T0 + 500 : T0 + HOUR;
          const e = semanticEntry({ createdAt: T0 + offset, expiresAt, tenantId: `t${i % 3}` });
          entries.push(e);
          await store.put(e);
        }
        vi.setSystemTime(T0 + 1_000);
        const live = entries.filter((e) => e.expiresAt > Date.now());
        const expected = [...live]
          .sort((a, b) => a.createdAt - b.createdAt || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)))
          .map((e) => e.id);

        for (const batchSize of [1, 3, 4, 500]) {
          const { ids, batches } = await scanAll(store, batchSize);
          expect(ids).toEqual(expected);
          expect(Math.max(...batches)).toBeLessThanOrEqual(batchSize);
          expect(batches.every((n) => n > 0)).toBe(true);
        }
      });

      it('gives whole entries and waits for an async onBatch before the next batch', async () => {
        const e1 = semanticEntry({ createdAt: T0, threshold: 0.8 });
        const e2 = semanticEntry({ createdAt: T0 + 1 });
        await store.put(e2);
        await store.put(e1);
        const seen: SemanticEntry[] = [];
        let inFlight = 0;
        await store.scan(async (entries) => {
          expect(inFlight).toBe(0);
          inFlight++;
          await new Promise((r) => setTimeout(r, 5));
          seen.push(...entries);
          inFlight--;
        }, 1);
        expect(seen.map(plainEntry)).toEqual([plainEntry(e1), plainEntry(e2)]);
      });

      it('skips entries deleted while it runs, without skipping others', async () => {
        const entries = Array.from({ length: 10 }, (_, i) => semanticEntry({ createdAt: T0 + i }));
        for (const e of entries) await store.put(e);
        const ids: string[] = [];
        await store.scan(async (batch) => {
          ids.push(...batch.map((e) => e.id));
          if (ids.length === 3) await store.delete([entries[3]!.id, entries[0]!.id]);
        }, 3);
        expect(ids).toEqual(entries.filter((_, i) => i !== 3).map((e) => e.id));
      });
    });

    it('never reports this store\'s own changes to its listeners', async () => {
      const changes: SemanticChange[] = [];
      const unsubscribe = store.subscribe((c) => changes.push(c));
      expect(typeof unsubscribe).toBe('function');
      const e = semanticEntry();
      await store.put(e);
      await store.setThreshold(e.id, 0.5);
      await store.delete([e.id]);
      await store.invalidate({ tenantId: 't1' });
      await new Promise((r) => setTimeout(r, 150));
      expect(changes).toEqual([]);
      unsubscribe();
      unsubscribe();
    });
  });
}
