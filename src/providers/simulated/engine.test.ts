import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { instantModel } from '../../../test/helpers/sim-models.js';
import type { SimModelConfig } from '../../config/schema.js';
import type { ChatCompletionRequest, EmbeddingResponse } from '../types.js';
import { sseSerializer, toCompletion, toStreamSteps, type ChatPlan } from './chat.js';
import { cosineSimilarity } from './embeddings.js';
import { SimEngine, type SimAttempt } from './engine.js';
import { mulberry32, sampleLogNormal } from './random.js';

const chatModel = (over: Partial<SimModelConfig> = {}): SimModelConfig => instantModel({ outputTokens: { min: 20, max: 60 }, dimensions: 64, ...over });

function engine(opts: { faults?: Record<string, unknown>; random?: () => number } = {}): SimEngine {
  return new SimEngine({
    models: {
      'm-chat': chatModel(),
      'm-fixed': chatModel({ outputTokens: { min: 30, max: 30 } }),
      'm-embed': { ...chatModel(), type: 'embedding', dimensions: 128 },
    },
    faults: opts.faults ?? {},
    random: opts.random,
  });
}

function answer<T>(attempt: SimAttempt<T>): T {
  if (attempt.kind !== 'answer') throw new Error(`expected an answer, got ${attempt.kind}`);
  return attempt.answer;
}

