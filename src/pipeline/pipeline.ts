/**
 * The request pipeline: the ordered list of stages every AI request flows through. This list is
 * the documentation (docs/ARCHITECTURE.md draws it with the errors each stage can produce); the
 * composition root (src/main.ts) builds the stages in this order.
 *
 *   1 authenticate  API key -> tenant, user, tier, allowed models,       401, 503 storage_unavailable
 *                   tenant and key policies
 *     abuse guard   only with an `abuse` kind set to throttle: a key or  429 abuse_throttled
 *                   user under an abuse throttle (in memory, no I/O)
 *   2 kill switch   global, tenant, key, model switches (in-memory       403 access_disabled,
 *                   snapshot, no I/O)                                    503 model_disabled
 *   3 route         model name/alias -> ordered chain of deployments,    404 model_not_found, 403,
 *                   minus those of disabled providers                    503 model_disabled
 *   4 admit         policy (tier -> tenant -> key), token buckets and    429 rate_limit_exceeded,
 *                   budget reservations, all or none                     402 budget_exceeded,
 *                                                                        503 budget_unavailable
 *   5 invoke        breaker, timeout, retries, fallback along the chain  502/503/504/429
 *   6 respond       JSON, or SSE stream passthrough; the usage event
 *                   goes to the local spool before the last byte
 *   7 settle        after the response: reconcile budgets and buckets,   (never fails the request)
 *                   metrics, log, then its observers: request log, live
 *                   stats, drift and abuse detectors
 *
 * Route runs before admit because admission prices the request with the model's price. The cache
 * stage slots in before invoke as it is built; a stage that sets `ctx.result` (a cache hit) ends
 * the list early and respond serves it. With tracing on, each stage (respond and settle too) runs in
 * a span of the request's trace (src/observability/tracing.ts).
 */
import { GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { type GatewayTracer, stageSpanName } from '../observability/tracing.js';
import type { RequestContext } from './context.js';
import { type RespondOptions, respond, sendError } from './stages/respond.js';

export type Stage = (ctx: RequestContext) => void | Promise<void>;

export interface Pipeline {
  /** Runs the stages, responds, and schedules settle. Never rejects. */
  run(ctx: RequestContext): Promise<void>;
  /** Resolves once every request in progress has responded and settled (shutdown), or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
  /** Resolves once every request in progress has responded and settled (tests wait on it instead of sleeping). */
  idle(): Promise<void>;
}

export function createPipeline(opts: {
  stages: Stage[];
  settle: Stage;
  log: Logger;
  respond: RespondOptions;
  /** Traces (off: undefined, and nothing is created per request). */
  tracer?: GatewayTracer | undefined;
  /** Called after respond, before settle is scheduled (tests: a crash at that point). */
  afterRespond?: ((ctx: RequestContext) => void) | undefined;
}): Pipeline {
  const { stages, settle, log, tracer } = opts;
  const spanNames = stages.map(stageSpanName);
  const respondStage: Stage = (ctx) => respond(ctx, opts.respond);
  let inFlight = 0;
  let idle: Array<() => void> = [];
  const done = () => {
    if (--inFlight === 0) {
      for (const resolve of idle) resolve();
      idle = [];
    }
  };
  // A request counts as in flight until settle has finished, its async part included (budgets
  // and buckets corrected), so a shutdown never closes storage under an open reservation.
  const settled = (ctx: RequestContext) => {
    const trace = ctx.trace;
    trace?.beginSettle();
    let pending: void | Promise<void>;
    try {
      pending = settle(ctx);
    } catch {
      pending = undefined;
    }
    // A traced request's root span ends once settled (a stream's: after its last chunk).
    const finish = trace
      ? () => {
          trace.end(ctx);
          done();
        }
      : done;
    if (pending) pending.then(finish, finish);
    else finish();
  };
  return {
    drain(timeoutMs) {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    idle() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
    async run(ctx) {
      inFlight++;
      const trace = tracer ? tracer.start(ctx) : undefined;
      try {
        for (let i = 0; i < stages.length; i++) {
          const stage = stages[i] as Stage;
          if (trace) await trace.stage(spanNames[i] as string, stage, ctx);
          else await stage(ctx);
          if (ctx.result) break;
        }
        if (trace) {
          if (ctx.result?.kind === 'stream') trace.watchStream(ctx.result);
          await trace.stage('respond', respondStage, ctx);
        } else {
          await respond(ctx, opts.respond);
        }
      } catch (err) {
        const gwErr = isGatewayError(err) ? err : internalError(err, ctx, log);
        try {
          sendError(ctx, gwErr, opts.respond);
        } catch (sendErr) {
          log.error({ err: sendErr, reqId: ctx.id }, 'could not send error response');
        }
      } finally {
        opts.afterRespond?.(ctx);
        setImmediate(settled, ctx);
      }
    },
  };
}

function internalError(err: unknown, ctx: RequestContext, log: Logger): GatewayError {
  log.error({ err, reqId: ctx.id }, 'unexpected error in pipeline');
  return new GatewayError('internal_error', `Internal error (request ${ctx.id}).`);
}
