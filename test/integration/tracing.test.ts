/**
 * OpenTelemetry traces: one trace per request with a span per pipeline stage and per upstream
 * attempt, GenAI attributes, W3C traceparent honoured; nothing at all when tracing is off.
 */
import { randomBytes } from 'node:crypto';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const ask = (model: string, content: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });
const unique = (what: string) => `${what} ${randomBytes(6).toString('hex')}`;

/** The finished root span of a request (it ends after settle, or after a job's run: waited for). */
async function rootOf(exporter: InMemorySpanExporter, requestId: string): Promise<ReadableSpan> {
  return vi.waitFor(
    () => {
      const root = exporter.getFinishedSpans().find((s) => s.attributes['tollgate.request_id'] === requestId);
      if (!root) throw new Error(`no root span for request ${requestId}`);
      return root;
    },
    { timeout: 10_000, interval: 5 },
  );
}

const inTrace = (exporter: InMemorySpanExporter, root: ReadableSpan) =>
  exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === root.spanContext().traceId && s !== root);
const childrenOf = (spans: ReadableSpan[], parent: ReadableSpan) => spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

describe('tracing: spans per request, stage and attempt (in-memory exporter)', () => {
  let primary: SimServer;
  let backup: SimServer;
  let gw: TestGateway;
  let off: TestGateway;
  const exporter = new InMemorySpanExporter();
  const offExporter = new InMemorySpanExporter();

  beforeAll(async () => {
    primary = await startSim();
    backup = await startSim();
    const models = {
      chain: {
        deployments: [
          { provider: 'primary', model: 'sim-small' },
          { provider: 'backup', model: 'sim-large' },
        ],
        price: { input: 1, output: 2 },
      },
      embed: { type: 'embedding' as const, deployments: [{ provider: 'primary', model: 'sim-embed' }] },
    };
    const extra = {
      resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 1000 } },
      jobs: { pollMs: 50 },
    };
    gw = await startGateway(httpSimConfig({ primary, backup }, models, { ...extra, tracing: { enabled: true } }), { spanExporter: exporter });
    off = await startGateway(httpSimConfig({ primary, backup }, models, { ...extra, tracing: { enabled: false } }), { spanExporter: offExporter });
  });
  afterAll(async () => {
    await gw?.close();
    await off?.close();
    await primary?.close();
    await backup?.close();
  });
  beforeEach(() => {
    primary.engine.reset();
    backup.engine.reset();
  });

  it('records one trace per chat request: a SERVER root with GenAI attributes, a span per stage, a CLIENT span per attempt', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, ask('chain', unique('Trace me'), { max_tokens: 50, temperature: 0.3 }), auth(gw.apiKey));
    expect(res.status).toBe(200);
    const root = await rootOf(exporter, res.headers.get('x-request-id')!);

    expect(root.name).toBe('chat chain');
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(root.parentSpanContext).toBeUndefined();
    expect(res.headers.get('x-tollgate-trace-id')).toBe(root.spanContext().traceId);
    expect(root.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'chain',
      'gen_ai.request.max_tokens': 50,
      'gen_ai.request.temperature': 0.3,
      'gen_ai.response.model': 'sim-small',
      'gen_ai.response.id': res.body.id,
      'gen_ai.provider.name': 'openai',
      'gen_ai.usage.input_tokens': res.body.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': res.body.usage.completion_tokens,
      'gen_ai.response.finish_reasons': [res.body.choices[0].finish_reason],
      'tollgate.tenant.id': gw.tenantId,
      'tollgate.cache.outcome': res.headers.get('x-tollgate-cache'),
      'tollgate.attempts': 1,
      'tollgate.deployment': 'sim-small@primary',
      'http.response.status_code': 200,
    });
    expect(typeof root.attributes['tollgate.tier']).toBe('string');
    expect(root.attributes['tollgate.cost_usd']).toBeCloseTo(Number(res.headers.get('x-tollgate-cost-usd')), 12);
    expect(root.status.code).not.toBe(SpanStatusCode.ERROR);

    const spans = inTrace(exporter, root);
    const stages = childrenOf(spans, root).map((s) => s.name);
    expect(stages).toEqual(['authenticate', 'kill switch', 'route', 'admit', 'cache', 'invoke', 'respond', 'settle']);
    const [invoke] = named(spans, 'invoke');
    const attempts = childrenOf(spans, invoke!);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.name).toBe('chat sim-small');
    expect(attempts[0]!.kind).toBe(SpanKind.CLIENT);
    expect(attempts[0]!.attributes).toMatchObject({
      'gen_ai.request.model': 'sim-small',
      'gen_ai.provider.name': 'openai',
      'tollgate.deployment': 'sim-small@primary',
      'tollgate.provider': 'primary',
      'tollgate.attempt.outcome': 'ok',
      'http.response.status_code': 200,
      'gen_ai.usage.output_tokens': res.body.usage.completion_tokens,
    });
    // The root span ends last (spans are exported as they end).
    const order = exporter.getFinishedSpans();
    for (const s of spans) expect(order.indexOf(s)).toBeLessThan(order.indexOf(root));
  });

  it('a fallback gives two attempt spans under invoke: the failed one with its error, then the one that answered', async () => {
    primary.engine.script([{ kind: 'error', status: 502 }]);
    const res = await postJson(`${gw.url}/v1/chat/completions`, ask('chain', unique('Fall back')), auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-provider')).toBe('backup');
    const root = await rootOf(exporter, res.headers.get('x-request-id')!);
    const spans = inTrace(exporter, root);
    const attempts = childrenOf(spans, named(spans, 'invoke')[0]!);
    expect(attempts.map((a) => a.name)).toEqual(['chat sim-small', 'chat sim-large']);
    expect(attempts[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(attempts[0]!.attributes).toMatchObject({ 'tollgate.deployment': 'sim-small@primary', 'tollgate.attempt.outcome': 'http_502', 'http.response.status_code': 502, 'error.type': 'http_502' });
    expect(attempts[1]!.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(attempts[1]!.attributes).toMatchObject({ 'tollgate.deployment': 'sim-large@backup', 'tollgate.provider': 'backup', 'tollgate.attempt.outcome': 'ok' });
    expect(root.attributes).toMatchObject({ 'tollgate.attempts': 2, 'gen_ai.response.model': 'sim-large', 'tollgate.provider': 'backup' });
  });

  it("a stream's root span ends with the stream, with its usage and finish reasons", async () => {
    const body = ask('chain', unique('Stream me'), { stream: true, stream_options: { include_usage: true } });
    const res = await postStream(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.sawDone).toBe(true);
    const usage = res.events.find((e) => e.usage)?.usage;
    const finish = res.events.flatMap((e) => e.choices ?? []).map((c: any) => c.finish_reason).filter(Boolean);
    const root = await rootOf(exporter, res.headers.get('x-request-id')!);
    expect(root.name).toBe('chat chain');
    expect(root.attributes).toMatchObject({
      'gen_ai.request.stream': true,
      'gen_ai.usage.input_tokens': usage.prompt_tokens,
      'gen_ai.usage.output_tokens': usage.completion_tokens,
      'gen_ai.response.finish_reasons': finish,
      'gen_ai.response.model': 'sim-small',
    });
    expect(root.attributes['gen_ai.response.time_to_first_chunk']).toBeGreaterThanOrEqual(0);
    const spans = inTrace(exporter, root);
    // Spans are exported as they end: the root span ended after the stream was written and settled.
    const order = exporter.getFinishedSpans();
    expect(order.indexOf(root)).toBeGreaterThan(order.indexOf(named(spans, 'respond')[0]!));
    expect(named(spans, 'settle')).toHaveLength(1);
  });

  it("continues the caller's trace from traceparent (and tracestate), and follows its sampling decision", async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const res = await postJson(`${gw.url}/v1/chat/completions`, ask('chain', unique('Continue')), {
      ...auth(gw.apiKey),
      traceparent: `00-${traceId}-${parentId}-01`,
      tracestate: 'caller=abc',
    });
    expect(res.status).toBe(200);
    const root = await rootOf(exporter, res.headers.get('x-request-id')!);
    expect(root.spanContext().traceId).toBe(traceId);
    expect(root.parentSpanContext?.spanId).toBe(parentId);
    expect(root.parentSpanContext?.isRemote).toBe(true);
    expect(root.spanContext().traceState?.get('caller')).toBe('abc');
    expect(res.headers.get('x-tollgate-trace-id')).toBe(traceId);
    expect(inTrace(exporter, root).length).toBeGreaterThanOrEqual(8);

    // The caller did not sample this trace: nothing is recorded, the request is served alike.
    const unsampled = randomBytes(16).toString('hex');
    const res2 = await postJson(`${gw.url}/v1/chat/completions`, ask('chain', unique('Not sampled')), {
      ...auth(gw.apiKey),
      traceparent: `00-${unsampled}-${parentId}-00`,
    });
    expect(res2.status).toBe(200);
    expect(res2.headers.get('x-tollgate-trace-id')).toBeNull();
    await gw.settled(); // a recorded trace's root span would have ended (and been exported) by now
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === unsampled)).toEqual([]);
  });

  it('traces embeddings, refused requests (error on the failing stage) and cache hits', async () => {
    const emb = await postJson(`${gw.url}/v1/embeddings`, { model: 'embed', input: unique('vector') }, auth(gw.apiKey));
    expect(emb.status).toBe(200);
    const embRoot = await rootOf(exporter, emb.headers.get('x-request-id')!);
    expect(embRoot.name).toBe('embeddings embed');
    expect(embRoot.attributes).toMatchObject({ 'gen_ai.operation.name': 'embeddings', 'gen_ai.usage.input_tokens': emb.body.usage.prompt_tokens });
    expect(childrenOf(inTrace(exporter, embRoot), named(inTrace(exporter, embRoot), 'invoke')[0]!).map((s) => s.name)).toEqual(['embeddings sim-embed']);

    const missing = await postJson(`${gw.url}/v1/chat/completions`, ask('no-such-model', 'hi'), auth(gw.apiKey));
    expect(missing.status).toBe(404);
    const missingRoot = await rootOf(exporter, missing.headers.get('x-request-id')!);
    expect(missingRoot.attributes).toMatchObject({ 'http.response.status_code': 404, 'error.type': 'model_not_found' });
    const route = named(inTrace(exporter, missingRoot), 'route')[0]!;
    expect(route.status.code).toBe(SpanStatusCode.ERROR);
    expect(named(inTrace(exporter, missingRoot), 'invoke')).toEqual([]);

    const question = ask('chain', unique('Cache me'), { temperature: 0 });
    const first = await postJson(`${gw.url}/v1/chat/completions`, question, auth(gw.apiKey));
    await rootOf(exporter, first.headers.get('x-request-id')!);
    const hit = await postJson(`${gw.url}/v1/chat/completions`, question, auth(gw.apiKey));
    expect(hit.headers.get('x-tollgate-cache')).toBe('hit');
    const hitRoot = await rootOf(exporter, hit.headers.get('x-request-id')!);
    expect(hitRoot.attributes).toMatchObject({ 'tollgate.cache.outcome': 'hit', 'tollgate.attempts': 0, 'gen_ai.response.model': first.body.model });
    expect(childrenOf(inTrace(exporter, hitRoot), hitRoot).map((s) => s.name)).toEqual(['authenticate', 'kill switch', 'route', 'admit', 'cache', 'respond', 'settle']);
  });

  it('gives a job run its own trace through the same stages', async () => {
    const submitted = await postJson(`${gw.url}/v1/jobs`, { body: ask('chain', unique('A job')) }, auth(gw.apiKey));
    expect(submitted.status).toBe(202);
    const root = await rootOf(exporter, submitted.body.id);
    expect(root.name).toBe('chat chain');
    expect(root.attributes).toMatchObject({ 'tollgate.route': '/v1/jobs', 'tollgate.status': 200, 'gen_ai.response.model': 'sim-small' });
    const spans = inTrace(exporter, root);
    expect(childrenOf(spans, named(spans, 'invoke')[0]!).map((s) => s.name)).toEqual(['chat sim-small']);
  });

  it('with tracing off records no span, sends no trace header, and serves as usual', async () => {
    const res = await postJson(`${off.url}/v1/chat/completions`, ask('chain', unique('Untraced')), {
      ...auth(off.apiKey),
      traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-trace-id')).toBeNull();
    const stream = await postStream(`${off.url}/v1/chat/completions`, ask('chain', unique('Untraced stream'), { stream: true }), auth(off.apiKey));
    expect(stream.sawDone).toBe(true);
    await off.settled(); // both requests settled: any span they made has ended
    expect(offExporter.getFinishedSpans()).toEqual([]);
    // The traced gateway's spans are its own: none carries the untraced gateway's request ids.
    expect(exporter.getFinishedSpans().some((s) => s.attributes['tollgate.request_id'] === res.headers.get('x-request-id'))).toBe(false);
  });
});
