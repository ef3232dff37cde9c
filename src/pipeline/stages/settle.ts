/**
 * Stage 7: after the response, off the hot path: budgets and rate limits corrected, metrics, the
 * request log line, observers, and the key's last-used time (written at most once per
 * `touchIntervalMs` per key). The usage event is already in the spool for every request that
 * answered (respond wrote it before the last byte, see {@link recordUsage}); settle writes it for
 * the rest. Never throws.
 */
import type { BudgetAlerts } from '../../metering/budget-alerts.js';
import type { BudgetGuard } from '../../metering/budgets.js';
import type { LedgerWriter } from '../../metering/ledger-writer.js';
import type { RateLimiter } from '../../metering/rate-limiter.js';
import type { Logger } from '../../observability/logger.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { Records, UsageEvent } from '../../storage/types.js';
import type { CacheService } from '../../cache/service.js';
import type { RequestContext } from '../context.js';
import { rememberServed } from './cache.js';
import { type ShadowService, completionText } from '../../routing/shadow.js';
import type { ChatCompletionRequest } from '../../providers/types.js';

export interface SettleOptions {
  metrics: GatewayMetrics;
  log: Logger;
  records: Pick<Records, 'touchKey'>;
  /** Where each authenticated request's usage event goes. */
  ledger: Pick<LedgerWriter, 'record'>;
  rateLimiter: Pick<RateLimiter, 'reconcile'>;
  budgets: Pick<BudgetGuard, 'settle'>;
  /** The cache (remembers served answers for feedback). */
  cache?: CacheService | undefined;
  /** Shadow traffic: answered requests of a route with a shadow candidate are mirrored to it. */
  shadow?: Pick<ShadowService, 'maybeMirror'> | undefined;
  /** Budget threshold alerts, when a webhook is configured. */
  alerts?: Pick<BudgetAlerts, 'check'> | undefined;
  touchIntervalMs?: number;
  /** false (`metrics.enabled: false`): the per-request metrics are not recorded. */
  recordMetrics?: boolean | undefined;
  /**
   * Called once per request after its metrics and ledger event, in order (request log, live stats,
   * drift and abuse detectors). Each must be cheap and must not throw (a throw is logged and the
   * next observer still runs).
   */
  observers?: RequestObserver[] | undefined;
}

/** What settle tells each observer about a request that has ended. */
export interface SettledRequest {
  /** The request's outcome as a status (see {@link outcomeStatus}): the HTTP status the client got, 499 when it went away first, the failure's status for a stream that failed after its 200. */
  status: number;
  /** From arrival to the end of the response. */
  latencyMs: number;
}

export type RequestObserver = (ctx: RequestContext, settled: SettledRequest) => void;

/**
 * The status a request is recorded with (ledger, request log, metrics, live stats): the HTTP
 * status the client got, except 499 when the client went away first and, for a stream that
 * failed after its 200 went out (it ended with an SSE error event), the failure's status (502
 * upstream_error, 504 upstream_timeout, 402 budget cut-off), so reports count it as an error.
 */
export function outcomeStatus(ctx: RequestContext): number {
  if (ctx.clientAborted) return 499;
  if (ctx.streamError) return ctx.streamError.status;
  return ctx.status ?? 500;
}

/** The ledger's record of one request (authenticated requests only: they have a tenant). */
export function usageEvent(ctx: RequestContext, status: number, latencyMs: number): UsageEvent | undefined {
  const auth = ctx.auth;
  if (!auth) return undefined;
  const u = ctx.usage;
  return {
    requestId: ctx.eventId,
    ts: ctx.receivedAt,
    tenantId: auth.tenantId,
    keyId: auth.keyId,
    userId: ctx.endUser ?? '',
    route: ctx.route,
    requestedModel: ctx.body.model,
    servedModel: ctx.servedBy ? ctx.servedBy.model : ctx.cache?.served ? (ctx.model?.name ?? '') : '',
    deployment: ctx.servedBy?.id ?? '',
    promptTokens: (u?.prompt_tokens ?? 0) + (ctx.discarded?.promptTokens ?? 0),
    completionTokens: (u?.completion_tokens ?? 0) + (ctx.discarded?.completionTokens ?? 0),
    cachedTokens: u?.prompt_tokens_details?.cached_tokens ?? 0,
    costPico: ctx.costPico ?? 0,
    savedPico: ctx.savedPico ?? 0,
    latencyMs: Math.round(latencyMs),
    ttftMs: ctx.ttftMs === undefined ? null : Math.round(ctx.ttftMs),
    cache: ctx.cache?.outcome ?? 'none',
    status,
    attempts: ctx.attempts.filter((a) => a.outcome !== 'circuit_open').length,
    usageReported: ctx.usageReported ?? false,
    ...(ctx.routing ? { tier: ctx.routing.tiers[ctx.routing.tier]?.name ?? '' } : {}),
    ...(ctx.experiment ? { experiment: ctx.experiment.experiment, variant: ctx.experiment.variant } : {}),
  };
}

/**
 * Writes the request's usage event to the local spool, once: the respond stage calls it just
 * before the answer's last byte leaves (the event is on disk before the client can have the whole
 * answer, so a crash after that point cannot leave it unbilled), settle for requests that ended
 * without writing (a client that left, an error before respond). Then tells `ctx.onRecorded`.
 */
