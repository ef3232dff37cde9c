/**
 * Budget counters seeded from the ledger must count the spend the ledger does not hold yet: the
 * usage events still in a spool (a PostgreSQL outage keeps minutes of them there). The seeding
 * process adds its own spool at once (main.ts gives BudgetGuard a ledger view with
 * LedgerWriter.unflushedSpent). The other processes' spools are added here: the seeder announces
 * the new counter on the change bus and every other process adds, to that counter (only while it
 * is the same epoch), what its own spool holds in the budget's scope and period, plus what its
 * writer handed to the ledger since `readAt - skewMarginMs` (the seeder's read may have missed it).
 *
 * Every overlap errs toward counting twice (a budget refuses a little early), never toward
 * missing spend. Delivery is Redis pub/sub: best effort; a process that misses the message (its
 * subscription was down) leaves its spool's share uncounted for the rest of the period.
 */
import type { Logger } from '../observability/logger.js';
import type { ChangeBus } from '../storage/change-bus.js';
import type { Counters } from '../storage/types.js';
import type { SeededBudget } from './budgets.js';
import type { LedgerWriter } from './ledger-writer.js';

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

export class BudgetSeeding {
  private readonly skewMarginMs: number;

  constructor(private readonly opts: BudgetSeedingOptions) {
    this.skewMarginMs = opts.skewMarginMs ?? 2_000;
  }

  /** Listens for the other processes' seeds. */
  start(): void {
    this.opts.bus.subscribe((change) => {
      if (change.kind !== 'budget-seeded' || change.node === this.opts.node) return;
      const amount = this.opts.writer.unflushedSpent(change.filter, change.from, change.to, change.readAt - this.skewMarginMs);
      if (amount <= 0) return;
      this.opts.counters
        .settle(change.key, 0, amount, change.ttlMs, change.epoch)
        .catch((err: unknown) => this.opts.log.warn({ err, budget: change.key }, 'could not add spooled spend to a reseeded budget'));
    });
  }

  /** Tells the other processes about a counter this one seeded (BudgetGuard.onSeeded). */
  announce(seeded: SeededBudget): void {
    void this.opts.bus.publish({ kind: 'budget-seeded', node: this.opts.node, ...seeded });
  }
}
