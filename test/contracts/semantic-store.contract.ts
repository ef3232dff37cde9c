/**
 * Behaviour every `SemanticStore` adapter must have. An adapter's test file calls
 * `runSemanticStoreContract(name, factory)`; `factory` must return an empty store each time.
 * Expiry is judged by the gateway's clock (`Date.now()`), which these tests fake; adapters whose
 * backend also expires entries by itself (Redis) test that beside the contract.
 * `factory(shares)` must honour `shares.maxEntriesPerTenant` (the fair-share tests pass it).
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

/**
 * `peer`, for adapters shared between processes: opens another store on the data of the last one
 * `factory` returned (another process). The suite uses it to prove a store's own changes are never
 * reported back to it: a change by the peer, made after them, arrives (and they never do).
 */
/** Per-tenant bounds handed to the factory (the adapters' option names). */
export interface SemanticStoreShares {
  maxEntriesPerTenant?: number;
}

export function runSemanticStoreContract(
  name: string,
  factory: (shares?: SemanticStoreShares) => Promise<SemanticStore>,
  peer?: () => Promise<SemanticStore>,
): void {
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
          await new Promise((r) => setImmediate(r)); // a real wait: other tasks (and a next batch, if scan did not wait) run
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
      // A shared store listens from here on (its subscription is made), so an echo could not be missed.
      await (store as SemanticStore & { whenSubscribed?: () => Promise<void> }).whenSubscribed?.();
      const e = semanticEntry();
      await store.put(e);
      await store.setThreshold(e.id, 0.5);
      await store.delete([e.id]);
      await store.invalidate({ tenantId: 't1' });
      if (peer) {
        // Another process's change, made after all of them, arrives: had they been reported, they
        // would have arrived before it (changes arrive in the order they were made).
        const other = await peer();
        try {
          const f = semanticEntry({ tenantId: 't2' });
          await other.put(f);
          await vi.waitFor(() => expect(changes.length).toBeGreaterThan(0), { timeout: 10_000, interval: 5 });
          expect(changes.map((c) => (c.kind === 'put' ? c.entry.id : c.kind))).toEqual([f.id]);
        } finally {
          await other.close();
        }
      } else {
        expect(changes).toEqual([]); // one process: nothing is ever reported, now or later
      }
      unsubscribe();
      unsubscribe();
    });

    describe('fair shares per tenant (maxEntriesPerTenant)', () => {
      /** A store whose tenants may each hold `max` entries; closed after the test. */
      async function withShare(max: number, run: (s: SemanticStore) => Promise<void>): Promise<void> {
        const s = await factory({ maxEntriesPerTenant: max });
        try {
          await run(s);
        } finally {
          await s.close();
        }
      }
      const live = async (s: SemanticStore, entries: SemanticEntry[]) => {
        const found: string[] = [];
        for (const e of entries) if ((await s.get(e.id)) !== undefined) found.push(e.id);
        return found;
      };
      const ids = (entries: SemanticEntry[]) => entries.map((e) => e.id);

      it('a tenant that floods the store evicts its own least recently used entries (put or get), never another tenant\'s; put returns them', async () => {
        await withShare(3, async (s) => {
          const a = [semanticEntry({ tenantId: 'a' }), semanticEntry({ tenantId: 'a' })];
          const b = Array.from({ length: 40 }, () => semanticEntry({ tenantId: 'b' }));
          for (const e of a) expect(await s.put(e)).toEqual([]);
          for (const e of b.slice(0, 3)) expect(await s.put(e)).toEqual([]);
          expect(await s.get(b[0]!.id)).toBeDefined(); // a get is a use: b[1] is now B's least recent
          expect(await s.put(b[3]!)).toEqual([b[1]!.id]);
          expect(await s.put(b[4]!)).toEqual([b[2]!.id]);
          expect(await s.put(b[5]!)).toEqual([b[0]!.id]);
          for (let i = 6; i < b.length; i++) expect(await s.put(b[i]!)).toEqual([b[i - 3]!.id]); // far more than the share
          expect(await live(s, [...a, ...b])).toEqual([...ids(a), ...ids(b.slice(-3))]);
          expect(sorted((await scanAll(s)).ids)).toEqual(sorted([...ids(a), ...ids(b.slice(-3))]));
        });
      });

      it('holds every tenant to its own share, whatever the others do', async () => {
        await withShare(2, async (s) => {
          const byTenant = new Map<string, SemanticEntry[]>();
          for (let round = 0; round < 4; round++) {
            for (const t of ['t1', 't2', 't3']) {
              const e = semanticEntry({ tenantId: t, route: round % 2 === 0 ? 'chat' : 'other' }); // the share spans routes
              byTenant.set(t, [...(byTenant.get(t) ?? []), e]);
              await s.put(e);
            }
          }
          const kept = [...byTenant.values()].flatMap((es) => ids(es.slice(-2)));
          expect(sorted((await scanAll(s)).ids)).toEqual(sorted(kept));
        });
      });

      it('a replaced entry is not a new one; deleted and invalidated entries give their slots back', async () => {
        await withShare(2, async (s) => {
          const [e1, e2, e3, e4, e5, e6] = Array.from({ length: 6 }, () => semanticEntry());
          await s.put(e1!);
          await s.put(e2!);
          expect(await s.put({ ...e1!, answer: '{"content":"again"}' })).toEqual([]); // a replacement (and a use)
          expect(await s.put(e3!)).toEqual([e2!.id]);
          await s.delete([e1!.id]);
          expect(await s.put(e4!)).toEqual([]);
          expect(sorted(await s.invalidate({ tenantId: 't1' }))).toEqual(sorted([e3!.id, e4!.id]));
          expect(await s.put(e5!)).toEqual([]);
          expect(await s.put(e6!)).toEqual([]);
          expect(sorted((await scanAll(s)).ids)).toEqual(sorted([e5!.id, e6!.id]));
        });
      });

      if (peer) {
        it('tells the other processes which entries it evicted', async () => {
          await withShare(1, async (s) => {
            const other = await peer();
            try {
              const changes: SemanticChange[] = [];
              other.subscribe((c) => changes.push(c));
              await (other as SemanticStore & { whenSubscribed?: () => Promise<void> }).whenSubscribed?.();
              const [first, second] = [semanticEntry({ tenantId: 'b' }), semanticEntry({ tenantId: 'b' })];
              await s.put(first);
              expect(await s.put(second)).toEqual([first.id]);
              const deletion = { kind: 'delete', ids: [first.id] };
              await vi.waitFor(() => expect(changes).toContainEqual(deletion), { timeout: 10_000, interval: 5 });
              // In order; the put of `first` may be skipped (gone when the other process fetched it).
              const seen = changes.map((c) => (c.kind === 'put' ? c.entry.id : c));
              expect(seen.filter((c) => c !== first.id)).toEqual([second.id, deletion]);
            } finally {
              await other.close();
            }
          });
        });
      }
    });
  });
}
