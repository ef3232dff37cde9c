/**
 * The dashboard's slower numbers, read from the ledger: the top tenants, users and models by cost
 * over the last 24 hours, and how much of each tenant's budgets is used (tier budgets merged with
 * the tenant's policy, as src/metering/policy.ts does; spend read from the ledger, the source of
 * truth that the budget counters cache).
 */
import type { TierConfig } from '../config/schema.js';
import type { LedgerWriter } from '../metering/ledger-writer.js';
import { formatUsd } from '../metering/cost.js';
import { mergeBudget } from '../metering/policy.js';
import { type UsageRowJson, rowToJson } from '../metering/usage-report.js';
import type { Ledger, Records, UsageGroupBy, UsageRow } from '../storage/types.js';

const DAY_MS = 86_400_000;
/** Tenants whose budgets are read per summary (the ones with the most spend come first). */
const MAX_BUDGET_TENANTS = 200;

export interface DashboardSummaryDeps {
  ledger: Pick<Ledger, 'aggregate' | 'spent'>;
  /** Flushed first, so the summary includes the requests answered so far. */
  writer?: Pick<LedgerWriter, 'flush'> | undefined;
  records: Pick<Records, 'listTenants'>;
  tiers: Record<string, TierConfig>;
  now?: () => number;
}

/** One tenant budget and how much of it the current period has used. */
export interface BudgetUse {
  tenant_id: string;
  tenant_name: string;
  period: 'day' | 'month' | 'lifetime';
  limit_usd: string;
  used_usd: string;
  /** used / limit (may exceed 1 briefly: reservations are not counted here, only settled spend). */
  used_fraction: number;
  /** ISO time the period ends (null: lifetime). */
  resets_at: string | null;
}

export interface DashboardSummary {
  object: 'dashboard_summary';
  from: string;
  to: string;
  top_tenants: UsageRowJson[];
  top_users: UsageRowJson[];
  top_models: UsageRowJson[];
  budgets: BudgetUse[];
}

function periodBounds(period: BudgetUse['period'], now: number): { start: number; end: number } {
  const d = new Date(now);
  if (period === 'day') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { start, end: start + DAY_MS };
  }
  if (period === 'month') return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
  return { start: 0, end: Number.MAX_SAFE_INTEGER };
}

const byCost = (a: UsageRow, b: UsageRow) => b.costPico - a.costPico || b.requests - a.requests;

export async function dashboardSummary(deps: DashboardSummaryDeps, top = 10): Promise<DashboardSummary> {
  const now = (deps.now ?? Date.now)();
  await deps.writer?.flush();
  const from = now - DAY_MS;
  const to = now + 1; // `to` is exclusive
  const topOf = async (groupBy: UsageGroupBy[]) => {
    const rows = await deps.ledger.aggregate({ from, to, groupBy });
    return rows.sort(byCost).slice(0, top).map((r) => rowToJson(r, groupBy));
  };
  const [tenants, users, models, budgets] = await Promise.all([
    topOf(['tenant']),
    topOf(['tenant', 'user']),
    topOf(['model']),
    budgetUse(deps, now),
  ]);
  return {
    object: 'dashboard_summary',
    from: new Date(from).toISOString(),
    to: new Date(now).toISOString(),
    top_tenants: tenants,
    top_users: users.filter((u) => u['user'] !== ''),
    top_models: models,
    budgets: budgets.sort((a, b) => b.used_fraction - a.used_fraction).slice(0, 50),
  };
}

async function budgetUse(deps: DashboardSummaryDeps, now: number): Promise<BudgetUse[]> {
  const out: BudgetUse[] = [];
  const tenants = (await deps.records.listTenants()).slice(0, MAX_BUDGET_TENANTS);
  await Promise.all(
    tenants.map(async (t) => {
      const budget = mergeBudget(deps.tiers[t.tier]?.budgets.tenant, t.policy?.budgets?.tenant ?? undefined);
      if (!budget) return;
      const caps: Array<[BudgetUse['period'], number | undefined]> = [
        ['day', budget.dailyUsd],
        ['month', budget.monthlyUsd],
        ['lifetime', budget.lifetimeUsd],
      ];
      for (const [period, usd] of caps) {
        if (usd === undefined) continue;
        const { start, end } = periodBounds(period, now);
        const spent = await deps.ledger.spent({ tenantId: t.id }, start, end);
        const limit = Math.round(usd * 1e12);
        out.push({
          tenant_id: t.id,
          tenant_name: t.name,
          period,
          limit_usd: formatUsd(limit),
          used_usd: formatUsd(spent),
          used_fraction: limit === 0 ? (spent > 0 ? 1 : 0) : spent / limit,
          resets_at: period === 'lifetime' ? null : new Date(end).toISOString(),
        });
      }
    }),
  );
  return out;
}
