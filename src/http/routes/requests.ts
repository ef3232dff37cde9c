/**
 * `GET /admin/v1/requests`: the request log, newest first, with filters and cursor pagination
 * (admin keys only; errors as RFC 7807 problems naming the parameter). See docs/API.md.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import { isoOrNull } from '../../util/time.js';
import { formatUsd } from '../../metering/cost.js';
import type { CacheOutcome, RequestLogEntry, RequestLogQuery, RequestLogStore } from '../../storage/types.js';

export interface RequestRoutesOptions {
  authenticator: Authenticator;
  store: Pick<RequestLogStore, 'query'>;
  /** Writes this process's waiting rows first, so a listing shows the requests answered so far. */
  flush?: () => Promise<void>;
}

const PARAMS = ['tenant_id', 'user', 'model', 'status', 'cache', 'from', 'to', 'min_latency_ms', 'limit', 'cursor'] as const;
type Params = Partial<Record<(typeof PARAMS)[number], string>>;
const CACHE_OUTCOMES: readonly CacheOutcome[] = ['hit', 'semantic', 'miss', 'stale', 'coalesced', 'bypass', 'none'];
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1_000;
/** A listing does not wait longer than this for the local writer (the store may be down). */
const FLUSH_WAIT_MS = 1_000;

const bad = (param: string, message: string) => new GatewayError('invalid_value', `${param}: ${message}`, { param });

/** ISO 8601 date or date-time, or epoch milliseconds. */
function parseTime(value: string, param: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  // Beyond +-8.64e15 ms a Date is invalid (and a PostgreSQL bigint may overflow).
  if (!Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15) throw bad(param, `must be an ISO 8601 date (2026-11-01 or 2026-11-01T12:00:00Z) or epoch milliseconds, got '${value}'`);
  return ms;
}

/** The opaque cursor: the last row's (ts, id), base64url JSON. */
export function encodeCursor(e: Pick<RequestLogEntry, 'ts' | 'id'>): string {
  return Buffer.from(JSON.stringify([e.ts, e.id])).toString('base64url');
}

function decodeCursor(value: string): { ts: number; id: string } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[0]) && typeof parsed[1] === 'string') {
      return { ts: parsed[0] as number, id: parsed[1] };
    }
  } catch {
    /* falls through */
  }
  throw bad('cursor', 'is not a cursor from this API (pass next_cursor of the previous page as it is)');
}

/** Validates the query string into a store query; throws a 400 naming the parameter. */
export function parseRequestLogParams(raw: Record<string, unknown>): RequestLogQuery {
  for (const [name, value] of Object.entries(raw)) {
    if (!(PARAMS as readonly string[]).includes(name)) throw bad(name, `unknown parameter (expected one of: ${PARAMS.join(', ')})`);
    if (typeof value !== 'string') throw bad(name, 'give it once');
    if (value === '') throw bad(name, 'must not be empty');
  }
  const p = raw as Params;
  const q: RequestLogQuery = { limit: DEFAULT_LIMIT };
  if (p.limit !== undefined) {
    const n = Number(p.limit);
    if (!/^\d+$/.test(p.limit) || n < 1 || n > MAX_LIMIT) throw bad('limit', `must be an integer from 1 to ${MAX_LIMIT}, got '${p.limit}'`);
    q.limit = n;
  }
  if (p.tenant_id !== undefined) q.tenantId = p.tenant_id;
  if (p.user !== undefined) q.userId = p.user;
  if (p.model !== undefined) q.model = p.model;
  if (p.status !== undefined) {
    const s = p.status.toLowerCase();
    if (/^[1-5]\d\d$/.test(s)) q.status = { min: Number(s), max: Number(s) };
    else if (/^[1-5]xx$/.test(s)) q.status = { min: Number(s[0]) * 100, max: Number(s[0]) * 100 + 99 };
    else throw bad('status', `must be an HTTP status (429) or a class (5xx), got '${p.status}'`);
  }
  if (p.cache !== undefined) {
    if (!(CACHE_OUTCOMES as readonly string[]).includes(p.cache)) throw bad('cache', `must be one of ${CACHE_OUTCOMES.join(', ')}, got '${p.cache}'`);
    q.cache = p.cache as CacheOutcome;
  }
  if (p.from !== undefined) q.from = parseTime(p.from, 'from');
  if (p.to !== undefined) q.to = parseTime(p.to, 'to');
  if (q.from !== undefined && q.to !== undefined && q.from >= q.to) {
    throw bad('from', `must be before to (${new Date(q.from).toISOString()} >= ${new Date(q.to).toISOString()})`);
  }
  if (p.min_latency_ms !== undefined) {
    const n = Number(p.min_latency_ms);
    if (!Number.isFinite(n) || n < 0 || !/^\d+(\.\d+)?$/.test(p.min_latency_ms)) throw bad('min_latency_ms', `must be a number of milliseconds >= 0, got '${p.min_latency_ms}'`);
    q.minLatencyMs = n;
  }
  if (p.cursor !== undefined) q.after = decodeCursor(p.cursor);
  return q;
}

/** The API's view of a row (snake_case); prompt and answer only when the row has them. */
export function requestJson(e: RequestLogEntry) {
  return {
    id: e.id,
    object: 'request',
    request_id: e.requestId,
    created_at: isoOrNull(e.ts),
    tenant_id: e.tenantId,
    key_id: e.keyId,
    user: e.userId,
    route: e.route,
    model: e.requestedModel,
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
    cost_usd: formatUsd(e.costPico),
    stream: e.stream,
    trace_id: e.traceId,
    job_id: e.jobId,
    ...(e.prompt !== null ? { prompt: e.prompt } : {}),
    ...(e.answer !== null ? { answer: e.answer } : {}),
  };
}

export async function requestRoutes(app: FastifyInstance, opts: RequestRoutesOptions): Promise<void> {
  app.addHook('onRequest', async (request) => {
    const auth = await opts.authenticator.authenticate(extractKey(request.headers));
    if (auth.kind !== 'admin') throw new GatewayError('admin_required', 'This endpoint needs an admin key.');
  });

  app.get<{ Querystring: Record<string, unknown> }>('/requests', async (request) => {
    const query = parseRequestLogParams(request.query);
    if (opts.flush) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([opts.flush(), new Promise<void>((r) => (timer = setTimeout(r, FLUSH_WAIT_MS)))]).finally(() => clearTimeout(timer));
    }
    const rows = await opts.store.query({ ...query, limit: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    const hasMore = rows.length > query.limit;
    return { object: 'list', data: page.map(requestJson), has_more: hasMore, next_cursor: hasMore ? encodeCursor(page.at(-1)!) : null };
  });
}
