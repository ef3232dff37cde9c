/**
 * Budget alerts: when a budget's spend crosses one of the configured thresholds (e.g. 50%, 80%,
 * 100%), one signed webhook per threshold and period. "Once" holds across processes: the first
 * process to see the crossing claims it with an atomic counter (a budget of 1 that only one
 * reservation fits); each process also remembers its claims to skip the counter afterwards.
 */
import type { WebhookSender } from '../observability/webhook.js';
import type { Counters } from '../storage/types.js';
import type { SettledBudget } from './budgets.js';
import { formatUsd } from './cost.js';

export class BudgetAlerts {
  private readonly claimed = new Set<string>();

  constructor(
    private readonly counters: Counters,
    private readonly thresholds: readonly number[],
    private readonly webhook: Pick<WebhookSender, 'send'>,
  ) {}

  /** Checks settled budgets against the thresholds; sends what crossed (in the background). */
  async check(settled: readonly SettledBudget[]): Promise<void> {
    for (const b of settled) {
      if (b.limit <= 0) continue;
      for (const t of this.thresholds) {
        if (b.used < b.limit * t) continue;
        const flag = `alert:${b.key}:${t}`;
        if (this.claimed.has(flag)) continue;
        if (!(await this.claim(flag, b.ttlMs))) {
          this.claimed.add(flag);
          continue;
        }
        this.claimed.add(flag);
        void this.webhook.send('budget.threshold', {
          budget: { scope: b.scope, id: b.id, period: b.period, period_start: new Date(b.periodStart).toISOString(), limit_usd: formatUsd(b.limit) },
          threshold: t,
          used_usd: formatUsd(b.used),
          at: new Date().toISOString(),
        });
      }
    }
    if (this.claimed.size > 100_000) this.claimed.clear();
  }

  /** True for exactly one caller across all processes sharing the counters. */
  private async claim(flag: string, ttlMs: number): Promise<boolean> {
    await this.counters.seedBudget(flag, 0, ttlMs);
    const r = await this.counters.reserve([{ key: flag, limit: 1, amount: 1, ttlMs }]);
    return r.ok;
  }
}
