/**
 * The invoke stage's deadline and per-attempt timeout, with a fake provider (no network): the
 * request deadline caps every attempt and wait together; an attempt's own timeout caps each.
 */
import { describe, expect, it } from 'vitest';
import { resilienceSchema } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { createLogger } from '../../observability/logger.js';
import { GatewayMetrics } from '../../observability/metrics.js';
import { type CallOptions, type ChatCompletionChunk, type Provider, UpstreamError } from '../../providers/types.js';
import { BreakerRegistry } from '../../resilience/circuit-breaker.js';
import type { Deployment } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';
import { invokeStage } from './invoke.js';

/** A provider whose calls never answer: they end only when their signal aborts. */
function hangingProvider(calls: { n: number }): Provider {
  const hang = (opts: CallOptions) =>
    new Promise<never>((_, reject) => {
      calls.n++;
      opts.signal.addEventListener('abort', () => reject(opts.signal.reason instanceof UpstreamError ? opts.signal.reason : new UpstreamError('aborted', 'aborted')));
    });
  return { id: 'fake', kind: 'simulated', chat: (_r, o) => hang(o), chatStream: (_r, o) => hang(o), embed: (_r, o) => hang(o), close: async () => {} };
}

function context(deployments: Deployment[], body: Record<string, unknown> = {}): RequestContext {
  return {
    id: 'req_test',
    eventId: 'req_test',
    operation: 'chat',
    route: '/v1/chat/completions',
    startedAt: performance.now(),
    receivedAt: Date.now(),
    headers: {},
    body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body },
    sink: { signal: new AbortController().signal, committed: false, sendJson() {}, openStream: () => ({ send: async () => {}, end() {} }) },
    log: createLogger('silent'),
    attempts: [],
    extraHeaders: {},
    chain: deployments,
  };
}

const deployment = (provider: Provider, id = 'm@fake'): Deployment => ({ id, providerId: provider.id, provider, upstreamModel: 'm', timeoutMs: undefined, model: 'm', price: undefined });

function stage(resilience: Record<string, unknown>) {
  return invokeStage({
    resilience: resilienceSchema.parse(resilience),
    breakers: new BreakerRegistry({ failureThreshold: 100, cooldownMs: 1_000, halfOpenMaxProbes: 1, successesToClose: 1 }),
    metrics: new GatewayMetrics({ defaultMetrics: false }),
    random: () => 0,
  });
}

describe('invoke: deadline and attempt timeout', () => {
  it('each attempt times out at attemptTimeoutMs; retries and fallbacks stop at the request deadline', async () => {
    const calls = { n: 0 };
    const p = hangingProvider(calls);
    const invoke = stage({ attemptTimeoutMs: 100, deadlineMs: 350, retry: { maxRetries: 10, baseDelayMs: 0, maxDelayMs: 0 } });
    const ctx = context([deployment(p, 'a@fake'), deployment(p, 'b@fake')]);
    const t0 = performance.now();
    const err = await invoke(ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('upstream_timeout');
    expect((err as GatewayError).status).toBe(504);
    expect(took).toBeGreaterThanOrEqual(340);
    expect(took).toBeLessThan(700); // not 11 attempts x 2 deployments x 100 ms
    expect(calls.n).toBeGreaterThanOrEqual(3); // 100 + 100 + 100 + the rest of the deadline
    expect(calls.n).toBeLessThanOrEqual(5);
    expect(ctx.attempts.every((a) => a.outcome === 'timeout')).toBe(true);
  });

  it('the last attempt is cut to what is left of the deadline', async () => {
    const calls = { n: 0 };
    const invoke = stage({ attemptTimeoutMs: 10_000, deadlineMs: 150 });
    const ctx = context([deployment(hangingProvider(calls))]);
    const t0 = performance.now();
    await expect(invoke(ctx)).rejects.toMatchObject({ code: 'upstream_timeout' });
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(calls.n).toBe(1);
  });

  it('once a stream has started, the deadline no longer applies: only the idle timer between chunks', async () => {
    const chunk = (content: string): ChatCompletionChunk => ({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 0,
      model: 'm',
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    });
    const streaming: Provider = {
      ...hangingProvider({ n: 0 }),
      async chatStream(_req, opts) {
        return (async function* () {
          yield chunk('first');
          // then one chunk every 80 ms, for 400 ms in all: past the 150 ms deadline
          for (let i = 0; i < 5; i++) {
            await new Promise((r) => setTimeout(r, 80));
            if (opts.signal.aborted) throw opts.signal.reason;
            yield chunk(String(i));
          }
        })();
      },
    };
    const invoke = stage({ attemptTimeoutMs: 1_000, deadlineMs: 150, streamIdleTimeoutMs: 200 });
    const ctx = context([deployment(streaming)], { stream: true });
    await invoke(ctx);
    const result = ctx.result;
    expect(result?.kind).toBe('stream');
    if (result?.kind !== 'stream') return;
    const got: string[] = [];
    for (;;) {
      const next = await result.rest.next();
      if (next.done) break;
      got.push(next.value.choices[0]!.delta.content ?? '');
      result.idle.rearm();
    }
    result.idle.dispose();
    expect(got).toEqual(['0', '1', '2', '3', '4']);
  });
});
