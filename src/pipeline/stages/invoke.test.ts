/**
 * The invoke stage's deadline and per-attempt timeout, with a fake provider (no network): the
 * request deadline caps every attempt and wait together; an attempt's own timeout caps each.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resilienceSchema } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { GatewayMetrics } from '../../observability/metrics.js';
import { type CallOptions, type ChatCompletionChunk, type Provider, UpstreamError } from '../../providers/types.js';
import { BreakerRegistry } from '../../resilience/circuit-breaker.js';
import type { Deployment } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatContext } from '../../../test/helpers/context.js';
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
  return chatContext({ chain: deployments, body });
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
  // The stage reads performance.now() and arms setTimeout timers; the provider is a fake with no
  // I/O, so the whole clock is faked and moved by hand: every instant below is exact.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Settles `p` into a value or an error, and tells whether it has settled yet. */
  function watch<T>(p: Promise<T>) {
    const state: { done: boolean; value?: T; error?: unknown } = { done: false };
    const settled = p.then(
      (value) => Object.assign(state, { done: true, value }),
      (error: unknown) => Object.assign(state, { done: true, error }),
    );
    return { state, settled };
  }

  it('each attempt times out at attemptTimeoutMs; retries and fallbacks stop at the request deadline', async () => {
    const calls = { n: 0 };
    const p = hangingProvider(calls);
    const invoke = stage({ attemptTimeoutMs: 100, deadlineMs: 350, retry: { maxRetries: 10, baseDelayMs: 0, maxDelayMs: 0 } });
    const ctx = context([deployment(p, 'a@fake'), deployment(p, 'b@fake')]);
    const run = watch(invoke(ctx));
    await vi.advanceTimersByTimeAsync(349);
    expect(run.state.done).toBe(false); // still trying until the deadline
    expect(calls.n).toBe(4); // attempts at 0, 100, 200 and 300 ms
    await vi.advanceTimersByTimeAsync(1);
    await run.settled;
    const err = run.state.error;
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('upstream_timeout');
    expect((err as GatewayError).status).toBe(504);
    expect((err as GatewayError).message).toContain('request deadline exceeded');
    // not 11 attempts x 2 deployments x 100 ms: three full attempts, then the rest of the deadline
    expect(calls.n).toBe(4);
    expect(ctx.attempts.map((a) => [a.deployment, a.outcome, a.durationMs])).toEqual([
      ['a@fake', 'timeout', 100],
      ['a@fake', 'timeout', 100],
      ['a@fake', 'timeout', 100],
      ['a@fake', 'timeout', 50],
    ]);
  });

  it('the last attempt is cut to what is left of the deadline', async () => {
    const calls = { n: 0 };
    const invoke = stage({ attemptTimeoutMs: 10_000, deadlineMs: 150 });
    const ctx = context([deployment(hangingProvider(calls))]);
    const run = watch(invoke(ctx));
    await vi.advanceTimersByTimeAsync(149);
    expect(run.state.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // at the deadline, not at the 10 s attempt timeout
    await run.settled;
    expect(run.state.error).toMatchObject({ code: 'upstream_timeout' });
    expect(calls.n).toBe(1);
    expect(ctx.attempts).toMatchObject([{ outcome: 'timeout', durationMs: 150 }]);
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
      const pending = result.rest.next();
      await vi.advanceTimersByTimeAsync(80); // the provider's pause; the clock passes 150 ms on the 2nd chunk
      const next = await pending;
      if (next.done) break;
      got.push(next.value.choices[0]!.delta.content ?? '');
      result.idle.rearm();
    }
    result.idle.dispose();
    expect(got).toEqual(['0', '1', '2', '3', '4']);
    expect(performance.now() - ctx.startedAt).toBeGreaterThan(150); // the fake clock went past the deadline
  });

  it('a stream that stays idle longer than streamIdleTimeoutMs is aborted', async () => {
    const streaming: Provider = {
      ...hangingProvider({ n: 0 }),
      async chatStream(_req, opts) {
        return (async function* () {
          yield { id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content: 'first' }, finish_reason: null }] } as ChatCompletionChunk;
          await new Promise((_, reject) => opts.signal.addEventListener('abort', () => reject(opts.signal.reason)));
        })();
      },
    };
    const invoke = stage({ attemptTimeoutMs: 1_000, deadlineMs: 150, streamIdleTimeoutMs: 200 });
    const ctx = context([deployment(streaming)], { stream: true });
    await invoke(ctx);
    const result = ctx.result;
    if (result?.kind !== 'stream') throw new Error('expected a stream');
    const next = watch(result.rest.next());
    await vi.advanceTimersByTimeAsync(199);
    expect(next.state.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await next.settled;
    expect(next.state.error).toMatchObject({ kind: 'timeout', message: 'stream idle for more than 200ms' });
    result.idle.dispose();
  });
});
