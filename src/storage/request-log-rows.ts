/**
 * What the SQL request-log adapters share, so SQLite and PostgreSQL cannot drift apart: the row
 * shape of `request_log`, its mapping to RequestLogEntry, and the WHERE clause of a query (built
 * from a fixed list of expressions; values are always bound parameters). Each adapter keeps its
 * dialect: placeholders and how a boolean is stored.
 */
import type { CacheOutcome, RequestLogEntry, RequestLogQuery } from './types.js';

/** A `request_log` row; `B` is how the database stores a boolean (SQLite 0/1, PostgreSQL boolean). */
export interface RequestLogRow<B = number | boolean> {
  id: string;
  request_id: string;
  ts: number;
  tenant_id: string | null;
  key_id: string | null;
  user_id: string | null;
  route: string;
  requested_model: string;
  served_model: string | null;
  deployment: string | null;
  tier: string | null;
  status: number;
  error_code: string | null;
  cache: string;
  latency_ms: number;
  ttft_ms: number | null;
  upstream_ms: number;
  attempts: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_pico: number;
  stream: B;
  trace_id: string | null;
  job_id: string | null;
  prompt: string | null;
  answer: string | null;
}

export const REQUEST_LOG_COLUMNS = [
  'id', 'request_id', 'ts', 'tenant_id', 'key_id', 'user_id', 'route', 'requested_model', 'served_model', 'deployment', 'tier',
  'status', 'error_code', 'cache', 'latency_ms', 'ttft_ms', 'upstream_ms', 'attempts', 'prompt_tokens', 'completion_tokens',
  'cost_pico', 'stream', 'trace_id', 'job_id', 'prompt', 'answer',
] as const satisfies readonly (keyof RequestLogRow)[];

/** PostgreSQL text refuses NUL: a prompt or answer may carry one. */
const noNul = <T extends string | null>(s: T): T => (s !== null && s.includes('\u0000') ? (s.replaceAll('\u0000', '') as T) : s);

export function toRequestLogRow<B>(e: RequestLogEntry, bool: (b: boolean) => B): RequestLogRow<B> {
  return {
    id: e.id,
    request_id: e.requestId,
    ts: e.ts,
    tenant_id: e.tenantId,
    key_id: e.keyId,
    user_id: e.userId,
    route: e.route,
    requested_model: e.requestedModel,
    served_model: e.servedModel,
    deployment: e.deployment,
    tier: e.tier,
    status: e.status,
    error_code: e.errorCode,
    cache: e.cache,
    latency_ms: e.latencyMs,
    ttft_ms: e.ttftMs,
    upstream_ms: e.upstreamMs,
    attempts: e.attempts,
    prompt_tokens: e.promptTokens,
    completion_tokens: e.completionTokens,
    cost_pico: e.costPico,
    stream: bool(e.stream),
    trace_id: e.traceId,
    job_id: e.jobId,
    prompt: noNul(e.prompt),
    answer: noNul(e.answer),
  };
}

export function toRequestLogEntry(r: RequestLogRow): RequestLogEntry {
  return {
    id: r.id,
    requestId: r.request_id,
    ts: Number(r.ts),
    tenantId: r.tenant_id,
    keyId: r.key_id,
    userId: r.user_id,
    route: r.route,
    requestedModel: r.requested_model,
    servedModel: r.served_model,
    deployment: r.deployment,
    tier: r.tier,
    status: r.status,
    errorCode: r.error_code,
    cache: r.cache as CacheOutcome,
    latencyMs: r.latency_ms,
    ttftMs: r.ttft_ms,
    upstreamMs: r.upstream_ms,
    attempts: r.attempts,
    promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens,
    costPico: Number(r.cost_pico),
    stream: Boolean(r.stream),
    traceId: r.trace_id,
    jobId: r.job_id,
    prompt: r.prompt,
    answer: r.answer,
  };
}

/**
 * The WHERE clause of a query ('TRUE'-like `1 = 1` when nothing filters) and its values in order;
 * `placeholder(i)` names the i-th value in the dialect (`?`, `$1`...).
 */
export function requestLogWhere(q: RequestLogQuery, placeholder: (index: number) => string): { where: string; values: Array<string | number> } {
  const clauses: string[] = [];
  const values: Array<string | number> = [];
  const p = (v: string | number) => {
    values.push(v);
    return placeholder(values.length);
  };
  if (q.tenantId !== undefined) clauses.push(`tenant_id = ${p(q.tenantId)}`);
  if (q.userId !== undefined) clauses.push(`user_id = ${p(q.userId)}`);
  if (q.model !== undefined) {
    const m = p(q.model);
    clauses.push(`(requested_model = ${m} OR served_model = ${m})`);
  }
  if (q.status !== undefined) {
    if (q.status.min === q.status.max) clauses.push(`status = ${p(q.status.min)}`);
    else clauses.push(`status >= ${p(q.status.min)} AND status <= ${p(q.status.max)}`);
  }
  if (q.cache !== undefined) clauses.push(`cache = ${p(q.cache)}`);
  if (q.from !== undefined) clauses.push(`ts >= ${p(q.from)}`);
  if (q.to !== undefined) clauses.push(`ts < ${p(q.to)}`);
  if (q.minLatencyMs !== undefined) clauses.push(`latency_ms >= ${p(q.minLatencyMs)}`);
  if (q.after !== undefined) {
    // A row-value comparison: both databases seek it on the (ts, id) indexes.
    clauses.push(`(ts, id) < (${p(q.after.ts)}, ${p(q.after.id)})`);
  }
  return { where: clauses.length ? clauses.join(' AND ') : '1 = 1', values };
}
