/**
 * What the SQL `Ledger` adapters share, so SQLite and PostgreSQL cannot drift apart on it: the
 * row shape of `usage_events` and its mapping to UsageEvent, the roll-up bounds, and the SQL of
 * the reports (aggregates and spend). Each adapter keeps only its dialect (`LedgerDialect`:
 * placeholders, the `day` expression, how it counts errors; and how `usage_reported` is stored).
 */
import type { CacheOutcome, Ledger, UsageEvent, UsageGroupBy, UsageQuery, UsageRow } from './types.js';

/** A `usage_events` row; `R` is how the database stores a boolean (SQLite 0/1, PostgreSQL boolean). */
export interface UsageEventRow<R = number | boolean> {
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
  usage_reported: R;
  tier: string;
  experiment: string;
  variant: string;
}

export const USAGE_COLUMNS = [
  'request_id', 'ts', 'tenant_id', 'key_id', 'user_id', 'route', 'requested_model', 'served_model', 'deployment',
  'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cost_pico', 'saved_pico', 'latency_ms', 'ttft_ms',
  'cache', 'status', 'attempts', 'usage_reported', 'tier', 'experiment', 'variant',
] as const satisfies readonly (keyof UsageEventRow)[];

/** The public model that served a request, or the one asked for when none did. */
export const MODEL_EXPRESSION = "CASE WHEN served_model = '' THEN requested_model ELSE served_model END";

/** A roll-up row's span: one UTC hour. */
export const HOUR_MS = 3_600_000;

/** The bound of a roll-up (`Ledger.rollUp`): `before` rounded down to a whole UTC hour, so a roll-up never splits an hour. */
export function rollUpBound(before: number): number {
  if (!Number.isFinite(before)) throw new RangeError(`roll-up bound must be a finite epoch ms, got ${before}`);
  return Math.floor(before / HOUR_MS) * HOUR_MS;
}

/** A roll-up batch size: a positive integer (a bound on the work of one statement). */
export function rollUpLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`roll-up limit must be a positive integer, got ${limit}`);
  return limit;
}

/* Reports: `Ledger.aggregate` and `Ledger.spent` read detail events (`usage_events`, one request
 * each) and roll-ups (`usage_rollups`, an hour's sums, dated at the hour's start) together, with
 * one UNION ALL. The SQL is built from a fixed list of expressions (never from caller text);
 * values are always bound parameters. */

/** What a report's SQL differs in between SQLite and PostgreSQL. */
export interface LedgerDialect {
  /** The `day` dimension: YYYY-MM-DD (UTC) of `ts`. */
  day: string;
  /** 0/1 for status >= 400. */
  errors: string;
  /** The i-th bound value (1-based): `@p1`, `$1`. */
  placeholder(index: number): string;
  /** A range bound as the database takes it. */
  bound(ms: number): number;
}

type Scope = Parameters<Ledger['spent']>[0];

/** A report's SQL and its values, in placeholder order. */
export interface LedgerSql {
  text: string;
  values: Array<string | number>;
}

/** A row of `aggregateSql` (drivers may return sums as text). */
export type AggregateRow = Record<`g_${UsageGroupBy}`, string | undefined> &
  Record<'requests' | 'errors' | 'prompt_tokens' | 'completion_tokens' | 'cost_pico' | 'saved_pico', number | string>;

/** Over the UNION ALL: a detail event is 1 request, a roll-up row its hour's count. */
const AGGREGATES = `COALESCE(SUM(requests), 0) AS requests,
  COALESCE(SUM(errors), 0) AS errors,
  COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
  COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
  COALESCE(SUM(cost_pico), 0) AS cost_pico,
  COALESCE(SUM(saved_pico), 0) AS saved_pico`;

/** The aggregate of a query, one row per group (one row in all without `groupBy`); its dimensions, each once, in the order given. */
export function aggregateSql(d: LedgerDialect, query: UsageQuery): LedgerSql & { dims: UsageGroupBy[] } {
  const known: Record<UsageGroupBy, string> = { tenant: 'tenant_id', user: 'user_id', key: 'key_id', model: MODEL_EXPRESSION, route: 'route', day: d.day };
  for (const g of query.groupBy) {
    if (!Object.hasOwn(known, g)) throw new Error(`unknown usage dimension '${String(g)}'`);
  }
  const dims = [...new Set(query.groupBy)];
  const { where, rollupWhere, values } = usageWhere(d, query, query.from, query.to);
  const keys = 'tenant_id, key_id, user_id, route, requested_model, served_model';
  const select = dims.map((g) => `${known[g]} AS g_${g}`);
  const positions = dims.map((_, i) => String(i + 1)).join(', ');
  const text = `SELECT ${[...select, AGGREGATES].join(', ')}
      FROM (SELECT ts, ${keys}, 1 AS requests, ${d.errors} AS errors, prompt_tokens, completion_tokens, cost_pico, saved_pico
      FROM usage_events WHERE ${where}
    UNION ALL
    SELECT hour AS ts, ${keys}, requests, errors, prompt_tokens, completion_tokens, cost_pico, saved_pico
      FROM usage_rollups WHERE ${rollupWhere}) usage
      ${dims.length > 0 ? `GROUP BY ${positions} ORDER BY ${positions}` : ''}`;
  return { text, values, dims };
}

