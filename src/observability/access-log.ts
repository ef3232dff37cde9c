/**
 * The access log: one line per request once it has settled (`msg: "request"`), at info, or at
 * warn for a 5xx the gateway answered. Fastify's own request logging is off (src/http/app.ts),
 * so this is the only one.
 */
import type { RequestContext } from '../pipeline/context.js';
import type { SettledRequest } from '../pipeline/pipeline.js';
import type { Logger } from './logger.js';

export function accessLog(log: Logger): (ctx: RequestContext, settled: SettledRequest) => void {
  return (ctx, { status, latencyMs }) => {
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
        latencyMs: Math.round(latencyMs * 10) / 10,
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
  };
}
