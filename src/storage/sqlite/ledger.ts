/**
 * `Ledger` on the embedded SQLite database (table `usage_events`, migration 2; hourly roll-ups in
 * `usage_rollups`, migration 11). better-sqlite3 is synchronous: `append` commits before its
 * promise resolves, so a resolved append is durable. Aggregate statements are built from a fixed
 * list of expressions (never from caller text) and prepared once per query shape; they read
 * events and roll-ups together (one UNION ALL).
 *
 * `rollUp` is one DELETE of the oldest events; the trigger `usage_events_roll_up` (migration 11)
 * folds each deleted row into its hour's roll-up within that statement, so a crash leaves either
 * both or neither, and an event, deleted once, is counted once. On the writer thread in the
 * gateway (like request-log pruning), so the event loop does not wait for it.
 */
import type { Statement } from 'better-sqlite3';
import { type AggregateRow, type LedgerDialect, USAGE_COLUMNS, type UsageEventRow as SharedRow, aggregateSql, rollUpBound, rollUpLimit, spentSql, toUsageEvent as toEvent, toUsageRow, toUsageRows } from '../ledger-helpers.js';
import type { Ledger, UsageEvent, UsageQuery, UsageRow } from '../types.js';
import { StatementCache, commitBatch, deleteOldestSql, insertSql, numbered } from './batch-writes.js';
import type { Database } from './database.js';
import type { SqliteWriterThread } from './writer-thread.js';

type UsageEventRow = SharedRow<number>;

const DIALECT: LedgerDialect = {
  day: "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')",
  errors: '(status >= 400)',
  placeholder: (i) => `@p${i}`,
  bound: (ms) => ms,
};

const INSERT_SQL = insertSql('usage_events', USAGE_COLUMNS, 'request_id');

/** The trigger rolls each deleted row up. */
const ROLL_UP_SQL = deleteOldestSql('usage_events');

export class SqliteLedger implements Ledger {
  readonly #db: Database;
  readonly #insert: Statement<[UsageEventRow]>;
  readonly #writer: SqliteWriterThread | undefined;
  readonly #get: Statement<[string], UsageEventRow>;
  readonly #rollUp: Statement<[{ before: number; limit: number }]>;
  /** Aggregate and spent statements (one per query shape). */
  readonly #prepared: StatementCache;

  /**
   * `writer`: commit appends on the writer thread (the gateway's embedded mode) instead of on
   * this connection; reads stay here. Without it (tests, tools), appends commit synchronously.
   */
  constructor(db: Database, opts: { writer?: SqliteWriterThread } = {}) {
    this.#db = db;
    this.#insert = db.prepare(INSERT_SQL);
    this.#writer = opts.writer;
    this.#get = db.prepare('SELECT * FROM usage_events WHERE request_id = ?');
    this.#rollUp = db.prepare(ROLL_UP_SQL);
    this.#prepared = new StatementCache(db);
  }

  /** Inserts the batch in one transaction; a duplicate id (stored, or earlier in the batch) is skipped. */
  async append(events: UsageEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    return commitBatch(this.#db, this.#writer, INSERT_SQL, this.#insert, events.map(toRow));
  }

  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const { text, values, dims } = aggregateSql(DIALECT, query);
    return toUsageRows(this.#prepared.get(text).all(numbered(values)) as AggregateRow[], dims);
  }

  /** What the scope spent: the seed of its budget counters. Shadow traffic (route `shadow`) has a budget of its own and is left out. */
  async spent(scope: Parameters<Ledger['spent']>[0], from: number, to: number): Promise<number> {
    const { text, values } = spentSql(DIALECT, scope, from, to);
    return this.#prepared.get(text).pluck().get(numbered(values)) as number;
  }

  /** One DELETE of the oldest events before the hour of `before`: on the writer thread when there is one. */
  async rollUp(before: number, limit: number): Promise<number> {
    const params = { before: rollUpBound(before), limit: rollUpLimit(limit) };
    if (this.#writer) return this.#writer.insert(ROLL_UP_SQL, [params]);
    return this.#rollUp.run(params).changes;
  }

  async get(requestId: string): Promise<UsageEvent | null> {
    const row = this.#get.get(requestId);
    return row ? toEvent(row) : null;
  }

  /** Closes the database (shared with other SQLite adapters on it); idempotent. */
  async close(): Promise<void> {
    await this.#writer?.stop();
    if (this.#db.open) this.#db.close();
  }
}

function toRow(e: UsageEvent): UsageEventRow {
  return toUsageRow(e, (b) => (b ? 1 : 0));
}
