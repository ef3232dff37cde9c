/**
 * The request pipeline: the ordered stages every AI request flows through, as data. Capabilities
 * (src/capabilities/) contribute the stages and settle steps; this file decides their order
 * (STAGES, SETTLE_STEPS) and runs them. The lifecycle, with each stage's code and errors:
 *
 *   HTTP route (src/http/routes/openai.ts) or job worker (src/jobs/worker.ts)
 *     | createContext (./context.ts)
 *     v
 *   authenticate  API key -> tenant, user, tier, allowed models,      401, 503 storage_unavailable
 *                 tenant and key policies               ./stages/authenticate.ts
 *   abuse guard   a key or user under an abuse throttle   429 abuse_throttled
 *                 (only with an abuse kind set to throttle; in memory)  ./stages/abuse-guard.ts
 *   kill switch   global, tenant, key, model switches     403 access_disabled, 503 model_disabled
 *                 (in-memory snapshot)                  ./stages/kill-switch.ts
 *   route         model name/alias -> tiers and chain of deployments,
 *                 flags, experiments                      404 model_not_found, 403, 503 model_disabled
 *                                                       ./stages/route.ts
 *   admit         policy (tier -> tenant -> key), token buckets and
 *                 budget reservations, all or none        429 rate_limit_exceeded, 402 budget_exceeded,
 *                                                         503 budget_unavailable
 *                                                       ./stages/admit.ts
 *   cache         in: exact, in-flight, semantic lookup (a hit ends the way in: ctx.result);
 *                 out: hands the answer to its flight; all deployments
 *                 failed -> a stale answer when the route allows it       ./stages/cache.ts
 *   escalate      out: an answer that fails its tier's check runs invoke
 *                 again one tier up                      ../routing/escalation.ts
 *   invoke        breaker, timeout, retries, fallback     502/503/504/429 upstream_*
 *                 along the chain                        ./stages/invoke.ts
 *     |
 *   respond       JSON, or the SSE stream; the usage event goes to the local spool
 *                 before the last byte                   ./stages/respond.ts
 *   settle        after the response (never fails the request): the SETTLE_STEPS below, each
 *                 contributed by its capability; a request counts as in flight until they end
 *
 * A stage is onion middleware (`Middleware`): work before `next()` is the way in, after it the
 * way out. A stage that returns without calling `next` ends the way in: it has set `ctx.result`
 * (a cache hit) or thrown a GatewayError, which respond turns into the error answer. With
 * tracing on, each stage runs in a span of the request's trace; a stage's span covers its own
 * work (until it calls `next`), except invoke's, which covers escalation's re-runs too.
 */
import { GatewayError, isGatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayTracer, RequestTrace, StageSpan } from '../observability/tracing.js';
import type { RequestContext } from './context.js';
import { type RespondOptions, respond, sendError } from './stages/respond.js';

/** A stage that only acts on the way in (most of them): it may set `ctx.result` or throw. */
export type Stage = (ctx: RequestContext) => void | Promise<void>;

/** Runs the rest of the pipeline (the stages after this one, invoke last); resolves when they have. */
export type Next = () => Promise<void>;

/**
 * A stage, onion style: it acts before `next()` (on the way in) and, when it awaits it, after
 * (on the way out). A stage that returns without calling `next` ends the way in: it has set
 * `ctx.result` (a cache hit) or thrown a GatewayError. A stage may call `next` again after it
 * resolved (escalation re-runs invoke on a larger tier).
 */
export type Middleware = (ctx: RequestContext, next: Next) => void | Promise<void>;

/** The stages, in the order a request meets them. */
export const STAGES = ['authenticate', 'abuse guard', 'kill switch', 'route', 'admit', 'cache', 'escalate', 'invoke'] as const;
export type StageName = (typeof STAGES)[number];

/**
 * Each stage's span: `name` covers its work on the way in (until it calls `next`); `then` names
 * the span that covers the rest of its call (the stages after it and its way out). The cache's
 * lookup is `cache`; from its `next` on, everything up to the answer it hands to its flight (or
 * the stale answer it serves) is one `invoke` span, which escalate and invoke then share. Without
 * a cache stage, escalate (or else invoke) opens `invoke` itself.
 */
interface SpanSpec {
  name: string;
  then?: string;
}
const SPANS: Record<StageName, SpanSpec> = {
  authenticate: { name: 'authenticate' },
  'abuse guard': { name: 'abuseGuard' },
  'kill switch': { name: 'kill switch' },
  route: { name: 'route' },
  admit: { name: 'admit' },
  cache: { name: 'cache', then: 'invoke' },
  escalate: { name: 'invoke', then: 'invoke' },
  invoke: { name: 'invoke', then: 'invoke' },
};

