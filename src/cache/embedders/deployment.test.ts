/**
 * DeploymentEmbedder against the built-in simulator (in process, and over HTTP through the
 * OpenAI-compatible adapter), and against small fake providers for failover, timeouts, aborts and
 * malformed answers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { instantModel } from '../../../test/helpers/sim-models.js';
import { buildConfig } from '../../config/loader.js';
import type { RawConfig, SimModelConfig } from '../../config/schema.js';
import { ProviderRegistry } from '../../providers/registry.js';
import { type SimServer, startSimServer } from '../../providers/simulated/server.js';
import { type CallOptions, type EmbeddingRequest, type EmbeddingResponse, type Provider, UpstreamError } from '../../providers/types.js';
import { type CatalogModel, ModelCatalog } from '../../routing/catalog.js';
import { dot, norm } from '../../util/vector.js';
import { DeploymentEmbedder, PROBE_TEXT } from './deployment.js';

const SIM_MODELS: Record<string, SimModelConfig> = {
  'sim-embed': instantModel({ type: 'embedding', outputTokens: { min: 0, max: 0 }, dimensions: 64 }),
  'sim-small': instantModel({ outputTokens: { min: 8, max: 24 }, dimensions: 64 }),
};
const PRICE = { input: 0.02, output: 0 };

async function catalogOf(raw: RawConfig): Promise<{ catalog: ModelCatalog; providers: ProviderRegistry }> {
  const config = buildConfig(raw);
  const providers = await ProviderRegistry.create(config);
  return { catalog: new ModelCatalog(config, providers), providers };
}

describe('DeploymentEmbedder on the simulator', () => {
  let catalog: ModelCatalog;
  let providers: ProviderRegistry;

  beforeAll(async () => {
    ({ catalog, providers } = await catalogOf({
      providers: {
        sim: { kind: 'simulated', models: SIM_MODELS },
        broken: { kind: 'simulated', models: SIM_MODELS, faults: { errorRate: { '500': 1 } } },
        overloaded: { kind: 'simulated', models: SIM_MODELS, faults: { errorRate: { '503': 1 } } },
      },
      models: {
        embed: { type: 'embedding', deployments: [{ provider: 'sim', model: 'sim-embed' }], price: PRICE },
        'embed-free': { type: 'embedding', deployments: [{ provider: 'sim', model: 'sim-embed' }] },
        'embed-failover': {
          type: 'embedding',
          deployments: [
            { provider: 'broken', model: 'sim-embed' },
            { provider: 'sim', model: 'sim-embed' },
          ],
          price: PRICE,
        },
        'embed-down': {
          type: 'embedding',
          deployments: [
            { provider: 'broken', model: 'sim-embed' },
            { provider: 'overloaded', model: 'sim-embed' },
          ],
        },
        chat: { type: 'chat', deployments: [{ provider: 'sim', model: 'sim-small' }] },
      },
    }));
  });
  afterAll(async () => {
    await providers?.close();
  });

  const model = (name: string) => catalog.resolve(name) as CatalogModel;

  it('init() learns the dimensions; id and dimensions throw until then', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed') });
    expect(() => embedder.dimensions).toThrow(/call init\(\) first/);
    expect(() => embedder.id).toThrow(/call init\(\) first/);
    await embedder.init();
    await embedder.init(); // idempotent
    expect(embedder.dimensions).toBe(64);
    expect(embedder.id).toBe('deployment:embed:64');
  });

  it('returns one unit vector per text, deterministic, and prices the prompt tokens', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed') });
    await embedder.init();
    const texts = ['What is the capital of France?', 'what is the capital of france', 'How do I reset my password?'];
    const { vectors, cost } = await embedder.embed(texts);
    expect(vectors).toHaveLength(3);
    for (const v of vectors) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v).toHaveLength(64);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
    expect(dot(vectors[0]!, vectors[1]!)).toBeGreaterThan(0.99);
    expect(dot(vectors[0]!, vectors[2]!)).toBeLessThan(0.5);
    const again = await embedder.embed([texts[2]!]);
    expect(Array.from(again.vectors[0]!)).toEqual(Array.from(vectors[2]!));
    expect(cost?.model).toBe('embed');
    expect(cost!.promptTokens).toBeGreaterThan(0);
    // 0.02 USD per million tokens = 20 000 pico-dollars per token.
    expect(cost!.costPico).toBe(cost!.promptTokens * 20_000);
    expect((await embedder.embed([])).vectors).toEqual([]);
  });

  it('a model without a price costs 0', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed-free') });
    const { cost } = await embedder.embed([PROBE_TEXT]);
    expect(cost).toMatchObject({ model: 'embed-free', costPico: 0 });
    expect(cost!.promptTokens).toBeGreaterThan(0);
    // The first embed fixes the dimensions too.
    expect(embedder.id).toBe('deployment:embed-free:64');
  });

  it('configured dimensions are sent upstream and known before init', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed'), dimensions: 24 });
    expect(embedder.id).toBe('deployment:embed:24');
    await embedder.init();
    const { vectors } = await embedder.embed(['hello there']);
    expect(vectors[0]).toHaveLength(24);
    expect(norm(vectors[0]!)).toBeCloseTo(1, 5);
  });

  it('falls over to the next deployment when one fails', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed-failover') });
    await embedder.init();
    const { vectors, cost } = await embedder.embed(['a question']);
    expect(vectors[0]).toHaveLength(64);
    expect(cost?.model).toBe('embed-failover');
  });

  it('names every deployment when all fail', async () => {
    const embedder = new DeploymentEmbedder({ model: model('embed-down') });
    const err = (await embedder.init().then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/embedding model 'embed-down' failed on all 2 deployments/);
    expect(err.message).toContain('sim-embed@broken');
    expect(err.message).toContain('sim-embed@overloaded');
    expect(err.message).toMatch(/503/);
  });

  it('refuses a chat model', () => {
    expect(() => new DeploymentEmbedder({ model: model('chat') })).toThrow(/not an embedding model/);
  });

  it('works over HTTP against a standalone simulator (OpenAI-compatible adapter)', async () => {
    const sim: SimServer = await startSimServer({ host: '127.0.0.1', port: 0, models: SIM_MODELS });
    const http = await catalogOf({
      providers: { local: { kind: 'openai-compatible', baseUrl: sim.url } },
      models: { embed: { type: 'embedding', deployments: [{ provider: 'local', model: 'sim-embed' }], price: PRICE } },
    });
    try {
      const embedder = new DeploymentEmbedder({ model: http.catalog.resolve('embed')!, dimensions: 32 });
      await embedder.init();
      const { vectors, cost } = await embedder.embed(['one', 'two words']);
      expect(vectors.map((v) => v.length)).toEqual([32, 32]);
      expect(norm(vectors[1]!)).toBeCloseTo(1, 5);
      expect(cost!.costPico).toBe(cost!.promptTokens * 20_000);
    } finally {
      await http.providers.close();
      await sim.close();
    }
  });
});

/* ------------------------------------------------------------------------------------------ */

