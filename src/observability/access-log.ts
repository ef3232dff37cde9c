/**
 * The access log: one line per request once it has settled (`msg: "request"`), at info, or at
 * warn for a 5xx the gateway answered. Fastify's own request logging is off (src/http/app.ts),
 * so this is the only one. `logging.access` chooses which requests get a line: all of them
 * (default; `sample` keeps a share of the requests that neither failed nor were slow), only
 * errors (status >= 400, 499 included) and slow ones (`slowMs`), or none. What a line costs was
 * measured at ~2 µs to build and serialize and ~4 µs with the buffered write to a file (pino,
 * 4 KiB asynchronous writes): about 3% of a request at saturation in the core bench.
 */
import type { RequestContext } from '../pipeline/context.js';
import type { SettledRequest } from '../pipeline/pipeline.js';
import type { Logger } from './logger.js';

export interface AccessLogConfig {
  mode: 'all' | 'errors-and-slow' | 'off';
  sample: number;
  slowMs: number;
}

/** The settle step that writes the access line, or undefined when `mode` is off. */
export function accessLog(
  log: Logger,
  cfg: AccessLogConfig = { mode: 'all', sample: 1, slowMs: 5_000 },
  random: () => number = Math.random,
): ((ctx: RequestContext, settled: SettledRequest) => void) | undefined {
  if (cfg.mode === 'off') return undefined;
  const everything = cfg.mode === 'all' && cfg.sample >= 1;
  const sampled = cfg.mode === 'all' ? cfg.sample : 0;
  return (ctx, { status, latencyMs }) => {
    if (!everything && status < 400 && latencyMs < cfg.slowMs && !(sampled > 0 && random() < sampled)) return;
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
