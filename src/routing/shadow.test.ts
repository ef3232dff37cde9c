import { afterEach, describe, expect, it, vi } from 'vitest';
import { BuiltinEmbedder } from '../cache/embedders/builtin.js';
import type { Embedder } from '../cache/types.js';
import { buildConfig } from '../config/loader.js';
import { costPico } from '../metering/cost.js';
import { createLogger } from '../observability/logger.js';
import { ProviderRegistry } from '../providers/registry.js';
import type { SimulatedProvider } from '../providers/simulated/provider.js';
import type { ChatCompletion, ChatCompletionRequest, Provider } from '../providers/types.js';
import { MemoryCounters } from '../storage/memory/counters.js';
import type { UsageEvent } from '../storage/types.js';
import { ModelCatalog } from './catalog.js';
import { type MirrorInput, type ShadowConfig, ShadowService, type ShadowServiceOptions } from './shadow.js';
import type { ShadowReport, ShadowStore } from './shadow-report.js';
import type { ShadowPair } from './types.js';

const log = createLogger('silent');
const SMALL_PRICE = { input: 0.5, output: 1 };
const LARGE_PRICE = { input: 5, output: 15 };
const simModel = (min: number, max: number) => ({ type: 'chat' as const, ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min, max } });

class FakeStore implements ShadowStore {
  readonly pairs: ShadowPair[] = [];
  fail = false;
  async put(pair: ShadowPair): Promise<void> {
    if (this.fail) throw new Error('disk full');
    this.pairs.push(pair);
  }
  async report(): Promise<ShadowReport[]> {
    return [];
  }
}

class FakeLedger {
  readonly events: UsageEvent[] = [];
  fail = false;
  record(e: UsageEvent): void {
    if (this.fail) throw new Error('ledger writer is closed');
    this.events.push(e);
  }
}

