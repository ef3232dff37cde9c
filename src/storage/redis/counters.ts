/**
 * `Counters` on Redis: the distributed mode's token buckets and budget counters, one limit across
 * any number of gateway processes. Every multi-key operation is one Lua script (EVALSHA through
 * ioredis `defineCommand`, falling back to EVAL after a SCRIPT FLUSH or a failover), so it is
 * atomic; the scripts take their time from Redis (TIME), never from the process.
 *
 * Keys: `<prefix>bucket:<key>` (hash {tokens, ts}) and `<prefix>budget:<key>` (integer string).
 * A script touches several keys, so on Redis Cluster they would have to share a slot; this
 * adapter targets a single Redis (or a Sentinel-managed primary).
 *
 * The client is the caller's: `close()` does not quit it unless `ownsClient: true` was given
 * (several adapters usually share one connection, and the composition root closes it).
 *
 * Deadline (`commandTimeoutMs`): an operation that gets no reply in time rejects, so a paused or
 * partitioned Redis (connection open, replies never coming) fails like a dead one and the caller's
 * failure policy applies. The deadline is this adapter's, not the client's (give it a client
 * without ioredis `commandTimeout`): the command stays on the wire and its reply, when it comes,
 * is still read. A reservation that was refused by its deadline but then made once Redis
 * answered is released at once, so a stall leaves no phantom spend in a budget. A late `take`
 * stays taken (the bucket refills within its window), a late `settle` or seed applies as meant.
 */
import type { Redis } from 'ioredis';
import type { BucketSpec, BucketTake, BudgetReserve, Counters, ReserveResult, TakeResult } from '../types.js';
import {
  BUCKET_EXPIRY_MARGIN_MS,
  BUCKET_MAX_EXPIRY_MS,
  checkReserves,
  checkSeed,
  checkSettle,
  checkSpec,
  checkTakes,
  newEpoch,
} from '../memory/counters.js';
import { type ScriptCall, defineScripts } from './commands.js';
import { ADJUST_LUA, RESERVE_LUA, SEED_LUA, SETTLE_LUA, TAKE_LUA } from './counter-scripts.js';

export interface RedisCountersOptions {
  /** Prepended to every key (tests use a unique one). Default `tollgate:counters:`. */
  prefix?: string;
  /** Quit the client on `close()`. Default false: the client belongs to whoever created it. */
  ownsClient?: boolean;
  /** Deadline of each operation, in ms (see above). Default: none, an operation waits for its reply. */
  commandTimeoutMs?: number;
}

/** An operation of {@link RedisCounters} that got no reply within its deadline. */
export class CounterCommandTimeout extends Error {
  constructor(operation: string, ms: number) {
    super(`redis counters: ${operation} got no reply within ${ms} ms`);
    this.name = 'CounterCommandTimeout';
  }
}

const SCRIPTS = {
  take: { name: 'tollgateCountersTake', lua: TAKE_LUA },
  adjust: { name: 'tollgateCountersAdjust', lua: ADJUST_LUA },
  reserve: { name: 'tollgateCountersReserve', lua: RESERVE_LUA },
  settle: { name: 'tollgateCountersSettle', lua: SETTLE_LUA },
  seed: { name: 'tollgateCountersSeed', lua: SEED_LUA },
};

export class RedisCounters implements Counters {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ownsClient: boolean;
  readonly #timeoutMs: number | undefined;
  readonly #scripts: Record<keyof typeof SCRIPTS, ScriptCall>;
  #closed = false;

  constructor(redis: Redis, opts: RedisCountersOptions = {}) {
    this.#redis = redis;
    this.#prefix = opts.prefix ?? 'tollgate:counters:';
    this.#ownsClient = opts.ownsClient ?? false;
    this.#timeoutMs = opts.commandTimeoutMs;
    this.#scripts = defineScripts(redis, SCRIPTS);
  }

  async take(takes: BucketTake[]): Promise<TakeResult> {
    checkTakes(takes);
    this.#checkOpen();
    if (takes.length === 0) return { ok: true, buckets: [] };
    const keys = takes.map((t) => this.#bucketKey(t.key));
    const args = takes.flatMap((t) => [num(t.spec.capacity), num(t.spec.refillPerSec), num(t.amount)]);
    const reply = (await this.#deadline(
      'take',
      this.#scripts.take(keys.length, ...keys, ...args, String(BUCKET_EXPIRY_MARGIN_MS), String(BUCKET_MAX_EXPIRY_MS)),
    )) as unknown[];
    const buckets = takes.map((t, i) => ({
      key: t.key,
      remaining: Number(reply[3 + 2 * i]),
      resetMs: ms(reply[4 + 2 * i]),
    }));
    if (Number(reply[0]) === 1) return { ok: true, buckets };
    return { ok: false, buckets, refusedIndex: Number(reply[1]), retryAfterMs: ms(reply[2]) };
  }