/** What settle tells each step about a request that has ended. */
export interface SettledRequest {
  /** The request's outcome as a status (see outcomeOf). */
  status: number;
  /** From arrival to the end of the response. */
  latencyMs: number;
}

/**
 * The settle steps, in order. Budgets and buckets are corrected first (the one asynchronous
 * step: a shutdown waits for it), the usage event is written before the observers that read it,
 * the access log line last.
 */
export const SETTLE_STEPS = [
  'reconcile', // metering: budgets and token buckets corrected with what was used
  'key last used', // auth: the key's last-used time, at most once a minute per key
  'shadow', // routing: mirrors a sample of answered requests to a shadow candidate
  'metrics', // observability: the per-request Prometheus series
  'usage event', // metering: the ledger's event, for requests respond did not record
  'request log', // observability: one row per request, written in batches
  'live stats', // observability: per-second statistics (dashboard, alerts)
  'drift', // signals: input drift per route
  'abuse', // signals: abuse flags per key and user
  'access log', // observability: the per-request log line
] as const;
export type SettleStepName = (typeof SETTLE_STEPS)[number];

/** A settle step: cheap, never throws on purpose (a throw is logged and the next step still runs). */
export type SettleStep = (ctx: RequestContext, settled: SettledRequest) => void | Promise<void>;

export interface Pipeline {
  /** Runs the stages, responds, and schedules settle. Never rejects. */
  run(ctx: RequestContext): Promise<void>;
  /** Resolves once every request in progress has responded and settled (shutdown), or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
  /** Resolves once every request in progress has responded and settled (tests wait on it instead of sleeping). */
  idle(): Promise<void>;
}

export interface PipelineOptions {
  /** The stages, by name; the ones absent are skipped. */
  stages: Partial<Record<StageName, Middleware>>;
  /** The settle steps, by name; the ones absent are skipped. */
  settle: Partial<Record<SettleStepName, SettleStep>>;
  log: Logger;
  respond: RespondOptions;
  /** Traces (off: undefined, and nothing is created per request). */
  tracer?: GatewayTracer | undefined;
  /** Called after respond, before settle is scheduled (tests: a crash at that point). */
  afterRespond?: ((ctx: RequestContext) => void) | undefined;
}

const BEFORE = Symbol('before');
const DONE: Promise<void> = Promise.resolve();
type BeforeMiddleware = Middleware & { [BEFORE]: Stage };

/** A `Stage` as middleware: its work, then the rest unless it set a result (the pipeline runs these in a plain loop). */
export function before(stage: Stage): Middleware {
  const m: BeforeMiddleware = Object.assign(
    async (ctx: RequestContext, next: Next) => {
      await stage(ctx);
      if (!ctx.result) await next();
    },
    { [BEFORE]: stage },
  );
  return m;
}

/** Merges the capabilities' stages (or settle steps) by name, refusing a name given twice. */
export function mergeParts<K extends string, V>(parts: ReadonlyArray<Partial<Record<K, V>> | undefined>, what: string): Partial<Record<K, V>> {
  const out: Partial<Record<K, V>> = {};
  for (const p of parts) {
    for (const [name, v] of Object.entries(p ?? {}) as Array<[K, V]>) {
      if (name in out) throw new Error(`${what} '${name}' is contributed twice`);
      out[name] = v;
    }
  }
  return out;
}

/** Puts the given parts in the order of `order`, refusing names it does not know. */
function ordered<K extends string, V>(order: readonly K[], parts: Partial<Record<K, V>>, what: string): Array<[K, V]> {
  for (const name of Object.keys(parts)) if (!order.includes(name as K)) throw new Error(`unknown ${what} '${name}' (known: ${order.join(', ')})`);
  return order.flatMap((name) => (parts[name] ? [[name, parts[name]] as [K, V]] : []));
}


