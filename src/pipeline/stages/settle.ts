/**
 * Settle, after the response: the usage event, the ledger's record of one request, written to
 * the local spool once (respond writes it before the last byte of any answer, see
 * {@link recordUsage}; the `usage event` settle step for the rest), and the type of the settle
 * observers (request log, live stats, drift and abuse detectors). The settle steps themselves are
 * their capabilities' (src/capabilities/), run in the order of SETTLE_STEPS
 * (src/pipeline/pipeline.ts).
 */
import type { LedgerWriter } from '../../metering/ledger-writer.js';
import type { UsageEvent } from '../../storage/types.js';
import type { RequestContext } from '../context.js';
import { type SettledRequest, outcomeOf } from '../pipeline.js';

export type { SettledRequest };

/** A settle observer: cheap, must not throw. */
export type RequestObserver = (ctx: RequestContext, settled: SettledRequest) => void;

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
  const event = usageEvent(ctx, outcomeOf(ctx), performance.now() - ctx.startedAt);
  if (event) ledger.record(event, ctx.onRecorded); // throws only when closed: settle tries again and logs it
  else ctx.onRecorded?.();
  ctx.usageRecorded = true;
}