/** A provider answering with a fixed text (or what `answer` says), recording the requests. */
class FakeProvider implements Provider {
  readonly kind = 'openai-compatible' as const;
  readonly calls: Array<{ req: ChatCompletionRequest; upstreamModel: string }> = [];
  gate: Promise<void> | undefined;
  constructor(
    readonly id: string,
    public text = 'The capital of France is Paris.',
    public usage: ChatCompletion['usage'] | null = { prompt_tokens: 12, completion_tokens: 8, total_tokens: 20 },
  ) {}
  async chat(req: ChatCompletionRequest, opts: { signal: AbortSignal; upstreamModel: string }): Promise<ChatCompletion> {
    this.calls.push({ req, upstreamModel: opts.upstreamModel });
    if (this.gate) {
      await Promise.race([
        this.gate,
        new Promise((_, reject) => opts.signal.addEventListener('abort', () => reject(opts.signal.reason), { once: true })),
      ]);
    }
    return {
      id: 'c1',
      object: 'chat.completion',
      created: 0,
      model: opts.upstreamModel,
      choices: [{ index: 0, message: { role: 'assistant', content: this.text }, finish_reason: 'stop' }],
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
  chatStream(): never {
    throw new Error('not used');
  }
  embed(): never {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

const body = (extra: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => ({
  model: 'auto',
  messages: [{ role: 'user', content: 'What is the capital of France?' }],
  max_tokens: 50,
  ...extra,
});

let n = 0;
function input(extra: Partial<MirrorInput> = {}, primary: Partial<MirrorInput['primary']> = {}): MirrorInput {
  const id = `req_${++n}`;
  return {
    requestId: id,
    eventId: id,
    tenantId: 'ten_a',
    keyId: 'key_a',
    userId: 'u1',
    route: 'auto',
    body: body(),
    primary: { model: 'sim-large', latencyMs: 420, promptTokens: 20, completionTokens: 30, costPico: 550_000_000, text: 'Paris is the capital of France.', ...primary },
    ...extra,
  };
}

const cfg = (extra: Partial<ShadowConfig> = {}): ShadowConfig => ({ model: 'sim-small', sampleRate: 1, dailyBudgetUsd: 1, agreementThreshold: 0.8, ...extra });

interface Harness {
  service: ShadowService;
  store: FakeStore;
  ledger: FakeLedger;
  counters: MemoryCounters;
  /** The simulators behind sim-small's two deployments (`sim`, then `backup`). */
  sims: { sim: SimulatedProvider; backup: SimulatedProvider };
}

const registries: ProviderRegistry[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(registries.splice(0).map((r) => r.close()));
});

/** sim-small (the candidate) on two in-process simulators, sim-large on the first. */
async function simHarness(opts: Partial<ShadowServiceOptions> & { shadow?: ShadowConfig } = {}): Promise<Harness> {
  const config = buildConfig({
    providers: {
      sim: { kind: 'simulated', models: { 'sim-small': simModel(8, 24), 'sim-large': simModel(16, 40) } },
      backup: { kind: 'simulated', models: { 'sim-small': simModel(8, 24) } },
    },
    models: {
      'sim-small': { deployments: [{ provider: 'sim' }, { provider: 'backup' }], price: SMALL_PRICE },
      'sim-large': { deployments: [{ provider: 'sim' }], price: LARGE_PRICE },
    },
  });
  const registry = await ProviderRegistry.create(config);
  registries.push(registry);
  const store = new FakeStore();
  const ledger = new FakeLedger();
  const counters = new MemoryCounters();
  const service = new ShadowService({
    routes: { auto: opts.shadow ?? cfg() },
    catalog: new ModelCatalog(config, registry),
    counters,
    store,
    ledger,
    embedder: undefined,
    log,
    ...opts,
  });
  return {
    service,
    store,
    ledger,
    counters,
    sims: { sim: registry.get('sim') as SimulatedProvider, backup: registry.get('backup') as SimulatedProvider },
  };
}

/** sim-small served by a FakeProvider. */
function fakeHarness(provider: FakeProvider, opts: Partial<ShadowServiceOptions> & { shadow?: ShadowConfig } = {}) {
  const config = buildConfig({
    providers: { fake: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9' } },
    models: {
      'sim-small': { deployments: [{ provider: 'fake', model: 'small-upstream' }], price: SMALL_PRICE },
      'sim-large': { deployments: [{ provider: 'fake' }], price: LARGE_PRICE },
    },
  });
  const registry = { get: () => provider } as unknown as ProviderRegistry;
  const store = new FakeStore();
  const ledger = new FakeLedger();
  const counters = new MemoryCounters();
  const service = new ShadowService({
    routes: { auto: opts.shadow ?? cfg() },
    catalog: new ModelCatalog(config, registry),
    counters,
    store,
    ledger,
    embedder: undefined,
    log,
    ...opts,
  });
  return { service, store, ledger, counters };
}

/** Waits until no shadow call is in flight (each has recorded its pair and ledger event). */
async function idle(service: ShadowService): Promise<void> {
  await vi.waitFor(() => expect(service.stats().inFlight).toBe(0), { timeout: 10_000, interval: 2 });
}

/**
 * The same, for tests whose setTimeout is faked (vi.waitFor would move the fake clock): polls on
 * setImmediate, which those tests leave real.
 */
async function idleWithFakeClock(service: ShadowService): Promise<void> {
  for (let i = 0; service.stats().inFlight > 0; i++) {
    if (i > 100_000) throw new Error('shadow calls still in flight');
    await new Promise((r) => setImmediate(r));
  }
}

/** Follows a promise without awaiting it: whether it has settled yet. */
function watch(p: Promise<unknown>): { settled: boolean } {
  const state = { settled: false };
  void p.finally(() => (state.settled = true));
  return state;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

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

describe('ShadowService: failures', () => {
  it('falls back to the next deployment on a retryable error', async () => {
    const { service, store, ledger, sims } = await simHarness();
    sims.sim.engine.script([{ kind: 'error', status: 503 }]);
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs[0]).toMatchObject({ shadowStatus: 200, error: '' });
    expect(ledger.events[0]).toMatchObject({ deployment: 'sim-small@backup', attempts: 2, status: 200 });
  });

  it('records a candidate that fails everywhere (503) as a failed pair, refunds its budget, and never throws', async () => {
    const { service, store, ledger, sims, counters } = await simHarness({ embedder: new BuiltinEmbedder() });
    sims.sim.engine.script([{ kind: 'error', status: 503 }]);
    sims.backup.engine.script([{ kind: 'error', status: 503 }]);
    const i = input();
    expect(() => service.maybeMirror(i)).not.toThrow();
    await idle(service);
    expect(store.pairs).toEqual([
      expect.objectContaining({ requestId: i.eventId, shadowStatus: 503, similarity: null, shadowCostPico: 0, shadowPromptTokens: 0, error: expect.stringMatching(/503/) }),
    ]);
    expect(ledger.events[0]).toMatchObject({ status: 503, costPico: 0, servedModel: '', deployment: '', attempts: 2, route: 'shadow' });
    expect(service.stats()).toMatchObject({ mirrored: 1, failed: 1 });
    const day = new Date().toISOString().slice(0, 10);
    expect(await counters.budgetUsed(`shadow:ten_a:${day}`)).toBe(0);
  });

  it('stops at a non-retryable refusal (400) without trying the next deployment', async () => {
    const { service, store, ledger, sims } = await simHarness();
    sims.sim.engine.script([{ kind: 'error', status: 400 }]);
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs[0]).toMatchObject({ shadowStatus: 400 });
    expect(ledger.events[0]).toMatchObject({ attempts: 1, status: 400 });
    expect(sims.backup.engine.stats().total).toBe(0);
  });

  it('records a candidate that hangs as a timeout (504) once timeoutMs has passed', async () => {
    const { service, store, sims } = await simHarness({ timeoutMs: 80 });
    sims.sim.engine.script([{ kind: 'hang' }]);
    sims.backup.engine.script([{ kind: 'hang' }]);
    // The call's timer and its latency (performance.now) on a fake clock; setImmediate stays real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    service.maybeMirror(input());
    await vi.advanceTimersByTimeAsync(79);
    expect(service.stats().inFlight).toBe(1); // still waiting for the candidate
    expect(store.pairs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await idleWithFakeClock(service);
    expect(store.pairs[0]).toMatchObject({ shadowStatus: 504, similarity: null, error: expect.stringMatching(/timed out after 80ms/) });
    expect(store.pairs[0]!.shadowLatencyMs).toBe(80);
  });

  it('records a candidate missing from the catalog as a failed pair', async () => {
    const { service, store } = await simHarness({ shadow: cfg({ model: 'nope' }) });
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs[0]).toMatchObject({ shadowModel: 'nope', shadowStatus: 404 });
    expect(service.stats().failed).toBe(1);
  });

  it('survives a failing store and a failing ledger', async () => {
    const { service, store, ledger } = fakeHarness(new FakeProvider('fake'));
    store.fail = true;
    ledger.fail = true;
    expect(() => service.maybeMirror(input())).not.toThrow();
    await idle(service);
    expect(service.stats()).toMatchObject({ mirrored: 1, failed: 0, inFlight: 0 });
  });
});

describe('ShadowService: budget', () => {
  const day = () => new Date().toISOString().slice(0, 10);
  // Worst case of one mirror: 20 prompt tokens + max_tokens 50 at sim-small's price.
  const reservation = costPico({ prompt_tokens: 20, completion_tokens: 50 }, SMALL_PRICE);

  it('stops mirroring a tenant once its daily shadow budget is spent; spend stays within the cap', async () => {
    const capUsd = 0.0003; // 5 reservations' worth; each mirror really costs about half of one
    const { service, store, ledger, counters } = await simHarness({ shadow: cfg({ dailyBudgetUsd: capUsd }) });
    for (let i = 0; i < 30; i++) {
      service.maybeMirror(input());
      await idle(service);
    }
    const cap = capUsd * 1e12;
    const spent = ledger.events.reduce((a, e) => a + e.costPico, 0);
    const s = service.stats();
    expect(s.skippedBudget).toBeGreaterThan(0);
    expect(s.mirrored + s.skippedBudget).toBe(30);
    expect(s.mirrored).toBeGreaterThan(5); // settling to the actual cost frees room
    expect(store.pairs).toHaveLength(s.mirrored);
    expect(spent).toBeLessThanOrEqual(cap + reservation);
    expect(spent).toBeGreaterThan(cap - 2 * reservation);
    expect(await counters.budgetUsed(`shadow:ten_a:${day()}`)).toBe(spent);

    // Another tenant has its own budget.
    service.maybeMirror(input({ tenantId: 'ten_b' }));
    await idle(service);
    expect(store.pairs.at(-1)?.tenantId).toBe('ten_b');
  });

  it('holds the cap under concurrency: reservations are atomic', async () => {
    const provider = new FakeProvider('fake');
    let release!: () => void;
    provider.gate = new Promise((r) => (release = r));
    const capUsd = (3 * reservation) / 1e12; // exactly three worst cases
    const { service, store } = fakeHarness(provider, { shadow: cfg({ dailyBudgetUsd: capUsd }) });
    for (let i = 0; i < 10; i++) service.maybeMirror(input());
    // Every request has reserved or been refused while the three admitted calls are held open.
    await vi.waitFor(() => expect(service.stats()).toMatchObject({ mirrored: 3, skippedBudget: 7, inFlight: 3 }), { timeout: 10_000, interval: 2 });
    expect(provider.calls).toHaveLength(3);
    release();
    await idle(service);
    expect(service.stats()).toMatchObject({ mirrored: 3, skippedBudget: 7 });
    expect(store.pairs).toHaveLength(3);
  });

  it('mirrors nothing with a zero budget', async () => {
    const { service, store } = await simHarness({ shadow: cfg({ dailyBudgetUsd: 0 }) });
    service.maybeMirror(input());
    await idle(service);
    expect(store.pairs).toHaveLength(0);
    expect(service.stats().skippedBudget).toBe(1);
  });
});

describe('ShadowService: in flight', () => {
  it('runs at most 16 shadow calls at once and drops the rest', async () => {
    const provider = new FakeProvider('fake');
    let release!: () => void;
    provider.gate = new Promise((r) => (release = r));
    const { service, store } = fakeHarness(provider);
    for (let i = 0; i < 20; i++) service.maybeMirror(input());
    expect(service.stats()).toMatchObject({ inFlight: 16, skippedBusy: 4 });
    release();
    await idle(service);
    expect(store.pairs).toHaveLength(16);
    expect(store.pairs.every((p) => p.shadowStatus === 200)).toBe(true);
  });

  it('drain waits for calls in flight, then aborts the stragglers and records them; nothing starts after', async () => {
    const provider = new FakeProvider('fake');
    provider.gate = new Promise(() => {}); // never answers
    const { service, store } = fakeHarness(provider, { maxInFlight: 4 });
    service.maybeMirror(input());
    service.maybeMirror(input());
    await vi.waitFor(() => expect(provider.calls).toHaveLength(2), { timeout: 10_000, interval: 2 });
    // Fake timers from here: drain's wait (50 ms) and its 1 s grace for the aborted calls only pass
    // when the test moves the clock, so drain can only resolve early because the calls settled.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const draining = service.drain(50);
    const drained = watch(draining);
    await vi.advanceTimersByTimeAsync(49);
    expect(drained.settled).toBe(false); // still waiting for the calls in flight
    expect(store.pairs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1); // time is up: the stragglers are aborted
    await draining;
    expect(service.stats().inFlight).toBe(0);
    expect(store.pairs.map((p) => p.shadowStatus)).toEqual([503, 503]);
    expect(store.pairs[0]!.error).toMatch(/shutting down/);
    service.maybeMirror(input());
    expect(service.stats().inFlight).toBe(0);
  });

  it('drain resolves at once when nothing is in flight, and nothing starts after', async () => {
    const provider = new FakeProvider('fake');
    const { service } = fakeHarness(provider);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const drained = watch(service.drain(10_000));
    await vi.advanceTimersByTimeAsync(0); // lets promises run; the fake clock does not move
    expect(drained.settled).toBe(true); // not after its 10 s timeout
    expect(vi.getTimerCount()).toBe(0);
    service.maybeMirror(input());
    expect(service.stats()).toEqual({ mirrored: 0, skippedBudget: 0, skippedBusy: 0, failed: 0, inFlight: 0 });
    expect(provider.calls).toHaveLength(0);
  });
});