export function createPipeline(opts: PipelineOptions): Pipeline {
  const { log, tracer } = opts;
  const stages = ordered(STAGES, opts.stages, 'stage');
  const steps = ordered(SETTLE_STEPS, opts.settle, 'settle step');
  const stepNames = steps.map(([name]) => name);
  const stepFns = steps.map(([, step]) => step);
  // Which stages open a span: each once, except an `around` span already opened by an outer stage.
  // A stage's spans: none where an outer stage's `then` span already covers it.
  const spanOf = stages.map(([name], i): SpanSpec | undefined => {
    const span = SPANS[name];
    return stages.slice(0, i).some(([outer]) => SPANS[outer].then === span.name) ? undefined : span;
  });
  const plain = stages.map(([, run]) => (run as Partial<BeforeMiddleware>)[BEFORE]);

  /** The stages from `i` on, for one request: "before" stages in a plain loop, the others onion style. */
  function runFrom(i: number, ctx: RequestContext): Promise<void> {
    return plain[i] ? runBefore(i, ctx) : runOnion(i, ctx);
  }

  async function runBefore(i: number, ctx: RequestContext): Promise<void> {
    for (; i < stages.length; i++) {
      const stage = plain[i];
      if (!stage) break;
      const span = ctx.trace ? spanOf[i] : undefined;
      if (span && ctx.trace) await ctx.trace.stage(span.name, stage, ctx);
      else {
        const pending = stage(ctx);
        if (pending) await pending;
      }
      if (ctx.result) return;
    }
    return runOnion(i, ctx);
  }

  function runOnion(i: number, ctx: RequestContext): Promise<void> {
    const entry = stages[i];
    if (!entry) return DONE;
    const next: Next = () => runFrom(i + 1, ctx);
    const trace = ctx.trace;
    const span = trace ? spanOf[i] : undefined;
    if (trace && span) return traced(trace, span, entry[1], ctx, next);
    try {
      return entry[1](ctx, next) ?? DONE;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async function traced(trace: RequestTrace, span: SpanSpec, run: Middleware, ctx: RequestContext, next: Next): Promise<void> {
    const s = trace.beginStage(span.name);
    let rest: StageSpan | undefined; // the `then` span, from the stage's `next` to its return
    try {
      await run(ctx, () => {
        if (span.then && span.then !== span.name && !rest) {
          s.end(); // the stage's own work ends where the rest begins
          rest = trace.beginStage(span.then);
        } else if (!span.then) s.end();
        return next();
      });
    } catch (err) {
      (rest ?? s).end(err);
      s.end();
      throw err;
    }
    (rest ?? s).end();
    s.end();
  }

  let inFlight = 0;
  let idle: Array<() => void> = [];
  const done = () => {
    if (--inFlight === 0) {
      for (const resolve of idle) resolve();
      idle = [];
    }
  };

  /** Runs the settle steps in order; resolves once the asynchronous ones have (budgets and buckets corrected). */
  function settle(ctx: RequestContext): Promise<unknown> | undefined {
    const settled: SettledRequest = { status: outcomeOf(ctx), latencyMs: performance.now() - ctx.startedAt };
    let pending: Promise<unknown> | undefined;
    let more: Array<Promise<unknown>> | undefined;
    for (let i = 0; i < stepFns.length; i++) {
      try {
        const p = (stepFns[i] as SettleStep)(ctx, settled);
        if (!p) continue;
        const caught = p.catch((err: unknown) => log.error({ err, reqId: ctx.id, step: stepNames[i] }, 'settle step failed'));
        if (pending) (more ??= [pending]).push(caught);
        else pending = caught;
      } catch (err) {
        log.error({ err, reqId: ctx.id, step: stepNames[i] }, 'settle step failed');
      }
    }
    if (!ctx.usageRecorded) ctx.onRecorded?.(); // nothing was recorded: do not keep a job waiting
    return more ? Promise.all(more) : pending;
  }

  // A request counts as in flight until settle has finished, its async part included (budgets
  // and buckets corrected), so a shutdown never closes storage under an open reservation.
  const settleAndFinish = (ctx: RequestContext) => {
    const trace = ctx.trace;
    trace?.beginSettle();
    const pending = settle(ctx);
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
  const respondStage: Stage = (ctx) => respond(ctx, opts.respond);

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
        await runFrom(0, ctx);
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
        setImmediate(settleAndFinish, ctx);
      }
    },
  };
}

/**
 * The status a request is recorded with (ledger, request log, metrics, live stats): the HTTP
 * status the client got, except 499 when the client went away first and, for a stream that
 * failed after its 200 went out (it ended with an SSE error event), the failure's status (502
 * upstream_error, 504 upstream_timeout, 402 budget cut-off), so reports count it as an error.
 */
export function outcomeOf(ctx: RequestContext): number {
  if (ctx.clientAborted) return 499;
  if (ctx.streamError) return ctx.streamError.status;
  return ctx.status ?? 500;
}

function internalError(err: unknown, ctx: RequestContext, log: Logger): GatewayError {
  log.error({ err, reqId: ctx.id }, 'unexpected error in pipeline');
  return new GatewayError('internal_error', `Internal error (request ${ctx.id}).`);
}