const ask = (content: string, extra: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => ({
  model: 'm-chat',
  messages: [{ role: 'user', content }],
  ...extra,
});

const text = (plan: ChatPlan, i = 0) => toCompletion(plan).choices[i]?.message.content ?? '';
const wordCount = (s: string) => s.split(/\s+/).filter(Boolean).length;

describe('SimEngine chat answers', () => {
  it('gives the same text for the same model, seed and prompt, and a different one for another seed', () => {
    const a = text(answer(engine().prepareChat(ask('Explain caching', { seed: 7 }), false)));
    const b = text(answer(engine().prepareChat(ask('Explain caching', { seed: 7 }), false)));
    const c = text(answer(engine().prepareChat(ask('Explain caching', { seed: 8 }), false)));
    const d = text(answer(engine().prepareChat(ask('Explain routing', { seed: 7 }), false)));
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(d).not.toBe(a);
    expect(a).toMatch(/^[A-Z].*\.$/);
  });

  it('answers a class of questions with its scripted answer (first match wins), others as usual', () => {
    const e = engine();
    e.setAnswers([
      { match: /\breset\b/i, answer: 'Use the reset link.' },
      { match: 'capital', answer: 'Paris.' },
    ]);
    expect(text(answer(e.prepareChat(ask('How do I RESET my password?'), false)))).toBe('Use the reset link.');
    expect(text(answer(e.prepareChat(ask('Please, how can I reset my password? Thanks'), false)))).toBe('Use the reset link.');
    expect(text(answer(e.prepareChat(ask('What is the Capital of France?'), false)))).toBe('Paris.');
    const steps = toStreamSteps(answer(e.prepareChat(ask('reset it'), true)), false);
    expect(steps.map((s) => s.chunk.choices[0]?.delta.content ?? '').join('')).toBe('Use the reset link.');
    expect(text(answer(e.prepareChat(ask('Explain routing'), false)))).not.toBe('Paris.');
    e.reset(); // kept, like the faults
    expect(text(answer(e.prepareChat(ask('capital?'), false)))).toBe('Paris.');
  });

  it('counts one completion token per word and clips at max_tokens with finish_reason length', () => {
    const e = engine();
    const full = toCompletion(answer(e.prepareChat({ ...ask('hi'), model: 'm-fixed' }, false)));
    expect(full.choices[0]?.finish_reason).toBe('stop');
    expect(wordCount(full.choices[0]?.message.content ?? '')).toBe(30);
    expect(full.usage?.completion_tokens).toBe(30);

    const clipped = toCompletion(answer(e.prepareChat({ ...ask('hi'), model: 'm-fixed', max_tokens: 5 }, false)));
    expect(clipped.choices[0]?.finish_reason).toBe('length');
    expect(wordCount(clipped.choices[0]?.message.content ?? '')).toBe(5);
    expect(clipped.usage).toMatchObject({ completion_tokens: 5, total_tokens: (clipped.usage?.prompt_tokens ?? 0) + 5 });

    // max_completion_tokens wins over max_tokens.
    const both = toCompletion(answer(e.prepareChat({ ...ask('hi'), model: 'm-fixed', max_tokens: 5, max_completion_tokens: 9 }, false)));
    expect(both.usage?.completion_tokens).toBe(9);
  });

  it('counts prompt tokens with the o200k tokenizer plus 3 per message and 3 for the reply', () => {
    const plan = answer(engine().prepareChat({ model: 'm-chat', messages: [{ role: 'system', content: 'hello world' }, { role: 'user', content: 'hello world' }] }, false));
    // "hello world" is 2 tokens in o200k.
    expect(plan.usage.prompt_tokens).toBe(2 + 3 + 2 + 3 + 3);
  });

  it('answers valid JSON in JSON mode unless clipped', () => {
    const e = engine();
    const json = text(answer(e.prepareChat(ask('give json', { response_format: { type: 'json_object' } }), false)));
    expect(JSON.parse(json)).toEqual({ answer: expect.any(String) });
    const clipped = text(answer(e.prepareChat(ask('give json', { response_format: { type: 'json_schema' }, max_tokens: 3 }), false)));
    expect(() => JSON.parse(clipped)).toThrow();
  });

  it('calls a tool when required, when named, or on auto when the user says "tool"', () => {
    const tools = [
      { type: 'function' as const, function: { name: 'search', parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
      { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } } },
    ];
    const e = engine();
    const required = toCompletion(answer(e.prepareChat(ask('weather please', { tools, tool_choice: 'required' }), false)));
    expect(required.choices[0]?.finish_reason).toBe('tool_calls');
    expect(required.choices[0]?.message.content).toBeNull();
    const call = required.choices[0]?.message.tool_calls?.[0];
    expect(call?.function.name).toBe('search');
    expect(call?.id).toMatch(/^call_sim_/);
    expect(JSON.parse(call?.function.arguments ?? '')).toEqual({ q: expect.any(String) });

    const named = toCompletion(answer(e.prepareChat(ask('hi', { tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }), false)));
    const args = JSON.parse(named.choices[0]?.message.tool_calls?.[0]?.function.arguments ?? '');
    expect(args).toEqual({ city: expect.any(String), days: expect.any(Number) });

    const auto = toCompletion(answer(e.prepareChat(ask('please use a tool: get_weather', { tools }), false)));
    expect(auto.choices[0]?.message.tool_calls?.[0]?.function.name).toBe('get_weather');
    const plain = toCompletion(answer(e.prepareChat(ask('just talk', { tools }), false)));
    expect(plain.choices[0]?.finish_reason).toBe('stop');
    const none = toCompletion(answer(e.prepareChat(ask('use a tool', { tools, tool_choice: 'none' }), false)));
    expect(none.choices[0]?.message.tool_calls).toBeUndefined();
  });

  it('returns n choices whose completion tokens add up', () => {
    const plan = answer(engine().prepareChat(ask('three please', { n: 3 }), false));
    const c = toCompletion(plan);
    expect(c.choices.map((x) => x.index)).toEqual([0, 1, 2]);
    const words = c.choices.reduce((sum, x) => sum + wordCount(x.message.content ?? ''), 0);
    expect(c.usage?.completion_tokens).toBe(words);
    const steps = toStreamSteps(plan, true);
    const streamed = new Map<number, string>();
    for (const { chunk } of steps) for (const ch of chunk.choices) streamed.set(ch.index, (streamed.get(ch.index) ?? '') + (ch.delta.content ?? ''));
    expect([0, 1, 2].map((i) => streamed.get(i))).toEqual(c.choices.map((x) => x.message.content));
  });

  it('serialises chunks as SSE exactly like JSON.stringify', () => {
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { id: { type: 'integer' } } } } }];
    for (const extra of [{ n: 2 }, { tools, tool_choice: 'required' as const }]) {
      const plan = answer(engine().prepareChat(ask('serialise "me"', extra), true));
      for (const includeUsage of [true, false]) {
        const sse = sseSerializer(plan, includeUsage);
        for (const { chunk } of toStreamSteps(plan, includeUsage)) expect(sse(chunk)).toBe(`data: ${JSON.stringify(chunk)}\n\n`);
      }
    }
  });

  it('rejects unknown models (404), wrong model types (400) and bad requests (400)', () => {
    const e = engine();
    const status = (a: SimAttempt<unknown>) => (a.kind === 'error' ? a.error.status : a.kind);
    expect(status(e.prepareChat(ask('x', { model: 'nope' }), false))).toBe(404);
    expect(status(e.prepareChat(ask('x', { model: 'm-embed' }), false))).toBe(400);
    expect(status(e.prepareEmbedding({ model: 'm-chat', input: 'x' }))).toBe(400);
    expect(status(e.prepareChat({ model: 'm-chat', messages: [] }, false))).toBe(400);
    expect(status(e.prepareChat(ask('x', { max_tokens: 0 }), false))).toBe(400);
    // Invalid requests take no scripted outcome.
    e.script([{ kind: 'hang' }]);
    e.prepareChat(ask('x', { model: 'nope' }), false);
    expect(e.prepareChat(ask('x'), false).kind).toBe('hang');
  });
});