export function recordUsage(ledger: Pick<LedgerWriter, 'record'>, ctx: RequestContext): void {
  if (ctx.usageRecorded) return;
  const event = usageEvent(ctx, outcomeStatus(ctx), performance.now() - ctx.startedAt);
  if (event) ledger.record(event, ctx.onRecorded); // throws only when closed: settle tries again and logs it
  else ctx.onRecorded?.();
  ctx.usageRecorded = true;
}

/** Hands a tiered route's answered request to the shadow service (it samples and calls in the background). */
function mirror(ctx: RequestContext, shadow: Pick<ShadowService, 'maybeMirror'>, latencyMs: number): void {
  const route = ctx.routing?.route;
  if (!route?.config.shadow || !ctx.auth || ctx.status !== 200 || ctx.cache?.served || !ctx.servedBy || ctx.streamError || ctx.clientAborted) return;
  const result = ctx.result;
  const text = ctx.answerText ?? (result?.kind === 'chat' ? completionText(result.body) : '');
  shadow.maybeMirror({
    requestId: ctx.id,
    eventId: ctx.eventId,
    tenantId: ctx.auth.tenantId,
    keyId: ctx.auth.keyId,
    userId: ctx.endUser ?? '',
    route: route.name,
    body: ctx.body as ChatCompletionRequest,
    primary: {
      model: ctx.servedBy.model,
      latencyMs,
      promptTokens: ctx.usage?.prompt_tokens ?? 0,
      completionTokens: ctx.usage?.completion_tokens ?? 0,
      costPico: ctx.costPico ?? 0,
      text,
    },
  });
}

export function settleStage(opts: SettleOptions) {
  const { metrics, log, records, ledger, rateLimiter, budgets } = opts;

  /** Corrects what admit took and reserved with what was really used. */
  async function reconcile(ctx: RequestContext): Promise<void> {
    const a = ctx.admission;
    if (!a) return;
    // A served cache hit uses no tokens: only its request counts against the rate limits.
    const discarded = ctx.discarded ? ctx.discarded.promptTokens + ctx.discarded.completionTokens : 0;
    const tokens = ctx.usage && !ctx.cache?.served ? ctx.usage.prompt_tokens + ctx.usage.completion_tokens + discarded : 0;
    const [, settled] = await Promise.all([rateLimiter.reconcile(a.rate, tokens), a.budget ? budgets.settle(a.budget, ctx.costPico ?? 0) : undefined]);
    if (settled && opts.alerts) await opts.alerts.check(settled);
  }
  const touchIntervalMs = opts.touchIntervalMs ?? 60_000;
  const lastTouched = new Map<string, number>();

  function touch(keyId: string, now: number): void {
    if (now - (lastTouched.get(keyId) ?? 0) < touchIntervalMs) return;
    if (lastTouched.size > 100_000) lastTouched.clear();
    lastTouched.set(keyId, now);
    records.touchKey(keyId, now).catch((err: unknown) => log.warn({ err, keyId }, 'could not record key use'));
  }

  /** Resolves once the budgets and buckets are corrected (a shutdown waits for it; see Pipeline.drain). */
  return function settle(ctx: RequestContext): Promise<void> {
    const corrected = reconcile(ctx).catch((err: unknown) => log.error({ err, reqId: ctx.id }, 'could not settle budget or rate limit'));
    let recorded = false;
    try {
      if (ctx.auth) touch(ctx.auth.keyId, ctx.receivedAt);
      if (opts.cache) rememberServed(ctx, opts.cache);
      if (opts.shadow) mirror(ctx, opts.shadow, (performance.now() - ctx.startedAt));
      const status = outcomeStatus(ctx);
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      if (opts.recordMetrics !== false) metrics.observeRequest(ctx, status, seconds);
      recordUsage(ledger, ctx);
      recorded = true;
      if (opts.observers) {
        const settled: SettledRequest = { status, latencyMs: seconds * 1000 };
        for (const observe of opts.observers) {
          try {
            observe(ctx, settled);
          } catch (err) {
            log.error({ err, reqId: ctx.id }, 'request observer failed');
          }
        }
      }
      const level = status >= 500 && status !== 499 ? 'warn' : 'info';
      log[level](
        {
          reqId: ctx.id,
          traceId: ctx.traceId,
          tenant: ctx.auth?.tenantId,
          key: ctx.auth?.keyId,
          user: ctx.endUser ?? undefined,
          route: ctx.route,
          model: ctx.body.model,
          served: ctx.servedBy?.id,
          status,
          latencyMs: Math.round(seconds * 1e4) / 10,
          ttftMs: ctx.ttftMs === undefined ? undefined : Math.round(ctx.ttftMs * 10) / 10,
          attempts: ctx.attempts.length ? ctx.attempts.map((a) => `${a.deployment}:${a.outcome}`) : undefined,
          tokensIn: ctx.usage?.prompt_tokens,
          tokensOut: ctx.usage?.completion_tokens,
          costPico: ctx.costPico,
          error: ctx.error?.code ?? ctx.streamError?.code,
          stream: ctx.result?.kind === 'stream' ? true : undefined,
          cache: ctx.cache?.outcome,
        },
        'request',
      );
    } catch (err) {
      log.error({ err, reqId: ctx.id }, 'settle failed');
      if (!recorded) ctx.onRecorded?.(); // nothing will be recorded: do not keep a job waiting
    }
    return corrected;
  };
}
