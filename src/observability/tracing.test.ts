/**
 * The tracer with a fake pipeline (no network): span tree, error status, sampling, stream
 * watching, per-gateway isolation, and nothing per request when no tracer is given.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it, vi } from 'vitest';
import { tracingSchema } from '../config/tracing-schema.js';
import { GatewayError } from '../errors.js';
import type { PipelineResult, RequestContext } from '../pipeline/context.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatContext } from '../../test/helpers/context.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatCompletion } from '../../test/helpers/completions.js';
import { type Stage, before, createPipeline } from '../pipeline/pipeline.js';
import type { ChatCompletion, ChatCompletionChunk, Provider } from '../providers/types.js';
import { UpstreamError } from '../providers/types.js';
import type { Deployment } from '../routing/catalog.js';
import { createLogger } from './logger.js';
import { type GatewayTracer, TRACE_ID_HEADER, createTracer, genAiProvider } from './tracing.js';

const log = createLogger('silent');

function context(headers: Record<string, string> = {}): RequestContext {
  return chatContext({ id: `req_${Math.random().toString(16).slice(2)}`, eventId: 'e', headers, body: { max_tokens: 7 }, log });
}

const provider: Provider = { id: 'p', kind: 'openai-compatible', chat: async () => answer, chatStream: async () => ({ async *[Symbol.asyncIterator]() {} }), embed: async () => ({}) as never, close: async () => {} };
const dep: Deployment = { id: 'up@p', providerId: 'p', provider, upstreamModel: 'up', timeoutMs: undefined, model: 'm', price: undefined };
const answer: ChatCompletion = chatCompletion('ok', { model: 'up-2024' });

/** A pipeline whose "invoke" stage fails once on a deployment, then answers (through the trace, as invoke.ts does). */
function pipeline(tracer: GatewayTracer | undefined, opts: { fail?: GatewayError; seen?: (ctx: RequestContext) => void } = {}) {
  const settled: RequestContext[] = [];
  const authenticate: Stage = async function authenticate(ctx) {
    opts.seen?.(ctx);
    if (opts.fail) throw opts.fail;
  };
  const invoke: Stage = async function invokeThroughCache(ctx) {
    const first = ctx.trace?.attempt(dep, ctx.operation, 0);
    first?.failed('http_503', new UpstreamError('http', 'upstream said: key sk-secret invalid', { status: 503 }));
    ctx.attempts.push({ deployment: dep.id, outcome: 'http_503', durationMs: 1 });
    const second = ctx.trace?.attempt(dep, ctx.operation, 1);
    const result: PipelineResult = { kind: 'chat', body: answer };
    second?.ok(result);
    ctx.attempts.push({ deployment: dep.id, outcome: 'ok', durationMs: 1 });
    ctx.servedBy = dep;
    ctx.result = result;
    ctx.usage = answer.usage;
  };
  const p = createPipeline({
    stages: { authenticate: before(authenticate), invoke: (ctx) => invoke(ctx) },
    settle: {
      'access log': (ctx) => {
        settled.push(ctx);
      },
    },
    log,
    respond: { streamOverBudget: 'finish' },
    tracer,
  });
  return { p, settled };
}

async function tracerWith(exporter: InMemorySpanExporter, config: Record<string, unknown> = {}) {
  return createTracer(tracingSchema.parse({ enabled: true, ...config }), { log, exporter });
}

/** Waits for the exporter to hold what the test then checks (a span is exported as it ends). */
const until = (cond: () => boolean) => vi.waitFor(() => expect(cond()).toBe(true), { timeout: 10_000, interval: 5 });

