import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerConfig } from '../config/ledger-schema.js';
import { buildConfig } from '../config/loader.js';
import { createLogger } from '../observability/logger.js';
import { MemoryCounters } from '../storage/memory/counters.js';
import { openDatabase } from '../storage/sqlite/database.js';
import { SqliteLedger } from '../storage/sqlite/ledger.js';
import { SqliteWriterThread } from '../storage/sqlite/writer-thread.js';
import type { Ledger, UsageEvent } from '../storage/types.js';
import { BudgetGuard } from './budgets.js';
import type { Policy } from './policy.js';
import { parseUsageQuery } from './usage-report.js';
import { UsageRollup, rollupCutoff } from './usage-rollup.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2025, 5, 1); // 2025-06-01T00:00Z
const NOW = T0 + 10 * DAY + 30 * 60_000; // 2025-06-11T00:30Z
const log = createLogger('silent');
const config = (over: Partial<LedgerConfig> = {}): LedgerConfig => ({ detailRetentionDays: 7, rollupEveryMs: 60_000, rollupBatchSize: 50, rollupPauseMs: 0, ...over });

/** Ten days of traffic, three requests an hour, over two tenants, three keys, three users and two models. */
function tenDays(): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (let h = 0; h < 10 * 24; h++) {
    for (let j = 0; j < 3; j++) {
      const i = h * 3 + j;
      events.push({
        requestId: `req_${i}`,
        ts: T0 + h * HOUR + j * 17 * 60_000,
        tenantId: i % 4 === 0 ? 'ten_b' : 'ten_a',
        keyId: `key_${i % 3}`,
        userId: i % 5 === 0 ? '' : `user-${i % 3}`,
        route: i % 13 === 0 ? 'shadow' : 'chat',
        requestedModel: 'auto',
        servedModel: i % 2 ? 'sim-small' : 'sim-large',
        deployment: 'sim-small@sim',
        promptTokens: 20 + (i % 7),
        completionTokens: 40 + (i % 11),
        cachedTokens: 0,
        costPico: 1_000_000 + i * 1_003,
        savedPico: i % 9 === 0 ? 500 : 0,
        latencyMs: 80 + (i % 50),
        ttftMs: i % 2 ? 20 : null,
        cache: i % 9 === 0 ? 'hit' : 'miss',
        status: i % 17 === 0 ? 502 : 200,
        attempts: 1,
        usageReported: true,
      });
    }
  }
  return events;
}

/** What users see: usage reports as `GET /admin/v1/usage` parses them, and the budgets seeded from the ledger. */
async function whatUsersSee(ledger: Ledger) {
  const reports = [];
  for (const p of [{}, { group_by: 'tenant,user,model,day' }, { group_by: 'key,route', from: '2025-06-01' }, { group_by: 'day', tenant_id: 'ten_a', from: '2025-06-02T05:00:00Z', to: '2025-06-09' }]) {
    reports.push(await ledger.aggregate(parseUsageQuery(p, NOW)));
  }
  // Budgets are seeded from Ledger.spent when their counter is missing (a restart): daily, monthly and lifetime.
  const counters = new MemoryCounters();
  const guard = new BudgetGuard(counters, ledger, () => NOW);
  const budgets: Policy = {
    limits: [],
    budgets: [
      { scope: 'tenant', id: 'ten_a', filter: { tenantId: 'ten_a' }, budget: { dailyUsd: 1_000, monthlyUsd: 1_000, lifetimeUsd: 1_000 } },
      { scope: 'key', id: 'key_1', filter: { keyId: 'key_1' }, budget: { lifetimeUsd: 1_000 } },
      { scope: 'user', id: 'ten_a/user-2', filter: { tenantId: 'ten_a', userId: 'user-2' }, budget: { monthlyUsd: 1_000 } },
    ],
  };
  await guard.refuseIfSpent(budgets);
  const seeded = {
    tenantDay: await counters.budgetUsed('budget:tenant:ten_a:day:2025-06-11'),
    tenantMonth: await counters.budgetUsed('budget:tenant:ten_a:month:2025-06'),
    tenantLifetime: await counters.budgetUsed('budget:tenant:ten_a:lifetime:all'),
    keyLifetime: await counters.budgetUsed('budget:key:key_1:lifetime:all'),
    userMonth: await counters.budgetUsed('budget:user:ten_a/user-2:month:2025-06'),
  };
  await counters.close();
  return { reports, seeded };
}

