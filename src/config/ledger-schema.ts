/**
 * The `ledger` section of the config: how long usage events are kept one row per request before
 * they are rolled up into hourly rows (src/metering/usage-rollup.ts). See docs/CONFIG.md#ledger.
 */
import { z } from 'zod';

export const ledgerSchema = z
  .object({
    /**
     * Usage events are kept in detail this many days, then rolled up into one row per UTC hour,
     * tenant, key, end user, route, requested and served model (and deleted). Reports, budgets
     * and the dashboard read both; per-request look-ups, experiment results and their feedback
     * see only the detail. `null`: keep every event in detail (the database grows ~0.3 KB per
     * request for good). At least 1 day (the dashboard's 24 hours stay in detail).
     */
    detailRetentionDays: z.number().min(1).max(36_500).nullable().default(7),
    /** How often the roll-up runs (each process tries; one at a time rolls up in distributed mode). */
    rollupEveryMs: z.number().int().min(1_000).max(86_400_000).default(60_000),
    /**
     * Events rolled up per statement: one short write transaction (in embedded mode on the
     * writer thread, holding the database's write lock that long). A pass runs batches until
     * nothing is left, pausing `rollupPauseMs` between two.
     */
    rollupBatchSize: z.number().int().min(1).max(10_000).default(100),
    /** Pause between two batches of a pass, so other writers get the lock. */
    rollupPauseMs: z.number().int().min(0).max(60_000).default(20),
  })
  .strict();

export type LedgerConfig = z.infer<typeof ledgerSchema>;
