/**
 * The failure policy of shared counters (Redis in distributed mode), in one place:
 *  - rate limits FAIL OPEN: when the shared store is unreachable, buckets are taken from a local,
 *    per-process store instead (each process then enforces the limit alone, so N processes may
 *    admit up to N times it), and every such call is counted (`onFailure`) so it is loud;
 *  - budgets FAIL CLOSED: a reservation that cannot be checked is refused (503
 *    budget_unavailable, Retry-After 1), since overspend cannot be taken back;
 *  - settling a reservation that cannot reach the store leaves it reserved (conservative) until
 *    the counter expires with its period; the ledger still records the real cost.
 */
import { GatewayError } from '../errors.js';
import type { BudgetReserve, BucketSpec, BucketTake, Counters, ReserveResult, TakeResult } from './types.js';

export interface FailoverOptions {
  /** Called on every operation the shared store failed (metrics, throttled logs). */
  onFailure: (operation: string, err: unknown) => void;
}

export class FailoverCounters implements Counters {
  constructor(
    private readonly shared: Counters,
    private readonly local: Counters,
    private readonly opts: FailoverOptions,
  ) {}

  async take(takes: BucketTake[]): Promise<TakeResult> {
    try {
      return await this.shared.take(takes);
    } catch (err) {
      this.opts.onFailure('take', err);
      return this.local.take(takes);
    }
  }

  async adjust(key: string, spec: BucketSpec, delta: number): Promise<void> {
    try {
      await this.shared.adjust(key, spec, delta);
    } catch (err) {
      this.opts.onFailure('adjust', err);
      await this.local.adjust(key, spec, delta);
    }
  }

  async reserve(items: BudgetReserve[]): Promise<ReserveResult> {
    try {
      return await this.shared.reserve(items);
    } catch (err) {
      throw this.budgetsDown('reserve', err);
    }
  }

  async settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number> {
    try {
      return await this.shared.settle(key, reserved, actual, ttlMs, epoch);
    } catch (err) {
      this.opts.onFailure('settle', err);
      return 0;
    }
  }

  async seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined> {
    try {
      return await this.shared.seedBudget(key, spent, ttlMs);
    } catch (err) {
      throw this.budgetsDown('seed', err);
    }
  }

  budgetUsed(key: string): Promise<number> {
    return this.shared.budgetUsed(key);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.shared.close(), this.local.close()]);
  }

  private budgetsDown(operation: string, err: unknown): GatewayError {
    this.opts.onFailure(operation, err);
    return new GatewayError(
      'budget_unavailable',
      'Budgets cannot be checked right now (the shared counter store is unreachable), so the request was refused rather than risk overspending. Retry shortly.',
      { headers: { 'retry-after': '1' }, cause: err },
    );
  }
}
