/**
 * Budgets: reserve, then settle. Before a call its worst-case cost is reserved on every budget
 * that applies (tenant, key, end user; per day, month and lifetime), all or none, atomically
 * (Counters.reserve). After the call the reservation is replaced by the actual cost. Under any
 * concurrency, spend therefore stays within the cap plus nothing: a request that cannot reserve
 * its worst case is refused (402) before anything is spent.
 *
 * Counters are caches of the ledger: a counter that does not exist (first use in a period, a
 * restart in embedded mode, an evicted Redis key, a Redis restarted empty) is seeded from the
 * ledger's spend in that period before reserving. "The ledger" here includes what this process
 * still holds in its spool (src/capabilities/metering.ts passes a view adding LedgerWriter.unflushedSpent), and the
 * other processes add what theirs hold when told of the seed (src/metering/budget-seeding.ts).
 */
import { GatewayError } from '../errors.js';
import type { BudgetReserve, Counters, Ledger } from '../storage/types.js';
import { formatUsd } from './cost.js';
import type { Policy, ScopeId } from './policy.js';

type Period = 'day' | 'month' | 'lifetime';
const PICO_PER_USD = 1e12;
const HOUR = 3_600_000;
const LIFETIME_TTL = 400 * 24 * HOUR;

interface BudgetItem extends BudgetReserve {
  scope: ScopeId;
  period: Period;
  periodStart: number;
  periodEnd: number;
}

/** A budget after settling: its spend plus open reservations (`used`) against its cap. */
export interface SettledBudget {
  key: string;
  scope: ScopeId['scope'];
  id: string;
  period: Period;
  periodStart: number;
  limit: number;
  used: number;
  ttlMs: number;
}

export interface BudgetReservation {
  items: BudgetItem[];
  amount: number;
  /** Per item, the epoch of the counter the reservation was made on (see Counters.settle). */
  epochs?: string[] | undefined;
}

/** A budget counter this process has just created from the ledger (for BudgetSeeding to tell the other processes). */
export interface SeededBudget {
  key: string;
  filter: ScopeId['filter'];
  from: number;
  to: number;
  ttlMs: number;
  epoch: string;
  /** When the ledger was read (this process's clock). */
  readAt: number;
}

function periodBounds(period: Period, now: number): { start: number; end: number; tag: string } {
  const d = new Date(now);
  if (period === 'day') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { start, end: start + 24 * HOUR, tag: new Date(start).toISOString().slice(0, 10) };
  }
  if (period === 'month') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    return { start, end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1), tag: new Date(start).toISOString().slice(0, 7) };
  }
  return { start: 0, end: Number.MAX_SAFE_INTEGER, tag: 'all' };
}

function settledOf(i: BudgetItem): Omit<SettledBudget, 'used'> {
  return { key: i.key, scope: i.scope.scope, id: i.scope.id, period: i.period, periodStart: i.periodStart, limit: i.limit, ttlMs: i.ttlMs };
}

const PERIOD_NAME: Record<Period, string> = { day: 'daily', month: 'monthly', lifetime: 'lifetime' };

export class BudgetGuard {
  /** Told of each refusal, as an exhausted budget (`used` = its cap): the 100% alert. */
  onRefusal: ((budget: SettledBudget) => void) | undefined;
  /** Told of each counter this process seeded (created) from the ledger. */
  onSeeded: ((seeded: SeededBudget) => void) | undefined;
  /** Told of the counters' epochs after each reservation (BudgetSeeding notices a reseed it was not told of). */
  onReserved: ((budgets: Array<{ key: string; filter: ScopeId['filter']; from: number; to: number; ttlMs: number }>, epochs: readonly string[]) => void) | undefined;

  /** Seeds under way, by counter key: concurrent requests that find a counter missing share one ledger read. */
  private readonly seeding = new Map<string, Promise<void>>();

  /**
   * @param seedTimeoutMs deadline of the ledger read that seeds a missing counter (a request
   *   waits for it): past it, or when the read fails, the request gets 503 budget_unavailable.
   */
  constructor(
    private readonly counters: Counters,
    private readonly ledger: Pick<Ledger, 'spent'>,
    private readonly now: () => number = Date.now,
    private readonly seedTimeoutMs = 5_000,
    events: Partial<Pick<BudgetGuard, 'onRefusal' | 'onSeeded' | 'onReserved'>> = {},
  ) {
    this.onRefusal = events.onRefusal;
    this.onSeeded = events.onSeeded;
    this.onReserved = events.onReserved;
  }

  /** Day and month bounds, kept until the period ends (computing them is most of an item's cost). */
  private readonly bounds = new Map<Period, { start: number; end: number; tag: string }>();

  private boundsOf(period: Period, now: number): { start: number; end: number; tag: string } {
    let b = this.bounds.get(period);
    if (!b || now >= b.end || now < b.start) {
      b = periodBounds(period, now);
      this.bounds.set(period, b);
    }
    return b;
  }

  /** The budget items of a policy at this moment. */
  private items(policy: Policy, amount: number): BudgetItem[] {
    const now = this.now();
    const items: BudgetItem[] = [];
    for (const b of policy.budgets) {
      const caps: Array<[Period, number | undefined]> = [
        ['day', b.budget.dailyUsd],
        ['month', b.budget.monthlyUsd],
        ['lifetime', b.budget.lifetimeUsd],
      ];
      for (const [period, usd] of caps) {
        if (usd === undefined) continue;
        const { start, end, tag } = this.boundsOf(period, now);
        items.push({
          key: `budget:${b.scope}:${b.id}:${period}:${tag}`,
          limit: Math.round(usd * PICO_PER_USD),
          amount,
          ttlMs: period === 'lifetime' ? LIFETIME_TTL : end - now + HOUR,
          scope: b,
          period,
          periodStart: start,
          periodEnd: end,
        });
      }
    }
    return items;
  }

