/**
 * `Ledger` on PostgreSQL (table `usage_events`, migration 2; hourly roll-ups in `usage_rollups`,
 * migration 10), with the semantics of `SqliteLedger` (same contract suite). `append` is one
 * multi-row `INSERT ... ON CONFLICT DO NOTHING` (several in one transaction for very large
 * batches), so concurrent gateway processes settling the same request id count it once.
 * Aggregates are built from a fixed list of expressions (never from caller text); values are
 * always bound parameters. They read events and roll-ups together (one UNION ALL).
 *
 * `rollUp` is one DELETE of the oldest events; the statement trigger `usage_events_roll_up`
 * (migration 10) folds the deleted rows into their hours' roll-ups within that statement (a row
 * is deleted by one transaction only: never counted twice, even by two processes at once). One
 * process at a time: the transaction first takes a per-schema advisory lock, and a process that
 * does not get it skips its turn (returns 0).
 */
import { type AggregateRow, type LedgerDialect, USAGE_COLUMNS, type UsageEventRow as SharedRow, aggregateSql, rollUpBound, rollUpLimit, spentSql, toUsageEvent as toEvent, toUsageRow, toUsageRows, wholeMs } from '../ledger-helpers.js';
import type { Ledger, UsageEvent, UsageQuery, UsageRow } from '../types.js';
import { insertBatch } from './batch-writes.js';
import { PostgresAdapter } from './database.js';

type UsageEventRow = SharedRow<boolean>;

/** Bounds become whole ms (ts is an integer, so `ts >= 1.5` is `ts >= 2`): a BIGINT parameter takes neither a fraction nor Infinity. */
const DIALECT: LedgerDialect = {
  day: "to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
  errors: 'CASE WHEN status >= 400 THEN 1 ELSE 0 END',
  placeholder: (i) => `$${i}`,
  bound: wholeMs,
};

/** First key of the roll-up's advisory lock ('roll'); the second is the schema. */
export const ROLLUP_LOCK = 0x726f6c6c;

export class PostgresLedger extends PostgresAdapter implements Ledger {
  /** Returns how many events were new; durable (committed) when the promise resolves. */
  async append(events: UsageEvent[]): Promise<number> {
    // Keep the first event of an id repeated within the batch, as a sequence of appends would.
    return insertBatch(this.sql, events.map(toRow), (row) => row.request_id, (sql, chunk) =>
      sql`INSERT INTO usage_events ${sql(chunk, USAGE_COLUMNS)} ON CONFLICT (request_id) DO NOTHING`,
    );
  }

  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const { text, values, dims } = aggregateSql(DIALECT, query);
    return toUsageRows(await this.sql.unsafe<AggregateRow[]>(text, values, { prepare: true }), dims);
  }

  /** What the scope spent: the seed of its budget counters. Shadow traffic (route `shadow`) has a budget of its own and is left out. */
  async spent(scope: Parameters<Ledger['spent']>[0], from: number, to: number): Promise<number> {
    const { text, values } = spentSql(DIALECT, scope, from, to);
    const [row] = await this.sql.unsafe<{ spent: string }[]>(text, values, { prepare: true });
    return Number(row?.spent ?? 0);
  }

  /** One DELETE of the oldest events before the hour of `before`, under the roll-up lock (0 when another process holds it). */
  async rollUp(before: number, limit: number): Promise<number> {
    const bound = rollUpBound(before);
    const n = rollUpLimit(limit);
    return this.sql.begin(async (tx) => {
      // The pool's statement_timeout applies (a batch is a few ms): a longer one of its own would
      // outlast the connection watchdog (statement timeout + 1 s), which would drop it.
      const [lock] = await tx<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${ROLLUP_LOCK}, hashtext(current_schema())) AS locked`;
      if (!lock?.locked) return 0;
      const result = await tx`DELETE FROM usage_events WHERE request_id IN (
        SELECT request_id FROM usage_events WHERE ts < ${bound} ORDER BY ts LIMIT ${n})`;
      return result.count;
    });
  }

  async get(requestId: string): Promise<UsageEvent | null> {
    const [row] = await this.sql<UsageEventRow[]>`SELECT * FROM usage_events WHERE request_id = ${requestId}`;
    return row ? toEvent(row) : null;
  }

  /** Ends the pool (shared with other PostgreSQL adapters on it); idempotent. */
  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

function toRow(e: UsageEvent): UsageEventRow {
  return toUsageRow(e, (b) => b);
}
