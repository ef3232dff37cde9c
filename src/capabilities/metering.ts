/**
 * Metering (src/metering/): rate limits by tokens, budgets with hard limits, storage quotas and
 * the usage ledger (with its hourly roll-ups). The admit stage, the settle steps that correct what admit reserved and
 * record the usage event, budget threshold alerts, and the usage admin API. Budget counters are
 * seeded from the ledger plus what every process's spool still holds (BudgetSeeding).
 */
import { usageRoutes } from '../http/routes/usage.js';
import { BudgetAlerts } from '../metering/budget-alerts.js';
import { BudgetSeeding } from '../metering/budget-seeding.js';
import { BudgetGuard, type SettledBudget } from '../metering/budgets.js';
import { RateLimiter } from '../metering/rate-limiter.js';
import { StorageQuotas } from '../metering/storage-quotas.js';
import { UsageRollup } from '../metering/usage-rollup.js';
import { BudgetBoard } from '../observability/alerts.js';
import type { RequestContext } from '../pipeline/context.js';
import { before } from '../pipeline/pipeline.js';
import { admitStage } from '../pipeline/stages/admit.js';
import { recordUsage } from '../pipeline/stages/settle.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface MeteringCapability extends Capability {
  readonly rateLimiter: RateLimiter;
  readonly budgets: BudgetGuard;
  readonly quotas: StorageQuotas;
  /** The latest spend settle saw of each budget, and each refusal (the `budget` alert rules read it). */
  readonly budgetBoard: BudgetBoard;
  /** Writes a request's usage event to the spool once (respond calls it before the last byte). */
  record(ctx: RequestContext): void;
}

export function meteringCapability(core: Core): MeteringCapability {
  const { config, storage, counters, ledger, log } = core;
  const rateLimiter = new RateLimiter(counters);
  const alerts = core.alertWebhook ? new BudgetAlerts(counters, config.alerts.budgetThresholds, core.alertWebhook) : undefined;
  const budgetBoard = new BudgetBoard();
  const budgetSeeding = new BudgetSeeding({ bus: storage.bus, counters, writer: ledger, node: core.nodeId, log });
  budgetSeeding.start();
  // Counters are seeded from the ledger plus what this process's spool still holds, read once the
  // ledger has answered (no scan for a read that fails): the events still unconfirmed and those
  // confirmed since a second before the read began (counted twice rather than missed). The
  // other processes add theirs (BudgetSeeding).
  const budgets = new BudgetGuard(
    counters,
    {
      spent: async (scope, from, to) => {
        const readAt = Date.now();
        const inLedger = await storage.ledger.spent(scope, from, to);
        return inLedger + ledger.unflushedSpent(scope, from, to, readAt - 1_000);
      },
    },
    Date.now,
    config.storage.kind === 'distributed' ? config.storage.postgresQueryTimeoutMs : 5_000,
    {
      onSeeded: (seeded) => budgetSeeding.announce(seeded),
      onReserved: (seen, epochs) => budgetSeeding.noticed(seen, epochs),
      onRefusal: (b) => {
        budgetBoard.observe([b]);
        if (alerts) void alerts.check([b]).catch((err: unknown) => log.error({ err }, 'budget alert failed'));
      },
    },
  );
  const checkBudgets = async (settled: SettledBudget[]) => {
    budgetBoard.observe(settled);
    await alerts?.check(settled);
  };
  /** Corrects what admit took and reserved with what was really used. */
  async function reconcile(ctx: RequestContext): Promise<void> {
    const a = ctx.admission;
    if (!a) return;
    // A served cache hit uses no tokens: only its request counts against the rate limits.
    const discarded = ctx.discarded ? ctx.discarded.promptTokens + ctx.discarded.completionTokens : 0;
    const tokens = ctx.usage && !ctx.cache?.served ? ctx.usage.prompt_tokens + ctx.usage.completion_tokens + discarded : 0;
    const [, settled] = await Promise.all([rateLimiter.reconcile(a.rate, tokens), a.budget ? budgets.settle(a.budget, ctx.costPico ?? 0) : undefined]);
    if (settled) await checkBudgets(settled);
  }
  // Usage events past ledger.detailRetentionDays become hourly roll-ups (one process at a time in distributed mode).
  const usageRollup = new UsageRollup({ ledger: storage.ledger, config: config.ledger, log, registry: core.metrics.registry });
  usageRollup.start();
  const record = (ctx: RequestContext) => {
    if (!ctx.deferUsageEvent) recordUsage(ledger, ctx);
  };
  return {
    name: 'metering',
    rateLimiter,
    budgets,
    quotas: new StorageQuotas(storage.usage, config.quotas),
    budgetBoard,
    record,
    stages: {
      admit: before(admitStage({ tiers: config.tiers, rateLimiter, budgets, defaultMaxOutputTokens: config.metering.defaultMaxOutputTokens })),
    },
    settle: {
      reconcile: (ctx) => reconcile(ctx).catch((err: unknown) => log.error({ err, reqId: ctx.id }, 'could not settle budget or rate limit')),
      'usage event': (ctx) => recordUsage(ledger, ctx),
    },
    adminRoutes: [routes(usageRoutes, { ledger: storage.ledger, writer: ledger })],
    close: () => usageRollup.close(), // the batch in flight ends
  };
}
