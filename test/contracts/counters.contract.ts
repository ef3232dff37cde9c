/**
 * Behaviour every `Counters` adapter must have. An adapter's test file calls
 * `runCountersContract(name, factory)`; `factory` must return empty counters each time.
 *
 * Time: the factory returns `clock`, which reads the adapter's own clock (ms). When it also
 * returns `advance`, the suite moves that clock and the numbers are exact. Otherwise (Redis keeps
 * its own time) the suite waits until the adapter's clock has passed the point it needs, and
 * every assertion about time is bounded by what that clock says elapsed: it holds however long
 * the calls took. The rate and TTL values leave far more room than a call takes wherever the
 * test needs a state to last from one call to the next (a bucket still empty, a key not yet
 * expired).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BucketSpec, Counters } from '../../src/storage/types.js';

export interface CountersHarness {
  counters: Counters;
  /** The adapter's clock, ms (memory: the injected clock; Redis: its TIME). */
  clock: () => Promise<number>;
  /** Moves the adapter's clock forward (when the test owns it: memory). */
  advance?: (ms: number) => void;
}

/** Refills so slowly that no test lasts long enough to see a whole unit come back. */
const NO_REFILL = 0.001;
const MINUTE = 60_000;

const budget = (key: string, limit: number, amount: number, ttlMs = MINUTE) => ({ key, limit, amount, ttlMs });

