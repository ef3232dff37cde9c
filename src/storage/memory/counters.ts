/**
 * `Counters` in process memory: the embedded mode's token buckets and budget counters. Same
 * semantics as the Redis adapter, checked by the same contract suite
 * (test/contracts/counters.contract.ts).
 *
 * Every method does its reads, checks and writes synchronously inside one call, so on Node's
 * single thread each call is atomic with respect to every other one; nothing awaits in between.
 *
 * Memory stays bounded without timers: a bucket is dropped once it has refilled completely (an
 * absent bucket is a full one), a budget once its TTL has passed. Expired entries are ignored at
 * once and swept opportunistically, at most once per `sweepIntervalMs`, by the next call.
 *
 * The validation and bucket arithmetic below are exported for the Redis adapter, whose Lua
 * scripts mirror them.
 */
import { randomBytes } from 'node:crypto';
import type { BucketSpec, BucketState, BucketTake, BudgetReserve, Counters, ReserveResult, TakeResult } from '../types.js';

/** How long a bucket is kept after it would be full again (absent and full are the same state). */
export const BUCKET_EXPIRY_MARGIN_MS = 1_000;
/**
 * Buckets that need longer than this to refill (refill rate zero or almost zero) are kept without
 * expiry: expiring them early would hand out units they have not earned back.
 */
export const BUCKET_MAX_EXPIRY_MS = 30 * 24 * 3_600_000;

export interface MemoryCountersOptions {
  /** Epoch milliseconds; injectable for tests. Default `Date.now`. A clock going back is tolerated (no refill). */
  now?: () => number;
  /** How often at most expired entries are swept. Default 60 s. */
  sweepIntervalMs?: number;
}

interface BucketEntry {
  tokens: number;
  /** When `tokens` was computed. */
  ts: number;
  expiresAt: number;
}

interface BudgetEntry {
  used: number;
  expiresAt: number;
  /** Set when the counter is seeded (ReserveResult.epochs). */
  epoch: string;
}

export class MemoryCounters implements Counters {
  readonly #now: () => number;
  readonly #sweepIntervalMs: number;
  readonly #buckets = new Map<string, BucketEntry>();
  readonly #budgets = new Map<string, BudgetEntry>();
  #lastSweep: number;
  #closed = false;

  constructor(opts: MemoryCountersOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#sweepIntervalMs = opts.sweepIntervalMs ?? 60_000;
    this.#lastSweep = this.#now();
  }

