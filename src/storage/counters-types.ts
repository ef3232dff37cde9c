/**
 * The `Counters` interface: token buckets (rate limits) and budget counters, atomic across
 * processes, and their shapes. Re-exported by src/storage/types.ts.
 */

/**
 * A token bucket: holds up to `capacity` units and refills continuously at `refillPerSec`.
 * "10,000 tokens per minute with a burst of 15,000" is `{ capacity: 15000, refillPerSec: 10000 / 60 }`.
 */
export interface BucketSpec {
  capacity: number;
  refillPerSec: number;
}

export interface BucketTake {
  /** A stable key, e.g. `rl:tpm:tenant:acme`. Adapters may prefix it. */
  key: string;
  spec: BucketSpec;
  /** Units to take (> 0). */
  amount: number;
}

export interface BucketState {
  key: string;
  /** Units left after this call (after the take when it succeeded). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export interface TakeResult {
  ok: boolean;
  /** One per requested bucket, in order. */
  buckets: BucketState[];
  /** When refused: the index of the first bucket that could not give its amount. */
  refusedIndex?: number;
  /** When refused: milliseconds until that bucket holds the amount (Infinity if it never can). */
  retryAfterMs?: number;
}

export interface BudgetReserve {
  /** A key naming the budget and its period, e.g. `budget:tenant:acme:day:2026-11-22`. */
  key: string;
  /** The cap for the period, in pico-dollars. */
  limit: number;
  /** What to reserve (>= 0), in pico-dollars. */
  amount: number;
  /** How long the counter lives (until the period ends, plus a margin). */
  ttlMs: number;
}

export interface ReserveResult {
  ok: boolean;
  /** Committed spend plus open reservations per budget, after this call, in order. */
  used: number[];
  /** When refused: the first budget that could not take its amount. */
  refusedIndex?: number;
  /**
   * Budgets whose counter did not exist (never used, or lost with the counter store): the
   * caller seeds them from the ledger with {@link Counters.seedBudget} and calls again. Nothing
   * was reserved when this is non-empty.
   */
  missing: string[];
  /**
   * Per budget, in order, the epoch of its counter: set anew each time a counter is seeded ('' for
   * one that predates epochs). A reservation settles against the epoch it was made in
   * ({@link Counters.settle}).
   */
  epochs?: string[];
}

/**
 * Atomic counters shared by every gateway process of a deployment. memory (embedded) | redis
 * (Lua scripts). Part of the contract: all-or-nothing multi-key operations, integer arithmetic,
 * TTLs. Private to adapters: key layout, scripts, clocks (Redis uses its own TIME).
 */
export interface Counters {
  /** Takes `amount` from every bucket, or from none (a refusal changes nothing). */
  take(takes: BucketTake[]): Promise<TakeResult>;
  /**
   * Corrects a bucket after the fact: a positive `delta` gives units back (capped at capacity),
   * a negative one takes more (the bucket may go below zero: real usage was higher than the
   * estimate, and later requests wait for it).
   */
  adjust(key: string, spec: BucketSpec, delta: number): Promise<void>;
  /** Reserves `amount` on every budget, or on none. */
  reserve(items: BudgetReserve[]): Promise<ReserveResult>;
  /**
   * Replaces a reservation by the actual cost: adds `actual - reserved` (either sign). Returns the
   * new `used`. With the `epoch` the reservation was made in: when the counter has been seeded
   * anew since (lost with Redis, then reseeded from the ledger), it never held the reservation, so
   * only `actual` is added (never subtracting what it did not hold).
   */
  settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number>;
  /** Sets a budget counter that does not exist yet (from the ledger); no-op when it exists. Resolves with the new counter's epoch, or undefined when it existed. */
  seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined>;
  /** The current `used` of a budget (0 when absent). */
  budgetUsed(key: string): Promise<number>;
  close(): Promise<void>;
}