  async adjust(key: string, spec: BucketSpec, delta: number): Promise<void> {
    checkSpec(spec, 'spec');
    if (!Number.isFinite(delta)) throw new RangeError(`adjust delta must be a finite number, got ${delta}`);
    this.#checkOpen();
    await this.#deadline(
      'adjust',
      this.#scripts.adjust(
        1,
        this.#bucketKey(key),
        num(spec.capacity),
        num(spec.refillPerSec),
        num(delta),
        String(BUCKET_EXPIRY_MARGIN_MS),
        String(BUCKET_MAX_EXPIRY_MS),
      ),
    );
  }

  async reserve(items: BudgetReserve[]): Promise<ReserveResult> {
    checkReserves(items);
    this.#checkOpen();
    if (items.length === 0) return { ok: true, used: [], missing: [] };
    const keys = items.map((it) => this.#budgetKey(it.key));
    const epochKeys = keys.map(epochKey);
    const args = items.flatMap((it) => [int(it.limit), int(it.amount), String(Math.ceil(it.ttlMs))]);
    const [ok, refusedIndex, used, missingIdx, epochs] = (await this.#deadline(
      'reserve',
      this.#scripts.reserve(2 * keys.length, ...keys, ...epochKeys, ...args),
      // Refused by the deadline but made after all: give the reservations back (to the counter they were made on).
      (late) => {
        const reply = late as unknown[];
        if (Number(reply[0]) !== 1) return;
        const lateEpochs = (reply[4] as unknown[] | undefined) ?? [];
        for (let i = 0; i < keys.length; i++) {
          const amount = (-BigInt(int(items[i]!.amount))).toString();
          void this.#scripts.settle(2, keys[i]!, epochKeys[i]!, amount, String(Math.ceil(items[i]!.ttlMs)), String(lateEpochs[i] ?? ''), '0').catch(() => undefined);
        }
      },
    )) as [unknown, unknown, unknown[], unknown[], unknown[] | undefined];
    const result: ReserveResult = {
      ok: Number(ok) === 1,
      used: used.map(Number),
      missing: missingIdx.map((i) => items[Number(i)]!.key),
      epochs: (epochs ?? []).map(String),
    };
    if (Number(refusedIndex) >= 0) result.refusedIndex = Number(refusedIndex);
    return result;
  }

  async settle(key: string, reserved: number, actual: number, ttlMs: number, epoch?: string): Promise<number> {
    checkSettle(reserved, actual, ttlMs);
    this.#checkOpen();
    const delta = BigInt(actual) - BigInt(reserved);
    const budget = this.#budgetKey(key);
    const ifReseeded = epoch === undefined ? [] : [epoch, int(actual)];
    return Number(await this.#deadline('settle', this.#scripts.settle(2, budget, epochKey(budget), delta.toString(), String(Math.ceil(ttlMs)), ...ifReseeded)));
  }

  async seedBudget(key: string, spent: number, ttlMs: number): Promise<string | undefined> {
    checkSeed(spent, ttlMs);
    this.#checkOpen();
    const budget = this.#budgetKey(key);
    const epoch = newEpoch();
    const created = await this.#deadline('seed', this.#scripts.seed(2, budget, epochKey(budget), int(spent), String(Math.ceil(ttlMs)), epoch));
    return Number(created) === 1 ? epoch : undefined;
  }

  async budgetUsed(key: string): Promise<number> {
    this.#checkOpen();
    const value = await this.#deadline('budgetUsed', this.#redis.get(this.#budgetKey(key)));
    return value === null ? 0 : Number(value);
  }

  /** Idempotent. Quits the client only when this adapter owns it (`ownsClient: true`). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#ownsClient) return;
    const redis = this.#redis;
    const ended = new Promise<void>((resolve) => (redis.status === 'end' ? resolve() : redis.once('end', () => resolve())));
    await redis.quit().catch(() => redis.disconnect());
    await ended;
  }

  #bucketKey(key: string): string {
    return `${this.#prefix}bucket:${key}`;
  }

  #budgetKey(key: string): string {
    return `${this.#prefix}budget:${key}`;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('counters are closed');
  }

  /**
   * `reply`, or a {@link CounterCommandTimeout} once `commandTimeoutMs` passed without it; a reply
   * that comes after that goes to `late` (errors after the deadline are dropped).
   */
  #deadline<T>(operation: string, reply: Promise<T>, late?: (value: T) => void): Promise<T> {
    const ms = this.#timeoutMs;
    if (ms === undefined) return reply;
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new CounterCommandTimeout(operation, ms));
      }, ms);
      reply.then(
        (value) => {
          clearTimeout(timer);
          if (!timedOut) resolve(value);
          else late?.(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!timedOut) reject(err);
        },
      );
    });
  }
}

/** A double for Lua's tonumber, without loss (shortest round-trip form). */
function num(n: number): string {
  return String(n);
}

/** An integer as plain digits (String() would switch to exponent notation from 1e21). */
function int(n: number): string {
  return BigInt(n).toString();
}

/** A millisecond field of a script reply: -1 stands for Infinity. */
function ms(value: unknown): number {
  const n = Number(value);
  return n < 0 ? Infinity : n;
}

/** Where a budget counter's epoch is kept (set when it is seeded; see SEED_LUA). */
function epochKey(budgetKey: string): string {
  return `${budgetKey}~epoch`;
}