  async take(takes: BucketTake[]): Promise<TakeResult> {
    checkTakes(takes);
    const now = this.#begin();
    // The same key may appear twice: later takes see what earlier ones took.
    const before = new Map<string, number>();
    for (const t of takes) if (!before.has(t.key)) before.set(t.key, this.#tokens(t.key, t.spec, now));
    const after = new Map(before);
    for (let i = 0; i < takes.length; i++) {
      const { key, spec, amount } = takes[i]!;
      const available = Math.min(spec.capacity, after.get(key)!);
      if (amount > available) {
        // With the key taken earlier in this call, it must hold all of those units plus this amount.
        const needed = amount + (before.get(key)! - available);
        return {
          ok: false,
          buckets: takes.map((t) => bucketState(t.key, t.spec, before.get(t.key)!)),
          refusedIndex: i,
          retryAfterMs: retryAfterMs(spec, Math.min(spec.capacity, before.get(key)!), needed),
        };
      }
      after.set(key, available - amount);
    }
    const lastSpec = new Map(takes.map((t) => [t.key, t.spec]));
    for (const [key, tokens] of after) this.#write(key, lastSpec.get(key)!, tokens, now);
    return { ok: true, buckets: takes.map((t) => bucketState(t.key, t.spec, after.get(t.key)!)) };
  }

  async adjust(key: string, spec: BucketSpec, delta: number): Promise<void> {
    checkSpec(spec, 'spec');
    if (!Number.isFinite(delta)) throw new RangeError(`adjust delta must be a finite number, got ${delta}`);
    const now = this.#begin();
    this.#write(key, spec, Math.min(spec.capacity, this.#tokens(key, spec, now) + delta), now);
  }

  async reserve(items: BudgetReserve[]): Promise<ReserveResult> {
    checkReserves(items);
    const now = this.#begin();
    const before = new Map<string, number | undefined>();
    for (const it of items) before.set(it.key, this.#budget(it.key, now)?.used);
    const missing = [...before].filter(([, used]) => used === undefined).map(([key]) => key);
    const usedBefore = items.map((it) => before.get(it.key) ?? 0);
    if (missing.length > 0) return { ok: false, used: usedBefore, missing };
    const epochs = items.map((it) => this.#budgets.get(it.key)!.epoch);

    const after = new Map(before as Map<string, number>);
    for (let i = 0; i < items.length; i++) {
      const { key, limit, amount } = items[i]!;
      const used = after.get(key)!;
      if (used + amount > limit) return { ok: false, used: usedBefore, refusedIndex: i, missing: [], epochs };
      after.set(key, used + amount);
    }
    for (const it of items) {
      const entry = this.#budgets.get(it.key)!;
      entry.used = after.get(it.key)!;
      entry.expiresAt = now + Math.ceil(it.ttlMs);
    }
    return { ok: true, used: items.map((it) => after.get(it.key)!), missing: [], epochs };
  }

  async settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number> {
    checkSettle(reserved, actual, ttlMs);
    const now = this.#begin();
    const entry = this.#budget(key, now);
    // A lost or expired counter is not recreated from a difference: the next reserve reports it
    // missing and the caller seeds it from the ledger, which holds this request's real cost.
    if (!entry) return 0;
    // Seeded anew since the reservation: it never held it; only the actual cost is added.
    const held = epoch === undefined || epoch === entry.epoch ? reserved : 0;
    entry.used = Math.max(0, entry.used + (actual - held));
    if (!Number.isFinite(entry.expiresAt)) entry.expiresAt = now + Math.ceil(ttlMs);
    return entry.used;
  }

  async seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined> {
    checkSeed(spent, ttlMs);
    const now = this.#begin();
    if (this.#budget(key, now)) return undefined;
    const epoch = newEpoch();
    this.#budgets.set(key, { used: spent, expiresAt: now + Math.ceil(ttlMs), epoch });
    return epoch;
  }

  async budgetUsed(key: string): Promise<number> {
    return this.#budget(key, this.#begin())?.used ?? 0;
  }

  /** Idempotent. Drops every counter; later calls reject. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#buckets.clear();
    this.#budgets.clear();
  }

  /** Entries held, expired ones included until the next sweep (tests of bounded memory). */
  get entryCount(): { buckets: number; budgets: number } {
    return { buckets: this.#buckets.size, budgets: this.#budgets.size };
  }

  #begin(): number {
    if (this.#closed) throw new Error('counters are closed');
    const now = this.#now();
    if (now - this.#lastSweep >= this.#sweepIntervalMs || now < this.#lastSweep) {
      this.#lastSweep = now;
      for (const [key, b] of this.#buckets) if (b.expiresAt <= now) this.#buckets.delete(key);
      for (const [key, b] of this.#budgets) if (b.expiresAt <= now) this.#budgets.delete(key);
    }
    return now;
  }

  /** The bucket's units now (lazily refilled); a bucket never seen or expired is full. */
  #tokens(key: string, spec: BucketSpec, now: number): number {
    const entry = this.#buckets.get(key);
    if (!entry || entry.expiresAt <= now) return spec.capacity;
    return refilled(entry.tokens, entry.ts, now, spec);
  }

  #write(key: string, spec: BucketSpec, tokens: number, now: number): void {
    const ttl = bucketExpiryMs(spec, tokens);
    this.#buckets.set(key, { tokens, ts: now, expiresAt: ttl === null ? Infinity : now + ttl });
  }

  #budget(key: string, now: number): BudgetEntry | undefined {
    const entry = this.#budgets.get(key);
    if (entry && entry.expiresAt <= now) {
      this.#budgets.delete(key);
      return undefined;
    }
    return entry;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Bucket arithmetic (mirrored by the Lua scripts of the Redis adapter)                       */
/* ---------------------------------------------------------------------------------------- */

/** Units after refilling `tokens` (as of `ts`) until `now`; a clock going back refills nothing. */
export function refilled(tokens: number, ts: number, now: number, spec: BucketSpec): number {
  const elapsedSec = Math.max(0, now - ts) / 1000;
  return Math.min(spec.capacity, tokens + elapsedSec * spec.refillPerSec);
}

/** Milliseconds until the bucket holds `needed` units (Infinity when it never can). */
export function retryAfterMs(spec: BucketSpec, tokens: number, needed: number): number {
  if (needed <= tokens) return 0;
  if (needed > spec.capacity || spec.refillPerSec <= 0) return Infinity;
  return Math.ceil(((needed - tokens) / spec.refillPerSec) * 1000);
}

export function bucketState(key: string, spec: BucketSpec, tokens: number): BucketState {
  return { key, remaining: tokens, resetMs: retryAfterMs(spec, tokens, spec.capacity) };
}

/** How long to keep a bucket holding `tokens`: until full plus a margin; null = keep it. */
export function bucketExpiryMs(spec: BucketSpec, tokens: number): number | null {
  const toFull = retryAfterMs(spec, tokens, spec.capacity);
  const ttl = toFull + BUCKET_EXPIRY_MARGIN_MS;
  return ttl > BUCKET_MAX_EXPIRY_MS ? null : ttl;
}

/* ---------------------------------------------------------------------------------------- */
/* Argument checks shared by the adapters: bad arguments are caller bugs, thrown as RangeError */
/* ---------------------------------------------------------------------------------------- */

/** Budget amounts are integers (pico-dollars); beyond 2^63 Redis cannot hold them. */
const MAX_BUDGET = 2 ** 63 - 1024;

function fail(what: string, rule: string, value: unknown): never {
  throw new RangeError(`${what} must be ${rule}, got ${String(value)}`);
}

export function checkSpec(spec: BucketSpec, where: string): void {
  if (!(Number.isFinite(spec.capacity) && spec.capacity > 0)) fail(`${where}.capacity`, 'a finite number > 0', spec.capacity);
  if (!(Number.isFinite(spec.refillPerSec) && spec.refillPerSec >= 0)) {
    fail(`${where}.refillPerSec`, 'a finite number >= 0', spec.refillPerSec);
  }
}

export function checkTakes(takes: BucketTake[]): void {
  takes.forEach((t, i) => {
    checkSpec(t.spec, `takes[${i}].spec`);
    if (!(Number.isFinite(t.amount) && t.amount >= 0)) fail(`takes[${i}].amount`, 'a finite number >= 0', t.amount);
  });
}

function checkBudgetInt(what: string, value: number, min: number): void {
  if (!(Number.isInteger(value) && value >= min && Math.abs(value) <= MAX_BUDGET)) {
    fail(what, `an integer >= ${min} (pico-dollars)`, value);
  }
}

function checkTtl(what: string, ttlMs: number): void {
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) fail(what, 'a finite number of milliseconds > 0', ttlMs);
}

export function checkReserves(items: BudgetReserve[]): void {
  items.forEach((it, i) => {
    checkBudgetInt(`items[${i}].limit`, it.limit, 0);
    checkBudgetInt(`items[${i}].amount`, it.amount, 0);
    checkTtl(`items[${i}].ttlMs`, it.ttlMs);
  });
}

export function checkSettle(reserved: number, actual: number, ttlMs: number): void {
  checkBudgetInt('reserved', reserved, 0);
  checkBudgetInt('actual', actual, 0);
  checkTtl('ttlMs', ttlMs);
}

export function checkSeed(spent: number, ttlMs: number): void {
  checkBudgetInt('spent', spent, 0);
  checkTtl('ttlMs', ttlMs);
}

/** A counter's epoch: unique enough to tell two seedings of one counter apart. */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}
