/**
 * What the SQL `Ledger` adapters share, so SQLite and PostgreSQL cannot drift apart on it: the
 * row shape of `usage_events` and its mapping to UsageEvent, the model expression, the grouping
 * dimensions and the filter columns. Each adapter keeps only its dialect (placeholders, the `day`
 * expression, how it counts errors, how `usage_reported` is stored).
 */
import type { CacheOutcome, Ledger, UsageEvent, UsageGroupBy } from './types.js';

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

/** Grouping expressions but `day`, which is dialect-specific. */
export function dimensions(dayExpression: string): Record<UsageGroupBy, string> {
  return { tenant: 'tenant_id', user: 'user_id', key: 'key_id', model: MODEL_EXPRESSION, route: 'route', day: dayExpression };
}

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

/**
 * The columns reports read, from detail events (`usage_events`, one request each) and from
 * roll-ups (`usage_rollups`, an hour's sums, dated at the hour's start): the two halves of the
 * UNION ALL every aggregate and spend look-up reads. `errors` is the dialect's 0/1 expression for
 * status >= 400; `where` is the same filter for both (the range is on `ts`, `hour` for roll-ups).
 */
export function usageSources(errors: string, detailWhere: string, rollupWhere: string): string {
  const keys = 'tenant_id, key_id, user_id, route, requested_model, served_model';
  return `SELECT ts, ${keys}, 1 AS requests, ${errors} AS errors, prompt_tokens, completion_tokens, cost_pico, saved_pico
      FROM usage_events WHERE ${detailWhere}
    UNION ALL
    SELECT hour AS ts, ${keys}, requests, errors, prompt_tokens, completion_tokens, cost_pico, saved_pico
      FROM usage_rollups WHERE ${rollupWhere}`;
}

/** The requested dimensions, each once, in the order given; refuses unknown ones. */
export function groupDimensions(groupBy: readonly UsageGroupBy[], known: Record<UsageGroupBy, string>): UsageGroupBy[] {
  for (const d of groupBy) {
    if (!Object.hasOwn(known, d)) throw new Error(`unknown usage dimension '${String(d)}'`);
  }
  return [...new Set(groupBy)];
}

/** The equality filters a query or a spend look-up asks for, as (expression, value) pairs. */
export function filterColumns(filter: Parameters<Ledger['spent']>[0] & { model?: string }): Array<[expression: string, value: string]> {
  const out: Array<[string, string]> = [];
  if (filter.tenantId !== undefined) out.push(['tenant_id', filter.tenantId]);
  if (filter.keyId !== undefined) out.push(['key_id', filter.keyId]);
  if (filter.userId !== undefined) out.push(['user_id', filter.userId]);
  if (filter.model !== undefined) out.push([MODEL_EXPRESSION, filter.model]);
  return out;
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
