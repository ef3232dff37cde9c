/**
 * OpenTelemetry traces of AI requests, following the GenAI semantic conventions.
 *
 * One trace per request (HTTP or job run): a SERVER root span `{operation} {requested model}`
 * (a child of the caller's W3C `traceparent` when it sent one), one child span per pipeline stage
 * (authenticate, kill switch, route, admit, cache, invoke, respond, settle), and under `invoke` one
 * CLIENT span per upstream attempt `{operation} {upstream model}`. The root span ends after settle,
 * so a stream's root span covers the whole stream.
 *
 * Off by default, and then free: no tracer is created (src/capabilities/observability.ts), the
 * pipeline sees `tracer` undefined and creates nothing per request, and the SDK is never loaded
 * (this file imports only its types; `createTracer` loads it). Each gateway has its own tracer provider and passes parent contexts
 * explicitly: nothing is registered process-wide (no global provider, propagator or context manager).
 */
import type * as Api from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from '../config/tracing-schema.js';
import type { PipelineResult, RequestContext } from '../pipeline/context.js';
import type { ChatCompletionChunk, Provider, UpstreamError } from '../providers/types.js';
import type { Deployment } from '../routing/catalog.js';
import type { Logger } from './logger.js';

/** The trace of one request (`ctx.trace`): what the pipeline and the invoke stage record into. */
export interface RequestTrace {
  /** Runs one stage in a child span of the root span (the span records the stage's error, if any). */
  stage(name: string, run: (ctx: RequestContext) => void | Promise<void>, ctx: RequestContext): Promise<void>;
  /** Starts a stage's child span of the root span; it is the running stage's span until it ends. */
  beginStage(name: string): StageSpan;
  /** Starts the CLIENT span of one upstream attempt, a child of the running stage's span (invoke). */
  attempt(dep: Deployment, operation: RequestContext['operation'], retry: number): AttemptSpan;
  /** A deployment passed over without a call (e.g. its circuit is open): an event on the running stage's span. */
  skipped(dep: Deployment, reason: string): void;
  /** Watches the stream the client gets, for its response model and finish reasons. */
  watchStream(result: Extract<PipelineResult, { kind: 'stream' }>): void;
  /** Starts the settle span. */
  beginSettle(): void;
  /** Ends the settle span and the root span, with the request's final attributes. Never throws. */
  end(ctx: RequestContext): void;
}

/** A stage's span: ended once (with the stage's error, if it failed); later calls do nothing. */
export interface StageSpan {
  end(err?: unknown): void;
}

/** The span of one upstream attempt. */
export interface AttemptSpan {
  ok(result: PipelineResult): void;
  failed(outcome: string, err: UpstreamError): void;
}