export function runCountersContract(name: string, factory: () => Promise<CountersHarness>): void {
  describe(`Counters contract: ${name}`, () => {
    let counters: Counters;
    let clock: () => Promise<number>;
    let advance: ((ms: number) => void) | undefined;

    /** Lets `ms` pass on the adapter's clock: moves it, or waits until it has moved that far. */
    const wait = async (ms: number) => {
      if (advance) return advance(ms);
      const until = (await clock()) + ms;
      await vi.waitFor(async () => expect(await clock()).toBeGreaterThanOrEqual(until), { timeout: ms + 10_000, interval: 5 });
    };
    const take = (key: string, spec: BucketSpec, amount: number) => counters.take([{ key, spec, amount }]);

    beforeEach(async () => {
      ({ counters, clock, advance } = await factory());
    });

    afterEach(async () => {
      await counters.close();
    });

    describe('token buckets', () => {
      it('takes within capacity from a bucket that starts full, and reports what is left', async () => {
        const spec = { capacity: 100, refillPerSec: NO_REFILL };
        const first = await take('tpm', spec, 30);
        expect(first).toEqual({ ok: true, buckets: [{ key: 'tpm', remaining: expect.any(Number), resetMs: expect.any(Number) }] });
        expect(first.buckets[0]!.remaining).toBeCloseTo(70, 1);
        // 30 units at 0.001 per second: 30,000 s until full.
        expect(first.buckets[0]!.resetMs).toBeGreaterThan(29_900_000);
        expect(first.buckets[0]!.resetMs).toBeLessThanOrEqual(30_000_000);

        const second = await take('tpm', spec, 70);
        expect(second.ok).toBe(true);
        expect(second.buckets[0]!.remaining).toBeCloseTo(0, 1);

        const third = await take('tpm', spec, 1);
        expect(third).toMatchObject({ ok: false, refusedIndex: 0 });
        expect(third.retryAfterMs).toBeGreaterThan(990_000); // one unit at 0.001 per second
        expect(third.retryAfterMs).toBeLessThanOrEqual(1_000_000);
      });

      it('reports every bucket of a call, in order', async () => {
        const result = await counters.take([
          { key: 'tenant', spec: { capacity: 10, refillPerSec: NO_REFILL }, amount: 3 },
          { key: 'user', spec: { capacity: 20, refillPerSec: NO_REFILL }, amount: 5 },
        ]);
        expect(result.ok).toBe(true);
        expect(result.buckets.map((b) => b.key)).toEqual(['tenant', 'user']);
        expect(result.buckets[0]!.remaining).toBeCloseTo(7, 1);
        expect(result.buckets[1]!.remaining).toBeCloseTo(15, 1);
      });

      it('takes fractional amounts', async () => {
        const spec = { capacity: 1, refillPerSec: NO_REFILL };
        for (let i = 0; i < 4; i++) expect((await take('frac', spec, 0.25)).ok).toBe(true);
        expect((await take('frac', spec, 0.25)).ok).toBe(false);
      });

      it('takes from all buckets or from none: a refusal changes nothing', async () => {
        const big = { capacity: 100, refillPerSec: NO_REFILL };
        const small = { capacity: 50, refillPerSec: NO_REFILL };
        expect((await take('c', small, 45)).ok).toBe(true); // c holds 5

        const refused = await counters.take([
          { key: 'a', spec: big, amount: 20 },
          { key: 'b', spec: big, amount: 20 },
          { key: 'c', spec: small, amount: 20 },
        ]);
        expect(refused).toMatchObject({ ok: false, refusedIndex: 2 });
        expect(refused.buckets.map((b) => b.remaining)).toEqual([100, 100, expect.closeTo(5, 1)]);
        // c needs 15 more units at 0.001 per second.
        expect(refused.retryAfterMs).toBeGreaterThan(14_900_000);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(15_000_000);

        // a and b were not touched: they still hold all their units.
        expect((await counters.take([{ key: 'a', spec: big, amount: 100 }, { key: 'b', spec: big, amount: 100 }])).ok).toBe(true);

        // The first refusing bucket is reported, and c keeps its 5 units.
        const again = await counters.take([
          { key: 'c', spec: small, amount: 1 },
          { key: 'a', spec: big, amount: 1 },
          { key: 'b', spec: big, amount: 1 },
        ]);
        expect(again).toMatchObject({ ok: false, refusedIndex: 1 });
        expect((await take('c', small, 5)).ok).toBe(true);
      });

      it('counts a key named twice in one call once per take', async () => {
        const spec = { capacity: 100, refillPerSec: NO_REFILL };
        const refused = await counters.take([
          { key: 'x', spec, amount: 60 },
          { key: 'x', spec, amount: 60 },
        ]);
        expect(refused).toMatchObject({ ok: false, refusedIndex: 1, retryAfterMs: Infinity }); // 120 > capacity
        const taken = await counters.take([
          { key: 'x', spec, amount: 60 },
          { key: 'x', spec, amount: 40 },
        ]);
        expect(taken.ok).toBe(true);
        expect(taken.buckets[1]!.remaining).toBeCloseTo(0, 1);
      });

      it('refills over time, never beyond capacity', async () => {
        const spec = { capacity: 10, refillPerSec: 10 }; // empty to full in 1 s
        const t0 = await clock();
        const drained = await take('rps', spec, 10);
        expect(drained.ok).toBe(true);
        expect(drained.buckets[0]!.resetMs).toBeGreaterThan(990); // from full to empty: 1 s to full again
        expect(drained.buckets[0]!.resetMs).toBeLessThanOrEqual(1_000);

        const early = await take('rps', spec, 5);
        const elapsed = (await clock()) - t0; // 10 units a second came back meanwhile (none at all for memory)
        expect(early).toMatchObject({ ok: false, refusedIndex: 0 });
        expect(early.retryAfterMs).toBeLessThanOrEqual(500); // 5 units at 10 per second
        expect(early.retryAfterMs).toBeGreaterThanOrEqual(500 - elapsed - 1);

        await wait(600); // 6 units back
        const later = await take('rps', spec, 5);
        expect(later.ok).toBe(true);
        expect(later.buckets[0]!.remaining).toBeGreaterThanOrEqual(0.99);
        expect(later.buckets[0]!.remaining).toBeLessThanOrEqual(5);

        await wait(1_000); // more than enough to fill up
        const full = await take('rps', spec, 1);
        expect(full.buckets[0]!.remaining).toBeCloseTo(9, 6);
      });

      it('refuses an amount larger than the capacity for good, taking nothing', async () => {
        const spec = { capacity: 10, refillPerSec: 1_000 };
        const refused = await take('big', spec, 11);
        expect(refused).toMatchObject({ ok: false, refusedIndex: 0, retryAfterMs: Infinity });
        expect(refused.buckets[0]!.remaining).toBe(10);
        expect((await take('big', spec, 10)).ok).toBe(true);
      });

      it('never refills a bucket with a refill rate of zero', async () => {
        const spec = { capacity: 5, refillPerSec: 0 };
        const drained = await take('quota', spec, 5);
        expect(drained.buckets[0]).toMatchObject({ remaining: 0, resetMs: Infinity });
        await wait(50);
        expect(await take('quota', spec, 1)).toMatchObject({ ok: false, retryAfterMs: Infinity });
      });

      it('adjust gives units back, capped at capacity', async () => {
        const spec = { capacity: 10, refillPerSec: NO_REFILL };
        expect((await take('adj', spec, 8)).ok).toBe(true);
        await counters.adjust('adj', spec, 5); // 2 + 5
        expect((await take('adj', spec, 7)).ok).toBe(true);
        expect((await take('adj', spec, 1)).ok).toBe(false);

        await counters.adjust('adj', spec, 100); // capped at 10
        const all = await take('adj', spec, 10);
        expect(all.ok).toBe(true);
        expect((await take('adj', spec, 1)).ok).toBe(false);
      });

      it('adjust can take a bucket below zero, and later requests wait for it', async () => {
        const spec = { capacity: 10, refillPerSec: 10 };
        const t0 = await clock();
        await counters.adjust('over', spec, -15); // a bucket never used starts full: 10 - 15 = -5
        const refused = await take('over', spec, 1);
        const elapsed = (await clock()) - t0; // 10 units a second came back meanwhile (none at all for memory)
        expect(refused).toMatchObject({ ok: false, refusedIndex: 0 });
        expect(refused.buckets[0]!.remaining).toBeGreaterThanOrEqual(-5 - 0.001);
        expect(refused.buckets[0]!.remaining).toBeLessThanOrEqual(-5 + elapsed / 100 + 0.001);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(600); // 6 units at 10 per second
        expect(refused.retryAfterMs).toBeGreaterThanOrEqual(600 - elapsed - 1);

        await wait(600);
        expect((await take('over', spec, 1)).ok).toBe(true);
      });

      it('answers an empty call', async () => {
        expect(await counters.take([])).toEqual({ ok: true, buckets: [] });
      });

      it('rejects invalid amounts and specs', async () => {
        await expect(take('bad', { capacity: 10, refillPerSec: 1 }, -1)).rejects.toThrow(RangeError);
        await expect(take('bad', { capacity: 0, refillPerSec: 1 }, 1)).rejects.toThrow(/capacity/);
        await expect(take('bad', { capacity: 10, refillPerSec: Number.NaN }, 1)).rejects.toThrow(/refillPerSec/);
        await expect(counters.adjust('bad', { capacity: 10, refillPerSec: 1 }, Infinity)).rejects.toThrow(RangeError);
      });
    });

    describe('budgets', () => {
      it('reserves and settles large pico-dollar amounts exactly', async () => {
        await counters.seedBudget('b', 1_000_000_000_000_001, MINUTE);
        const reserved = await counters.reserve([budget('b', 5_000_000_000_000_000, 2_000_000_000_000_003)]);
        expect(reserved).toMatchObject({ ok: true, used: [3_000_000_000_000_004], missing: [] });

        // Cheaper than estimated: the difference goes back.
        expect(await counters.settle('b', 2_000_000_000_000_003, 1_999_999_999_999_000, MINUTE)).toBe(2_999_999_999_999_001);
        // Dearer than estimated (or nothing reserved at all): the difference is added.
        expect(await counters.settle('b', 0, 7, MINUTE)).toBe(2_999_999_999_999_008);
        expect(await counters.budgetUsed('b')).toBe(2_999_999_999_999_008);
      });

      it('refuses a reservation over a limit, reports the first refusing budget and reserves nothing', async () => {
        await counters.seedBudget('tenant', 900, MINUTE);
        await counters.seedBudget('user', 50, MINUTE);
        await counters.seedBudget('key', 0, MINUTE);

        const refused = await counters.reserve([budget('tenant', 1_000, 100), budget('user', 100, 60), budget('key', 10, 20)]);
        expect(refused).toMatchObject({ ok: false, used: [900, 50, 0], refusedIndex: 1, missing: [] });
        expect(await counters.budgetUsed('tenant')).toBe(900);

        // Reaching a limit exactly is allowed; going past it is not, even by zero when it is already reached.
        expect(await counters.reserve([budget('tenant', 1_000, 100), budget('user', 100, 50)])).toMatchObject({
          ok: true,
          used: [1_000, 100],
          missing: [],
        });
        expect((await counters.reserve([budget('tenant', 1_000, 0)])).ok).toBe(true);
        expect(await counters.reserve([budget('tenant', 1_000, 1)])).toMatchObject({ ok: false, refusedIndex: 0 });
        expect(await counters.reserve([budget('tenant', 999, 0)])).toMatchObject({ ok: false, refusedIndex: 0 });
      });

      it('reports budgets that have no counter and reserves nothing; seeding them makes the next call work', async () => {
        await counters.seedBudget('a', 10, MINUTE);
        const first = await counters.reserve([budget('a', 100, 5), budget('b', 100, 5), budget('c', 100, 5)]);
        expect(first).toMatchObject({ ok: false, used: [10, 0, 0], missing: ['b', 'c'] });
        expect(await counters.budgetUsed('a')).toBe(10);
        expect(await counters.budgetUsed('b')).toBe(0);

        await counters.seedBudget('b', 20, MINUTE);
        await counters.seedBudget('c', 30, MINUTE);
        expect(await counters.reserve([budget('a', 100, 5), budget('b', 100, 5), budget('c', 100, 5)])).toMatchObject({
          ok: true,
          used: [15, 25, 35],
          missing: [],
        });
      });

      it('counts a budget named twice in one call once per reservation', async () => {
        await counters.seedBudget('twice', 0, MINUTE);
        expect(await counters.reserve([budget('twice', 100, 60), budget('twice', 100, 60)])).toMatchObject({
          ok: false,
          used: [0, 0],
          refusedIndex: 1,
        });
        expect(await counters.reserve([budget('twice', 100, 60), budget('twice', 100, 40)])).toMatchObject({
          ok: true,
          used: [100, 100],
          missing: [],
        });
      });

      it('a counter seeded anew has a new epoch: a reservation made on the old one settles as its actual cost only', async () => {
        const first = await counters.seedBudget('e', 100, 500);
        expect(first).toEqual(expect.any(String));
        expect(await counters.seedBudget('e', 5, MINUTE)).toBeUndefined(); // it exists: no new epoch
        const before = await counters.reserve([budget('e', 10_000, 1_000, 500)]);
        expect(before).toMatchObject({ ok: true, used: [1_100], epochs: [first] });
        // The counter is lost (here it expires; as when Redis restarts empty), then seeded anew
        // from the ledger, which does not hold the reservation.
        await wait(600);
        const second = await counters.seedBudget('e', 100, MINUTE);
        expect(second).toEqual(expect.any(String));
        expect(second).not.toBe(first);
        // The old reservation (1,000) was never in the new counter: only the actual (300) is added,
        // where actual - reserved would have taken 700 that the counter never held (down to 0).
        expect(await counters.settle('e', 1_000, 300, MINUTE, before.epochs![0])).toBe(400);
        // On the counter it was made on, settle replaces the reservation as always.
        const after = await counters.reserve([budget('e', 10_000, 1_000)]);
        expect(after.epochs).toEqual([second]);
        expect(await counters.settle('e', 1_000, 300, MINUTE, after.epochs![0])).toBe(700);
        // Without an epoch (an older caller): actual - reserved.
        await counters.reserve([budget('e', 10_000, 50)]);
        expect(await counters.settle('e', 50, 0, MINUTE)).toBe(700);
      });

      it('seedBudget never overwrites a counter', async () => {
        await counters.seedBudget('s', 100, MINUTE);
        await counters.seedBudget('s', 999, MINUTE);
        expect(await counters.budgetUsed('s')).toBe(100);
        await counters.reserve([budget('s', 1_000, 1)]);
        await counters.seedBudget('s', 5, MINUTE);
        expect(await counters.budgetUsed('s')).toBe(101);
      });

      it('forgets a budget counter after its TTL (each reservation sets the TTL)', async () => {
        await counters.seedBudget('day', 500, MINUTE);
        expect((await counters.reserve([budget('day', 1_000, 1, 100)])).ok).toBe(true);
        await counters.seedBudget('short', 1, 100);
        await wait(250);
        expect(await counters.budgetUsed('day')).toBe(0);
        expect(await counters.budgetUsed('short')).toBe(0);
        expect(await counters.reserve([budget('day', 1_000, 1), budget('short', 1_000, 1)])).toMatchObject({
          ok: false,
          used: [0, 0],
          missing: ['day', 'short'],
        });
      });

      it('settle keeps the TTL of the counter', async () => {
        await counters.seedBudget('ttl', 0, 500);
        expect(await counters.settle('ttl', 0, 10, MINUTE)).toBe(10);
        await wait(600);
        expect(await counters.budgetUsed('ttl')).toBe(0);
      });

      it('settle does not recreate a missing counter (the ledger seeds it) and never goes below zero', async () => {
        expect(await counters.settle('gone', 100, 50, MINUTE)).toBe(0);
        expect(await counters.reserve([budget('gone', 1_000, 1)])).toMatchObject({ ok: false, missing: ['gone'] });

        await counters.seedBudget('low', 10, MINUTE);
        expect(await counters.settle('low', 100, 0, MINUTE)).toBe(0);
        expect(await counters.budgetUsed('low')).toBe(0);
      });

      it('answers an empty call', async () => {
        expect(await counters.reserve([])).toMatchObject({ ok: true, used: [], missing: [] });
      });

      it('rejects amounts that are not whole pico-dollars', async () => {
        await expect(counters.reserve([budget('bad', 100, 1.5)])).rejects.toThrow(RangeError);
        await expect(counters.reserve([budget('bad', 100, -1)])).rejects.toThrow(/amount/);
        await expect(counters.settle('bad', 1, Number.NaN, MINUTE)).rejects.toThrow(/actual/);
        await expect(counters.seedBudget('bad', 1, 0)).rejects.toThrow(/ttlMs/);
      });
    });

    describe('under concurrency', () => {
      it('500 concurrent takes of 1 on a bucket of 100 admit exactly 100', async () => {
        const spec = { capacity: 100, refillPerSec: 0.000_001 };
        const results = await Promise.all(Array.from({ length: 500 }, () => take('hot', spec, 1)));
        const admitted = results.filter((r) => r.ok);
        expect(admitted).toHaveLength(100);
        // Each admitted take saw a different state: 99, 98, ..., 0 units left.
        const left = new Set(admitted.map((r) => Math.round(r.buckets[0]!.remaining)));
        expect(left.size).toBe(100);
      });

      it('500 concurrent reservations of 1,000 on a limit of 100,000 admit exactly 100', async () => {
        await counters.seedBudget('hot', 0, MINUTE);
        const results = await Promise.all(
          Array.from({ length: 500 }, () => counters.reserve([budget('hot', 100_000, 1_000)])),
        );
        const admitted = results.filter((r) => r.ok);
        expect(admitted).toHaveLength(100);
        expect(new Set(admitted.map((r) => r.used[0])).size).toBe(100);
        expect(await counters.budgetUsed('hot')).toBe(100_000);
      });

      it('a take refused by one bucket never consumes the others, under concurrency', async () => {
        const shared = { capacity: 1_000, refillPerSec: NO_REFILL };
        const perUser = { capacity: 10, refillPerSec: NO_REFILL };
        const results = await Promise.all(
          Array.from({ length: 300 }, (_, i) =>
            counters.take([
              { key: 'shared', spec: shared, amount: 1 },
              { key: `user:${i % 10}`, spec: perUser, amount: 1 },
            ]),
          ),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(100); // 10 users x 10
        expect(results.filter((r) => !r.ok).every((r) => r.refusedIndex === 1)).toBe(true);
        // The shared bucket gave exactly 100 units: 900 are left.
        expect((await take('shared', shared, 900)).ok).toBe(true);
        expect((await take('shared', shared, 1)).ok).toBe(false);
      });
    });

    it('closes idempotently', async () => {
      await counters.close();
      await expect(counters.close()).resolves.toBeUndefined();
    });
  });
}
