/**
 * `Ledger` on PostgreSQL (table `usage_events`, migration 2), with the semantics of `SqliteLedger`
 * (same contract suite). `append` is one multi-row `INSERT ... ON CONFLICT DO NOTHING` (several in
 * one transaction for very large batches), so concurrent gateway processes settling the same
 * request id count it once. Aggregates are built from a fixed list of expressions (never from
 * caller text); values are always bound parameters.
 */
import type { CacheOutcome, Ledger, UsageEvent, UsageGroupBy, UsageQuery, UsageRow } from '../types.js';
import type { Queryable, Sql } from './database.js';

interface UsageEventRow {
  request_id: string;
  ts: number;
  tenant_id: string;
  key_id: string;
  user_id: string;
  route: string;
  requested_model: string;
  served_model: string;
  deployment: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cost_pico: number;
  saved_pico: number;
  latency_ms: number;
  ttft_ms: number | null;
  cache: string;
  status: number;
  attempts: number;
  usage_reported: boolean;
}

const COLUMNS = [
  'request_id', 'ts', 'tenant_id', 'key_id', 'user_id', 'route', 'requested_model', 'served_model', 'deployment',
  'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cost_pico', 'saved_pico', 'latency_ms', 'ttft_ms',
  'cache', 'status', 'attempts', 'usage_reported',
] as const satisfies readonly (keyof UsageEventRow)[];

/** Rows per INSERT: 20 columns x 1,000 rows stays well under PostgreSQL's 65,535 parameters. */
const ROWS_PER_STATEMENT = 1_000;

/** Sums of BIGINT columns are `numeric`, which postgres.js returns as text. */
type AggregateRow = Record<`g_${UsageGroupBy}`, string | undefined> & {
  requests: number;
  errors: number;
  prompt_tokens: string;
  completion_tokens: string;
  cost_pico: string;
  saved_pico: string;
};

/** The public model that served a request, or the one asked for when none did. */
const MODEL = "CASE WHEN served_model = '' THEN requested_model ELSE served_model END";

const DIMENSIONS: Record<UsageGroupBy, string> = {
  tenant: 'tenant_id',
  user: 'user_id',
  key: 'key_id',
  model: MODEL,
  route: 'route',
  day: "to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
};

const AGGREGATES = `COUNT(*) AS requests,
  COUNT(*) FILTER (WHERE status >= 400) AS errors,
  COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
  COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
  COALESCE(SUM(cost_pico), 0) AS cost_pico,
  COALESCE(SUM(saved_pico), 0) AS saved_pico`;

type Scope = Parameters<Ledger['spent']>[0];

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
      sql`INSERT INTO usage_events ${sql(chunk, COLUMNS)} ON CONFLICT (request_id) DO NOTHING`;
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
    const dims = groupDimensions(query.groupBy);
    const { where, params } = usageFilter(query, query.from, query.to);
    const select = dims.map((d) => `${DIMENSIONS[d]} AS g_${d}`);
    const positions = dims.map((_, i) => String(i + 1)).join(', ');
    const text = `SELECT ${[...select, AGGREGATES].join(', ')}
      FROM usage_events WHERE ${where}
      ${dims.length > 0 ? `GROUP BY ${positions} ORDER BY ${positions}` : ''}`;
    const rows = await this.#sql.unsafe<AggregateRow[]>(text, params, { prepare: true });
    return rows
      .filter((row) => row.requests > 0) // no GROUP BY: one row even when nothing matched
      .map((row) => ({
        group: Object.fromEntries(dims.map((d) => [d, row[`g_${d}`] ?? ''])),
        requests: row.requests,
        errors: row.errors,
        promptTokens: Number(row.prompt_tokens),
        completionTokens: Number(row.completion_tokens),
        costPico: Number(row.cost_pico),
        savedPico: Number(row.saved_pico),
      }));
  }

  async spent(scope: Scope, from: number, to: number): Promise<number> {
    const { where, params } = usageFilter(scope, from, to);
    const text = `SELECT COALESCE(SUM(cost_pico), 0) AS spent FROM usage_events WHERE ${where}`;
    const [row] = await this.#sql.unsafe<{ spent: string }[]>(text, params, { prepare: true });
    return Number(row?.spent ?? 0);
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

/** The requested dimensions, each once, in the order given; refuses unknown ones. */
function groupDimensions(groupBy: readonly UsageGroupBy[]): UsageGroupBy[] {
  for (const d of groupBy) {
    if (!Object.hasOwn(DIMENSIONS, d)) throw new Error(`unknown usage dimension '${String(d)}'`);
  }
  return [...new Set(groupBy)];
}

/**
 * `[from, to)` plus one equality per filter given (an empty string is a value: the unknown user).
 * Bounds become whole ms (ts is an integer, so `ts >= 1.5` is `ts >= 2`): a BIGINT parameter
 * takes neither a fraction nor Infinity.
 */
function usageFilter(
  filter: Scope & { model?: string },
  from: number,
  to: number,
): { where: string; params: (string | number)[] } {
  const params: (string | number)[] = [wholeMs(from), wholeMs(to)];
  const clauses = ['ts >= $1', 'ts < $2'];
  const add = (expression: string, value: string | undefined) => {
    if (value === undefined) return;
    params.push(value);
    clauses.push(`${expression} = $${params.length}`);
  };
  add('tenant_id', filter.tenantId);
  add('key_id', filter.keyId);
  add('user_id', filter.userId);
  add(MODEL, filter.model);
  return { where: clauses.join(' AND '), params };
}

/** A range bound as a BIGINT: rounded up; ±Infinity (an open end) clamped to the safe integers. */
function wholeMs(bound: number): number {
  if (Number.isFinite(bound)) return Math.ceil(bound);
  return bound > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

function toRow(e: UsageEvent): UsageEventRow {
  return {
    request_id: e.requestId,
    ts: e.ts,
    tenant_id: e.tenantId,
    key_id: e.keyId,
    user_id: e.userId,
    route: e.route,
    requested_model: e.requestedModel,
    served_model: e.servedModel,
    deployment: e.deployment,
    prompt_tokens: e.promptTokens,
    completion_tokens: e.completionTokens,
    cached_tokens: e.cachedTokens,
    cost_pico: e.costPico,
    saved_pico: e.savedPico,
    latency_ms: e.latencyMs,
    ttft_ms: e.ttftMs,
    cache: e.cache,
    status: e.status,
    attempts: e.attempts,
    usage_reported: e.usageReported,
  };
}

function toEvent(row: UsageEventRow): UsageEvent {
  return {
    requestId: row.request_id,
    ts: row.ts,
    tenantId: row.tenant_id,
    keyId: row.key_id,
    userId: row.user_id,
    route: row.route,
    requestedModel: row.requested_model,
    servedModel: row.served_model,
    deployment: row.deployment,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    cachedTokens: row.cached_tokens,
    costPico: row.cost_pico,
    savedPico: row.saved_pico,
    latencyMs: row.latency_ms,
    ttftMs: row.ttft_ms,
    cache: row.cache as CacheOutcome,
    status: row.status,
    attempts: row.attempts,
    usageReported: row.usage_reported,
  };
}
