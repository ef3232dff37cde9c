import { describe, expect, it } from 'vitest';
import { MemoryExactStore } from '../../src/storage/memory/exact-cache.js';
import { runExactCacheContract } from './exact-cache.contract.js';

const MINUTE = 60_000;

/** The stores' TTL clock: the contract moves it instead of waiting. */
const clock = { t: 1_000_000 };
runExactCacheContract(
  'memory',
  async (shares) => new MemoryExactStore({ maxEntries: 10_000, maxBytes: 16 * 1024 * 1024, now: () => clock.t, ...shares }),
  async (ms) => void (clock.t += ms),
);

describe('MemoryExactStore bounds', () => {
  it('holds at most maxEntries, evicting the least recently used (a get counts as a use)', async () => {
    const store = new MemoryExactStore({ maxEntries: 3, maxBytes: 1_000_000 });
    await store.set('t/r/a', '1', MINUTE);
    await store.set('t/r/b', '2', MINUTE);
    await store.set('t/r/c', '3', MINUTE);
    expect(await store.get('t/r/a')).toBe('1'); // a is now the most recent
    await store.set('t/r/d', '4', MINUTE); // evicts b
    expect(await store.get('t/r/b')).toBeUndefined();
    expect(await store.get('t/r/a')).toBe('1');
    expect(await store.get('t/r/c')).toBe('3');
    expect(await store.get('t/r/d')).toBe('4');
    expect(await store.size()).toBe(3);
  });

  it('holds at most maxBytes (key and value as UTF-16), evicting the least recently used', async () => {
    // Each entry: key 5 chars + value 95 chars = 100 chars = 200 bytes.
    const store = new MemoryExactStore({ maxEntries: 1_000, maxBytes: 1_000 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) await store.set(`t/r/${k}`, k.repeat(95), MINUTE);
    expect(store.calculatedSize).toBe(1_000);
    await store.set('t/r/f', 'f'.repeat(95), MINUTE); // evicts a
    expect(await store.get('t/r/a')).toBeUndefined();
    expect(await store.size()).toBe(5);
    await store.set('t/r/g', 'g'.repeat(295), MINUTE); // 600 bytes: evicts b, c, d
    expect(await store.get('t/r/b')).toBeUndefined();
    expect(await store.get('t/r/d')).toBeUndefined();
    expect(await store.get('t/r/e')).toBe('e'.repeat(95));
    expect(await store.get('t/r/g')).toBe('g'.repeat(295));
    expect(store.calculatedSize).toBeLessThanOrEqual(1_000);
  });

  it('does not store a value larger than maxBytes, and drops the older value of its key', async () => {
    const store = new MemoryExactStore({ maxEntries: 10, maxBytes: 1_000 });
    await store.set('t/r/k', 'small', MINUTE);
    await store.set('t/r/other', 'kept', MINUTE);
    await store.set('t/r/k', 'x'.repeat(600), MINUTE);
    expect(await store.get('t/r/k')).toBeUndefined();
    expect(await store.get('t/r/other')).toBe('kept');
    expect(await store.invalidate({ tenantId: 't' })).toBe(1);
  });

  it('keeps tenant invalidation right through evictions, overwrites and deletes', async () => {
    const store = new MemoryExactStore({ maxEntries: 4, maxBytes: 1_000_000 });
    for (const k of ['t1/r/1', 't1/r/2', 't2/r/1', 't1/r/3']) await store.set(k, 'v', MINUTE);
    await store.set('t1/r/2', 'v2', MINUTE); // overwrite keeps it indexed
    await store.set('t2/r/2', 'v', MINUTE); // evicts t1/r/1
    await store.delete('t1/r/3');
    expect(await store.invalidate({ tenantId: 't1' })).toBe(1); // t1/r/2
    expect(await store.invalidate({ tenantId: 't2' })).toBe(2);
    expect(await store.size()).toBe(0);
  });

  it('refuses bounds that are not positive integers', () => {
    expect(() => new MemoryExactStore({ maxEntries: 0, maxBytes: 10 })).toThrow(RangeError);
    expect(() => new MemoryExactStore({ maxEntries: 10, maxBytes: 1.5 })).toThrow(RangeError);
  });
});

describe('MemoryExactStore fair shares', () => {
  it('holds each tenant to maxBytesPerTenant, evicting its own least recently used entries', async () => {
    // Each entry: key 5 chars + value 95 chars = 200 bytes; a tenant may hold 600.
    const store = new MemoryExactStore({ maxEntries: 1_000, maxBytes: 100_000, maxBytesPerTenant: 600 });
    await store.set('a/r/1', 'x'.repeat(95), MINUTE);
    for (const k of ['1', '2', '3', '4', '5']) await store.set(`b/r/${k}`, 'y'.repeat(95), MINUTE);
    expect(store.tenantUsage('b')).toEqual({ entries: 3, bytes: 600 });
    expect(await store.get('b/r/2')).toBeUndefined();
    expect(await store.get('b/r/3')).toBeDefined();
    await store.set('b/r/6', 'y'.repeat(295), MINUTE); // 600 bytes: the whole share
    expect(store.tenantUsage('b')).toEqual({ entries: 1, bytes: 600 });
    expect(await store.get('a/r/1')).toBe('x'.repeat(95));
  });

  it('does not store a value larger than a tenant share, and drops the older value of its key', async () => {
    const store = new MemoryExactStore({ maxEntries: 10, maxBytes: 10_000, maxBytesPerTenant: 1_000 });
    await store.set('t/r/k', 'small', MINUTE);
    await store.set('t/r/k', 'x'.repeat(600), MINUTE);
    expect(await store.get('t/r/k')).toBeUndefined();
    expect(store.tenantUsage('t')).toEqual({ entries: 0, bytes: 0 });
  });

  it('when the whole store is full, the tenant holding the most gives way, not the least recently used one', async () => {
    const store = new MemoryExactStore({ maxEntries: 6, maxBytes: 1_000_000, maxEntriesPerTenant: 4 });
    await store.set('a/r/1', 'v', MINUTE); // the oldest entry of all
    await store.set('a/r/2', 'v', MINUTE);
    for (const k of ['1', '2', '3', '4']) await store.set(`b/r/${k}`, 'v', MINUTE); // full: 6
    await store.set('c/r/1', 'v', MINUTE); // b holds the most: b/r/1 goes, not a/r/1
    expect(await store.get('b/r/1')).toBeUndefined();
    expect(await store.get('a/r/1')).toBe('v');
    await store.set('c/r/2', 'v', MINUTE); // b (3) still holds the most
    await store.set('c/r/3', 'v', MINUTE); // a, b, c hold 2 each: one of them gives way, never beyond
    expect(await store.size()).toBe(6);
    for (const t of ['a', 'b', 'c']) expect(store.tenantUsage(t).entries).toBeGreaterThanOrEqual(1);
    expect(store.tenantUsage('c').entries).toBeLessThanOrEqual(3);
  });

  it('by bytes too: a full store takes room from the tenant holding the most bytes', async () => {
    // Entries of 200 bytes; the store holds 1,000.
    const store = new MemoryExactStore({ maxEntries: 1_000, maxBytes: 1_000, maxBytesPerTenant: 600 });
    await store.set('a/r/1', 'x'.repeat(95), MINUTE);
    await store.set('a/r/2', 'x'.repeat(95), MINUTE);
    for (const k of ['1', '2', '3']) await store.set(`b/r/${k}`, 'y'.repeat(95), MINUTE); // full: 1,000
    await store.set('c/r/1', 'z'.repeat(95), MINUTE);
    expect(store.tenantUsage('a')).toEqual({ entries: 2, bytes: 400 });
    expect(store.tenantUsage('b')).toEqual({ entries: 2, bytes: 400 });
    expect(store.calculatedSize).toBe(1_000);
  });

  it('refuses per-tenant bounds that are not positive integers', () => {
    expect(() => new MemoryExactStore({ maxEntries: 10, maxBytes: 10, maxEntriesPerTenant: 0 })).toThrow(RangeError);
    expect(() => new MemoryExactStore({ maxEntries: 10, maxBytes: 10, maxBytesPerTenant: 2.5 })).toThrow(RangeError);
  });
});
