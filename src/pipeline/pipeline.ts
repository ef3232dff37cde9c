/**
 * The request pipeline: the ordered list of stages every AI request flows through. This list is
 * the documentation (docs/ARCHITECTURE.md draws it with the errors each stage can produce).
 *
 *   1 authenticate  API key -> tenant, user, tier, allowed models       401
 *   4 route         model name/alias -> ordered chain of deployments    404 model_not_found, 403
 *   5 invoke        breaker, timeout, retries, fallback along the chain  502/503/504/429
 *   6 respond       JSON, or SSE stream passthrough
 *   7 settle        after the response: metrics, log                     (never fails the request)
 *
 * Stages 2 (admit: budgets, rate limits) and 3 (cache) slot in between as they are built; a
 * stage that sets `ctx.result` (a cache hit) ends the list early and respond serves it.
 */
import { GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { RequestContext } from './context.js';
import { type RespondOptions, respond, sendError } from './stages/respond.js';

export type Stage = (ctx: RequestContext) => void | Promise<void>;

export interface Pipeline {
  /** Runs the stages, responds, and schedules settle. Never rejects. */
  run(ctx: RequestContext): Promise<void>;
}

export function createPipeline(opts: { stages: Stage[]; settle: Stage; log: Logger; respond: RespondOptions }): Pipeline {
  const { stages, settle, log } = opts;
  return {
    async run(ctx) {
      try {
        for (const stage of stages) {
          await stage(ctx);
          if (ctx.result) break;
        }
        await respond(ctx, opts.respond);
      } catch (err) {
        const gwErr = isGatewayError(err) ? err : internalError(err, ctx, log);
        try {
          sendError(ctx, gwErr);
        } catch (sendErr) {
          log.error({ err: sendErr, reqId: ctx.id }, 'could not send error response');
        }
      } finally {
        setImmediate(settle, ctx);
      }
    },
  };
}

function internalError(err: unknown, ctx: RequestContext, log: Logger): GatewayError {
  log.error({ err, reqId: ctx.id }, 'unexpected error in pipeline');
  return new GatewayError('internal_error', `Internal error (request ${ctx.id}).`);
}