describe('UsageRollup: events past ledger.detailRetentionDays become hourly roll-ups', () => {
  const dirs: string[] = [];
  const ledgers: Ledger[] = [];
  afterEach(async () => {
    for (const l of ledgers.splice(0)) await l.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** The gateway's embedded ledger: a file, appends and roll-ups committed on the writer thread. */
  const embedded = (): SqliteLedger => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-rollup-'));
    dirs.push(dir);
    const file = join(dir, 'tollgate.db');
    const db = openDatabase(file);
    const ledger = new SqliteLedger(db, { writer: new SqliteWriterThread(db, file) });
    ledgers.push(ledger);
    return ledger;
  };

  it('deletes the detail before the cutoff hour, and reports and budgets (daily, monthly, lifetime) stay the same', async () => {
    const ledger = embedded();
    const events = tenDays();
    await ledger.append(events);
    const before = await whatUsersSee(ledger);
    const lifetime = events.filter((e) => e.tenantId === 'ten_a' && e.route !== 'shadow').reduce((a, e) => a + e.costPico, 0);
    expect(before.seeded.tenantLifetime).toBe(lifetime);

    const cutoff = rollupCutoff(NOW, 7);
    expect(new Date(cutoff).toISOString()).toBe('2025-06-04T00:00:00.000Z');
    const due = events.filter((e) => e.ts < cutoff);
    expect(due).toHaveLength(3 * 24 * 3);

    const registry = new Registry();
    const job = new UsageRollup({ ledger, config: config(), log, registry, now: () => NOW });
    expect(await job.run()).toEqual({ rolledUp: due.length, batches: Math.floor(due.length / 50) + 1, cutoff });
    expect(await registry.getSingleMetricAsString('tollgate_ledger_rolled_up_events_total')).toContain(`tollgate_ledger_rolled_up_events_total ${due.length}`);
    for (const e of [due[0]!, due.at(-1)!]) expect(await ledger.get(e.requestId)).toBeNull();
    const kept = events.find((e) => e.ts >= cutoff)!;
    expect(await ledger.get(kept.requestId)).toEqual(kept);

    expect(await whatUsersSee(ledger)).toEqual(before);
    // Nothing more is due: a second pass changes nothing.
    expect(await job.run()).toMatchObject({ rolledUp: 0, batches: 1 });
    expect(await whatUsersSee(ledger)).toEqual(before);
    await job.close();
  });

  it('has defaults, and refuses a bad setting naming it', () => {
    expect(buildConfig({}).ledger).toEqual({ detailRetentionDays: 7, rollupEveryMs: 60_000, rollupBatchSize: 100, rollupPauseMs: 20 });
    expect(() => buildConfig({ ledger: { detailRetentionDays: 0.5 } })).toThrow(/ledger\.detailRetentionDays: Number must be greater than or equal to 1/);
    expect(() => buildConfig({ ledger: { rollupBatchSize: 0 } })).toThrow(/ledger\.rollupBatchSize/);
    expect(() => buildConfig({ ledger: { rollupEveryMs: 10 } })).toThrow(/ledger\.rollupEveryMs/);
    expect(() => buildConfig({ ledger: { retentionDays: 3 } })).toThrow(/ledger: unknown key 'retentionDays'/);
  });

  it('rolls up nothing with detailRetentionDays: null', async () => {
    const ledger = new SqliteLedger(openDatabase(':memory:'));
    ledgers.push(ledger);
    await ledger.append(tenDays().slice(0, 10));
    const job = new UsageRollup({ ledger, config: config({ detailRetentionDays: null }), log, now: () => NOW + 365 * DAY });
    expect(job.enabled).toBe(false);
    job.start();
    expect(await job.run()).toEqual({ rolledUp: 0, batches: 0, cutoff: null });
    expect(await ledger.get('req_0')).not.toBeNull();
    await job.close();
  });

  it('counts and logs a failed pass, and the next pass goes on', async () => {
    let fail = true;
    const ledger = {
      rollUp: async (_before: number, limit: number) => {
        if (fail) throw new Error('database is locked');
        return limit - 1;
      },
    };
    const registry = new Registry();
    const job = new UsageRollup({ ledger, config: config(), log, registry, now: () => NOW });
    await expect(job.run()).rejects.toThrow(/locked/);
    expect(await registry.getSingleMetricAsString('tollgate_ledger_rollup_failures_total')).toContain('tollgate_ledger_rollup_failures_total 1');
    fail = false;
    expect(await job.run()).toEqual({ rolledUp: 49, batches: 1, cutoff: rollupCutoff(NOW, 7) });
  });

  it('stops a pass after the batch in flight when closed, and never runs two passes at once', async () => {
    let calls = 0;
    let inFlight = 0;
    let job: UsageRollup | undefined;
    const ledger = {
      rollUp: async (_before: number, limit: number) => {
        calls++;
        inFlight++;
        expect(inFlight).toBe(1);
        if (calls === 3) void job!.close();
        await Promise.resolve();
        inFlight--;
        return limit; // always a full batch: the pass would go on forever
      },
    };
    job = new UsageRollup({ ledger, config: config({ rollupPauseMs: 5 }), log, now: () => NOW });
    const [a, b] = await Promise.all([job.run(), job.run()]);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ rolledUp: 150, batches: 3 });
    expect(calls).toBe(3);
  });
});