/** The rows of `aggregateSql` as `UsageRow`s (without GROUP BY, the one row of nothing matched is dropped). */
export function toUsageRows(rows: readonly AggregateRow[], dims: readonly UsageGroupBy[]): UsageRow[] {
  return rows
    .filter((row) => Number(row.requests) > 0)
    .map((row) => ({
      group: Object.fromEntries(dims.map((g) => [g, row[`g_${g}`] ?? ''])),
      requests: Number(row.requests),
      errors: Number(row.errors),
      promptTokens: Number(row.prompt_tokens),
      completionTokens: Number(row.completion_tokens),
      costPico: Number(row.cost_pico),
      savedPico: Number(row.saved_pico),
    }));
}

/** What a scope spent in `[from, to)`, as one value `spent`. Shadow traffic (route `shadow`) has a budget of its own and is left out. */
export function spentSql(d: LedgerDialect, scope: Scope, from: number, to: number): LedgerSql {
  const { where, rollupWhere, values } = usageWhere(d, scope, from, to);
  const text = `SELECT (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_events WHERE ${where} AND route <> 'shadow')
      + (SELECT COALESCE(SUM(cost_pico), 0) FROM usage_rollups WHERE ${rollupWhere} AND route <> 'shadow') AS spent`;
  return { text, values };
}

/**
 * `[from, to)` on `ts` for events and on `hour` for roll-ups, plus one equality per filter given
 * (an empty string is a value: the unknown user); the same values serve both tables.
 */
function usageWhere(d: LedgerDialect, filter: Scope & { model?: string }, from: number, to: number): { where: string; rollupWhere: string; values: Array<string | number> } {
  const values: Array<string | number> = [d.bound(from), d.bound(to)];
  const equalities: string[] = [];
  const equal = (expression: string, value: string | undefined) => {
    if (value === undefined) return;
    values.push(value);
    equalities.push(`${expression} = ${d.placeholder(values.length)}`);
  };
  equal('tenant_id', filter.tenantId);
  equal('key_id', filter.keyId);
  equal('user_id', filter.userId);
  equal(MODEL_EXPRESSION, filter.model);
  const on = (time: 'ts' | 'hour') => [`${time} >= ${d.placeholder(1)}`, `${time} < ${d.placeholder(2)}`, ...equalities].join(' AND ');
  return { where: on('ts'), rollupWhere: on('hour'), values };
}

/** A range bound as a BIGINT: rounded up; ±Infinity (an open end) clamped to the safe integers. */
export function wholeMs(bound: number): number {
  if (Number.isFinite(bound)) return Math.ceil(bound);
  return bound > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

export function toUsageRow<R>(e: UsageEvent, reported: (b: boolean) => R): UsageEventRow<R> {
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
    usage_reported: reported(e.usageReported),
    tier: e.tier ?? '',
    experiment: e.experiment ?? '',
    variant: e.variant ?? '',
  };
}

export function toUsageEvent(row: UsageEventRow): UsageEvent {
  return {
    requestId: row.request_id,
    ts: Number(row.ts),
    tenantId: row.tenant_id,
    keyId: row.key_id,
    userId: row.user_id,
    route: row.route,
    requestedModel: row.requested_model,
    servedModel: row.served_model,
    deployment: row.deployment,
    promptTokens: Number(row.prompt_tokens),
    completionTokens: Number(row.completion_tokens),
    cachedTokens: Number(row.cached_tokens),
    costPico: Number(row.cost_pico),
    savedPico: Number(row.saved_pico),
    latencyMs: Number(row.latency_ms),
    ttftMs: row.ttft_ms === null ? null : Number(row.ttft_ms),
    cache: row.cache as CacheOutcome,
    status: row.status,
    attempts: row.attempts,
    usageReported: row.usage_reported === true || row.usage_reported === 1,
    ...(row.tier ? { tier: row.tier } : {}),
    ...(row.experiment ? { experiment: row.experiment, variant: row.variant } : {}),
  };
}
