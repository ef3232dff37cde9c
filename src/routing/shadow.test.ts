/** ShadowService: which requests are mirrored, what a mirror sends and records, the similarity of the answers. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BuiltinEmbedder } from '../cache/embedders/builtin.js';
import type { Embedder } from '../cache/types.js';
import { costPico } from '../metering/cost.js';
import type { UsageEvent } from '../storage/types.js';
import { dot } from '../util/vector.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { body, cfg, closeShadowHarnesses, FakeProvider, fakeHarness, idle, input, SMALL_PRICE, simHarness } from '../../test/helpers/shadow.js';

afterEach(async () => {
  vi.useRealTimers();
  await closeShadowHarnesses();
});

describe('ShadowService: sampling', () => {
  it('mirrors about sampleRate of the requests, sticky per request id', async () => {
    const { service } = await simHarness({ shadow: cfg({ sampleRate: 0.25 }) });
    const ids = Array.from({ length: 4000 }, (_, i) => `req-${i}`);
    const share = ids.filter((id) => service.sampled('auto', id)).length / ids.length;
    expect(share).toBeGreaterThan(0.22);
    expect(share).toBeLessThan(0.28);
    for (const id of ids.slice(0, 200)) expect(service.sampled('auto', id)).toBe(service.sampled('auto', id));
    expect(service.sampled('unknown-route', 'req-1')).toBe(false);
  });

  it('mirrors exactly the sampled requests, and never a route without shadow config', async () => {
    const { service, store } = await simHarness({ shadow: cfg({ sampleRate: 0.3 }), maxInFlight: 1000 });
    const inputs = Array.from({ length: 100 }, () => input());
    for (const i of inputs) service.maybeMirror(i);
    service.maybeMirror(input({ route: 'other' }));
    await idle(service);
    const expected = inputs.filter((i) => service.sampled('auto', i.requestId)).map((i) => i.eventId);
    expect(expected.length).toBeGreaterThan(15);
    expect(store.pairs.map((p) => p.requestId).sort()).toEqual(expected.sort());
    expect(service.stats()).toMatchObject({ mirrored: expected.length, failed: 0, skippedBudget: 0, skippedBusy: 0 });
  });

  it('uses `random` when given; 0 and 1 mean never and always', async () => {
    const rolls = [0.1, 0.9];
    const { service } = await simHarness({ shadow: cfg({ sampleRate: 0.5 }), random: () => rolls.shift() ?? 0 });
    expect([service.sampled('auto', 'x'), service.sampled('auto', 'x')]).toEqual([true, false]);
    const never = (await simHarness({ shadow: cfg({ sampleRate: 0 }) })).service;
    const always = (await simHarness({ shadow: cfg({ sampleRate: 1 }) })).service;
    const ids = Array.from({ length: 300 }, (_, i) => `id${i}`);
    expect(ids.some((id) => never.sampled('auto', id))).toBe(false);
    expect(ids.every((id) => always.sampled('auto', id))).toBe(true);
  });

  it('does not mirror a request the candidate itself served', async () => {
    const { service, store } = await simHarness();
    service.maybeMirror(input({}, { model: 'sim-small' }));
    expect(service.stats()).toEqual({ mirrored: 0, skippedBudget: 0, skippedBusy: 0, failed: 0, inFlight: 0 }); // not started
    await idle(service);
    expect(store.pairs).toEqual([]);
  });
});

describe('ShadowService: a mirrored request', () => {
  it('calls the candidate non-streaming with the same messages and parameters, and records the pair and the ledger event', async () => {
    const provider = new FakeProvider('fake');
    const { service, store, ledger } = fakeHarness(provider);
    const original = body({ stream: true, stream_options: { include_usage: true }, temperature: 0.2, user: 'u1' });
    const i = input({ body: original, requestId: 'req_x', eventId: 'req_x~abc' });
    service.maybeMirror(i);
    await idle(service);

    expect(provider.calls).toHaveLength(1);
    const sent = provider.calls[0]!;
    expect(sent.upstreamModel).toBe('small-upstream');
    expect(sent.req).toEqual({ ...body({ temperature: 0.2, user: 'u1' }), model: 'sim-small', stream: false });
    expect('stream_options' in sent.req).toBe(false);
    expect(original).toMatchObject({ stream: true, stream_options: { include_usage: true }, model: 'auto' }); // untouched

    const cost = costPico({ prompt_tokens: 12, completion_tokens: 8 }, SMALL_PRICE);
    expect(store.pairs).toEqual([
      {
        requestId: 'req_x~abc',
        ts: expect.any(Number),
        tenantId: 'ten_a',
        route: 'auto',
        primaryModel: 'sim-large',
        shadowModel: 'sim-small',
        primaryLatencyMs: 420,
        shadowLatencyMs: expect.any(Number),
        primaryPromptTokens: 20,
        primaryCompletionTokens: 30,
        shadowPromptTokens: 12,
        shadowCompletionTokens: 8,
        primaryCostPico: 550_000_000,
        shadowCostPico: cost,
        similarity: null, // no embedder
        shadowStatus: 200,
        error: '',
      },
    ]);
    const event: UsageEvent = {
      requestId: 'req_x~abc~shadow',
      ts: store.pairs[0]!.ts,
      tenantId: 'ten_a',
      keyId: 'key_a',
      userId: 'u1',
      route: 'shadow',
      requestedModel: 'sim-small',
      servedModel: 'sim-small',
      deployment: 'small-upstream@fake',
      promptTokens: 12,
      completionTokens: 8,
      cachedTokens: 0,
      costPico: cost,
      savedPico: 0,
      latencyMs: store.pairs[0]!.shadowLatencyMs,
      ttftMs: null,
      cache: 'none',
      status: 200,
      attempts: 1,
      usageReported: true,
      tier: '',
      experiment: '',
      variant: '',
    };
    expect(ledger.events).toEqual([event]);
    expect(service.stats()).toEqual({ mirrored: 1, skippedBudget: 0, skippedBusy: 0, failed: 0, inFlight: 0 });
  });

  it('counts usage locally when the candidate reports none', async () => {
    const provider = new FakeProvider('fake', 'Paris.', null);
    const { service, store, ledger } = fakeHarness(provider);
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs[0]).toMatchObject({ shadowStatus: 200, shadowPromptTokens: expect.any(Number), shadowCompletionTokens: 2 });
    expect(store.pairs[0]!.shadowPromptTokens).toBeGreaterThan(5);
    expect(ledger.events[0]).toMatchObject({ usageReported: false, costPico: store.pairs[0]!.shadowCostPico });
    expect(store.pairs[0]!.shadowCostPico).toBeGreaterThan(0);
  });

  it('works end to end on the simulator', async () => {
    const { service, store, ledger } = await simHarness();
    service.maybeMirror(input());
    await idle(service);
    const [pair] = store.pairs;
    expect(pair).toMatchObject({ shadowStatus: 200, shadowModel: 'sim-small', error: '' });
    expect(pair!.shadowCompletionTokens).toBeGreaterThanOrEqual(8);
    expect(pair!.shadowCostPico).toBe(costPico({ prompt_tokens: pair!.shadowPromptTokens, completion_tokens: pair!.shadowCompletionTokens }, SMALL_PRICE));
    expect(ledger.events[0]).toMatchObject({ deployment: 'sim-small@sim', status: 200, usageReported: true });
  });
});

describe('ShadowService: similarity', () => {
  it('compares the two answers with the embedder: the same answer agrees, a different one does not', async () => {
    const embedder = new BuiltinEmbedder();
    const texts: string[][] = [];
    const spy: Embedder = { id: embedder.id, dimensions: embedder.dimensions, embed: (t) => (texts.push(t), embedder.embed(t)), close: async () => {} };
    const provider = new FakeProvider('fake', 'The capital of France is Paris.');
    const { service, store } = fakeHarness(provider, { embedder: spy });
    service.maybeMirror(input({}, { text: 'The capital of France is Paris.' }));
    service.maybeMirror(input({}, { text: 'Photosynthesis turns sunlight, water and carbon dioxide into sugar.' }));
    await idle(service);
    const [same, different] = store.pairs;
    expect(same!.similarity).toBeCloseTo(1, 5);
    expect(different!.similarity).toBeLessThan(0.3);
    // Exactly the cosine of the two answers' vectors.
    const { vectors } = await embedder.embed(texts[1]!);
    expect(texts[1]).toEqual(['Photosynthesis turns sunlight, water and carbon dioxide into sugar.', 'The capital of France is Paris.']);
    expect(different!.similarity).toBeCloseTo(dot(vectors[0]!, vectors[1]!), 6);
  });

  it('scores a simulator answer against the primary text with the real embedder', async () => {
    const { service, store } = await simHarness({ embedder: new BuiltinEmbedder() });
    service.maybeMirror(input());
    await idle(service);
    const s = store.pairs[0]!.similarity;
    expect(s).not.toBeNull();
    expect(s!).toBeGreaterThanOrEqual(-1);
    expect(s!).toBeLessThanOrEqual(1);
  });

  it('records the pair without similarity when the embedder fails', async () => {
    const broken: Embedder = { id: 'x', dimensions: 2, embed: async () => Promise.reject(new Error('embedder down')), close: async () => {} };
    const { service, store } = fakeHarness(new FakeProvider('fake'), { embedder: broken });
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs[0]).toMatchObject({ shadowStatus: 200, similarity: null });
  });
});
