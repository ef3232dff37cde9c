import { describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../errors.js';
import { FailoverCounters } from './failover-counters.js';
import { MemoryCounters } from './memory/counters.js';
import type { Counters } from './types.js';

/** A shared store whose every call is held until the test answers or fails it. */
function heldStore() {
  const calls: Array<{ op: string; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  const hold = (op: string) => new Promise<never>((resolve, reject) => calls.push({ op, resolve: resolve as (v: unknown) => void, reject }));
  const store = {
    take: () => hold('take'),
    adjust: () => hold('adjust'),
    reserve: () => hold('reserve'),
    settle: () => hold('settle'),
    seedBudget: () => hold('seed'),
    budgetUsed: async () => 0,
    close: async () => undefined,
  } as unknown as Counters;
  return { store, calls };
}

const budget = { key: 'b', limit: 100, amount: 1, ttlMs: 60_000 };
const bucket = { key: 'k', spec: { capacity: 10, refillPerSec: 1 }, amount: 1 };

describe('FailoverCounters: failing fast while the store is down', () => {
  it('after a failure, operations skip the store (no wait) until a probe, one at a time, succeeds', async () => {
    const { store, calls } = heldStore();
    let now = 1_000;
    const failures: string[] = [];
    const counters = new FailoverCounters(store, new MemoryCounters(), { onFailure: (op) => failures.push(op), probeMs: 500, failuresToOpen: 1, now: () => now });

    // The first reserve reaches the store and times out there (the adapter's deadline).
    const first = counters.reserve([budget]);
    expect(calls).toHaveLength(1);
    calls[0]!.reject(new Error('no reply within 300 ms'));
    await expect(first).rejects.toMatchObject({ code: 'budget_unavailable' });
    expect(counters.down).toBe(true);

    // Before the probe is due: refused at once, nothing sent to the store.
    await expect(counters.reserve([budget])).rejects.toBeInstanceOf(GatewayError);
    expect((await counters.take([bucket])).ok).toBe(true); // rate limits: local, at once
    expect(calls).toHaveLength(1);

    // The probe is due: one call goes through; the others meanwhile still fail fast.
    now += 500;
    const probe = counters.reserve([budget]);
    expect(calls).toHaveLength(2);
    await expect(counters.reserve([budget])).rejects.toMatchObject({ code: 'budget_unavailable' });
    expect(calls).toHaveLength(2);
    calls[1]!.resolve({ ok: true, used: [1], missing: [], epochs: [''] });
    await expect(probe).resolves.toMatchObject({ ok: true });
    expect(counters.down).toBe(false);

    // Back up: every call goes to the store again.
    const next = counters.take([bucket]);
    expect(calls).toHaveLength(3);
    calls[2]!.resolve({ ok: true, buckets: [] });
    await next;
    expect(failures).toEqual(['reserve', 'reserve', 'take', 'reserve']);
  });

  it('a failed probe keeps it down and waits probeMs for the next', async () => {
    const { store, calls } = heldStore();
    let now = 0;
    const counters = new FailoverCounters(store, new MemoryCounters(), { onFailure: () => undefined, probeMs: 500, failuresToOpen: 1, now: () => now });
    const first = counters.settle('b', 10, 5, 60_000);
    calls[0]!.reject(new Error('ECONNREFUSED'));
    expect(await first).toBe(0); // left reserved
    now = 600;
    const probe = counters.settle('b', 10, 5, 60_000);
    calls[1]!.reject(new Error('ECONNREFUSED'));
    await probe;
    expect(counters.down).toBe(true);
    now = 900; // less than probeMs after the failed probe
    await counters.settle('b', 10, 5, 60_000);
    expect(calls).toHaveLength(2);
    now = 1_100;
    void counters.settle('b', 10, 5, 60_000);
    expect(calls).toHaveLength(3);
  });

  it('one failure alone does not open it (a single late reply): only failuresToOpen in a row do', async () => {
    const { store, calls } = heldStore();
    const counters = new FailoverCounters(store, new MemoryCounters(), { onFailure: () => undefined, now: () => 0 });
    const one = counters.reserve([budget]);
    calls[0]!.reject(new Error('no reply within 300 ms'));
    await expect(one).rejects.toMatchObject({ code: 'budget_unavailable' });
    const ok = counters.reserve([budget]);
    calls[1]!.resolve({ ok: true, used: [1], missing: [], epochs: [''] });
    await ok;
    expect(counters.down).toBe(false); // a success resets the count
    for (let i = 0; i < 3; i++) {
      const p = counters.reserve([budget]);
      calls[calls.length - 1]!.reject(new Error('no reply within 300 ms'));
      await expect(p).rejects.toMatchObject({ code: 'budget_unavailable' });
      expect(counters.down).toBe(i === 2);
    }
    expect(calls).toHaveLength(5);
    await expect(counters.reserve([budget])).rejects.toMatchObject({ code: 'budget_unavailable' });
    expect(calls).toHaveLength(5); // down: failed fast
  });

  it('settles skipped while it is down are kept and applied once a probe succeeds (not left reserved for the period)', async () => {
    const { store, calls } = heldStore();
    let now = 0;
    const counters = new FailoverCounters(store, new MemoryCounters(), { onFailure: () => undefined, probeMs: 500, failuresToOpen: 1, now: () => now });
    const first = counters.reserve([budget]);
    calls[0]!.reject(new Error('no reply within 300 ms'));
    await first.catch(() => undefined);
    expect(await counters.settle('b', 1_000, 300, 60_000, 'e1')).toBe(0); // skipped: never reached the store
    expect(counters.heldSettles).toBe(1);
    expect(calls).toHaveLength(1);
    now = 500;
    const probe = counters.take([bucket]);
    calls[1]!.resolve({ ok: true, buckets: [] });
    await probe;
    await vi.waitFor(() => expect(calls).toHaveLength(3));
    expect(calls[2]!.op).toBe('settle');
    calls[2]!.resolve(300);
    await vi.waitFor(() => expect(counters.heldSettles).toBe(0));
  });
});
