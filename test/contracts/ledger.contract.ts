/**
 * Behaviour every `Ledger` adapter must have. An adapter's test file calls
 * `runLedgerContract(name, factory, options)`; `factory` must return an empty ledger each time.
 * `options.reopen`, when given, closes a ledger and opens the same store again (a restart): the
 * durability tests run only then.
 *
 * Semantics pinned here (the interface comments say the rest):
 * - `model` (group and filter) is the served model, or the requested one when none served it.
 * - `day` is the UTC calendar day of `ts`, as YYYY-MM-DD.
 * - Rows are ordered by their group values, in the order of `groupBy`; an aggregate that matches
 *   no event returns no rows (also without `groupBy`).
 * - An error is an event with status >= 400.
 * - `rollUp(before, limit)` deletes at most `limit` of the oldest events before the UTC hour of
 *   `before` and folds them into hourly roll-ups; `aggregate` and `spent` read both, a roll-up
 *   dated at its hour's start, so totals over whole hours are unchanged; `get` no longer finds a
 *   rolled-up event.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Ledger, UsageEvent, UsageGroupBy, UsageQuery } from '../../src/storage/types.js';

const T0 = Date.UTC(2025, 0, 1); // 2025-01-01T00:00:00Z
const DAY = 86_400_000;
const ALL = { from: 0, to: T0 + 365 * DAY };

let counter = 0;
/** A complete event; every test names only what it is about. */
export function usageEvent(overrides: Partial<UsageEvent> = {}): UsageEvent {
  counter++;
  return {
    requestId: `req_${counter}`,
    ts: T0 + 1000,
    tenantId: 'ten_a',
    keyId: 'key_a1',
    userId: 'user-1',
    route: 'chat',
    requestedModel: 'fast',
    servedModel: 'fast',
    deployment: 'fast@sim',
    promptTokens: 10,
    completionTokens: 20,
    cachedTokens: 0,
    costPico: 1_000,
    savedPico: 0,
    latencyMs: 120,
    ttftMs: null,
    cache: 'miss',
    status: 200,
    attempts: 1,
    usageReported: true,
    ...overrides,
  };
}

export interface LedgerContractOptions {
  /** Closes `ledger` and opens the same durable store again. */
  reopen?: (ledger: Ledger) => Promise<Ledger>;
}

