/**
 * The ledger's roll-up job (issue 15, item 7): usage events older than `ledger.detailRetentionDays`
 * are folded into hourly rows and deleted, so the ledger's size stops growing with every request
 * (a detail event is ~0.3 KB; an hour's roll-up row stands for all the requests of one tenant,
 * key, user, route and model pair in that hour).
 *
 * Every `rollupEveryMs` (and once at start) a pass calls `Ledger.rollUp(cutoff, rollupBatchSize)`
 * until a batch comes back short, pausing `rollupPauseMs` between two batches. The cutoff is the
 * start of the UTC hour `detailRetentionDays` ago (the adapters round it down too), so an hour is
 * never split between detail and roll-up: reports over whole hours and days, and budget periods,
 * give the same totals before and after. Each batch is one statement (see the adapters): a crash
 * or a failure leaves every event either in detail or in its roll-up, never both; a failed pass is
 * logged and tried again at the next interval. In distributed mode every process runs the job and
 * the PostgreSQL adapter lets one at a time roll up (advisory lock; the others' batches return 0).
 *
 * Passes never overlap in one process; `close()` stops the timer and waits for the batch in flight.
 */
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import type { LedgerConfig } from '../config/ledger-schema.js';
import type { Logger } from '../observability/logger.js';
import { rollUpBound } from '../storage/ledger-helpers.js';
import type { Ledger } from '../storage/types.js';

const DAY_MS = 86_400_000;

export interface UsageRollupOptions {
  ledger: Pick<Ledger, 'rollUp'>;
  config: LedgerConfig;
  log: Logger;
  /** Where the job's counters are registered (the gateway's metrics registry). */
  registry?: Registry;
  now?: () => number;
}

/** What one pass did. */
export interface RollupPass {
  /** Events rolled up (and deleted from the detail). */
  rolledUp: number;
  batches: number;
  /** Events that arrived before this (a whole UTC hour) were due; null: roll-ups are off. */
  cutoff: number | null;
}

/** The start of the UTC hour `detailRetentionDays` before `now`: events before it are rolled up. */
export function rollupCutoff(now: number, detailRetentionDays: number): number {
  return rollUpBound(now - detailRetentionDays * DAY_MS);
}

export class UsageRollup {
  readonly #ledger: UsageRollupOptions['ledger'];
  readonly #config: LedgerConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #rolledUp: Counter;
  readonly #failures: Counter;
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<RollupPass> | undefined;
  #pauseTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(opts: UsageRollupOptions) {
    this.#ledger = opts.ledger;
    this.#config = opts.config;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => Date.now()); // read at each call: tests fake Date
    const registers = opts.registry ? [opts.registry] : [];
    this.#rolledUp = new Counter({
      name: 'tollgate_ledger_rolled_up_events_total',
      help: 'Usage events folded into hourly roll-ups (and deleted from the detail) by this process, after ledger.detailRetentionDays.',
      registers,
    });
    this.#failures = new Counter({
      name: 'tollgate_ledger_rollup_failures_total',
      help: 'Roll-up passes that failed (tried again at the next ledger.rollupEveryMs).',
      registers,
    });
  }

  /** Whether this ledger rolls up at all (config `detailRetentionDays: null` or an adapter without `rollUp`: no). */
  get enabled(): boolean {
    return this.#config.detailRetentionDays !== null && typeof this.#ledger.rollUp === 'function';
  }

  /** Runs a pass now and then every `rollupEveryMs` (an unref'd timer). */
  start(): void {
    if (!this.enabled || this.#timer || this.#closed) return;
    this.#timer = setInterval(() => void this.run().catch(() => undefined), this.#config.rollupEveryMs);
    this.#timer.unref();
    void this.run().catch(() => undefined);
  }

  /**
   * One pass: batches until none is full (or the job is closed). A call while a pass runs
   * waits for it and returns its result. Rejects when a batch fails (logged, counted).
   */
  run(): Promise<RollupPass> {
    this.#pass ??= this.#runPass().finally(() => (this.#pass = undefined));
    return this.#pass;
  }

  async #runPass(): Promise<RollupPass> {
    const days = this.#config.detailRetentionDays;
    const rollUp = this.#ledger.rollUp?.bind(this.#ledger);
    if (days === null || !rollUp) return { rolledUp: 0, batches: 0, cutoff: null };
    const cutoff = rollupCutoff(this.#now(), days);
    const size = this.#config.rollupBatchSize;
    let rolledUp = 0;
    let batches = 0;
    try {
      while (!this.#closed) {
        if (batches > 0) await this.#pause();
        if (this.#closed) break;
        const n = await rollUp(cutoff, size);
        batches++;
        rolledUp += n;
        this.#rolledUp.inc(n);
        if (n < size) break;
      }
    } catch (err) {
      this.#failures.inc();
      this.#log.warn({ err, rolledUp, cutoff: new Date(cutoff).toISOString() }, 'ledger: could not roll up old usage events (tried again later)');
      throw err;
    }
    if (rolledUp > 0) {
      this.#log.info({ rolledUp, batches, before: new Date(cutoff).toISOString() }, 'ledger: usage events rolled up into hourly rows');
    }
    return { rolledUp, batches, cutoff };
  }

  /** `rollupPauseMs`, cut short by `close()`. */
  #pause(): Promise<void> {
    const ms = this.#config.rollupPauseMs;
    if (ms === 0) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#pauseTimer = setTimeout(resolve, ms); // not unref'd: a pass in progress keeps a script alive until it ends
    });
  }

  /** Stops the timer and waits for the batch in flight (a pass stops after it). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#pauseTimer);
    this.#wake?.();
    await this.#pass?.catch(() => undefined);
  }
}
