import { describe, expect, it } from 'vitest';
import { MemoryCounters } from '../../src/storage/memory/counters.js';
import { runCountersContract } from './counters.contract.js';

const T0 = Date.UTC(2025, 0, 1);

function fakeClock(start = T0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

runCountersContract('memory', async () => {
  const clock = fakeClock();
  return { counters: new MemoryCounters({ now: clock.now }), clock: async () => clock.now(), advance: clock.advance };
});

describe('MemoryCounters', () => {
  it('keeps memory bounded: full buckets and expired budgets are swept', async () => {
    const clock = fakeClock();
    const counters = new MemoryCounters({ now: clock.now, sweepIntervalMs: 1_000 });
    const spec = { capacity: 10, refillPerSec: 100 }; // full again 10 ms after a take of 1
    for (let i = 0; i < 100; i++) {
      await counters.take([{ key: `user:${i}`, spec, amount: 1 }]);
      await counters.seedBudget(`budget:${i}`, i, 500);
    }
    await counters.take([{ key: 'quota', spec: { capacity: 1, refillPerSec: 0 }, amount: 1 }]); // never refills
    expect(counters.entryCount).toEqual({ buckets: 101, budgets: 100 });

    clock.advance(5_000);
    await counters.budgetUsed('anything'); // any call sweeps once the interval has passed
    expect(counters.entryCount).toEqual({ buckets: 1, budgets: 0 });
    expect((await counters.take([{ key: 'quota', spec: { capacity: 1, refillPerSec: 0 }, amount: 1 }])).ok).toBe(false);
    await counters.close();
  });

  it('ignores expired entries at once, before any sweep', async () => {
    const clock = fakeClock();
    const counters = new MemoryCounters({ now: clock.now, sweepIntervalMs: 3_600_000 });
    await counters.seedBudget('b', 5, 100);
    clock.advance(100);
    expect(await counters.budgetUsed('b')).toBe(0);
    expect(await counters.reserve([{ key: 'b', limit: 10, amount: 1, ttlMs: 100 }])).toMatchObject({ missing: ['b'] });
    await counters.close();
  });

  it('refills nothing when the clock goes back', async () => {
    const clock = fakeClock();
    const counters = new MemoryCounters({ now: clock.now });
    const spec = { capacity: 10, refillPerSec: 10 };
    expect((await counters.take([{ key: 'k', spec, amount: 10 }])).ok).toBe(true);
    clock.set(T0 - 60_000);
    expect((await counters.take([{ key: 'k', spec, amount: 1 }])).ok).toBe(false);
    clock.set(T0 + 100); // 100 ms after the take: 1 unit back
    expect((await counters.take([{ key: 'k', spec, amount: 1 }])).ok).toBe(true);
    await counters.close();
  });

  it('uses the real clock by default and rejects calls after close', async () => {
    const counters = new MemoryCounters();
    expect((await counters.take([{ key: 'k', spec: { capacity: 1, refillPerSec: 1 }, amount: 1 }])).ok).toBe(true);
    await counters.close();
    await expect(counters.budgetUsed('k')).rejects.toThrow(/closed/);
  });
});
