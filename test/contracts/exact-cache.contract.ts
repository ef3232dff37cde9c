/**
 * Behaviour every `ExactStore` adapter must have. An adapter's test file calls
 * `runExactCacheContract(name, factory, pass)`; `factory` must return an empty store each time.
 * `pass(ms)` lets that much time go by on the clock the store's TTLs run on: the test's own
 * clock, moved (memory), or Redis's, waited for (Redis expires keys on its own clock).
 * `factory(shares)` must honour `shares.maxEntriesPerTenant` (the fair-share tests pass it).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExactStore } from '../../src/cache/types.js';

const MINUTE = 60_000;

/** Per-tenant bounds handed to the factory (adapters' own option names). */
export interface ExactStoreShares {
  maxEntriesPerTenant?: number;
}

export function runExactCacheContract(
  name: string,
  factory: (shares?: ExactStoreShares) => Promise<ExactStore>,
  pass: (ms: number) => Promise<void>,
): void {
  describe(`ExactStore contract: ${name}`, () => {
    let store: ExactStore;

    beforeEach(async () => {
      store = await factory();
    });

    afterEach(async () => {
      await store.close();
    });

    /** Sets each key to `v:<key>` for a minute. */
    async function fill(keys: string[]): Promise<void> {
      for (const key of keys) await store.set(key, `v:${key}`, MINUTE);
    }

    async function present(keys: string[]): Promise<string[]> {
      const found: string[] = [];
      for (const key of keys) if ((await store.get(key)) !== undefined) found.push(key);
      return found;
    }

    it('returns what was set, undefined for a key never set, and the latest value after an overwrite', async () => {
      expect(await store.get('t1/chat/abc')).toBeUndefined();
      await store.set('t1/chat/abc', '{"answer":1}', MINUTE);
      expect(await store.get('t1/chat/abc')).toBe('{"answer":1}');
      await store.set('t1/chat/abc', '{"answer":2}', MINUTE);
      expect(await store.get('t1/chat/abc')).toBe('{"answer":2}');
      expect(await store.size()).toBe(1);
    });

    it('treats keys as exact strings (case, unicode, spaces)', async () => {
      await fill(['t1/chat/Key', 't1/chat/key', 't1/chat/ключ é', 't1/chat/key ']);
      expect(await store.get('t1/chat/key')).toBe('v:t1/chat/key');
      expect(await store.get('t1/chat/Key')).toBe('v:t1/chat/Key');
      expect(await store.get('t1/chat/ключ é')).toBe('v:t1/chat/ключ é');
      expect(await store.get('t1/chat/KEY')).toBeUndefined();
      expect(await store.size()).toBe(4);
    });

    it('keeps values exactly: empty, unicode, and large (tens of KB)', async () => {
      const unicode = '{"a":"é ✓ 😀 \\u0000 \u0000 line\nbreak"}';
      const large = JSON.stringify({ content: 'x'.repeat(60_000) + '😀'.repeat(5_000) });
      await store.set('t/r/empty', '', MINUTE);
      await store.set('t/r/unicode', unicode, MINUTE);
      await store.set('t/r/large', large, MINUTE);
      expect(await store.get('t/r/empty')).toBe('');
      expect(await store.get('t/r/unicode')).toBe(unicode);
      expect(await store.get('t/r/large')).toBe(large);
    });

    it('deletes a key; deleting a missing key is harmless', async () => {
      await fill(['t1/chat/a', 't1/chat/b']);
      await store.delete('t1/chat/a');
      await store.delete('t1/chat/never');
      expect(await store.get('t1/chat/a')).toBeUndefined();
      expect(await store.get('t1/chat/b')).toBe('v:t1/chat/b');
      expect(await store.size()).toBe(1);
    });

    it('never returns an expired entry; each set has its own TTL, and an overwrite renews it', async () => {
      await store.set('t/r/short', 'short', 80);
      await store.set('t/r/long', 'long', MINUTE);
      await store.set('t/r/renewed', 'old', 80);
      expect(await store.get('t/r/short')).toBe('short');
      await store.set('t/r/renewed', 'new', MINUTE);
      await pass(200);
      expect(await store.get('t/r/short')).toBeUndefined();
      expect(await store.get('t/r/long')).toBe('long');
      expect(await store.get('t/r/renewed')).toBe('new');
      expect(await store.size()).toBe(2);
    });

    it('refuses a TTL that is not a positive number', async () => {
      await expect(store.set('t/r/k', 'v', 0)).rejects.toThrow(RangeError);
      await expect(store.set('t/r/k', 'v', -5)).rejects.toThrow(RangeError);
      await expect(store.set('t/r/k', 'v', Number.NaN)).rejects.toThrow(RangeError);
      expect(await store.get('t/r/k')).toBeUndefined();
    });

    describe('invalidate', () => {
      const KEYS = [
        't1/chat/a1',
        't1/chat/a2',
        't1/embed/b1',
        't2/chat/c1',
        't10/chat/d1', // a tenant whose id starts with another's
        't1/chat2/e1', // a route whose name starts with another's
        't3/other/f1',
      ];

      beforeEach(async () => {
        await fill(KEYS);
      });

      it('by tenant: exactly that tenant (not one whose id merely starts the same), returning the count', async () => {
        expect(await store.invalidate({ tenantId: 't1' })).toBe(4);
        expect(await present(KEYS)).toEqual(['t2/chat/c1', 't10/chat/d1', 't3/other/f1']);
        expect(await store.size()).toBe(3);
        expect(await store.invalidate({ tenantId: 't1' })).toBe(0);
      });

      it('by route: the second segment of every tenant, exactly', async () => {
        expect(await store.invalidate({ route: 'chat' })).toBe(4);
        expect(await present(KEYS)).toEqual(['t1/embed/b1', 't1/chat2/e1', 't3/other/f1']);
      });

      it('by route matches the second segment only, whatever the later segments hold', async () => {
        await fill(['t4/x/chat', 't4/x/chat/y', 't4/chat/x/y', 't4/chat.v1:beta+/z']);
        expect(await store.invalidate({ route: 'chat.v1:beta+' })).toBe(1);
        expect(await store.invalidate({ tenantId: 't4', route: 'chat' })).toBe(1);
        expect(await present(['t4/x/chat', 't4/x/chat/y', 't4/chat/x/y', 't4/chat.v1:beta+/z'])).toEqual([
          't4/x/chat',
          't4/x/chat/y',
        ]);
      });

      it('by key prefix: any start of the key, partial segments included', async () => {
        expect(await store.invalidate({ keyPrefix: 't1/chat/' })).toBe(2);
        expect(await store.invalidate({ keyPrefix: 't1/ch' })).toBe(1); // t1/chat2/e1
        expect(await store.invalidate({ keyPrefix: 't1' })).toBe(2); // t1/embed/b1, t10/chat/d1
        expect(await present(KEYS)).toEqual(['t2/chat/c1', 't3/other/f1']);
      });

      it('with several fields: every one must match', async () => {
        expect(await store.invalidate({ tenantId: 't1', route: 'chat' })).toBe(2);
        expect(await store.invalidate({ tenantId: 't1', keyPrefix: 't2/' })).toBe(0); // contradictory
        expect(await store.invalidate({ route: 'chat', keyPrefix: 't1' })).toBe(1); // t10/chat/d1
        expect(await store.invalidate({ tenantId: 't1', route: 'embed', keyPrefix: 't1/embed/b' })).toBe(1);
        expect(await store.invalidate({ tenantId: 't1', route: 'embed', keyPrefix: 't1/embed/x' })).toBe(0);
        expect(await present(KEYS)).toEqual(['t2/chat/c1', 't1/chat2/e1', 't3/other/f1']);
      });

      it('with an empty filter: everything', async () => {
        expect(await store.invalidate({})).toBe(KEYS.length);
        expect(await present(KEYS)).toEqual([]);
        expect(await store.size()).toBe(0);
        await store.set('t1/chat/a1', 'again', MINUTE);
        expect(await store.get('t1/chat/a1')).toBe('again');
      });

      it('takes glob metacharacters and backslashes in names literally', async () => {
        const odd = ['a*/chat/1', 'ab/chat/2', 'a?/chat/3', '[a]/chat/4', 'a/chat/5', 'a\\b/chat/6', 'a\\\\b/chat/7', 'x/r*/8', 'x/rr/9'];
        await fill(odd);
        expect(await store.invalidate({ tenantId: 'a*' })).toBe(1);
        expect(await store.invalidate({ tenantId: '[a]' })).toBe(1);
        expect(await store.invalidate({ tenantId: 'a?' })).toBe(1);
        expect(await store.invalidate({ tenantId: 'a\\b' })).toBe(1);
        expect(await store.invalidate({ route: 'r*' })).toBe(1);
        expect(await store.invalidate({ keyPrefix: 'a\\' })).toBe(1); // a\\b/chat/7
        expect(await present(odd)).toEqual(['ab/chat/2', 'a/chat/5', 'x/rr/9']);
      });

      it('does not count entries that had already expired', async () => {
        await store.set('t5/chat/gone', 'v', 50);
        await store.set('t5/chat/live', 'v', MINUTE);
        await pass(150);
        expect(await store.invalidate({ tenantId: 't5' })).toBe(1);
        expect(await store.invalidate({})).toBe(KEYS.length);
      });
    });

    describe('fair shares per tenant (maxEntriesPerTenant)', () => {
      /** A store whose tenants may each hold `max` entries; closed after the test. */
      async function withShare(max: number, run: (s: ExactStore) => Promise<void>): Promise<void> {
        const s = await factory({ maxEntriesPerTenant: max });
        try {
          await run(s);
        } finally {
          await s.close();
        }
      }
      /** The keys present, in the order given. Each get is a use: callers list keys least recent first, keeping the order. */
      const has = async (s: ExactStore, keys: string[]) => {
        const found: string[] = [];
        for (const key of keys) if ((await s.get(key)) !== undefined) found.push(key);
        return found;
      };
      const range = (tenant: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${tenant}/chat/${from + i}`);

      it('a tenant that floods the cache evicts its own least recently used entries, never another tenant\'s', async () => {
        await withShare(3, async (s) => {
          for (const key of ['a/chat/1', 'a/chat/2']) await s.set(key, `v:${key}`, MINUTE);
          for (const key of range('b', 1, 3)) await s.set(key, `v:${key}`, MINUTE);
          expect(await s.get('b/chat/1')).toBe('v:b/chat/1'); // a get is a use: b/chat/2 is now B's least recent
          await s.set('b/chat/4', 'v', MINUTE);
          expect(await has(s, ['b/chat/2', 'b/chat/3', 'b/chat/1', 'b/chat/4'])).toEqual(['b/chat/3', 'b/chat/1', 'b/chat/4']);
          for (const key of range('b', 5, 40)) await s.set(key, 'v', MINUTE); // far more than the share
          expect(await has(s, range('b', 1, 40))).toEqual(['b/chat/38', 'b/chat/39', 'b/chat/40']);
          expect(await s.get('a/chat/1')).toBe('v:a/chat/1');
          expect(await s.get('a/chat/2')).toBe('v:a/chat/2');
          expect(await s.size()).toBe(5);
        });
      });

      it('holds every tenant to its own share, whatever the others do', async () => {
        await withShare(2, async (s) => {
          for (let round = 1; round <= 4; round++) for (const t of ['t1', 't2', 't3']) await s.set(`${t}/chat/${round}`, 'v', MINUTE);
          for (const t of ['t1', 't2', 't3']) expect(await has(s, range(t, 1, 4))).toEqual([`${t}/chat/3`, `${t}/chat/4`]);
          expect(await s.size()).toBe(6);
        });
      });

      it('an overwrite is not a new entry; a deleted or invalidated entry gives its slot back', async () => {
        await withShare(2, async (s) => {
          await s.set('t/chat/1', 'v1', MINUTE);
          await s.set('t/chat/2', 'v2', MINUTE);
          await s.set('t/chat/1', 'v1bis', MINUTE); // an overwrite (and a use): nothing evicted
          expect(await has(s, ['t/chat/2', 't/chat/1'])).toEqual(['t/chat/2', 't/chat/1']);
          await s.set('t/chat/3', 'v3', MINUTE); // evicts 2, the least recent
          expect(await has(s, ['t/chat/2', 't/chat/1', 't/chat/3'])).toEqual(['t/chat/1', 't/chat/3']);
          await s.delete('t/chat/1');
          await s.set('t/chat/4', 'v4', MINUTE); // the deleted entry's slot: nothing evicted
          expect(await has(s, range('t', 1, 4))).toEqual(['t/chat/3', 't/chat/4']);
          expect(await s.invalidate({ tenantId: 't', route: 'chat' })).toBe(2);
          await s.set('t/chat/5', 'v5', MINUTE);
          await s.set('t/chat/6', 'v6', MINUTE);
          expect(await has(s, range('t', 1, 6))).toEqual(['t/chat/5', 't/chat/6']);
          expect(await s.invalidate({})).toBe(2);
          await s.set('t/chat/7', 'v7', MINUTE);
          await s.set('t/chat/8', 'v8', MINUTE);
          expect(await has(s, range('t', 1, 8))).toEqual(['t/chat/7', 't/chat/8']);
        });
      });
    });
  });
}
