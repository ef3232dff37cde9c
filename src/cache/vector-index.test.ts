import { describe, expect, it } from 'vitest';

import { HnswVectorIndex, memoryEstimateBytes } from './vector-index.js';
import { mulberry32 as prng } from '../providers/simulated/random.js';
import { dot } from '../util/vector.js';

function gaussian(rnd: () => number): number {
  const u = rnd() || 1e-12;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i]! *= inv;
  return v;
}

function randomUnit(rnd: () => number, d: number): Float32Array {
  const v = new Float32Array(d);
  for (let i = 0; i < d; i++) v[i] = gaussian(rnd);
  return normalize(v);
}

/** A unit vector along axis i (orthogonal vectors: similarities are exactly 0 or 1). */
function axis(d: number, i: number): Float32Array {
  const v = new Float32Array(d);
  v[i] = 1;
  return v;
}

describe('HnswVectorIndex', () => {
  it('never returns another scope’s entries (property test, flat and graph scopes)', () => {
    for (const flatLimit of [4, 1024]) {
      const rnd = prng(42 + flatLimit);
      const d = 16;
      const index = new HnswVectorIndex({ dimensions: d, maxEntries: 150, flatLimit });
      const model = new Map<string, string>(); // id -> scope
      const scopes = ['a', 'b', 'c', 'd', 'e', 'f'];
      for (let step = 0; step < 3000; step++) {
        const op = rnd();
        const id = `id${Math.floor(rnd() * 250)}`;
        const scope = scopes[Math.floor(rnd() * scopes.length)]!;
        if (op < 0.6) {
          const evicted = index.add(scope, id, randomUnit(rnd, d));
          for (const e of evicted) {
            expect(e).not.toBe(id);
            expect(model.has(e)).toBe(true);
            model.delete(e);
          }
          model.set(id, scope);
        } else if (op < 0.8) {
          index.remove(id);
          model.delete(id);
        } else {
          const k = 1 + Math.floor(rnd() * 40);
          const res = index.search(scope, randomUnit(rnd, d), k);
          const inScope = [...model.values()].filter((s) => s === scope).length;
          expect(res.length).toBeLessThanOrEqual(Math.min(k, inScope));
          for (let i = 0; i < res.length; i++) {
            expect(model.get(res[i]!.id)).toBe(scope);
            if (i > 0) expect(res[i]!.similarity).toBeLessThanOrEqual(res[i - 1]!.similarity);
          }
          expect(new Set(res.map((r) => r.id)).size).toBe(res.length);
        }
        expect(index.size).toBe(model.size);
        expect(index.size).toBeLessThanOrEqual(150);
      }
      for (const [id] of model) expect(index.has(id)).toBe(true);
      // Exhaustive final check: every scope returns exactly its own entries for a large k.
      for (const scope of scopes) {
        const want = [...model].filter(([, s]) => s === scope).map(([id]) => id).sort();
        const got = index.search(scope, randomUnit(rnd, d), 1000).map((r) => r.id).sort();
        if (flatLimit === 1024) expect(got).toEqual(want); // flat search is exact
        else for (const id of got) expect(want).toContain(id);
      }
    }
  });

  it('finds the true nearest neighbour (recall@1 >= 0.95 vs brute force, 5,000 random unit vectors)', () => {
    const rnd = prng(7);
    const d = 64;
    const n = 5000;
    const data: Float32Array[] = [];
    for (let i = 0; i < n; i++) data.push(randomUnit(rnd, d));
    const bruteTop1 = (query: Float32Array): string => {
      let best = -2;
      let bestId = '';
      for (let i = 0; i < n; i++) {
        const s = dot(data[i]!, query);
        if (s > best) [best, bestId] = [s, `v${i}`];
      }
      return bestId;
    };
    const recall = (index: HnswVectorIndex, queries: Float32Array[]): number => {
      let hits = 0;
      for (const query of queries) {
        const res = index.search('s', query, 5);
        expect(res).toHaveLength(5);
        expect(res[0]!.similarity).toBeCloseTo(dot(data[Number(res[0]!.id.slice(1))]!, query), 4);
        if (res[0]!.id === bruteTop1(query)) hits++;
      }
      return hits / queries.length;
    };
    const build = (efSearch?: number): HnswVectorIndex => {
      const index = new HnswVectorIndex({ dimensions: d, maxEntries: n, ...(efSearch ? { efSearch } : {}) });
      data.forEach((v, i) => expect(index.add('s', `v${i}`, v)).toEqual([]));
      expect(index.stats().graphScopes).toBe(1);
      return index;
    };

    // Defaults, queries near a stored vector (cosine ~0.9: the semantic cache's regime).
    const near = Array.from({ length: 200 }, () => {
      const src = data[Math.floor(rnd() * n)]!;
      const noise = randomUnit(rnd, d);
      return normalize(src.map((x, i) => x + 0.45 * noise[i]!));
    });
    expect(recall(build(), near)).toBeGreaterThanOrEqual(0.95);

    // Uniformly random queries have no real neighbour (best cosine ~0.4 at 64 dims): the hardest
    // case; defaults give ~0.94 here, efSearch 128 ~0.99.
    const random = Array.from({ length: 200 }, () => randomUnit(rnd, d));
    expect(recall(build(128), random)).toBeGreaterThanOrEqual(0.95);
  });

  it('replaces an entry’s vector, also into another scope', () => {
    const d = 8;
    for (const flatLimit of [2, 1024]) {
      const index = new HnswVectorIndex({ dimensions: d, maxEntries: 10, flatLimit });
      index.add('s', 'x', axis(d, 0));
      index.add('s', 'y', axis(d, 1));
      index.add('s', 'z', axis(d, 2));
      expect(index.add('s', 'x', axis(d, 3))).toEqual([]);
      expect(index.size).toBe(3);
      expect(index.search('s', axis(d, 3), 1)[0]).toEqual({ id: 'x', similarity: 1 });
      expect(index.search('s', axis(d, 0), 1)[0]!.similarity).toBeCloseTo(0, 6);

      index.add('t', 'x', axis(d, 4)); // moves to scope t
      expect(index.size).toBe(3);
      expect(index.search('s', axis(d, 3), 5).map((r) => r.id).sort()).toEqual(['y', 'z']);
      expect(index.search('t', axis(d, 4), 5)).toEqual([{ id: 'x', similarity: 1 }]);
      index.add('u', 'x', axis(d, 5)); // and again: scope t is now empty and freed
      expect(index.search('t', axis(d, 4), 5)).toEqual([]);
      expect(index.stats().scopes).toBe(2);
    }
  });

  it('removes entries; an emptied scope is freed; unknown ids are ignored', () => {
    const d = 8;
    const index = new HnswVectorIndex({ dimensions: d, maxEntries: 10 });
    index.add('s', 'a', axis(d, 0));
    index.add('s', 'b', axis(d, 1));
    index.remove('a');
    index.remove('nope');
    expect(index.has('a')).toBe(false);
    expect(index.has('b')).toBe(true);
    expect(index.size).toBe(1);
    expect(index.search('s', axis(d, 0), 3).map((r) => r.id)).toEqual(['b']);
    index.remove('b');
    expect(index.search('s', axis(d, 0), 3)).toEqual([]);
    expect(index.stats()).toMatchObject({ entries: 0, scopes: 0 });
    index.add('s', 'c', axis(d, 2));
    index.clear();
    expect(index.size).toBe(0);
    expect(index.has('c')).toBe(false);
    expect(index.search('s', axis(d, 2), 1)).toEqual([]);
  });

  it('evicts the least recently used entry over all scopes; a top hit refreshes recency', () => {
    const d = 8;
    for (const flatLimit of [1, 1024]) {
      const index = new HnswVectorIndex({ dimensions: d, maxEntries: 3, flatLimit });
      expect(index.add('s', 'a', axis(d, 0))).toEqual([]);
      expect(index.add('t', 'b', axis(d, 1))).toEqual([]);
      expect(index.add('s', 'c', axis(d, 2))).toEqual([]);
      expect(index.add('t', 'd', axis(d, 3))).toEqual(['a']); // oldest, other scope than d's
      // b is the top hit: refreshed. d is returned too, but only as second: not refreshed.
      expect(index.search('t', axis(d, 1), 2).map((r) => r.id)).toEqual(['b', 'd']);
      expect(index.add('u', 'e', axis(d, 4))).toEqual(['c']);
      expect(index.add('u', 'f', axis(d, 5))).toEqual(['d']);
      expect(index.add('u', 'e', axis(d, 6))).toEqual([]); // replacing does not evict, but refreshes e
      expect(index.add('u', 'g', axis(d, 7))).toEqual(['b']);
      expect(index.add('u', 'h', axis(d, 0))).toEqual(['f']);
      expect([...['e', 'g', 'h']].every((id) => index.has(id))).toBe(true);
      expect(index.size).toBe(3);
    }
  });

  it('reuses freed graph slots: remove/add cycles of 10× capacity keep the graph bounded', () => {
    const rnd = prng(3);
    const d = 16;
    const index = new HnswVectorIndex({ dimensions: d, maxEntries: 100, flatLimit: 8 });
    for (let i = 0; i < 64; i++) index.add('s', `p${i}`, randomUnit(rnd, d));
    const { graphScopes, graphCapacity } = index.stats();
    expect(graphScopes).toBe(1);
    expect(graphCapacity).toBe(64); // 2 × flatLimit, doubled twice
    let next = 64;
    for (let cycle = 0; cycle < 640; cycle++) {
      index.remove(`p${next - 64}`);
      index.add('s', `p${next++}`, randomUnit(rnd, d));
    }
    // And through LRU eviction (maxEntries 100 reached).
    for (let i = 0; i < 640; i++) index.add('s', `q${i}`, randomUnit(rnd, d));
    expect(index.size).toBe(100);
    expect(index.stats().graphCapacity).toBeLessThanOrEqual(128);
    const q = randomUnit(rnd, d);
    const res = index.search('s', q, 3);
    expect(res).toHaveLength(3);
    expect(res.every((r) => r.id.startsWith('q'))).toBe(true);
    expect(memoryEstimateBytes(index)).toBeGreaterThan(100 * d * 4);
  });

  it('promotes a growing scope to a graph without losing entries, and demotes it when it shrinks', () => {
    const d = 32;
    const flatLimit = 16;
    const index = new HnswVectorIndex({ dimensions: d, maxEntries: 1000, flatLimit });
    const rnd = prng(11);
    const vecs = new Map<string, Float32Array>();
    for (let i = 0; i < 40; i++) {
      const v = randomUnit(rnd, d);
      vecs.set(`e${i}`, v);
      index.add('s', `e${i}`, v);
      // Mid-migration too, each stored vector is its own top hit (flat and graph parts merged).
      const probe = `e${Math.floor(rnd() * (i + 1))}`;
      const top = index.search('s', vecs.get(probe)!, 1)[0]!;
      expect(top.id).toBe(probe);
      expect(top.similarity).toBeCloseTo(1, 5);
      expect(index.search('s', v, 100)).toHaveLength(i + 1);
    }
    expect(index.stats().graphScopes).toBe(1);
    for (let i = 0; i < 32; i++) index.remove(`e${i}`);
    expect(index.stats()).toMatchObject({ graphScopes: 0, scopes: 1, entries: 8 });
    for (let i = 32; i < 40; i++) expect(index.search('s', vecs.get(`e${i}`)!, 1)[0]!.id).toBe(`e${i}`);
  });

  it('checks dimensions and handles empty or unknown scopes and odd k', () => {
    const index = new HnswVectorIndex({ dimensions: 4, maxEntries: 10 });
    expect(() => index.add('s', 'a', new Float32Array(3))).toThrow(/3 dimensions, expected 4/);
    expect(() => index.search('s', new Float32Array(5), 1)).toThrow(/5 dimensions, expected 4/);
    expect(() => new HnswVectorIndex({ dimensions: 0, maxEntries: 10 })).toThrow(/dimensions/);
    expect(index.size).toBe(0);
    expect(index.search('nowhere', axis(4, 0), 5)).toEqual([]);
    index.add('s', 'a', axis(4, 0));
    index.add('s', 'b', axis(4, 1));
    expect(index.search('s', axis(4, 0), 0)).toEqual([]);
    expect(index.search('s', axis(4, 0), 50).map((r) => r.id)).toEqual(['a', 'b']);
    expect(index.search('other', axis(4, 0), 5)).toEqual([]);
  });
});