describe('tracing', () => {
  it('maps providers to gen_ai.provider.name', () => {
    expect(genAiProvider('openai-compatible')).toBe('openai');
    expect(genAiProvider('anthropic')).toBe('anthropic');
  });

  it('builds the span tree of a request: root, stages, attempts under invoke, settle; ends the root last', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = await tracerWith(exporter);
    const { p } = pipeline(tracer);
    const ctx = context();
    await p.run(ctx);
    await p.idle(); // settled: the root span has ended
    await until(() => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER));
    const spans = exporter.getFinishedSpans();
    const root = spans.at(-1)!;
    expect(root.name).toBe('chat m');
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(ctx.traceId).toBe(root.spanContext().traceId);
    expect(ctx.extraHeaders[TRACE_ID_HEADER]).toBe(ctx.traceId);
    const children = spans.filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId).map((s) => s.name);
    expect(children).toEqual(['authenticate', 'invoke', 'respond', 'settle']);
    const invoke = spans.find((s) => s.name === 'invoke')!;
    const attempts = spans.filter((s) => s.parentSpanContext?.spanId === invoke.spanContext().spanId);
    expect(attempts.map((a) => [a.name, a.kind, a.attributes['tollgate.attempt.outcome']])).toEqual([
      ['chat up', SpanKind.CLIENT, 'http_503'],
      ['chat up', SpanKind.CLIENT, 'ok'],
    ]);
    // Upstream's error text stays out of the trace (it may echo credentials).
    expect(attempts[0]!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'HTTP 503' });
    expect(root.attributes).toMatchObject({
      'gen_ai.request.max_tokens': 7,
      'gen_ai.response.model': 'up-2024',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': 3,
      'gen_ai.usage.output_tokens': 2,
      'tollgate.attempts': 2,
      'tollgate.status': 200,
    });
    await tracer.shutdown();
  });

  it('onion stages: the cache span covers its lookup; one invoke span covers escalation, invoke and a stale answer served on the way out', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = await tracerWith(exporter);
    const calls: string[] = [];
    const p = createPipeline({
      stages: {
        cache: async (ctx, next) => {
          calls.push('lookup');
          try {
            await next();
          } catch {
            calls.push('stale');
            ctx.result = { kind: 'chat', body: answer }; // every deployment failed: a stale answer
          }
        },
        escalate: async (_ctx, next) => {
          await next();
          calls.push('escalate again');
          await next(); // one tier up, inside the same invoke span
        },
        invoke: (ctx) => {
          calls.push('invoke');
          const attempt = ctx.trace?.attempt(dep, ctx.operation, 0);
          if (calls.filter((c) => c === 'invoke').length === 2) {
            attempt?.failed('http_503', new UpstreamError('http', 'down', { status: 503 }));
            throw new GatewayError('upstream_unavailable', 'every deployment failed');
          }
          attempt?.ok({ kind: 'chat', body: answer });
        },
      },
      settle: {},
      log,
      respond: { streamOverBudget: 'finish' },
      tracer,
    });
    await p.run(context());
    await p.idle();
    await until(() => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER));
    expect(calls).toEqual(['lookup', 'invoke', 'escalate again', 'invoke', 'stale']);
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const children = spans.filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId);
    expect(children.map((s) => s.name).sort()).toEqual(['cache', 'invoke', 'respond', 'settle']);
    const [cache, invoke] = [children.find((s) => s.name === 'cache')!, children.find((s) => s.name === 'invoke')!];
    expect(invoke.status.code).not.toBe(SpanStatusCode.ERROR); // the request was answered (stale)
    expect(spans.filter((s) => s.parentSpanContext?.spanId === invoke.spanContext().spanId)).toHaveLength(2); // both attempts
    expect(spans.filter((s) => s.parentSpanContext?.spanId === cache.spanContext().spanId)).toHaveLength(0); // the lookup only
    await tracer.shutdown();
  });

  it('marks the failing stage as an error; the root only for 5xx', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = await tracerWith(exporter);
    for (const fail of [new GatewayError('invalid_api_key', 'bad key'), new GatewayError('storage_unavailable', 'down')]) {
      const { p } = pipeline(tracer, { fail });
      await p.run(context());
      await p.idle();
    }
    await until(() => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER).length === 2);
    const roots = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);
    expect(roots.map((r) => [r.attributes['tollgate.status'], r.attributes['error.type'], r.status.code])).toEqual([
      [401, 'invalid_api_key', SpanStatusCode.UNSET],
      [503, 'storage_unavailable', SpanStatusCode.ERROR],
    ]);
    const auth = exporter.getFinishedSpans().filter((s) => s.name === 'authenticate');
    expect(auth.every((s) => s.status.code === SpanStatusCode.ERROR)).toBe(true);
    expect(exporter.getFinishedSpans().some((s) => s.name === 'invoke')).toBe(false);
    await tracer.shutdown();
  });

  it('samples by sampleRatio (0: nothing recorded, no trace id), and each gateway keeps its own spans', async () => {
    const none = new InMemorySpanExporter();
    const all = new InMemorySpanExporter();
    const [t0, t1] = await Promise.all([tracerWith(none, { sampleRatio: 0 }), tracerWith(all)]);
    const ctx0 = context();
    const ctx1 = context();
    const [p0, p1] = [pipeline(t0).p, pipeline(t1).p];
    await p0.run(ctx0);
    await p1.run(ctx1);
    await Promise.all([p0.idle(), p1.idle()]);
    await until(() => all.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER));
    expect(ctx0.traceId).toBeUndefined();
    expect(ctx0.extraHeaders[TRACE_ID_HEADER]).toBeUndefined();
    expect(none.getFinishedSpans()).toEqual([]);
    expect(new Set(all.getFinishedSpans().map((s) => s.spanContext().traceId))).toEqual(new Set([ctx1.traceId]));
    await Promise.all([t0.shutdown(), t1.shutdown()]);
  });

  it('reads finish reasons and the response model from the stream the client gets', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = await tracerWith(exporter);
    const ctx = context();
    const trace = tracer.start(ctx)!;
    const chunk = (finish: string | null): ChatCompletionChunk =>
      ({ id: 'c1', object: 'chat.completion.chunk', created: 0, model: 'up-s', choices: [{ index: 0, delta: { content: 'x' }, finish_reason: finish }] }) as ChatCompletionChunk;
    const chunks = [chunk(null), chunk('length')];
    const result: Extract<PipelineResult, { kind: 'stream' }> = {
      kind: 'stream',
      first: chunk(null),
      rest: chunks[Symbol.iterator]() as unknown as AsyncIterator<ChatCompletionChunk>,
      idle: { rearm() {}, dispose() {} },
    };
    ctx.result = result;
    trace.watchStream(result);
    while (!(await result.rest.next()).done);
    ctx.status = 200;
    trace.beginSettle();
    trace.end(ctx);
    const root = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    expect(root.attributes).toMatchObject({ 'gen_ai.response.model': 'up-s', 'gen_ai.response.id': 'c1', 'gen_ai.response.finish_reasons': ['length'] });
    await tracer.shutdown();
  });

  it('exports over OTLP/HTTP to the configured url, with the configured headers, batched', async () => {
    const received: Array<{ url: string | undefined; auth: string | undefined; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ url: req.url, auth: req.headers['x-api-key'] as string | undefined, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const config = tracingSchema.parse({
        enabled: true,
        serviceName: 'tollgate-test',
        otlp: { url: `http://127.0.0.1:${port}/v1/traces`, headers: { 'x-api-key': 'k1' }, timeoutMs: 10_000 },
        batch: { scheduledDelayMs: 60_000 },
      });
      const tracer = await createTracer(config, { log });
      const ctx = context();
      const { p } = pipeline(tracer);
      await p.run(ctx);
      await p.idle(); // settle ends the root span: every span of the request has ended
      expect(received).toEqual([]); // batched: nothing sent before the batch is due
      await tracer.shutdown(); // flushes
      // One export holding the whole trace: had spans been sent as they ended, there would be one per span.
      expect(received).toHaveLength(1);
      expect(received[0]).toMatchObject({ url: '/v1/traces', auth: 'k1' });
      const all = received.map((r) => r.body).join('');
      expect(all).toContain(ctx.traceId!);
      expect(all).toContain('tollgate-test');
      expect(all).toContain('gen_ai.request.model');
    } finally {
      server.close();
    }
  });

  it('without a tracer the pipeline creates nothing per request', async () => {
    let seen: RequestContext | undefined;
    const { p, settled } = pipeline(undefined, { seen: (ctx) => (seen = ctx) });
    const ctx = context({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
    await p.run(ctx);
    await p.idle();
    expect(settled).toHaveLength(1);
    expect(seen?.trace).toBeUndefined();
    expect(ctx.trace).toBeUndefined();
    expect(ctx.traceId).toBeUndefined();
    expect(ctx.extraHeaders[TRACE_ID_HEADER]).toBeUndefined();
    expect(ctx.status).toBe(200);
  });
});
