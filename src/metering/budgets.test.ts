import { describe, expect, it, vi } from 'vitest';
import type { GatewayError } from '../errors.js';
import { MemoryCounters } from '../storage/memory/counters.js';
import { BudgetGuard } from './budgets.js';
import type { Policy } from './policy.js';

const T0 = Date.UTC(2025, 5, 1, 12);
const PICO = 1e12;

function policy(dailyUsd: number): Policy {
  return { limits: [], budgets: [{ scope: 'tenant', id: 'ten_a', filter: { tenantId: 'ten_a' }, budget: { dailyUsd } }] };
}

describe('BudgetGuard.refuseIfSpent', () => {
  it('lets work be queued while a budget has room, reserving nothing', async () => {
    const counters = new MemoryCounters();
    const guard = new BudgetGuard(counters, { spent: async () => 0.004 * PICO }, () => T0);
    await guard.refuseIfSpent(policy(0.01));
    const key = `budget:tenant:ten_a:day:2025-06-01`;
    expect(await counters.budgetUsed(key)).toBe(0.004 * PICO); // seeded from the ledger, nothing added
    await guard.refuseIfSpent(policy(0.01));
    expect(await counters.budgetUsed(key)).toBe(0.004 * PICO);
  });

  it('refuses with the 402 of the online path once spend (from the ledger) and reservations reach the cap', async () => {
    const counters = new MemoryCounters();
    const guard = new BudgetGuard(counters, { spent: async () => 0.01 * PICO }, () => T0);
    const err = (await guard.refuseIfSpent(policy(0.01)).catch((e: unknown) => e)) as GatewayError;
    expect(err.code).toBe('budget_exceeded');
    expect(err.status).toBe(402);
    expect(err.type).toBe('insufficient_quota');
    expect(err.message).toContain("daily budget of tenant 'ten_a' ($0.01) is used up");
    expect(err.message).toContain('It resets at 2025-06-02T00:00:00.000Z');

    // Reservations count too: a budget with room, then reserved to its cap.
    const other = new BudgetGuard(new MemoryCounters(), { spent: async () => 0 }, () => T0);
    await other.refuseIfSpent(policy(1));
    await other.reserve(policy(1), 1 * PICO);
    await expect(other.refuseIfSpent(policy(1))).rejects.toMatchObject({ code: 'budget_exceeded' });
    // A $0 budget allows nothing.
    await expect(other.refuseIfSpent(policy(0))).rejects.toMatchObject({ code: 'budget_exceeded' });
  });
});

describe('BudgetGuard: seeding a missing counter from the ledger', () => {
  it('a ledger that fails or does not answer in time gives 503 budget_unavailable (not a 500), and concurrent requests share one read', async () => {
    let reads = 0;
    const failing = new BudgetGuard(new MemoryCounters(), { spent: async () => { reads++; throw new Error('ECONNREFUSED'); } }, () => T0);
    const results = await Promise.all([1, 2, 3].map(() => failing.reserve(policy(1), 1).catch((e: unknown) => e as GatewayError)));
    for (const err of results) {
      expect(err).toMatchObject({ code: 'budget_unavailable', status: 503 });
      expect((err as GatewayError).message).toContain("daily budget of tenant 'ten_a'");
    }
    expect(reads).toBe(1);

    vi.useFakeTimers();
    try {
      const stalled = new BudgetGuard(new MemoryCounters(), { spent: () => new Promise<number>(() => undefined) }, () => T0, 500);
      const pending = stalled.reserve(policy(1), 1).catch((e: unknown) => e as GatewayError);
      await vi.advanceTimersByTimeAsync(499);
      let settled = false;
      void pending.then(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(await pending).toMatchObject({ code: 'budget_unavailable', status: 503 });
    } finally {
      vi.useRealTimers();
    }
  });
});