export function runLedgerContract(
  name: string,
  factory: () => Promise<Ledger>,
  options: LedgerContractOptions = {},
): void {
  describe(`Ledger contract: ${name}`, () => {
    let ledger: Ledger;

    beforeEach(async () => {
      ledger = await factory();
    });

    afterEach(async () => {
      await ledger.close();
    });

    const aggregate = (groupBy: UsageGroupBy[], rest: Partial<UsageQuery> = {}) =>
      ledger.aggregate({ ...ALL, groupBy, ...rest });

    describe('append and get', () => {
      it('stores every field of an event and returns it by request id', async () => {
        const plain = usageEvent({ requestId: 'req_plain' });
        const streamed = usageEvent({
          requestId: 'req_streamed',
          userId: '',
          servedModel: '',
          deployment: '',
          promptTokens: 0,
          completionTokens: 0,
          cachedTokens: 7,
          costPico: 0,
          savedPico: 12_345,
          latencyMs: 0,
          ttftMs: 42,
          cache: 'semantic',
          status: 502,
          attempts: 3,
          usageReported: false,
        });
        expect(await ledger.append([plain, streamed])).toBe(2);
        expect(await ledger.get('req_plain')).toEqual(plain);
        expect(await ledger.get('req_streamed')).toEqual(streamed);
      });

      it('round-trips every cache outcome', async () => {
        const outcomes = ['miss', 'hit', 'semantic', 'stale', 'coalesced', 'bypass', 'none'] as const;
        const events = outcomes.map((cache) => usageEvent({ requestId: `req_cache_${cache}`, cache }));
        await ledger.append(events);
        for (const e of events) expect((await ledger.get(e.requestId))?.cache).toBe(e.cache);
      });

      it('leaves shadow traffic (route shadow) out of what a scope spent', async () => {
        await ledger.append([
          usageEvent({ requestId: 'req_user', tenantId: 'ten_shadowed', costPico: 7 }),
          usageEvent({ requestId: 'req_user~shadow', tenantId: 'ten_shadowed', route: 'shadow', costPico: 1_000 }),
        ]);
        expect(await ledger.spent({ tenantId: 'ten_shadowed' }, 0, Date.UTC(2100, 0, 1))).toBe(7);
      });

      it('round-trips the route tier and the experiment variant', async () => {
        const e = usageEvent({ requestId: 'req_routed', tier: 'medium', experiment: 'exp_1', variant: 'b' });
        await ledger.append([e]);
        expect(await ledger.get('req_routed')).toEqual(e);
      });

      it('returns null for an unknown request id', async () => {
        expect(await ledger.get('req_nope')).toBeNull();
      });

      it('appends nothing for an empty batch', async () => {
        expect(await ledger.append([])).toBe(0);
        expect(await aggregate([])).toEqual([]);
      });
    });

    describe('idempotency by request id', () => {
      it('counts an event appended twice once; the second append returns 0 and changes nothing', async () => {
        const first = usageEvent({ requestId: 'req_dup', costPico: 500 });
        expect(await ledger.append([first])).toBe(1);
        expect(await ledger.append([{ ...first, costPico: 9_999, status: 500 }])).toBe(0);
        expect(await ledger.get('req_dup')).toEqual(first);
        expect(await aggregate([])).toEqual([
          { group: {}, requests: 1, errors: 0, promptTokens: 10, completionTokens: 20, costPico: 500, savedPico: 0 },
        ]);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(500);
      });

      it('counts a request id repeated within one batch once, keeping the first', async () => {
        const a = usageEvent({ requestId: 'req_same', costPico: 100 });
        const b = usageEvent({ requestId: 'req_other', costPico: 10 });
        expect(await ledger.append([a, { ...a, costPico: 200 }, b, { ...a, costPico: 300 }])).toBe(2);
        expect(await ledger.get('req_same')).toEqual(a);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(110);
      });

      it('returns only the number of new events in a partly known batch', async () => {
        const known = [usageEvent(), usageEvent()];
        await ledger.append(known);
        expect(await ledger.append([...known, usageEvent(), usageEvent(), usageEvent()])).toBe(3);
        expect((await aggregate([]))[0]?.requests).toBe(5);
      });

      it('counts the same event appended concurrently once', async () => {
        const e = usageEvent({ requestId: 'req_race' });
        const added = await Promise.all([1, 2, 3, 4].map(() => ledger.append([e])));
        expect(added.reduce((a, b) => a + b, 0)).toBe(1);
        expect((await aggregate([]))[0]?.requests).toBe(1);
      });
    });

    describe('aggregate', () => {
      const seed = () =>
        ledger.append([
          usageEvent({ tenantId: 'ten_a', keyId: 'key_a1', userId: 'u1', servedModel: 'fast', route: 'chat', ts: T0 + 10, costPico: 100, promptTokens: 1, completionTokens: 2 }),
          usageEvent({ tenantId: 'ten_a', keyId: 'key_a1', userId: 'u2', servedModel: 'smart', route: 'chat', ts: T0 + DAY + 5, costPico: 200, promptTokens: 3, completionTokens: 4, status: 500 }),
          usageEvent({ tenantId: 'ten_a', keyId: 'key_a2', userId: 'u1', servedModel: 'fast', route: 'embeddings', ts: T0 + DAY + 6, costPico: 300, promptTokens: 5, completionTokens: 0, savedPico: 50, cache: 'hit' }),
          usageEvent({ tenantId: 'ten_b', keyId: 'key_b1', userId: '', servedModel: 'smart', route: 'chat', ts: T0 + 2 * DAY, costPico: 400, promptTokens: 7, completionTokens: 8, status: 429 }),
        ]);

      it('totals everything in one row when grouped by nothing', async () => {
        await seed();
        expect(await aggregate([])).toEqual([
          { group: {}, requests: 4, errors: 2, promptTokens: 16, completionTokens: 14, costPico: 1000, savedPico: 50 },
        ]);
      });

      it('groups by tenant', async () => {
        await seed();
        expect(await aggregate(['tenant'])).toEqual([
          { group: { tenant: 'ten_a' }, requests: 3, errors: 1, promptTokens: 9, completionTokens: 6, costPico: 600, savedPico: 50 },
          { group: { tenant: 'ten_b' }, requests: 1, errors: 1, promptTokens: 7, completionTokens: 8, costPico: 400, savedPico: 0 },
        ]);
      });

      it('groups by key', async () => {
        await seed();
        const rows = await aggregate(['key']);
        expect(rows.map((r) => [r.group.key, r.requests, r.costPico])).toEqual([
          ['key_a1', 2, 300],
          ['key_a2', 1, 300],
          ['key_b1', 1, 400],
        ]);
      });

      it('groups by user, the unknown user ("") included', async () => {
        await seed();
        const rows = await aggregate(['user']);
        expect(rows.map((r) => [r.group.user, r.requests, r.costPico])).toEqual([
          ['', 1, 400],
          ['u1', 2, 400],
          ['u2', 1, 200],
        ]);
      });

      it('groups by route', async () => {
        await seed();
        const rows = await aggregate(['route']);
        expect(rows.map((r) => [r.group.route, r.requests])).toEqual([
          ['chat', 3],
          ['embeddings', 1],
        ]);
      });

      it('groups by model: the served model, or the requested one when none served it', async () => {
        await ledger.append([
          usageEvent({ requestedModel: 'auto', servedModel: 'fast', costPico: 1 }),
          usageEvent({ requestedModel: 'fast', servedModel: 'fast', costPico: 2 }),
          usageEvent({ requestedModel: 'smart', servedModel: '', status: 503, costPico: 0 }),
          usageEvent({ requestedModel: 'auto', servedModel: '', status: 504, costPico: 0 }),
        ]);
        const rows = await aggregate(['model']);
        expect(rows.map((r) => [r.group.model, r.requests, r.errors, r.costPico])).toEqual([
          ['auto', 1, 1, 0],
          ['fast', 2, 0, 3],
          ['smart', 1, 1, 0],
        ]);
      });

      it('groups by UTC day, splitting exactly at midnight', async () => {
        await ledger.append([
          usageEvent({ ts: T0 - 1, costPico: 1 }), // 2024-12-31T23:59:59.999Z
          usageEvent({ ts: T0, costPico: 2 }),
          usageEvent({ ts: T0 + DAY - 1, costPico: 4 }),
          usageEvent({ ts: T0 + DAY, costPico: 8 }),
          usageEvent({ ts: Date.UTC(2025, 1, 28, 23, 59, 59, 999), costPico: 16 }),
          usageEvent({ ts: Date.UTC(2025, 2, 1), costPico: 32 }),
        ]);
        const rows = await aggregate(['day'], { from: T0 - DAY, to: T0 + 100 * DAY });
        expect(rows.map((r) => [r.group.day, r.requests, r.costPico])).toEqual([
          ['2024-12-31', 1, 1],
          ['2025-01-01', 2, 6],
          ['2025-01-02', 1, 8],
          ['2025-02-28', 1, 16],
          ['2025-03-01', 1, 32],
        ]);
      });

      it('groups by several dimensions, ordered by their values in the order asked', async () => {
        await seed();
        const byTenantModel = await aggregate(['tenant', 'model']);
        expect(byTenantModel.map((r) => [r.group, r.requests, r.costPico])).toEqual([
          [{ tenant: 'ten_a', model: 'fast' }, 2, 400],
          [{ tenant: 'ten_a', model: 'smart' }, 1, 200],
          [{ tenant: 'ten_b', model: 'smart' }, 1, 400],
        ]);
        const byModelTenant = await aggregate(['model', 'tenant']);
        expect(byModelTenant.map((r) => r.group)).toEqual([
          { model: 'fast', tenant: 'ten_a' },
          { model: 'smart', tenant: 'ten_a' },
          { model: 'smart', tenant: 'ten_b' },
        ]);
        const byDayTenantUser = await aggregate(['day', 'tenant', 'user']);
        expect(byDayTenantUser.map((r) => [r.group, r.costPico])).toEqual([
          [{ day: '2025-01-01', tenant: 'ten_a', user: 'u1' }, 100],
          [{ day: '2025-01-02', tenant: 'ten_a', user: 'u1' }, 300],
          [{ day: '2025-01-02', tenant: 'ten_a', user: 'u2' }, 200],
          [{ day: '2025-01-03', tenant: 'ten_b', user: '' }, 400],
        ]);
        const all = await aggregate(['tenant', 'user', 'key', 'model', 'route', 'day']);
        expect(all).toHaveLength(4);
        expect(all[0]?.group).toEqual({ tenant: 'ten_a', user: 'u1', key: 'key_a1', model: 'fast', route: 'chat', day: '2025-01-01' });
      });

      it('sorts group values byte-wise, whatever the database collation', async () => {
        await ledger.append(['b', 'B', 'a', 'A', '_x', 'a-b', 'ab'].map((tenantId) => usageEvent({ tenantId })));
        const rows = await aggregate(['tenant']);
        expect(rows.map((r) => r.group.tenant)).toEqual(['A', 'B', '_x', 'a', 'a-b', 'ab', 'b']);
      });

      it('ignores a dimension named twice', async () => {
        await seed();
        const rows = await aggregate(['tenant', 'tenant']);
        expect(rows.map((r) => r.group)).toEqual([{ tenant: 'ten_a' }, { tenant: 'ten_b' }]);
      });

      it('refuses an unknown dimension', async () => {
        await expect(aggregate(['nope' as UsageGroupBy])).rejects.toThrow(/nope/);
      });

      it('counts statuses from 400 up as errors', async () => {
        await ledger.append([200, 204, 399, 400, 401, 429, 499, 500, 504].map((status) => usageEvent({ status })));
        expect((await aggregate([]))[0]).toMatchObject({ requests: 9, errors: 6 });
      });

      it('takes events in [from, to): from inclusive, to exclusive', async () => {
        const from = T0 + 1000;
        const to = T0 + 2000;
        await ledger.append([
          usageEvent({ ts: from - 1, costPico: 1 }),
          usageEvent({ ts: from, costPico: 2 }),
          usageEvent({ ts: to - 1, costPico: 4 }),
          usageEvent({ ts: to, costPico: 8 }),
        ]);
        expect(await aggregate([], { from, to })).toMatchObject([{ requests: 2, costPico: 6 }]);
        expect(await aggregate([], { from, to: from })).toEqual([]);
        expect(await aggregate([], { from: to + 1, to: to + 1000 })).toEqual([]);
      });

      it('takes fractional and open-ended (±Infinity) bounds', async () => {
        await ledger.append([usageEvent({ ts: T0, costPico: 1 }), usageEvent({ ts: T0 + 1, costPico: 2 })]);
        expect(await aggregate([], { from: T0 + 0.5, to: T0 + 1.5 })).toMatchObject([{ requests: 1, costPico: 2 }]);
        expect(await aggregate([], { from: -Infinity, to: Infinity })).toMatchObject([{ requests: 2, costPico: 3 }]);
        expect(await ledger.spent({}, T0 - 0.5, T0 + 0.5)).toBe(1);
        expect(await ledger.spent({ tenantId: 'ten_a' }, -Infinity, Infinity)).toBe(3);
      });

      it('filters by tenant, key, user and model, alone or together', async () => {
        await seed();
        const total = async (filter: Partial<UsageQuery>) => (await aggregate([], filter))[0]?.costPico ?? 0;
        expect(await total({ tenantId: 'ten_a' })).toBe(600);
        expect(await total({ tenantId: 'ten_nope' })).toBe(0);
        expect(await total({ keyId: 'key_a1' })).toBe(300);
        expect(await total({ userId: 'u1' })).toBe(400);
        expect(await total({ userId: '' })).toBe(400); // the unknown user is a value to filter on
        expect(await total({ model: 'smart' })).toBe(600);
        expect(await total({ tenantId: 'ten_a', model: 'smart' })).toBe(200);
        expect(await total({ tenantId: 'ten_a', userId: 'u1', keyId: 'key_a2' })).toBe(300);
        expect(await total({ tenantId: 'ten_b', userId: 'u1' })).toBe(0);
      });

      it('filters by model the way it groups: the requested model when none served it', async () => {
        await ledger.append([
          usageEvent({ requestedModel: 'smart', servedModel: '', costPico: 0, status: 503 }),
          usageEvent({ requestedModel: 'auto', servedModel: 'smart', costPico: 5 }),
          usageEvent({ requestedModel: 'smart', servedModel: 'fast', costPico: 7 }),
        ]);
        expect(await aggregate([], { model: 'smart' })).toMatchObject([{ requests: 2, errors: 1, costPico: 5 }]);
        expect(await aggregate([], { model: 'auto' })).toEqual([]);
      });

      it('combines filters, range and grouping', async () => {
        await seed();
        const rows = await aggregate(['user', 'day'], { tenantId: 'ten_a', from: T0 + DAY, to: T0 + 2 * DAY });
        expect(rows.map((r) => [r.group, r.costPico])).toEqual([
          [{ user: 'u1', day: '2025-01-02' }, 300],
          [{ user: 'u2', day: '2025-01-02' }, 200],
        ]);
      });
    });

    describe('spent', () => {
      it('sums cost in [from, to) for a tenant, key, user or a combination', async () => {
        await ledger.append([
          usageEvent({ tenantId: 'ten_a', keyId: 'key_1', userId: 'u1', ts: T0, costPico: 1 }),
          usageEvent({ tenantId: 'ten_a', keyId: 'key_1', userId: 'u2', ts: T0 + 10, costPico: 2 }),
          usageEvent({ tenantId: 'ten_a', keyId: 'key_2', userId: 'u1', ts: T0 + 20, costPico: 4 }),
          usageEvent({ tenantId: 'ten_b', keyId: 'key_3', userId: 'u1', ts: T0 + 30, costPico: 8 }),
          usageEvent({ tenantId: 'ten_a', keyId: 'key_1', userId: 'u1', ts: T0 + 40, costPico: 16 }),
        ]);
        const [from, to] = [T0, T0 + 40];
        expect(await ledger.spent({ tenantId: 'ten_a' }, from, to)).toBe(7);
        expect(await ledger.spent({ tenantId: 'ten_a' }, from, to + 1)).toBe(23);
        expect(await ledger.spent({ tenantId: 'ten_a' }, from + 1, to + 1)).toBe(22);
        expect(await ledger.spent({ keyId: 'key_1' }, from, to)).toBe(3);
        expect(await ledger.spent({ userId: 'u1' }, from, to)).toBe(13);
        expect(await ledger.spent({ tenantId: 'ten_a', userId: 'u1' }, from, to)).toBe(5);
        expect(await ledger.spent({}, from, to)).toBe(15);
      });

      it('is 0 when nothing matches', async () => {
        expect(await ledger.spent({ tenantId: 'ten_a' }, ALL.from, ALL.to)).toBe(0);
        await ledger.append([usageEvent({ tenantId: 'ten_a' })]);
        expect(await ledger.spent({ tenantId: 'ten_b' }, ALL.from, ALL.to)).toBe(0);
        expect(await ledger.spent({ tenantId: 'ten_a' }, T0 + DAY, T0 + 2 * DAY)).toBe(0);
      });
    });

    describe('big values', () => {
      it('keeps pico-dollar amounts around 1e15 and epoch ms exact through get, aggregate and spent', async () => {
        const big = [1e15 + 1, 1e15 + 3, 2e15 + 7];
        const ts = Date.UTC(2286, 0, 1); // well past int32 seconds, still a safe integer
        const events = big.map((costPico, i) =>
          usageEvent({ ts, costPico, savedPico: costPico - 1, promptTokens: 3_000_000_000 + i, latencyMs: 2 ** 40 }),
        );
        await ledger.append(events);
        expect(await ledger.get(events[2]!.requestId)).toEqual(events[2]);
        const range = { from: ts, to: ts + 1 };
        expect(await ledger.aggregate({ ...range, groupBy: ['day'] })).toEqual([
          {
            group: { day: '2286-01-01' },
            requests: 3,
            errors: 0,
            promptTokens: 9_000_000_003,
            completionTokens: 60,
            costPico: 4e15 + 11,
            savedPico: 4e15 + 8,
          },
        ]);
        expect(await ledger.spent({ tenantId: 'ten_a' }, range.from, range.to)).toBe(4e15 + 11);
        expect(Number.isSafeInteger(await ledger.spent({}, range.from, range.to))).toBe(true);
      });
    });

    describe('large batches', () => {
      it('appends 1,000 events in one call, and none of them twice', async () => {
        const events = Array.from({ length: 1000 }, (_, i) =>
          usageEvent({ requestId: `bulk_${i}`, ts: T0 + i * 60_000, tenantId: i % 2 ? 'ten_odd' : 'ten_even', costPico: i }),
        );
        expect(await ledger.append(events)).toBe(1000);
        const rows = await aggregate(['tenant']);
        expect(rows.map((r) => [r.group.tenant, r.requests, r.costPico])).toEqual([
          ['ten_even', 500, 249_500],
          ['ten_odd', 500, 250_000],
        ]);
        expect(await ledger.append(events)).toBe(0);
        const more = Array.from({ length: 500 }, (_, i) => usageEvent({ requestId: `bulk_more_${i}`, costPico: 1 }));
        expect(await ledger.append([...events.slice(0, 500), ...more])).toBe(500);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(499_500 + 500);
        expect(await ledger.get('bulk_999')).toEqual(events[999]);
      });

      it('appends a batch larger than one statement can carry', async () => {
        const events = Array.from({ length: 4000 }, (_, i) => usageEvent({ requestId: `huge_${i}`, costPico: 2 }));
        expect(await ledger.append(events)).toBe(4000);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(8000);
      });
    });

    describe('roll-ups', () => {
      const HOUR = 3_600_000;
      /** Rolls up everything before `before`, in batches of `limit`; returns how many and in how many batches. */
      const rollAll = async (before: number, limit = 3): Promise<{ rolled: number; batches: number }> => {
        let rolled = 0;
        let batches = 0;
        for (;;) {
          const n = await ledger.rollUp!(before, limit);
          batches++;
          rolled += n;
          expect(n).toBeLessThanOrEqual(limit);
          if (n < limit) return { rolled, batches };
        }
      };
      /** 40 events over 5 days (T0 .. T0+5d), in every dimension reports group and filter by. */
      const history = (): UsageEvent[] =>
        Array.from({ length: 40 }, (_, i) =>
          usageEvent({
            requestId: `hist_${i}`,
            ts: T0 + i * 3 * HOUR + (i % 7) * 60_000 + 1,
            tenantId: i % 3 === 0 ? 'ten_b' : 'ten_a',
            keyId: `key_${i % 4}`,
            userId: i % 5 === 0 ? '' : `u${i % 3}`,
            route: i % 9 === 0 ? 'shadow' : i % 2 ? 'chat' : 'embeddings',
            requestedModel: i % 2 ? 'auto' : 'fast',
            servedModel: i % 11 === 0 ? '' : i % 3 ? 'fast' : 'smart',
            promptTokens: 10 + i,
            completionTokens: 2 * i,
            cachedTokens: i % 2,
            costPico: 1_000 * (i + 1),
            savedPico: i % 4 === 0 ? 50 : 0,
            ttftMs: i % 2 ? 30 + i : null,
            cache: i % 4 === 0 ? 'hit' : 'miss',
            status: i % 6 === 0 ? 500 : i % 10 === 0 ? 429 : 200,
          }),
        );
      /** Every report a user can ask for over whole hours, and what the budgets are seeded with. */
      const everything = async () => {
        const groupings: UsageGroupBy[][] = [[], ['tenant'], ['key'], ['user'], ['model'], ['route'], ['day'], ['tenant', 'user', 'key', 'model', 'route', 'day']];
        const ranges = [ALL, { from: T0, to: T0 + DAY }, { from: T0 + DAY + 5 * HOUR, to: T0 + 3 * DAY }, { from: -Infinity, to: Infinity }];
        const filters: Partial<UsageQuery>[] = [{}, { tenantId: 'ten_a' }, { keyId: 'key_1' }, { userId: '' }, { userId: 'u1' }, { model: 'fast' }, { model: 'auto' }, { tenantId: 'ten_b', model: 'smart' }];
        const reports = [];
        for (const groupBy of groupings) for (const range of ranges) reports.push(await ledger.aggregate({ ...range, groupBy }));
        for (const f of filters) reports.push(await ledger.aggregate({ ...ALL, groupBy: ['day'], ...f }));
        const scopes = [{}, { tenantId: 'ten_a' }, { tenantId: 'ten_b' }, { keyId: 'key_2' }, { tenantId: 'ten_a', userId: 'u1' }, { userId: '' }];
        const spent = [];
        for (const scope of scopes) {
          spent.push(await ledger.spent(scope, 0, Number.MAX_SAFE_INTEGER)); // lifetime
          spent.push(await ledger.spent(scope, Date.UTC(2025, 0, 1), Date.UTC(2025, 1, 1))); // month
          spent.push(await ledger.spent(scope, T0 + DAY, T0 + 2 * DAY)); // a day
        }
        return { reports, spent };
      };

      it('folds events before the cutoff into hourly rows: every report and spend gives the same totals as before', async () => {
        const events = history();
        await ledger.append(events);
        const before = await everything();
        expect(before.spent[0]).toBe(events.filter((e) => e.route !== 'shadow').reduce((a, e) => a + e.costPico, 0));

        const cutoff = T0 + 3 * DAY; // 24 of the 40 events
        const due = events.filter((e) => e.ts < cutoff);
        expect(await rollAll(cutoff)).toEqual({ rolled: due.length, batches: Math.floor(due.length / 3) + 1 });
        for (const e of due) expect(await ledger.get(e.requestId)).toBeNull();
        for (const e of events.filter((x) => x.ts >= cutoff)) expect(await ledger.get(e.requestId)).toEqual(e);
        expect(await everything()).toEqual(before);

        // Everything rolled up: still the same.
        await rollAll(T0 + 365 * DAY);
        for (const e of events) expect(await ledger.get(e.requestId)).toBeNull();
        expect(await everything()).toEqual(before);
      });

      it('never splits an hour: the bound is rounded down to a whole UTC hour', async () => {
        await ledger.append([
          usageEvent({ requestId: 'h_prev', ts: T0 + 2 * HOUR - 1, costPico: 1 }),
          usageEvent({ requestId: 'h_start', ts: T0 + 2 * HOUR, costPico: 2 }),
          usageEvent({ requestId: 'h_mid', ts: T0 + 2 * HOUR + 1_000, costPico: 4 }),
        ]);
        expect(await ledger.rollUp!(T0 + 2 * HOUR + 30 * 60_000, 100)).toBe(1);
        expect(await ledger.get('h_prev')).toBeNull();
        expect(await ledger.get('h_start')).not.toBeNull();
        expect(await ledger.get('h_mid')).not.toBeNull();
        expect(await ledger.rollUp!(T0 + 2 * HOUR + 30 * 60_000, 100)).toBe(0);
        expect(await ledger.spent({}, 0, T0 + DAY)).toBe(7);
      });

      it('takes at most `limit` events a call, oldest first, and 0 when none is left', async () => {
        await ledger.append([3, 1, 4, 2, 5].map((h) => usageEvent({ requestId: `o_${h}`, ts: T0 + h * HOUR, costPico: h })));
        expect(await ledger.rollUp!(T0 + 10 * HOUR, 2)).toBe(2);
        expect(await ledger.get('o_1')).toBeNull();
        expect(await ledger.get('o_2')).toBeNull();
        expect(await ledger.get('o_3')).not.toBeNull();
        expect(await ledger.rollUp!(T0 + 10 * HOUR, 2)).toBe(2);
        expect(await ledger.rollUp!(T0 + 10 * HOUR, 2)).toBe(1);
        expect(await ledger.rollUp!(T0 + 10 * HOUR, 2)).toBe(0);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(15);
      });

      it('adds an event arriving late into an hour already rolled up (counted once), and re-running changes nothing', async () => {
        await ledger.append([usageEvent({ requestId: 'late_1', ts: T0 + 10, costPico: 100, promptTokens: 1, status: 500 })]);
        await rollAll(T0 + DAY);
        await ledger.append([usageEvent({ requestId: 'late_2', ts: T0 + 20, costPico: 10, promptTokens: 2 })]);
        // Before its own roll-up the late event is read from the detail, dated at its own time: same totals.
        const expected = [{ group: { day: '2025-01-01' }, requests: 2, errors: 1, promptTokens: 3, completionTokens: 40, costPico: 110, savedPico: 0 }];
        expect(await aggregate(['day'])).toEqual(expected);
        expect(await rollAll(T0 + DAY)).toEqual({ rolled: 1, batches: 1 });
        expect(await rollAll(T0 + DAY)).toEqual({ rolled: 0, batches: 1 });
        expect(await aggregate(['day'])).toEqual(expected);
        expect(await ledger.spent({ tenantId: 'ten_a' }, T0, T0 + HOUR)).toBe(110);
      });

      it("dates an hour's roll-up at the hour's start in ranges that do not begin or end on a whole hour", async () => {
        await ledger.append([usageEvent({ ts: T0 + 10 * 60_000, costPico: 1 }), usageEvent({ ts: T0 + 50 * 60_000, costPico: 2 })]);
        expect(await aggregate([], { from: T0 + 30 * 60_000, to: T0 + HOUR })).toMatchObject([{ requests: 1, costPico: 2 }]);
        await rollAll(T0 + HOUR);
        expect(await aggregate([], { from: T0 + 30 * 60_000, to: T0 + HOUR })).toEqual([]);
        expect(await aggregate([], { from: T0, to: T0 + 1 })).toMatchObject([{ requests: 2, costPico: 3 }]);
        expect(await ledger.spent({}, T0 - 1, T0 + 1)).toBe(3);
      });

      it('keeps roll-ups of big values exact (sums past 2^53 / 1000, epoch ms far ahead)', async () => {
        const ts = Date.UTC(2286, 0, 1, 5);
        await ledger.append([1e15 + 1, 1e15 + 3, 2e15 + 7].map((costPico) => usageEvent({ ts, costPico, savedPico: costPico - 1, promptTokens: 3_000_000_000 })));
        await rollAll(ts + HOUR);
        expect(await ledger.aggregate({ from: ts - HOUR, to: ts + HOUR, groupBy: ['day'] })).toEqual([
          { group: { day: '2286-01-01' }, requests: 3, errors: 0, promptTokens: 9_000_000_000, completionTokens: 60, costPico: 4e15 + 11, savedPico: 4e15 + 8 },
        ]);
        expect(await ledger.spent({ tenantId: 'ten_a' }, 0, Number.MAX_SAFE_INTEGER)).toBe(4e15 + 11);
      });

      it('refuses a batch size that is not a positive integer, and a bound that is not finite', async () => {
        await expect(ledger.rollUp!(T0, 0)).rejects.toThrow(/limit/);
        await expect(ledger.rollUp!(T0, 1.5)).rejects.toThrow(/limit/);
        await expect(ledger.rollUp!(Infinity, 10)).rejects.toThrow(/bound/);
      });

      it.skipIf(!options.reopen)('keeps roll-ups across a reopen', async () => {
        await ledger.append([usageEvent({ ts: T0, costPico: 3 }), usageEvent({ ts: T0 + DAY, costPico: 4 })]);
        await rollAll(T0 + HOUR);
        ledger = await options.reopen!(ledger);
        expect(await aggregate(['day'])).toMatchObject([
          { group: { day: '2025-01-01' }, requests: 1, costPico: 3 },
          { group: { day: '2025-01-02' }, requests: 1, costPico: 4 },
        ]);
      });
    });

    describe.skipIf(!options.reopen)('durability', () => {
      it('keeps appended events across a reopen, and still refuses their ids', async () => {
        const events = [usageEvent({ costPico: 3 }), usageEvent({ costPico: 4, status: 500 })];
        await ledger.append(events);
        ledger = await options.reopen!(ledger);
        expect(await ledger.get(events[0]!.requestId)).toEqual(events[0]);
        expect(await aggregate([])).toMatchObject([{ requests: 2, errors: 1, costPico: 7 }]);
        expect(await ledger.append(events)).toBe(0);
        expect(await ledger.spent({}, ALL.from, ALL.to)).toBe(7);
      });
    });
  });
}
