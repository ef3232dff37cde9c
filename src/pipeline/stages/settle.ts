/**
 * Stage 7: after the response, off the hot path: metrics, the request log line, and the key's
 * last-used time (written at most once per `touchIntervalMs` per key). (Ledger, budgets and cache
 * stores join here in later stages of the roadmap.) Never throws.
 */
import type { Logger } from '../../observability/logger.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import type { Records } from '../../storage/types.js';
import type { RequestContext } from '../context.js';

export interface SettleOptions {
  metrics: GatewayMetrics;
  log: Logger;
  records: Pick<Records, 'touchKey'>;
  touchIntervalMs?: number;
}

export function settleStage(opts: SettleOptions) {
  const { metrics, log, records } = opts;
  const touchIntervalMs = opts.touchIntervalMs ?? 60_000;
  const lastTouched = new Map<string, number>();

  function touch(keyId: string, now: number): void {
    if (now - (lastTouched.get(keyId) ?? 0) < touchIntervalMs) return;
    if (lastTouched.size > 100_000) lastTouched.clear();
    lastTouched.set(keyId, now);
    records.touchKey(keyId, now).catch((err: unknown) => log.warn({ err, keyId }, 'could not record key use'));
  }

  return function settle(ctx: RequestContext): void {
    try {
      if (ctx.auth) touch(ctx.auth.keyId, ctx.receivedAt);
      const status = ctx.clientAborted ? 499 : (ctx.status ?? 500);
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      const model = ctx.model?.name ?? 'unknown';
      const labels = { route: ctx.route, model, status: String(status) };
      metrics.requests.inc(labels);
      metrics.requestDuration.observe(labels, seconds);
      if (ctx.streamError) metrics.streamErrors.inc({ model });
      const code = ctx.error?.code ?? ctx.streamError?.code;
      if (code) metrics.errors.inc({ route: ctx.route, model, code });
      const level = status >= 500 && status !== 499 ? 'warn' : 'info';
      log[level](
        {
          reqId: ctx.id,
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
        },
        'request',
      );
    } catch (err) {
      log.error({ err, reqId: ctx.id }, 'settle failed');
    }
  };
}
