import { describe, expect, it } from 'vitest';
import type { Deployment } from '../routing/catalog.js';
import { EmbedBatcher, splitProportionally } from './embed-batcher.js';
import type { EmbeddingRequest, EmbeddingResponse, Provider } from './types.js';
import { UpstreamError } from './types.js';

/** A provider that records its embed calls and answers each input with [index, length]. */
function fakeProvider(fail?: () => unknown) {
  const calls: EmbeddingRequest[] = [];
  const provider = {
    id: 'fake',
    kind: 'openai-compatible',
    async embed(req: EmbeddingRequest): Promise<EmbeddingResponse> {
      calls.push(req);
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw fail();
      const inputs = Array.isArray(req.input) ? (req.input as string[]) : [req.input as string];
      return {
        object: 'list',
        model: 'e',
        data: inputs.map((t, index) => ({ object: 'embedding', index, embedding: [index, t.length] })),
        usage: { prompt_tokens: inputs.length * 10 + 1, total_tokens: inputs.length * 10 + 1 },
      };
    },
  } as unknown as Provider;
  const dep: Deployment = { id: 'e@fake', providerId: 'fake', provider, upstreamModel: 'e', timeoutMs: undefined, model: 'e', price: undefined };
  return { calls, dep };
}
const call = (signal = new AbortController().signal) => ({ signal, upstreamModel: 'e' });

describe('embeddings micro-batching', () => {
  it('sends single-input requests of one window as one upstream call and splits the answer back', async () => {
    const { calls, dep } = fakeProvider();
    const b = new EmbedBatcher({ enabled: true, windowMs: 20, maxBatchSize: 64 });
    const texts = ['alpha', 'beta beta', 'gamma gamma gamma'];
    const answers = await Promise.all(texts.map((t) => b.embed(dep, { model: 'e', input: t }, call())));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.input).toEqual(texts);
    answers.forEach((a, i) => {
      expect(a.data).toEqual([{ object: 'embedding', index: 0, embedding: [i, texts[i]!.length] }]);
    });
    expect(answers.reduce((n, a) => n + a.usage.prompt_tokens, 0)).toBe(31); // upstream's total, exactly
    expect(b.stats).toEqual({ batchedRequests: 3, upstreamCalls: 1 });
  });

  it('leaves at maxBatchSize, keeps different dimensions apart, and passes multi-input requests through', async () => {
    const { calls, dep } = fakeProvider();
    // A window far longer than the test: the batch can only have left because it was full.
    const b = new EmbedBatcher({ enabled: true, windowMs: 3_600_000, maxBatchSize: 2 });
    const full = Promise.all([b.embed(dep, { model: 'e', input: 'a' }, call()), b.embed(dep, { model: 'e', input: ['b'] }, call())]);
    expect(calls).toHaveLength(1); // sent as the second request joined, not at the end of the window
    expect(calls[0]!.input).toEqual(['a', 'b']);
    await full;
    const small = new EmbedBatcher({ enabled: true, windowMs: 5, maxBatchSize: 64 });
    await Promise.all([
      small.embed(dep, { model: 'e', input: 'a', dimensions: 8 }, call()),
      small.embed(dep, { model: 'e', input: 'b', dimensions: 16 }, call()),
      small.embed(dep, { model: 'e', input: ['c', 'd'] }, call()),
    ]);
    expect(calls.slice(1).map((c) => c.input)).toEqual(expect.arrayContaining([['a'], ['b'], ['c', 'd']]));
    expect(calls).toHaveLength(4);
  });

  it('a failure reaches every request of the batch; a request that goes away leaves it', async () => {
    const { dep } = fakeProvider(() => new UpstreamError('http', 'upstream said 500', { status: 500 }));
    const b = new EmbedBatcher({ enabled: true, windowMs: 10, maxBatchSize: 64 });
    const results = await Promise.allSettled([b.embed(dep, { model: 'e', input: 'a' }, call()), b.embed(dep, { model: 'e', input: 'b' }, call())]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const ok = fakeProvider();
    const b2 = new EmbedBatcher({ enabled: true, windowMs: 20, maxBatchSize: 64 });
    const gone = new AbortController();
    const leaving = b2.embed(ok.dep, { model: 'e', input: 'bye' }, call(gone.signal));
    const staying = b2.embed(ok.dep, { model: 'e', input: 'stay' }, call());
    gone.abort();
    await expect(leaving).rejects.toBeDefined();
    expect((await staying).data).toHaveLength(1);
    expect(ok.calls[0]!.input).toEqual(['stay']);
  });

  it('splits usage in proportion, adding up exactly', () => {
    expect(splitProportionally(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(splitProportionally(7, [5, 0, 2])).toEqual([5, 0, 2]);
    expect(splitProportionally(3, [0, 0])).toEqual([2, 1]);
    expect(splitProportionally(0, [3, 4])).toEqual([0, 0]);
  });
});