  /** Reserves `amount` pico-dollars on every budget of the policy; throws 402 when one cannot take it. */
  async reserve(policy: Policy, amount: number): Promise<BudgetReservation | undefined> {
    const items = this.items(policy, amount);
    if (items.length === 0) return undefined;
    const result = await this.reserveSeeded(items);
    if (result.ok) {
      if (this.onReserved && result.epochs) {
        this.onReserved(
          items.map((i) => ({ key: i.key, filter: i.scope.filter, from: i.periodStart, to: i.periodEnd, ttlMs: i.ttlMs })),
          result.epochs,
        );
      }
      return { items, amount, epochs: result.epochs };
    }
    const idx = result.refusedIndex ?? 0;
    throw this.refusal(items[idx]!, result.used[idx] ?? 0, amount);
  }

  /**
   * Refuses with the same 402 as `reserve` when a budget of the policy is already used up (its
   * spend and open reservations reach its cap), reserving nothing: for work accepted now and
   * run later (a job, a batch), which reserves its own worst case when it runs.
   */
  async refuseIfSpent(policy: Policy): Promise<void> {
    const items = this.items(policy, 0);
    if (items.length === 0) return;
    // A reservation of 0 changes no counter; it seeds a missing one from the ledger and reads them all.
    const result = await this.reserveSeeded(items);
    const idx = result.ok ? items.findIndex((item, i) => (result.used[i] ?? 0) >= item.limit) : (result.refusedIndex ?? 0);
    if (idx >= 0) throw this.refusal(items[idx]!, result.used[idx] ?? 0, 0);
  }

  /** Counters.reserve, seeding counters that do not exist from the ledger first (up to 3 rounds). */
  private async reserveSeeded(items: BudgetItem[]): Promise<Awaited<ReturnType<Counters['reserve']>>> {
    for (let round = 0; ; round++) {
      const result = await this.counters.reserve(items);
      if (result.ok || result.missing.length === 0 || round >= 3) return result;
      await Promise.all(items.filter((i) => result.missing.includes(i.key)).map((i) => this.seedShared(i)));
    }
  }

  /** Seeds a missing counter from the ledger, once for all the requests that need it now. */
  private seedShared(i: BudgetItem): Promise<void> {
    let p = this.seeding.get(i.key);
    if (!p) {
      p = this.seed(i).finally(() => this.seeding.delete(i.key));
      this.seeding.set(i.key, p);
    }
    return p;
  }

  private async seed(i: BudgetItem): Promise<void> {
    const readAt = this.now();
    let spent: number;
    try {
      spent = await withDeadline(this.ledger.spent(i.scope.filter, i.periodStart, i.periodEnd), this.seedTimeoutMs);
    } catch (err) {
      throw new GatewayError(
        'budget_unavailable',
        `Budgets cannot be checked right now: the ledger could not be read to restore the ${PERIOD_NAME[i.period]} budget of ${i.scope.scope} '${i.scope.id}' (${err instanceof Error ? err.message : String(err)}). Retry shortly.`,
        { headers: { 'retry-after': '1' }, cause: err },
      );
    }
    const epoch = await this.counters.seedBudget(i.key, spent, i.ttlMs);
    if (epoch !== undefined) this.onSeeded?.({ key: i.key, filter: i.scope.filter, from: i.periodStart, to: i.periodEnd, ttlMs: i.ttlMs, epoch, readAt });
  }

  private refusal(item: BudgetItem, used: number, amount: number): GatewayError {
    this.onRefusal?.({ ...settledOf(item), used: Math.max(used, item.limit) });
    const resets = item.period === 'lifetime' ? 'It does not reset.' : `It resets at ${new Date(item.periodEnd).toISOString()}.`;
    const budget = `The ${PERIOD_NAME[item.period]} budget of ${item.scope.scope} '${item.scope.id}' ($${formatUsd(item.limit)})`;
    return new GatewayError(
      'budget_exceeded',
      amount === 0
        ? `${budget} is used up: $${formatUsd(used)} is spent or reserved, so no work is queued against it. ${resets}`
        : `${budget} does not cover this request: $${formatUsd(used)} is spent or reserved and this request may cost up to $${formatUsd(amount)}. ${resets}`,
    );
  }

  /**
   * Replaces the reservation by the actual cost on every budget it was made on; returns where each
   * stands. A counter seeded anew since the reservation (Redis lost it meanwhile) never held it:
   * only the actual cost is added there (Counters.settle with the reservation's epoch).
   */
  async settle(reservation: BudgetReservation, actual: number): Promise<SettledBudget[]> {
    return Promise.all(
      reservation.items.map(async (i, idx) => ({
        ...settledOf(i),
        used: await this.counters.settle(i.key, reservation.amount, actual, i.ttlMs, reservation.epochs?.[idx]),
      })),
    );
  }
}

/** `p`, or a rejection once `ms` have passed (`p` goes on; its late failure is not unhandled). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  p.catch(() => undefined);
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
