import { afterEach, describe, expect, it, vi } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { instantModel } from '../../../test/helpers/sim-models.js';
import type { FaultConfig, SimModelConfig, SimulatedProviderConfig } from '../../config/schema.js';
import { UpstreamError, type CallOptions, type ChatCompletionChunk, type ChatCompletionRequest, type ChunkStream } from '../types.js';
import { SimulatedProvider } from './provider.js';

const instant = (over: Partial<SimModelConfig> = {}): SimModelConfig => instantModel({ outputTokens: { min: 8, max: 8 }, dimensions: 16, ...over });

const NO_FAULTS: FaultConfig = { errorRate: {}, retryAfterSeconds: 1, hangRate: 0, resetRate: 0, midStreamBreakRate: 0 };

function provider(models: SimulatedProviderConfig['models'] = { chat: instant(), embed: instant({ type: 'embedding' }) }, faults: Partial<FaultConfig> = {}) {
  return new SimulatedProvider('sim', { kind: 'simulated', models, faults: { ...NO_FAULTS, ...faults } });
}

const req = (content = 'hello there', extra: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => ({
  model: 'public-name',
  messages: [{ role: 'user', content }],
  ...extra,
});

const call = (signal: AbortSignal = new AbortController().signal, upstreamModel = 'chat'): CallOptions => ({ signal, upstreamModel });

async function collect(stream: ChunkStream): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<UpstreamError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

/** Follows a promise without awaiting it: whether it has settled yet, and how. */
function watch<T>(p: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  p.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('SimulatedProvider', () => {
  it('answers a chat with the upstream model and usage, without any timer at zero latency', async () => {
    vi.useFakeTimers();
    const p = provider();
    const res = await p.chat(req(), call());
    expect(vi.getTimerCount()).toBe(0);
    expect(res).toMatchObject({ object: 'chat.completion', model: 'chat', choices: [{ index: 0, finish_reason: 'stop' }] });
    expect(res.id).toMatch(/^chatcmpl-sim-[0-9a-f]+$/);
    expect(res.usage?.completion_tokens).toBe(8);
    expect(p.engine.stats()).toMatchObject({ total: 1, completed: 1, inFlight: 0, byModel: { chat: 1 } });
    expect(p.engine.stats().recentRequests[0]).toMatchObject({ model: 'chat', messages: [{ role: 'user', content: 'hello there' }] });
  });

  it('streams role chunk, content chunks, finish chunk and a usage chunk that add up', async () => {
    const p = provider({ chat: instant({ outputTokens: { min: 20, max: 40 } }) });
    const chunks = await collect(await p.chatStream(req('stream me', { seed: 3 }), call()));
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    const finish = chunks.at(-2)?.choices[0];
    expect(finish?.finish_reason).toBe('stop');
    const contentChunks = chunks.filter((c) => c.choices[0]?.delta.content);
    const text = contentChunks.map((c) => c.choices[0]?.delta.content).join('');
    expect(text.split(/\s+/).filter(Boolean)).toHaveLength(contentChunks.length);
    expect(last?.usage?.completion_tokens).toBe(contentChunks.length);
    expect(last?.usage?.total_tokens).toBe((last?.usage?.prompt_tokens ?? 0) + contentChunks.length);
    // The stream says what the JSON answer says.
    const json = await p.chat(req('stream me', { seed: 3 }), call());
    expect(json.choices[0]?.message.content).toBe(text);
    expect(p.engine.stats()).toMatchObject({ completed: 2, inFlight: 0 });
  });

  it('turns a scripted 429 into an http UpstreamError with status and retryAfterMs', async () => {
    const p = provider();
    p.engine.script([{ kind: 'error', status: 429 }, { kind: 'error', status: 500 }]);
    const limited = await rejection(p.chat(req(), call()));
    expect(limited).toMatchObject({ kind: 'http', status: 429, retryAfterMs: 1000, retryable: true });
    expect(limited.upstreamMessage).toMatch(/rate limit/i);
    const failed = await rejection(p.chatStream(req(), call()));
    expect(failed).toMatchObject({ kind: 'http', status: 500, retryAfterMs: undefined });
    expect((await p.chat(req(), call())).object).toBe('chat.completion');
    expect(p.engine.stats()).toMatchObject({ total: 3, failed: 2, completed: 1 });
  });

  it('hangs until the signal aborts, then rejects with its UpstreamError reason or as aborted', async () => {
    vi.useFakeTimers();
    const p = provider(undefined, { hangRate: 1 });
    const ac = new AbortController();
    const pending = p.chat(req(), call(ac.signal));
    const state = watch(pending);
    await vi.advanceTimersByTimeAsync(3_600_000); // an hour of fake time: nothing but the abort ends a hang
    expect(state.settled).toBe(false);
    expect(p.engine.stats().inFlight).toBe(1);
    const timeout = new UpstreamError('timeout', 'attempt timed out');
    ac.abort(timeout);
    expect(await rejection(pending)).toBe(timeout);

    const ac2 = new AbortController();
    const streaming = p.chatStream(req(), call(ac2.signal));
    ac2.abort();
    expect(await rejection(streaming)).toMatchObject({ kind: 'aborted' });
    expect(p.engine.stats()).toMatchObject({ aborted: 2, inFlight: 0, outcomes: { hang: 2 } });
  });

  it('resets the connection and breaks streams mid-way after the scripted number of chunks', async () => {
    const p = provider();
    p.engine.script([{ kind: 'reset' }, { kind: 'break', afterChunks: 3 }]);
    expect(await rejection(p.chat(req(), call()))).toMatchObject({ kind: 'connection', phase: 'request' });

    const stream = await p.chatStream(req(), call());
    const seen: ChatCompletionChunk[] = [];
    const err = await (async () => {
      try {
        for await (const c of stream) seen.push(c);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(seen).toHaveLength(3);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ kind: 'protocol', phase: 'stream' });
    expect(p.engine.stats()).toMatchObject({ failed: 2, outcomes: { reset: 1, break: 1 } });
  });

  it('rejects unknown models with 404 and the wrong kind of model with 400', async () => {
    const p = provider();
    expect(await rejection(p.chat(req(), call(undefined, 'missing')))).toMatchObject({ kind: 'http', status: 404, retryable: false });
    expect(await rejection(p.embed({ model: 'x', input: 'hi' }, call(undefined, 'chat')))).toMatchObject({ status: 400 });
    expect(await rejection(p.chat(req(), call(undefined, 'embed')))).toMatchObject({ status: 400 });
    const emb = await p.embed({ model: 'x', input: ['a', 'b'] }, call(undefined, 'embed'));
    expect(emb.data.map((d) => (d.embedding as number[]).length)).toEqual([16, 16]);
  });

  it('waits the time to first token and paces tokens, and a mid-stream abort stops it', async () => {
    vi.useFakeTimers();
    const p = provider({ slow: instant({ ttftMs: { median: 40, p95: 40 }, tokensPerSecond: 200, outputTokens: { min: 50, max: 50 } }) });
    const ac = new AbortController();
    const opening = p.chatStream(req(), call(ac.signal, 'slow'));
    const opened = watch(opening);
    await vi.advanceTimersByTimeAsync(39);
    expect(opened.settled).toBe(false); // the time to first token is 40 ms
    await vi.advanceTimersByTimeAsync(1);
    const stream = (await opening)[Symbol.asyncIterator]();
    const seen: ChatCompletionChunk[] = [];
    // The role chunk and the first token come at once...
    for (let i = 0; i < 2; i++) seen.push((await stream.next()).value as ChatCompletionChunk);
    // ...then one token every 5 ms (200 tokens/s).
    for (let i = 0; i < 3; i++) {
      const next = stream.next();
      const state = watch(next);
      await vi.advanceTimersByTimeAsync(4);
      expect(state.settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      seen.push((await next).value as ChatCompletionChunk);
    }
    expect(seen[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(seen.slice(1).every((c) => (c.choices[0]?.delta.content ?? '').length > 0)).toBe(true); // four tokens
    const reason = new UpstreamError('aborted', 'client went away');
    ac.abort(reason);
    await expect(stream.next()).rejects.toBe(reason);
    expect(seen.length).toBe(5);
    expect(p.engine.stats()).toMatchObject({ aborted: 1, completed: 0, inFlight: 0 });
  });

  it('counts a stream the caller stops reading as aborted', async () => {
    const p = provider();
    const stream = await p.chatStream(req(), call());
    for await (const c of stream) if (c.choices[0]?.delta.content) break;
    expect(p.engine.stats()).toMatchObject({ aborted: 1, completed: 0, inFlight: 0 });
  });

  it('rejects at once when the signal is already aborted, and after close', async () => {
    const p = provider();
    const ac = new AbortController();
    ac.abort();
    expect(await rejection(p.chat(req(), call(ac.signal)))).toMatchObject({ kind: 'aborted' });
    const hanging = provider(undefined, { hangRate: 1 });
    const pending = hanging.chat(req(), call());
    await hanging.close();
    expect(await rejection(pending)).toMatchObject({ kind: 'connection' });
    expect(await rejection(hanging.embed({ model: 'x', input: 'a' }, call(undefined, 'embed')))).toMatchObject({ kind: 'connection' });
  });

  it('uses the built-in models when the config names none', async () => {
    const p = new SimulatedProvider('sim', { kind: 'simulated', faults: NO_FAULTS });
    expect(Object.keys(p.engine.models)).toEqual(['sim-small', 'sim-medium', 'sim-large', 'sim-embed']);
    expect(p.kind).toBe('simulated');
  });
});