describe('SimEngine faults, script and stats', () => {
  it('takes scripted outcomes in order before drawing from the fault rates', () => {
    const e = engine({ faults: { errorRate: { '500': 1 } } });
    e.script([{ kind: 'ok' }, { kind: 'error', status: 429, retryAfterSeconds: 3 }, { kind: 'reset' }]);
    expect(e.prepareChat(ask('a'), false).kind).toBe('answer');
    const limited = e.prepareChat(ask('b'), false);
    expect(limited.kind === 'error' && [limited.error.status, limited.error.retryAfterSeconds]).toEqual([429, 3]);
    expect(e.prepareChat(ask('c'), false).kind).toBe('reset');
    const drawn = e.prepareChat(ask('d'), false);
    expect(drawn.kind === 'error' && drawn.error.status).toBe(500);
    expect(e.stats().outcomes).toMatchObject({ ok: 1, error: 2, reset: 1 });
  });

  it('draws each fault kind from its rate; breaks only for streams', () => {
    const draws = (faults: Record<string, unknown>, stream = true) => engine({ faults, random: mulberry32(1) }).nextOutcome(stream).kind;
    expect(draws({ hangRate: 1 })).toBe('hang');
    expect(draws({ resetRate: 1 })).toBe('reset');
    expect(draws({ midStreamBreakRate: 1 })).toBe('break');
    expect(draws({ midStreamBreakRate: 1 }, false)).toBe('ok');
    expect(draws({})).toBe('ok');
    const e = engine({ faults: { errorRate: { '503': 1 }, retryAfterSeconds: 2 } });
    const a = e.prepareChat(ask('x'), false);
    expect(a.kind === 'error' && [a.error.status, a.error.retryAfterSeconds]).toEqual([503, 2]);
    e.setFaults({ errorRate: { '500': 1 } });
    const b = e.prepareChat(ask('x'), false);
    expect(b.kind === 'error' && [b.error.status, b.error.retryAfterSeconds]).toEqual([500, undefined]);
    // Roughly the configured share of requests fail.
    e.setFaults({ errorRate: { '500': 0.3 } });
    let errors = 0;
    for (let i = 0; i < 2000; i++) if (e.nextOutcome(false).kind === 'error') errors++;
    expect(errors / 2000).toBeGreaterThan(0.25);
    expect(errors / 2000).toBeLessThan(0.35);
  });

  it('keeps totals, per-model counts and the last 50 bodies; reset clears them and the script', () => {
    const e = engine();
    for (let i = 0; i < 60; i++) {
      const t = e.begin({ model: i % 2 ? 'm-chat' : 'm-fixed', i });
      if (i < 50) t.complete();
      else if (i < 55) t.abort();
      else if (i < 58) t.fail();
      if (i < 58) t.complete(); // ignored: the first end wins
    }
    const s = e.stats();
    expect(s).toMatchObject({ total: 60, completed: 50, aborted: 5, failed: 3, inFlight: 2, byModel: { 'm-chat': 30, 'm-fixed': 30 } });
    expect(s.recentRequests).toHaveLength(50);
    expect(s.recentRequests[0]).toEqual({ model: 'm-fixed', i: 10 });
    e.script([{ kind: 'hang' }]);
    const before = e.begin({ model: 'm-chat' });
    e.reset();
    expect(e.stats()).toMatchObject({ total: 0, completed: 0, inFlight: 3, recentRequests: [] });
    before.complete();
    expect(e.stats()).toMatchObject({ completed: 0, inFlight: 2 });
    expect(e.nextOutcome(false).kind).toBe('ok');
  });

  it('samples time to first token from a log-normal with the configured median and p95', () => {
    const random = mulberry32(42);
    const samples = Array.from({ length: 4000 }, () => sampleLogNormal(random, 100, 300)).sort((a, b) => a - b);
    expect(samples[2000]).toBeGreaterThan(90);
    expect(samples[2000]).toBeLessThan(110);
    expect(samples[3800]).toBeGreaterThan(260);
    expect(samples[3800]).toBeLessThan(340);
    expect(sampleLogNormal(random, 0, 500)).toBe(0);
  });
});

describe('SimEngine embeddings', () => {
  const embed = (input: string | string[], extra: Record<string, unknown> = {}): EmbeddingResponse =>
    answer(engine().prepareEmbedding({ model: 'm-embed', input, ...extra }));
  const vec = (r: EmbeddingResponse, i = 0) => r.data[i]?.embedding as number[];

  it('gives deterministic unit vectors, closer for paraphrases than for unrelated texts', () => {
    const r = embed([
      'How do I reset my password?',
      'how can I reset the password',
      'What is the weather in Paris today?',
      'How do I reset my password?',
    ]);
    expect(r.data).toHaveLength(4);
    expect(vec(r)).toHaveLength(128);
    expect(Math.hypot(...vec(r))).toBeCloseTo(1, 6);
    expect(vec(r, 3)).toEqual(vec(r, 0));
    const paraphrase = cosineSimilarity(vec(r, 0), vec(r, 1));
    const unrelated = cosineSimilarity(vec(r, 0), vec(r, 2));
    expect(paraphrase).toBeGreaterThan(0.6);
    expect(unrelated).toBeLessThan(0.3);
    expect(r.usage.prompt_tokens).toBeGreaterThan(10);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens);
  });

  it('honours dimensions and base64 encoding', () => {
    const floats = embed('hello there', { dimensions: 32 });
    expect(vec(floats)).toHaveLength(32);
    const b64 = embed('hello there', { dimensions: 32, encoding_format: 'base64' });
    const buf = Buffer.from(b64.data[0]?.embedding as string, 'base64');
    const decoded = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
    expect(decoded).toHaveLength(32);
    decoded.forEach((x, i) => expect(x).toBeCloseTo(vec(floats)[i] ?? NaN, 6));
  });
});
