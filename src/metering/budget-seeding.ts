/**
 * Budget counters seeded from the ledger must count the spend the ledger does not hold yet: the
 * usage events still in a spool (a PostgreSQL outage keeps minutes of them there). The seeding
 * process adds its own spool at once (src/capabilities/metering.ts gives BudgetGuard a ledger view with
 * LedgerWriter.unflushedSpent). The other processes' spools are added here: the seeder announces
 * the new counter on the change bus and every other process adds, to that counter (only while it
 * is the same epoch), what its own spool holds in the budget's scope and period, plus what its
 * writer handed to the ledger since `readAt - skewMarginMs` (the seeder's read may have missed it).
 *
 * Every overlap errs toward counting twice (a budget refuses a little early), never toward
 * missing spend. Delivery is Redis pub/sub, best effort: a process whose subscription was down
 * (Redis just restarted) misses the message. So a process also notices a new epoch by itself: a
 * reservation that returns an epoch other than the one it last saw for that counter, which it
 * did not create, makes it add its share then (its flushes of the last RECENT_MS included), once
 * per epoch whichever way it learns of it.
 */
import type { Logger } from '../observability/logger.js';
import { type ChangeBus, onMessage } from '../storage/change-bus.js';
import type { Counters } from '../storage/types.js';
import type { SeededBudget } from './budgets.js';
import type { LedgerWriter } from './ledger-writer.js';

/** A process seeded a budget counter from the ledger: the others add the spend still in their spools. */
interface BudgetSeededMessage extends SeededBudget {
  kind: 'budget-seeded';
  node: string;
  readAt: number;
}

export interface BudgetSeedingOptions {
  bus: ChangeBus;
  counters: Pick<Counters, 'settle'>;
  writer: Pick<LedgerWriter, 'unflushedSpent'>;
  /** This process's id on the bus (its own announcements are skipped). */
  node: string;
  log: Logger;
  /** Clock skew allowed between processes, ms (default 2000). */
  skewMarginMs?: number;
}

/** How far back a share added on noticing a new epoch (no announced read time) counts flushes. */
const NOTICED_LOOKBACK_MS = 10_000;
/** Counters remembered (epochs seen, shares added), at most; cleared past it. */
const MAX_REMEMBERED = 100_000;

export class BudgetSeeding {
  private readonly skewMarginMs: number;
  /** The epoch last seen per counter key. */
  private readonly seen = new Map<string, string>();
  /** `key epoch` pairs this process created or already added its share to. */
  private readonly done = new Set<string>();

  constructor(private readonly opts: BudgetSeedingOptions) {
    this.skewMarginMs = opts.skewMarginMs ?? 2_000;
  }

  /** Listens for the other processes' seeds. */
  start(): void {
    onMessage<BudgetSeededMessage>(
      this.opts.bus,
      'budget-seeded',
      (m) => {
        if (m.node !== this.opts.node) this.addShare(m, m.readAt - this.skewMarginMs);
      },
      (m) => {
        const c = m as BudgetSeededMessage;
        return typeof c.key === 'string' && typeof c.epoch === 'string' && Number.isFinite(c.readAt);
      },
    );
  }

  /** Tells the other processes about a counter this one seeded (BudgetGuard.onSeeded). */
  announce(seeded: SeededBudget): void {
    this.remember(`${seeded.key} ${seeded.epoch}`);
    this.seen.set(seeded.key, seeded.epoch);
    void this.opts.bus.publish({ kind: 'budget-seeded', node: this.opts.node, ...seeded } satisfies BudgetSeededMessage);
  }

  /** The epochs a reservation was made on (BudgetGuard.onReserved): a new one this process did not create gets its share. */
  noticed(budgets: Array<{ key: string; filter: SeededBudget['filter']; from: number; to: number; ttlMs: number }>, epochs: readonly string[]): void {
    for (let i = 0; i < budgets.length; i++) {
      const epoch = epochs[i];
      const b = budgets[i]!;
      if (!epoch) continue;
      const before = this.seen.get(b.key);
      if (before === epoch) continue;
      if (this.seen.size >= MAX_REMEMBERED) this.seen.clear();
      this.seen.set(b.key, epoch);
      if (before !== undefined) this.addShare({ ...b, epoch }, Date.now() - NOTICED_LOOKBACK_MS);
    }
  }

  private addShare(c: { key: string; filter: SeededBudget['filter']; from: number; to: number; ttlMs: number; epoch: string }, flushedSince: number): void {
    const id = `${c.key} ${c.epoch}`;
    if (this.done.has(id)) return;
    this.remember(id);
    const amount = this.opts.writer.unflushedSpent(c.filter, c.from, c.to, flushedSince);
    if (amount <= 0) return;
    this.opts.counters
      .settle(c.key, 0, amount, c.ttlMs, c.epoch)
      .catch((err: unknown) => this.opts.log.warn({ err, budget: c.key }, 'could not add spooled spend to a reseeded budget'));
  }

  private remember(id: string): void {
    if (this.done.size >= MAX_REMEMBERED) this.done.clear();
    this.done.add(id);
  }
}
