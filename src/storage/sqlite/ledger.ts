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
import type { Ledger, UsageEvent, UsageGroupBy, UsageQuery, UsageRow } from '../types.js';
import type { Database } from './database.js';
import type { SqliteWriterThread } from './writer-thread.js';
import { type UsageEventRow as SharedRow, dimensions, filterColumns, groupDimensions, rollUpBound, rollUpLimit, toUsageEvent as toEvent, toUsageRow, usageSources } from '../ledger-helpers.js';

type UsageEventRow = SharedRow<number>;

type AggregateRow = Record<`g_${UsageGroupBy}`, string | undefined> & {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_pico: number;
  saved_pico: number;
};

const DIMENSIONS = dimensions("strftime('%Y-%m-%d', ts / 1000, 'unixepoch')");

type Scope = Parameters<Ledger['spent']>[0];

const INSERT_SQL = `INSERT INTO usage_events (request_id, ts, tenant_id, key_id, user_id, route, requested_model, served_model,
     deployment, prompt_tokens, completion_tokens, cached_tokens, cost_pico, saved_pico, latency_ms, ttft_ms,
     cache, status, attempts, usage_reported, tier, experiment, variant)
   VALUES (@request_id, @ts, @tenant_id, @key_id, @user_id, @route, @requested_model, @served_model,
     @deployment, @prompt_tokens, @completion_tokens, @cached_tokens, @cost_pico, @saved_pico, @latency_ms, @ttft_ms,
     @cache, @status, @attempts, @usage_reported, @tier, @experiment, @variant)
   ON CONFLICT (request_id) DO NOTHING`;

/** Oldest first, by rowid: the batch is found on the ts index; the trigger rolls each row up. */
const ROLL_UP_SQL = `DELETE FROM usage_events WHERE rowid IN (
  SELECT rowid FROM usage_events WHERE ts < @before ORDER BY ts LIMIT @limit)`;

export class SqliteLedger implements Ledger {
  readonly #db: Database;
  readonly #insert: Statement<[UsageEventRow]>;
  readonly #writer: SqliteWriterThread | undefined;
  readonly #get: Statement<[string], UsageEventRow>;
  readonly #rollUp: Statement<[{ before: number; limit: number }]>;
  /** Aggregate and spent statements by SQL text (one per query shape). */
  readonly #prepared = new Map<string, Statement>();

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
  }

  /** Inserts the batch in one transaction; a duplicate id (stored, or earlier in the batch) is skipped. */
  async append(events: UsageEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const rows = events.map(toRow);
    if (this.#writer) return this.#writer.insert(INSERT_SQL, rows);
    return this.#db.transaction(() => {
      let added = 0;
      for (const row of rows) added += this.#insert.run(row).changes;
      return added;
    }).immediate();
  }

  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const dims = groupDimensions(query.groupBy, DIMENSIONS);
    const { where, params } = usageFilter(query, query.from, query.to, 'ts');
    const { where: rollupWhere } = usageFilter(query, query.from, query.to, 'hour');
    const select = dims.map((d) => `${DIMENSIONS[d]} AS g_${d}`);
    const positions = dims.map((_, i) => String(i + 1)).join(', ');
    const text = `SELECT ${[...select, AGGREGATES].join(', ')}
      FROM (${usageSources('(status >= 400)', where, rollupWhere)})
      ${dims.length > 0 ? `GROUP BY ${positions} ORDER BY ${positions}` : ''}`;
    const rows = this.#statement(text).all(params) as AggregateRow[];
    return rows
      .filter((row) => row.requests > 0) // no GROUP BY: one row even when nothing matched
      .map((row) => ({
        group: Object.fromEntries(dims.map((d) => [d, row[`g_${d}`] ?? ''])),
        requests: row.requests,
        errors: row.errors,
        promptTokens: row.prompt_tokens,
        completionTokens: row.completion_tokens,
        costPico: row.cost_pico,
        savedPico: row.saved_pico,
      }));
  }

  /** What the scope spent: the seed of its budget counters. Shadow traffic (route `shadow`) has a budget of its own and is left out. */
  async spent(scope: Scope, from: number, to: number): Promise<number> {
    const { where, params } = usageFilter(scope, from, to, 'ts');
    const { where: rollupWhere } = usageFilter(scope, from, to, 'hour');
    const text = `SELECT (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_events WHERE ${where} AND route <> 'shadow')
      + (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_rollups WHERE ${rollupWhere} AND route <> 'shadow')`;
    return this.#statement(text).pluck().get(params) as number;
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

  #statement(text: string): Statement {
    let statement = this.#prepared.get(text);
    if (!statement) {
      if (this.#prepared.size >= 256) this.#prepared.clear(); // shapes are few; this only bounds a misuse
      statement = this.#db.prepare(text);
      this.#prepared.set(text, statement);
    }
    return statement;
  }
}

/** Over `usageSources`: a detail event is 1 request, a roll-up row its hour's count. */
const AGGREGATES = `COALESCE(SUM(requests), 0) AS requests,
  COALESCE(SUM(errors), 0) AS errors,
  COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
  COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
  COALESCE(SUM(cost_pico), 0) AS cost_pico,
  COALESCE(SUM(saved_pico), 0) AS saved_pico`;

/**
 * `[from, to)` on `time` (`ts` for events, `hour` for roll-ups) plus one equality per filter given
 * (an empty string is a value: the unknown user). The same parameters serve both tables.
 */
function usageFilter(
  filter: Scope & { model?: string },
  from: number,
  to: number,
  time: 'ts' | 'hour',
): { where: string; params: Record<string, string | number> } {
  const clauses = [`${time} >= @from`, `${time} < @to`];
  const params: Record<string, string | number> = { from, to };
  filterColumns(filter).forEach(([expression, value], i) => {
    clauses.push(`${expression} = @f${i}`);
    params[`f${i}`] = value;
  });
  return { where: clauses.join(' AND '), params };
}

function toRow(e: UsageEvent): UsageEventRow {
  return toUsageRow(e, (b) => (b ? 1 : 0));
}
