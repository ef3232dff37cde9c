import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { instantModel } from '../../../test/helpers/sim-models.js';
import type { SimModelConfig } from '../../config/schema.js';
import type { ChatCompletion, ChatCompletionChunk, EmbeddingResponse } from '../types.js';
import { startSimServer, type SimServer } from './server.js';

const model = (over: Partial<SimModelConfig> = {}): SimModelConfig => instantModel({ outputTokens: { min: 10, max: 30 }, dimensions: 32, ...over });

let sim: SimServer;

beforeAll(async () => {
  sim = await startSimServer({
    models: {
      fast: model(),
      // 100 tokens at 1/s: a stream that cannot finish while the tests, which disconnect early, run.
      slow: model({ tokensPerSecond: 1, outputTokens: { min: 100, max: 100 } }),
      embed: model({ type: 'embedding' }),
    },
  });
});

afterAll(async () => {
  await sim.close();
});

beforeEach(async () => {
  sim.engine.reset();
  sim.engine.setFaults({});
});

const post = (path: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
const control = (path: string, body?: unknown) =>
  fetch(`${sim.url.replace(/\/v1$/, '')}/_sim/${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });

const chatBody = (extra: Record<string, unknown> = {}) => ({ model: 'fast', messages: [{ role: 'user', content: 'Say something' }], ...extra });

/** The `data:` payloads of an SSE body, in order. */
function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length));
}

/** Waits for the simulator's stats to match (the server sees a disconnect a little after the client). */
const statsMatch = (expected: Record<string, unknown>) =>
  vi.waitFor(() => expect(sim.engine.stats()).toMatchObject(expected), { timeout: 10_000, interval: 5 });

describe('startSimServer', () => {
  it('answers chat completions as JSON and echoes x-request-id', async () => {
    const res = await post('/chat/completions', chatBody(), { headers: { 'content-type': 'application/json', 'x-request-id': 'req-42' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-42');
    const body = (await res.json()) as ChatCompletion;
    expect(body).toMatchObject({ object: 'chat.completion', model: 'fast', choices: [{ finish_reason: 'stop' }] });
    const words = (body.choices[0]?.message.content ?? '').split(/\s+/).length;
    expect(body.usage?.completion_tokens).toBe(words);
  });

  it('streams SSE ending with [DONE], with a usage chunk only when include_usage is asked', async () => {
    const withUsage = await post('/chat/completions', chatBody({ stream: true, stream_options: { include_usage: true } }));
    expect(withUsage.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseEvents(await withUsage.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as ChatCompletionChunk);
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1);
    expect(usageChunk?.choices).toEqual([]);
    const contentChunks = chunks.filter((c) => c.choices[0]?.delta.content);
    expect(usageChunk?.usage?.completion_tokens).toBe(contentChunks.length);

    const without = sseEvents(await (await post('/chat/completions', chatBody({ stream: true }))).text());
    expect(without.at(-1)).toBe('[DONE]');
    const plain = without.slice(0, -1).map((e) => JSON.parse(e) as ChatCompletionChunk);
    expect(plain.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
    expect(plain.at(-1)?.choices[0]?.finish_reason).toBe('stop');

    const stats = (await (await control('stats')).json()) as { recentRequests: Array<{ stream_options?: unknown }> };
    expect(stats.recentRequests.map((r) => r.stream_options)).toEqual([{ include_usage: true }, undefined]);
  });

  it('answers a scripted 429 in the OpenAI envelope with Retry-After and retry-after-ms', async () => {
    const scripted = await control('script', { outcomes: [{ kind: 'error', status: 429 }, { kind: 'error', status: 500 }] });
    expect(await scripted.json()).toEqual({ queued: 2 });
    const res = await post('/chat/completions', chatBody());
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.headers.get('retry-after-ms')).toBe('1000');
    expect(await res.json()).toEqual({
      error: { message: expect.stringMatching(/rate limit/i), type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' },
    });
    const failed = await post('/chat/completions', chatBody());
    expect(failed.status).toBe(500);
    expect(failed.headers.get('retry-after')).toBeNull();
    await failed.arrayBuffer();
    expect((await post('/chat/completions', chatBody())).status).toBe(200);
  });

  it('changes fault rates, resets stats and reports them through the control API', async () => {
    expect((await control('faults', { errorRate: { '503': 1 }, retryAfterSeconds: 2 })).status).toBe(200);
    const res = await post('/chat/completions', chatBody());
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    await res.arrayBuffer();
    const stats = await (await control('stats')).json();
    expect(stats).toMatchObject({ total: 1, failed: 1, byModel: { fast: 1 }, outcomes: { error: 1 } });

    const invalid = await control('faults', { hangRate: 2 });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { message: string } }).error.message).toMatch(/hangRate/);
    expect((await control('script', { outcomes: [{ kind: 'explode' }] })).status).toBe(400);

    await control('faults', {});
    await control('reset', {});
    expect(await (await control('stats')).json()).toMatchObject({ total: 0, failed: 0, recentRequests: [] });
    expect((await post('/chat/completions', chatBody())).status).toBe(200);
  });

  it('answers bad JSON, unknown models and unknown routes with OpenAI errors', async () => {
    const bad = await post('/chat/completions', '{"model": ');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json' } });
    const unknown = await post('/chat/completions', chatBody({ model: 'gpt-9' }));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'model_not_found', param: 'model' } });
    const route = await fetch(`${sim.url}/nothing`);
    expect(route.status).toBe(404);
    await route.arrayBuffer();
  });

  it('lists models and serves embeddings', async () => {
    const models = (await (await fetch(`${sim.url}/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['fast', 'slow', 'embed']);
    const res = await post('/embeddings', { model: 'embed', input: ['reset my password', 'reset the password', 'weather in Paris'] });
    const body = (await res.json()) as EmbeddingResponse;
    const [a, b, c] = body.data.map((d) => d.embedding as number[]);
    const dot = (x: number[] = [], y: number[] = []) => x.reduce((s, v, i) => s + v * (y[i] ?? 0), 0);
    expect(a).toHaveLength(32);
    expect(dot(a, b)).toBeGreaterThan(dot(a, c));
  });

  it('resets the connection and breaks a stream without [DONE]', async () => {
    await control('script', { outcomes: [{ kind: 'reset' }, { kind: 'break', afterChunks: 2 }] });
    await expect(post('/chat/completions', chatBody())).rejects.toThrow();
    const res = await post('/chat/completions', chatBody({ stream: true }));
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const err = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          text += decoder.decode(value, { stream: true });
        }
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeDefined();
    expect(sseEvents(text)).toHaveLength(2);
    expect(text).not.toContain('[DONE]');
    expect((await (await control('stats')).json()) as object).toMatchObject({ failed: 2, outcomes: { reset: 1, break: 1 } });
  });

  it('stops a stream and counts it aborted when the client disconnects mid-stream', async () => {
    const ac = new AbortController();
    const res = await post('/chat/completions', { ...chatBody(), model: 'slow', stream: true }, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(sim.engine.stats().inFlight).toBe(1);
    ac.abort();
    await statsMatch({ aborted: 1, completed: 0, inFlight: 0 });
  });

  it('counts a hanging request as aborted when the client gives up', async () => {
    await control('script', { outcomes: [{ kind: 'hang' }] });
    const ac = new AbortController();
    const pending = post('/chat/completions', chatBody(), { signal: ac.signal });
    pending.catch(() => {}); // rejected on purpose below
    await statsMatch({ inFlight: 1, outcomes: { hang: 1 } }); // the server holds the request, unanswered
    ac.abort();
    await expect(pending).rejects.toThrow();
    await statsMatch({ aborted: 1, inFlight: 0, outcomes: { hang: 1 } });
  });
});
