/**
 * The failure policy of shared counters (Redis in distributed mode), in one place:
 *  - rate limits FAIL OPEN: when the shared store is unreachable, buckets are taken from a local,
 *    per-process store instead (each process then enforces the limit alone, so N processes may
 *    admit up to N times it), and every such call is counted (`onFailure`) so it is loud;
 *  - budgets FAIL CLOSED: a reservation that cannot be checked is refused (503
 *    budget_unavailable, Retry-After 1), since overspend cannot be taken back;
 *  - settling a reservation that cannot reach the store leaves it reserved (conservative) until
 *    the counter expires with its period; the ledger still records the real cost.
 *
 * Failing fast: once `failuresToOpen` operations in a row have failed (a refused connection, or
 * no reply within the command deadline: a paused or partitioned Redis), the store counts as down
 * and the operations that follow do not wait on it: they take the policy above at once. (One
 * failure alone does not: a single late reply, e.g. the gateway's own event loop stalled past
 * the deadline, would otherwise refuse every budgeted request until the next probe.) One operation at a time, at
 * most every `probeMs`, still goes to the store as a probe; the first that succeeds brings it
 * back. Without this, every request under a partition waited out the deadline on each of its
 * Redis steps (three for a budgeted request: ~0.9 s at 300 ms, for the whole partition).
 * A settle skipped that way never reached Redis: it is kept (up to MAX_HELD_SETTLES) and applied
 * once the store is back, so a blip does not leave worst-case reservations held for the rest of
 * their period. (A settle that did reach Redis but got no reply in time is not replayed: it may
 * have applied.)
 */
import { GatewayError } from '../errors.js';
import type { BudgetReserve, BucketSpec, BucketTake, Counters, ReserveResult, TakeResult } from './types.js';

export interface FailoverOptions {
  /** Called on every operation the shared store failed (metrics, throttled logs), a skipped one included. */
  onFailure: (operation: string, err: unknown) => void;
  /** While the store is down, least time between two probes (default 500 ms). */
  probeMs?: number;
  /** Failed operations in a row after which the store counts as down (default 3). */
  failuresToOpen?: number;
  now?: () => number;
}

/** Why an operation did not go to the store: it is down and a probe is under way or due later. */
export class CounterStoreDown extends Error {
  constructor(since: number, now: number) {
    super(`shared counter store down for ${Math.round((now - since) / 100) / 10} s (failing fast until a probe succeeds)`);
    this.name = 'CounterStoreDown';
  }
}

/** Settles kept while the store is down, at most (the oldest are dropped past it: left reserved). */
const MAX_HELD_SETTLES = 10_000;

interface HeldSettle {
  key: string;
  reserved: number;
  actual: number;
  ttlMs: number;
  epoch: string | undefined;
}

export class FailoverCounters implements Counters {
  /** Settles skipped while the store was down, applied once it is back. */
  private held: HeldSettle[] = [];
  private readonly probeMs: number;
  private readonly failuresToOpen: number;
  private readonly now: () => number;
  /** Failed operations since the last that succeeded. */
  private failuresInARow = 0;
  /** Since when the store has been failing (undefined: up). */
  private downSince: number | undefined;
  private probing = false;
  private nextProbeAt = 0;

  constructor(
    private readonly shared: Counters,
    private readonly local: Counters,
    private readonly opts: FailoverOptions,
  ) {
    this.probeMs = opts.probeMs ?? 500;
    this.failuresToOpen = opts.failuresToOpen ?? 3;
    this.now = opts.now ?? Date.now;
  }

  /** Whether operations currently skip the store (tests, readiness). */
  get down(): boolean {
    return this.downSince !== undefined;
  }

  /** Runs `op` on the store, or throws CounterStoreDown at once while it is down and no probe is due. */
  private async call<T>(op: () => Promise<T>): Promise<T> {
    const now = this.now();
    const probe = this.downSince !== undefined;
    if (probe) {
      if (this.probing || now < this.nextProbeAt) throw new CounterStoreDown(this.downSince!, now);
      this.probing = true;
      this.nextProbeAt = now + this.probeMs;
    }
    try {
      const result = await op();
      const wasDown = this.downSince !== undefined;
      this.downSince = undefined;
      this.failuresInARow = 0;
      if (wasDown && this.held.length > 0) void this.applyHeld();
      return result;
    } catch (err) {
      if (this.downSince === undefined && ++this.failuresInARow >= this.failuresToOpen) {
        this.downSince = this.now();
        this.nextProbeAt = this.downSince + this.probeMs;
      }
      throw err;
    } finally {
      if (probe) this.probing = false;
    }
  }

  async take(takes: BucketTake[]): Promise<TakeResult> {
    try {
      return await this.call(() => this.shared.take(takes));
    } catch (err) {
      this.opts.onFailure('take', err);
      return this.local.take(takes);
    }
  }

  async adjust(key: string, spec: BucketSpec, delta: number): Promise<void> {
    try {
      await this.call(() => this.shared.adjust(key, spec, delta));
    } catch (err) {
      this.opts.onFailure('adjust', err);
      await this.local.adjust(key, spec, delta);
    }
  }

  async reserve(items: BudgetReserve[]): Promise<ReserveResult> {
    try {
      return await this.call(() => this.shared.reserve(items));
    } catch (err) {
      throw this.budgetsDown('reserve', err);
    }
  }

  async settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number> {
    try {
      return await this.call(() => this.shared.settle(key, reserved, actual, ttlMs, epoch));
    } catch (err) {
      this.opts.onFailure('settle', err);
      if (err instanceof CounterStoreDown) {
        if (this.held.length >= MAX_HELD_SETTLES) this.held.shift();
        this.held.push({ key, reserved, actual, ttlMs, epoch });
      }
      return 0;
    }
  }

  /** Settles kept while the store was down, waiting for it (tests). */
  get heldSettles(): number {
    return this.held.length;
  }

  /** Applies the settles kept while the store was down, in order; stops (keeping the rest) if it fails again. */
  private async applyHeld(): Promise<void> {
    while (this.held.length > 0 && this.downSince === undefined) {
      const s = this.held.shift()!;
      try {
        await this.call(() => this.shared.settle(s.key, s.reserved, s.actual, s.ttlMs, s.epoch));
      } catch (err) {
        this.opts.onFailure('settle', err);
        if (err instanceof CounterStoreDown) this.held.unshift(s);
        return;
      }
    }
  }

  async seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined> {
    try {
      return await this.call(() => this.shared.seedBudget(key, spent, ttlMs));
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
