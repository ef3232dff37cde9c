import { describe, expect, it } from 'vitest';
import { OTHER_TENANTS, TenantLabeler } from './tenant-labels.js';

/** A deterministic pseudo-random source (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('TenantLabeler', () => {
  it('names every tenant while there are no more than topN of them, from its second request', () => {
    const l = new TenantLabeler({ topN: 5 });
    for (const t of ['a', 'b', 'c', 'd', 'e']) expect(l.record(t, 100)).toBe(OTHER_TENANTS);
    for (const t of ['a', 'b', 'c', 'd', 'e']) expect(l.record(t, 100)).toBe(t);
    expect(l.label('c')).toBe('c');
    expect(l.label('never-seen')).toBe(OTHER_TENANTS);
  });

  it('finds the heavy spenders in a long tail of 10,000 small tenants, and names nobody else past the cap', () => {
    const l = new TenantLabeler({ topN: 5 });
    const random = rng(7);
    const heavy = ['big-1', 'big-2', 'big-3'];
    for (let i = 0; i < 10_000; i++) {
      l.record(`small-${i}`, 1 + Math.floor(random() * 10));
      if (i % 20 === 0) l.record(heavy[(i / 20) % 3] as string, 200);
    }
    for (const h of heavy) expect(l.label(h)).toBe(h);
    const named = l.named();
    expect(named.length).toBeLessThanOrEqual(l.maxLabels);
    expect(named.sort()).toEqual(heavy); // the long tail (one request each) stays aggregated
    expect(l.label('small-9999')).toBe(OTHER_TENANTS);
    expect(l.top(3).map((t) => t.tenantId).sort()).toEqual(heavy);
  });

  it("counts a tenant's first requests under __other__, until its spend makes it a top spender", () => {
    const l = new TenantLabeler({ topN: 2 });
    for (let i = 0; i < 50; i++) {
      l.record('a', 10);
      l.record('b', 10);
      l.record('c', 10);
    }
    expect(l.named().sort()).toEqual(['a', 'b']); // c was third from its first request
    expect(l.label('c')).toBe(OTHER_TENANTS);
    // One more request puts c ahead of a and b: it is a top-2 spender now, and named.
    expect(l.record('c', 10)).toBe('c');
  });

  it('keeps a label for life, even when the tenant stops spending', () => {
    const l = new TenantLabeler({ topN: 1, capacity: 4 });
    l.record('early', 5);
    expect(l.record('early', 5)).toBe('early');
    for (let i = 0; i < 1_000; i++) l.record(`t${i % 50}`, 100);
    expect(l.label('early')).toBe('early');
  });

  it('never names more than maxLabels tenants, even when each newcomer outspends everyone before it', () => {
    const l = new TenantLabeler({ topN: 3 });
    let weight = 1;
    for (let i = 0; i < 200; i++) {
      l.record(`rising-${i}`, weight);
      l.record(`rising-${i}`, weight);
      weight *= 1.5;
    }
    expect(l.named()).toHaveLength(6);
    expect(l.label('rising-199')).toBe(OTHER_TENANTS);
    expect(l.label('rising-0')).toBe('rising-0');
  });

  it('with topN 0 names nobody', () => {
    const l = new TenantLabeler({ topN: 0 });
    expect(l.record('a', 1e9)).toBe(OTHER_TENANTS);
    expect(l.record('a', 1e9)).toBe(OTHER_TENANTS);
    expect(l.named()).toEqual([]);
  });

  it('ignores zero, negative and non-finite spend (no tenant is evicted for nothing)', () => {
    const l = new TenantLabeler({ topN: 1, capacity: 1 });
    l.record('a', 10);
    for (const w of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) expect(l.record('b', w)).toBe(OTHER_TENANTS);
    expect(l.top(1)).toEqual([{ tenantId: 'a', spend: 10, error: 0 }]);
  });

  it('never names a tenant whose id is the aggregate label', () => {
    const l = new TenantLabeler({ topN: 3 });
    l.record(OTHER_TENANTS, 100);
    l.record(OTHER_TENANTS, 100);
    expect(l.named()).toEqual([]);
  });

  it('tracks spend exactly while the sketch has room, and within its error bound after', () => {
    const l = new TenantLabeler({ topN: 2, capacity: 8 });
    const truth = new Map<string, number>();
    const random = rng(3);
    for (let i = 0; i < 5_000; i++) {
      const t = random() < 0.5 ? 'whale' : `minnow-${Math.floor(random() * 100)}`;
      const w = 1 + Math.floor(random() * 5);
      truth.set(t, (truth.get(t) ?? 0) + w);
      l.record(t, w);
    }
    const whale = l.top(1)[0]!;
    expect(whale.tenantId).toBe('whale');
    expect(whale.spend).toBeGreaterThanOrEqual(truth.get('whale')!);
    expect(whale.spend - whale.error).toBeLessThanOrEqual(truth.get('whale')!);
  });
});