/** A gateway's tracer: one per gateway (composition root), shut down with it. */
export interface GatewayTracer {
  /** Starts the request's root span; sets `ctx.trace`, and `ctx.traceId` when the trace is sampled. */
  start(ctx: RequestContext): RequestTrace | undefined;
  /** Exports what is buffered. */
  forceFlush(): Promise<void>;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

export interface TracerOptions {
  log: Logger;
  /** Replaces the OTLP exporter (tests: an in-memory exporter, spans exported as each ends). */
  exporter?: SpanExporter | undefined;
}

/** The trace id response header (only for sampled traces). */
export const TRACE_ID_HEADER = 'x-tollgate-trace-id';

/** `gen_ai.provider.name` of a provider: the wire protocol's flavour (an OpenAI-compatible server speaks `openai`). */
export function genAiProvider(kind: Provider['kind']): string {
  return kind === 'openai-compatible' ? 'openai' : kind === 'anthropic' ? 'anthropic' : 'tollgate.simulated';
}

type Attributes = Record<string, string | number | boolean | string[] | undefined>;

/** Attributes known at arrival (the root span's, set at its start so samplers can see them). */
export function requestAttributes(ctx: RequestContext): Attributes {
  const a: Attributes = {
    'gen_ai.operation.name': ctx.operation,
    'gen_ai.request.model': String(ctx.body.model ?? ''),
    'tollgate.route': ctx.route,
    'tollgate.request_id': ctx.id,
  };
  if (ctx.operation === 'chat') {
    const b = ctx.body;
    const maxTokens = b.max_completion_tokens ?? b.max_tokens;
    if (typeof maxTokens === 'number') a['gen_ai.request.max_tokens'] = maxTokens;
    if (typeof b.temperature === 'number') a['gen_ai.request.temperature'] = b.temperature;
    if (typeof b.top_p === 'number') a['gen_ai.request.top_p'] = b.top_p;
    if (typeof b.n === 'number') a['gen_ai.request.choice.count'] = b.n;
    if (typeof b.seed === 'number') a['gen_ai.request.seed'] = b.seed;
    a['gen_ai.request.stream'] = b.stream === true;
  }
  return a;
}

/** What the root span learns by the end: outcome, usage, cost, who asked, how it was served. */
export function finalAttributes(ctx: RequestContext, status: number, seen: StreamSeen | undefined): Attributes {
  const a: Attributes = {
    'http.response.status_code': status,
    'tollgate.status': status,
    'tollgate.latency_ms': Math.round((performance.now() - ctx.startedAt) * 10) / 10,
    'tollgate.cache.outcome': ctx.cache?.outcome ?? 'none',
    'tollgate.attempts': ctx.attempts.filter((x) => x.outcome !== 'circuit_open').length,
  };
  const auth = ctx.auth;
  if (auth) {
    a['tollgate.tenant.id'] = auth.tenantId;
    a['tollgate.key.id'] = auth.keyId;
    a['tollgate.tier'] = auth.tier;
  }
  if (ctx.routing) a['tollgate.route.tier'] = ctx.routing.tiers[ctx.routing.tier]?.name;
  if (ctx.experiment) a['tollgate.experiment'] = `${ctx.experiment.experiment}:${ctx.experiment.variant}`;
  const served = ctx.servedBy;
  if (served) {
    a['tollgate.deployment'] = served.id;
    a['tollgate.provider'] = served.providerId;
    a['gen_ai.provider.name'] = a['gen_ai.system'] = genAiProvider(served.provider.kind);
  }
  const result = ctx.result;
  const body = result && result.kind !== 'stream' ? result.body : undefined;
  const responseModel = seen?.model ?? (body && 'model' in body ? body.model : undefined) ?? served?.upstreamModel;
  if (responseModel) a['gen_ai.response.model'] = responseModel;
  if (result?.kind === 'chat') {
    a['gen_ai.response.id'] = result.body.id;
    a['gen_ai.response.finish_reasons'] = result.body.choices.map((c) => String(c.finish_reason));
  } else if (seen) {
    if (seen.id) a['gen_ai.response.id'] = seen.id;
    if (seen.finishReasons.length) a['gen_ai.response.finish_reasons'] = seen.finishReasons;
  }
  if (ctx.usage) {
    a['gen_ai.usage.input_tokens'] = ctx.usage.prompt_tokens;
    a['gen_ai.usage.output_tokens'] = ctx.usage.completion_tokens;
    a['tollgate.usage.reported'] = ctx.usageReported ?? false;
  }
  if (ctx.ttftMs !== undefined && result?.kind === 'stream') a['gen_ai.response.time_to_first_chunk'] = ctx.ttftMs / 1000;
  if (ctx.costPico !== undefined) a['tollgate.cost_usd'] = ctx.costPico / 1e12;
  if (ctx.savedPico) a['tollgate.saved_usd'] = ctx.savedPico / 1e12;
  const code = ctx.error?.code ?? ctx.streamError?.code;
  if (code) a['error.type'] = code;
  if (ctx.clientAborted) a['tollgate.client_aborted'] = true;
  return a;
}

/** What the client's stream showed (response id, model, finish reasons). */
interface StreamSeen {
  id: string | undefined;
  model: string | undefined;
  finishReasons: string[];
}

function errorLabel(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.name : 'error';
}

/** Loads the SDK and builds this gateway's tracer provider (OTLP/HTTP batch export, or the given exporter). */
export async function createTracer(config: TracingConfig, opts: TracerOptions): Promise<GatewayTracer> {
  const [api, sdk, core, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
  ]);
  let processor;
  if (opts.exporter) {
    processor = new sdk.SimpleSpanProcessor(opts.exporter);
  } else if (config.exporter === 'none') {
    processor = new sdk.NoopSpanProcessor();
  } else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    const exporter = new OTLPTraceExporter({ url: config.otlp.url, headers: config.otlp.headers, timeoutMillis: config.otlp.timeoutMs });
    processor = new sdk.BatchSpanProcessor(exporter, {
      maxQueueSize: config.batch.maxQueueSize,
      maxExportBatchSize: config.batch.maxExportBatchSize,
      scheduledDelayMillis: config.batch.scheduledDelayMs,
      exportTimeoutMillis: config.otlp.timeoutMs,
    });
  }
  const provider = new sdk.BasicTracerProvider({
    resource: resources.defaultResource().merge(resources.resourceFromAttributes({ 'service.name': config.serviceName })),
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer('tollgate');
  const propagator = new core.W3CTraceContextPropagator();
  const { log } = opts;
  let lastError = 0;
  const warn = (err: unknown, what: string) => {
    if (Date.now() - lastError < 5_000) return;
    lastError = Date.now();
    log.warn({ err }, what);
  };

  function fail(span: Api.Span, err: unknown): void {
    span.setAttribute('error.type', errorLabel(err));
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }

  class Trace implements RequestTrace {
    private parent: Api.Context;
    private settleSpan: Api.Span | undefined;
    private seen: StreamSeen | undefined;

    constructor(
      private readonly root: Api.Span,
      private readonly rootContext: Api.Context,
    ) {
      this.parent = rootContext;
    }

    async stage(name: string, run: (ctx: RequestContext) => void | Promise<void>, ctx: RequestContext): Promise<void> {
      const span = this.beginStage(name);
      try {
        await run(ctx);
      } catch (err) {
        span.end(err);
        throw err;
      }
      span.end();
    }

    beginStage(name: string): StageSpan {
      const span = tracer.startSpan(name, undefined, this.rootContext);
      const running = api.trace.setSpan(this.rootContext, span);
      this.parent = running;
      let open = true;
      return {
        end: (err?: unknown) => {
          if (!open) return;
          open = false;
          if (err !== undefined) fail(span, err);
          span.end();
          if (this.parent === running) this.parent = this.rootContext;
        },
      };
    }

    attempt(dep: Deployment, operation: RequestContext['operation'], retry: number): AttemptSpan {
      const span = tracer.startSpan(
        `${operation} ${dep.upstreamModel}`,
        {
          kind: api.SpanKind.CLIENT,
          attributes: {
            'gen_ai.operation.name': operation,
            'gen_ai.provider.name': genAiProvider(dep.provider.kind),
            'gen_ai.system': genAiProvider(dep.provider.kind),
            'gen_ai.request.model': dep.upstreamModel,
            'tollgate.deployment': dep.id,
            'tollgate.provider': dep.providerId,
            'tollgate.attempt.retry': retry,
          },
        },
        this.parent,
      );
      const httpProvider = dep.provider.kind !== 'simulated';
      return {
        ok(result) {
          span.setAttribute('tollgate.attempt.outcome', 'ok');
          if (httpProvider) span.setAttribute('http.response.status_code', 200);
          try {
            if (result.kind === 'stream') {
              span.setAttribute('gen_ai.response.model', result.first.model);
            } else {
              span.setAttribute('gen_ai.response.model', result.body.model);
              const usage = result.body.usage;
              if (usage) span.setAttribute('gen_ai.usage.input_tokens', usage.prompt_tokens);
              if (result.kind === 'chat') {
                if (result.body.usage) span.setAttribute('gen_ai.usage.output_tokens', result.body.usage.completion_tokens);
                span.setAttribute('gen_ai.response.id', result.body.id);
                span.setAttribute('gen_ai.response.finish_reasons', result.body.choices.map((c) => String(c.finish_reason)));
              }
            }
          } catch (err) {
            warn(err, 'tracing: unexpected upstream answer shape');
          }
          span.end();
        },
        failed(outcome, err) {
          span.setAttribute('tollgate.attempt.outcome', outcome);
          span.setAttribute('error.type', outcome);
          if (err.status !== undefined) span.setAttribute('http.response.status_code', err.status);
          // Upstream's own error text may echo credentials: only our own messages go in the trace.
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: err.kind === 'http' ? `HTTP ${err.status ?? '?'}` : err.message });
          span.end();
        },
      };
    }

    skipped(dep: Deployment, reason: string): void {
      api.trace.getSpan(this.parent)?.addEvent('deployment skipped', { 'tollgate.deployment': dep.id, 'tollgate.attempt.outcome': reason });
    }

    watchStream(result: Extract<PipelineResult, { kind: 'stream' }>): void {
      const seen: StreamSeen = { id: undefined, model: undefined, finishReasons: [] };
      this.seen = seen;
      const look = (chunk: ChatCompletionChunk) => {
        seen.id ??= chunk.id;
        seen.model ??= chunk.model;
        for (const c of chunk.choices) if (c.finish_reason) seen.finishReasons.push(c.finish_reason);
      };
      look(result.first);
      const inner = result.rest;
      result.rest = {
        async next() {
          const n = await inner.next();
          if (!n.done) look(n.value);
          return n;
        },
        return: (value?: unknown) => (inner.return ? inner.return(value) : Promise.resolve({ done: true as const, value: undefined })),
      };
    }

    beginSettle(): void {
      this.settleSpan = tracer.startSpan('settle', undefined, this.rootContext);
    }

    end(ctx: RequestContext): void {
      try {
        this.settleSpan?.end();
        const status = ctx.clientAborted ? 499 : (ctx.status ?? 500);
        const root = this.root;
        root.setAttributes(finalAttributes(ctx, status, this.seen));
        if ((status >= 500 && status !== 499) || ctx.streamError) {
          // The code, not the message: a message may quote the upstream's error text.
          root.setStatus({ code: api.SpanStatusCode.ERROR, message: (ctx.error ?? ctx.streamError)?.code ?? `HTTP ${status}` });
        }
        root.end();
      } catch (err) {
        warn(err, 'tracing: could not end a request span');
      }
    }
  }

  return {
    start(ctx) {
      try {
        const parent = propagator.extract(api.ROOT_CONTEXT, ctx.headers, api.defaultTextMapGetter);
        const root = tracer.startSpan(
          `${ctx.operation} ${String(ctx.body.model ?? '')}`,
          { kind: api.SpanKind.SERVER, attributes: requestAttributes(ctx) },
          parent,
        );
        const sc = root.spanContext();
        if ((sc.traceFlags & api.TraceFlags.SAMPLED) !== 0) {
          ctx.traceId = sc.traceId;
          ctx.extraHeaders[TRACE_ID_HEADER] = sc.traceId;
        }
        const trace = new Trace(root, api.trace.setSpan(parent, root));
        ctx.trace = trace;
        return trace;
      } catch (err) {
        warn(err, 'tracing: could not start a request span');
        return undefined;
      }
    },
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
