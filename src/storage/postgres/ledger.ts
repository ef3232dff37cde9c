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
import type { Ledger, UsageEvent, UsageGroupBy, UsageQuery, UsageRow } from '../types.js';
import type { Queryable, Sql } from './database.js';
import { type UsageEventRow as SharedRow, USAGE_COLUMNS, dimensions, filterColumns, groupDimensions, rollUpBound, rollUpLimit, toUsageEvent as toEvent, toUsageRow, usageSources } from '../ledger-helpers.js';

type UsageEventRow = SharedRow<boolean>;

/** Rows per INSERT: 20 columns x 1,000 rows stays well under PostgreSQL's 65,535 parameters. */
const ROWS_PER_STATEMENT = 1_000;

/** Sums of BIGINT columns are `numeric`, which postgres.js returns as text. */
type AggregateRow = Record<`g_${UsageGroupBy}`, string | undefined> & {
  requests: string;
  errors: string;
  prompt_tokens: string;
  completion_tokens: string;
  cost_pico: string;
  saved_pico: string;
};

const DIMENSIONS = dimensions("to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')");

/** Over `usageSources`: a detail event is 1 request, a roll-up row its hour's count. */
const AGGREGATES = `COALESCE(SUM(requests), 0) AS requests,
  COALESCE(SUM(errors), 0) AS errors,
  COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
  COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
  COALESCE(SUM(cost_pico), 0) AS cost_pico,
  COALESCE(SUM(saved_pico), 0) AS saved_pico`;

type Scope = Parameters<Ledger['spent']>[0];

/** First key of the roll-up's advisory lock ('roll'); the second is the schema. */
export const ROLLUP_LOCK = 0x726f6c6c;

export class PostgresLedger implements Ledger {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres`; `close()` ends it. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Returns how many events were new; durable (committed) when the promise resolves. */
  async append(events: UsageEvent[]): Promise<number> {
    // Keep the first event of an id repeated within the batch, as a sequence of appends would.
    const byId = new Map<string, UsageEventRow>();
    for (const e of events) if (!byId.has(e.requestId)) byId.set(e.requestId, toRow(e));
    const rows = [...byId.values()];
    if (rows.length === 0) return 0;

    const insert = (sql: Queryable, chunk: UsageEventRow[]) =>
      sql`INSERT INTO usage_events ${sql(chunk, USAGE_COLUMNS)} ON CONFLICT (request_id) DO NOTHING`;
    if (rows.length <= ROWS_PER_STATEMENT) return (await insert(this.#sql, rows)).count;
    return this.#sql.begin(async (tx) => {
      let added = 0;
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
        added += (await insert(tx, rows.slice(i, i + ROWS_PER_STATEMENT))).count;
      }
      return added;
    });
  }

  async aggregate(query: UsageQuery): Promise<UsageRow[]> {
    const dims = groupDimensions(query.groupBy, DIMENSIONS);
    const { where, params } = usageFilter(query, query.from, query.to, 'ts');
    const { where: rollupWhere } = usageFilter(query, query.from, query.to, 'hour');
    const select = dims.map((d) => `${DIMENSIONS[d]} AS g_${d}`);
    const positions = dims.map((_, i) => String(i + 1)).join(', ');
    const text = `SELECT ${[...select, AGGREGATES].join(', ')}
      FROM (${usageSources('CASE WHEN status >= 400 THEN 1 ELSE 0 END', where, rollupWhere)}) usage
      ${dims.length > 0 ? `GROUP BY ${positions} ORDER BY ${positions}` : ''}`;
    const rows = await this.#sql.unsafe<AggregateRow[]>(text, params, { prepare: true });
    return rows
      .filter((row) => Number(row.requests) > 0) // no GROUP BY: one row even when nothing matched
      .map((row) => ({
        group: Object.fromEntries(dims.map((d) => [d, row[`g_${d}`] ?? ''])),
        requests: Number(row.requests),
        errors: Number(row.errors),
        promptTokens: Number(row.prompt_tokens),
        completionTokens: Number(row.completion_tokens),
        costPico: Number(row.cost_pico),
        savedPico: Number(row.saved_pico),
      }));
  }

  /** What the scope spent: the seed of its budget counters. Shadow traffic (route `shadow`) has a budget of its own and is left out. */
  async spent(scope: Scope, from: number, to: number): Promise<number> {
    const { where, params } = usageFilter(scope, from, to, 'ts');
    const { where: rollupWhere } = usageFilter(scope, from, to, 'hour');
    const text = `SELECT (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_events WHERE ${where} AND route <> 'shadow')
      + (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_rollups WHERE ${rollupWhere} AND route <> 'shadow') AS spent`;
    const [row] = await this.#sql.unsafe<{ spent: string }[]>(text, params, { prepare: true });
    return Number(row?.spent ?? 0);
  }

  /** One DELETE of the oldest events before the hour of `before`, under the roll-up lock (0 when another process holds it). */
  async rollUp(before: number, limit: number): Promise<number> {
    const bound = rollUpBound(before);
    const n = rollUpLimit(limit);
    return this.#sql.begin(async (tx) => {
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
    const [row] = await this.#sql<UsageEventRow[]>`SELECT * FROM usage_events WHERE request_id = ${requestId}`;
    return row ? toEvent(row) : null;
  }

  /** Ends the pool (shared with other PostgreSQL adapters on it); idempotent. */
  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }
}

/**
 * `[from, to)` on `time` (`ts` for events, `hour` for roll-ups) plus one equality per filter given
 * (an empty string is a value: the unknown user); the same parameters serve both tables.
 * Bounds become whole ms (ts is an integer, so `ts >= 1.5` is `ts >= 2`): a BIGINT parameter
 * takes neither a fraction nor Infinity.
 */
function usageFilter(
  filter: Scope & { model?: string },
  from: number,
  to: number,
  time: 'ts' | 'hour',
): { where: string; params: (string | number)[] } {
  const params: (string | number)[] = [wholeMs(from), wholeMs(to)];
  const clauses = [`${time} >= $1`, `${time} < $2`];
  for (const [expression, value] of filterColumns(filter)) {
    params.push(value);
    clauses.push(`${expression} = $${params.length}`);
  }
  return { where: clauses.join(' AND '), params };
}

/** A range bound as a BIGINT: rounded up; ±Infinity (an open end) clamped to the safe integers. */
function wholeMs(bound: number): number {
  if (Number.isFinite(bound)) return Math.ceil(bound);
  return bound > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

function toRow(e: UsageEvent): UsageEventRow {
  return toUsageRow(e, (b) => b);
}