describe('HnswVectorIndex fair shares per tenant', () => {
  it('a tenant at its share evicts its own least recently used entry, never another tenant\'s', () => {
    const d = 8;
    for (const flatLimit of [1, 1024]) {
      const index = new HnswVectorIndex({ dimensions: d, maxEntries: 100, maxEntriesPerTenant: 3, flatLimit });
      index.add('a-scope', 'a/chat/1', axis(d, 0));
      index.add('a-scope', 'a/chat/2', axis(d, 1));
      expect(index.add('b-scope', 'b/chat/1', axis(d, 0))).toEqual([]);
      expect(index.add('b-other', 'b/other/2', axis(d, 1))).toEqual([]); // the share spans scopes
      expect(index.add('b-scope', 'b/chat/3', axis(d, 2))).toEqual([]);
      expect(index.search('b-scope', axis(d, 0), 1)[0]!.id).toBe('b/chat/1'); // a top hit is a use
      expect(index.add('b-scope', 'b/chat/4', axis(d, 3))).toEqual(['b/other/2']);
      for (let i = 5; i < 200; i++) expect(index.add('b-scope', `b/chat/${i}`, axis(d, i % d))).toHaveLength(1);
      expect(index.tenantSize('b')).toBe(3);
      expect(index.has('a/chat/1') && index.has('a/chat/2')).toBe(true);
      expect(index.search('a-scope', axis(d, 1), 1)[0]!.id).toBe('a/chat/2');
      index.remove('b/chat/199'); // a removal gives the slot back
      expect(index.add('b-scope', 'b/chat/x', axis(d, 1))).toEqual([]);
      expect(index.add('b-scope', 'b/chat/198', axis(d, 4))).toEqual([]); // replacing is not adding
    }
  });

  it('when the whole index is full, the tenant holding the most gives way', () => {
    const d = 8;
    const index = new HnswVectorIndex({ dimensions: d, maxEntries: 6, maxEntriesPerTenant: 4 });
    index.add('s', 'a/r/1', axis(d, 0)); // the least recently used entry of all
    index.add('s', 'a/r/2', axis(d, 1));
    for (let i = 1; i <= 4; i++) index.add('s', `b/r/${i}`, axis(d, i));
    expect(index.add('s', 'c/r/1', axis(d, 5))).toEqual(['b/r/1']); // b holds the most, not a's oldest
    expect(index.add('s', 'c/r/2', axis(d, 6))).toEqual(['b/r/2']);
    // a, b and c hold 2 each: the tie goes to the tenant with the least recently used entry (a).
    expect(index.add('s', 'c/r/3', axis(d, 7))).toEqual(['a/r/1']);
    expect([index.tenantSize('a'), index.tenantSize('b'), index.tenantSize('c')]).toEqual([1, 2, 3]);
    expect(index.size).toBe(6);
  });

  it('refuses a per-tenant bound that is not a positive integer', () => {
    expect(() => new HnswVectorIndex({ dimensions: 4, maxEntries: 10, maxEntriesPerTenant: 0 })).toThrow(/maxEntriesPerTenant/);
  });
});