type EmbedFn = (req: EmbeddingRequest, opts: CallOptions) => Promise<EmbeddingResponse>;

function fakeProvider(id: string, embed: EmbedFn): Provider & { calls: EmbeddingRequest[] } {
  const calls: EmbeddingRequest[] = [];
  const unsupported = () => Promise.reject(new Error('not used'));
  return {
    id,
    kind: 'openai-compatible',
    calls,
    chat: unsupported,
    chatStream: unsupported,
    embed: (req, opts) => {
      calls.push(req);
      return embed(req, opts);
    },
    close: async () => {},
  };
}

function fakeModel(providers: Provider[], opts: { timeoutMs?: number } = {}): CatalogModel {
  return {
    name: 'fake-embed',
    type: 'embedding',
    price: { input: 0.1, output: 0 },
    ownedBy: 'test',
    deployments: providers.map((p) => ({ id: `up@${p.id}`, providerId: p.id, provider: p, upstreamModel: 'up', timeoutMs: opts.timeoutMs, model: 'fake-embed', price: { input: 0.1, output: 0 } })),
  };
}

function answer(embeddings: Array<number[] | string>, promptTokens = 7): EmbeddingResponse {
  return {
    object: 'list',
    model: 'up',
    data: embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

const ok = (dims: number) => (req: EmbeddingRequest) =>
  Promise.resolve(answer((req.input as string[]).map((_, i) => Array.from({ length: dims }, (_, j) => (j === i % dims ? 3 : 0)))));

function hang(_req: EmbeddingRequest, opts: CallOptions): Promise<never> {
  return new Promise((_, reject) => opts.signal.addEventListener('abort', () => reject(opts.signal.reason), { once: true }));
}

describe('DeploymentEmbedder with fake providers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends the upstream model, the texts and the dimensions; prices with the model price', async () => {
    const p = fakeProvider('a', ok(8));
    const embedder = new DeploymentEmbedder({ model: fakeModel([p]), dimensions: 8 });
    const { vectors, cost } = await embedder.embed(['x', 'y']);
    expect(p.calls[0]).toEqual({ model: 'up', input: ['x', 'y'], dimensions: 8 });
    expect(Array.from(vectors[0]!)).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(cost).toEqual({ model: 'fake-embed', promptTokens: 7, costPico: 7 * 100_000 });
  });

  it('decodes base64 answers and puts vectors in input order', async () => {
    const b64 = (xs: number[]) => Buffer.from(Float32Array.from(xs).buffer).toString('base64');
    const p = fakeProvider('a', async () => ({
      ...answer([]),
      data: [
        { object: 'embedding', index: 1, embedding: b64([0, 2]) },
        { object: 'embedding', index: 0, embedding: b64([4, 0]) },
      ],
    }));
    const { vectors } = await new DeploymentEmbedder({ model: fakeModel([p]) }).embed(['first', 'second']);
    expect(vectors.map((v) => Array.from(v))).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });

  it('rejects a wrong vector count, mixed lengths and zero vectors with clear errors', async () => {
    const cases: Array<[EmbedFn, RegExp]> = [
      [async () => answer([[1, 0]]), /has 1 vectors for 2 inputs/],
      [async () => answer([[1, 0], [1, 0, 0]]), /mixes vector lengths: vector 0 has 2 dimensions, vector 1 has 3/],
      [async () => answer([[1, 0], [0, 0]]), /vector 1 is all zeros/],
      [async () => answer([[1, 0], 'abc']), /not a float32 array/],
      [async () => ({ object: 'list', model: 'up', usage: { prompt_tokens: 1, total_tokens: 1 } }) as unknown as EmbeddingResponse, /no data array/],
    ];
    for (const [fn, message] of cases) {
      const embedder = new DeploymentEmbedder({ model: fakeModel([fakeProvider('a', fn)]) });
      await expect(embedder.embed(['one', 'two'])).rejects.toThrow(message);
    }
  });

  it('an answer of another size than configured fails that deployment and the next one answers', async () => {
    const wrong = fakeProvider('wrong', ok(4));
    const right = fakeProvider('right', ok(8));
    const embedder = new DeploymentEmbedder({ model: fakeModel([wrong, right]), dimensions: 8 });
    const { vectors } = await embedder.embed(['x']);
    expect(vectors[0]).toHaveLength(8);
    expect([wrong.calls.length, right.calls.length]).toEqual([1, 1]);

    const alone = new DeploymentEmbedder({ model: fakeModel([wrong]), dimensions: 8 });
    await expect(alone.embed(['x'])).rejects.toThrow(/vector 0 has 4 dimensions; this embedder's space has 8/);
  });

  it('once the dimensions are known, an answer of another size is an error', async () => {
    let dims = 8;
    const p = fakeProvider('a', (req) => ok(dims)(req));
    const embedder = new DeploymentEmbedder({ model: fakeModel([p]) });
    await embedder.init();
    dims = 16;
    await expect(embedder.embed(['x'])).rejects.toThrow(/has 16 dimensions; this embedder's space has 8/);
    expect(embedder.id).toBe('deployment:fake-embed:8');
  });

  it('times out a hanging deployment and falls over, without retrying it', async () => {
    const stuck = fakeProvider('stuck', hang);
    const good = fakeProvider('good', ok(8));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }); // the attempt's timer, moved by hand
    const embedder = new DeploymentEmbedder({ model: fakeModel([stuck, good]), timeoutMs: 50 });
    const embedding = embedder.embed(['x']);
    let settled = false;
    void embedding.finally(() => (settled = true));
    await vi.advanceTimersByTimeAsync(49);
    expect(settled).toBe(false);
    expect([stuck.calls.length, good.calls.length]).toEqual([1, 0]); // still waiting for the stuck one
    await vi.advanceTimersByTimeAsync(1); // its 50 ms are up (not the default 10 s)
    const { vectors } = await embedding;
    expect(vectors[0]).toHaveLength(8);
    expect([stuck.calls.length, good.calls.length]).toEqual([1, 1]);

    const onlyStuck = new DeploymentEmbedder({ model: fakeModel([stuck], { timeoutMs: 30 }) });
    const failing = expect(onlyStuck.embed(['x'])).rejects.toThrow(/up@stuck: attempt timed out after 30ms/);
    await vi.advanceTimersByTimeAsync(30);
    await failing;
  });

  it('a provider that ignores its signal still times out', async () => {
    const deaf = fakeProvider('deaf', () => new Promise<never>(() => {}));
    const embedder = new DeploymentEmbedder({ model: fakeModel([deaf]), timeoutMs: 30 });
    await expect(embedder.embed(['x'])).rejects.toThrow(/timed out after 30ms/);
  });

  it("stops at the caller's abort without trying the next deployment", async () => {
    const stuck = fakeProvider('stuck', hang);
    const good = fakeProvider('good', ok(8));
    const embedder = new DeploymentEmbedder({ model: fakeModel([stuck, good]) });
    const controller = new AbortController();
    const reason = new UpstreamError('aborted', 'client went away');
    const embedding = embedder.embed(['x'], { signal: controller.signal });
    expect(stuck.calls).toHaveLength(1); // the call is out...
    controller.abort(reason); // ...when the caller goes away
    await expect(embedding).rejects.toBe(reason);
    expect(good.calls).toHaveLength(0);
    // Already aborted: no call at all.
    await expect(embedder.embed(['x'], { signal: controller.signal })).rejects.toBe(reason);
    expect(stuck.calls).toHaveLength(1);
  });

  it('init() may be retried after a failure; close() stops further calls', async () => {
    let fail = true;
    const p = fakeProvider('a', (req) => (fail ? Promise.reject(new UpstreamError('http', 'upstream answered 503', { status: 503 })) : ok(8)(req)));
    const embedder = new DeploymentEmbedder({ model: fakeModel([p]) });
    await expect(embedder.init()).rejects.toThrow(/failed on its deployment: up@a: upstream answered 503/);
    fail = false;
    await embedder.init();
    expect(embedder.dimensions).toBe(8);
    await embedder.close();
    await expect(embedder.embed(['x'])).rejects.toThrow(/closed/);
  });
});
