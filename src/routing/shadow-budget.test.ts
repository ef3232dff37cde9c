/** ShadowService: the per-tenant daily shadow budget (cap, concurrency, zero budget). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { costPico } from '../metering/cost.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { cfg, closeShadowHarnesses, FakeProvider, fakeHarness, idle, input, SMALL_PRICE, simHarness } from '../../test/helpers/shadow.js';

afterEach(async () => {
  vi.useRealTimers();
  await closeShadowHarnesses();
});

describe('ShadowService: budget', () => {
  const day = () => new Date().toISOString().slice(0, 10);
  // Worst case of one mirror: 20 prompt tokens + max_tokens 50 at sim-small's price.
  const reservation = costPico({ prompt_tokens: 20, completion_tokens: 50 }, SMALL_PRICE);

  it('stops mirroring a tenant once its daily shadow budget is spent; spend stays within the cap', async () => {
    const capUsd = 0.0003; // 5 reservations' worth; each mirror really costs about half of one
    const { service, store, ledger, counters } = await simHarness({ shadow: cfg({ dailyBudgetUsd: capUsd }) });
    for (let i = 0; i < 30; i++) {
      service.maybeMirror(input());
      await idle(service);
    }
    const cap = capUsd * 1e12;
    const spent = ledger.events.reduce((a, e) => a + e.costPico, 0);
    const s = service.stats();
    expect(s.skippedBudget).toBeGreaterThan(0);
    expect(s.mirrored + s.skippedBudget).toBe(30);
    expect(s.mirrored).toBeGreaterThan(5); // settling to the actual cost frees room
    expect(store.pairs).toHaveLength(s.mirrored);
    expect(spent).toBeLessThanOrEqual(cap + reservation);
    expect(spent).toBeGreaterThan(cap - 2 * reservation);
    expect(await counters.budgetUsed(`shadow:ten_a:${day()}`)).toBe(spent);

    // Another tenant has its own budget.
    service.maybeMirror(input({ tenantId: 'ten_b' }));
    await idle(service);
    expect(store.pairs.at(-1)?.tenantId).toBe('ten_b');
  });

  it('holds the cap under concurrency: reservations are atomic', async () => {
    const provider = new FakeProvider('fake');
    let release!: () => void;
    provider.gate = new Promise((r) => (release = r));
    const capUsd = (3 * reservation) / 1e12; // exactly three worst cases
    const { service, store } = fakeHarness(provider, { shadow: cfg({ dailyBudgetUsd: capUsd }) });
    for (let i = 0; i < 10; i++) service.maybeMirror(input());
    // Every request has reserved or been refused while the three admitted calls are held open.
    await vi.waitFor(() => expect(service.stats()).toMatchObject({ mirrored: 3, skippedBudget: 7, inFlight: 3 }), { timeout: 10_000, interval: 2 });
    expect(provider.calls).toHaveLength(3);
    release();
    await idle(service);
    expect(service.stats()).toMatchObject({ mirrored: 3, skippedBudget: 7 });
    expect(store.pairs).toHaveLength(3);
  });

  it('mirrors nothing with a zero budget', async () => {
    const { service, store } = await simHarness({ shadow: cfg({ dailyBudgetUsd: 0 }) });
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs).toHaveLength(0);
    expect(service.stats().skippedBudget).toBe(1);
  });
});
