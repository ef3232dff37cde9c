/**
 * The harness of the ShadowService unit tests (src/routing/shadow*.test.ts): fake store, ledger and
 * provider, a service on two in-process simulators or on a fake provider, and waits for the calls
 * in flight. Call `closeShadowHarnesses` after each test.
 */
import { expect, vi } from 'vitest';
import { buildConfig } from '../../src/config/loader.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import type { SimulatedProvider } from '../../src/providers/simulated/provider.js';
import type { ChatCompletion, ChatCompletionRequest, Provider } from '../../src/providers/types.js';
import { ModelCatalog } from '../../src/routing/catalog.js';
import { type MirrorInput, type ShadowConfig, ShadowService, type ShadowServiceOptions } from '../../src/routing/shadow.js';
import type { ShadowAggregate, ShadowStore } from '../../src/routing/shadow-report.js';
import type { ShadowPair } from '../../src/routing/types.js';
import { MemoryCounters } from '../../src/storage/memory/counters.js';
import type { UsageEvent } from '../../src/storage/types.js';

const log = createLogger('silent');
export const SMALL_PRICE = { input: 0.5, output: 1 };
const LARGE_PRICE = { input: 5, output: 15 };
const simModel = (min: number, max: number) => ({ type: 'chat' as const, ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min, max } });

export class FakeStore implements ShadowStore {
  readonly pairs: ShadowPair[] = [];
  fail = false;
  async put(pair: ShadowPair): Promise<void> {
    if (this.fail) throw new Error('disk full');
    this.pairs.push(pair);
  }
  async aggregate(): Promise<ShadowAggregate[]> {
    return [];
  }
}

export class FakeLedger {
  readonly events: UsageEvent[] = [];
  fail = false;
  record(e: UsageEvent): void {
    if (this.fail) throw new Error('ledger writer is closed');
    this.events.push(e);
  }
}

/** A provider answering with a fixed text (or what `answer` says), recording the requests. */
export class FakeProvider implements Provider {
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

export const body = (extra: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => ({
  model: 'auto',
  messages: [{ role: 'user', content: 'What is the capital of France?' }],
  max_tokens: 50,
  ...extra,
});

let n = 0;
export function input(extra: Partial<MirrorInput> = {}, primary: Partial<MirrorInput['primary']> = {}): MirrorInput {
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

export const cfg = (extra: Partial<ShadowConfig> = {}): ShadowConfig => ({ model: 'sim-small', sampleRate: 1, dailyBudgetUsd: 1, agreementThreshold: 0.8, ...extra });

export interface Harness {
  service: ShadowService;
  store: FakeStore;
  ledger: FakeLedger;
  counters: MemoryCounters;
}

const registries: ProviderRegistry[] = [];

/** Closes the simulators of the harnesses made so far (afterEach). */
export async function closeShadowHarnesses(): Promise<void> {
  await Promise.all(registries.splice(0).map((r) => r.close()));
}

type HarnessOptions = Partial<ShadowServiceOptions> & { shadow?: ShadowConfig };

function harness(config: Config, registry: ProviderRegistry, opts: HarnessOptions): Harness {
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

/** sim-small (the candidate) on two in-process simulators, sim-large on the first. */
export async function simHarness(
  opts: HarnessOptions = {},
): Promise<Harness & { sims: { sim: SimulatedProvider; backup: SimulatedProvider } }> {
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
  // The simulators behind sim-small's two deployments (`sim`, then `backup`).
  const sims = { sim: registry.get('sim') as SimulatedProvider, backup: registry.get('backup') as SimulatedProvider };
  return { ...harness(config, registry, opts), sims };
}

/** sim-small served by a FakeProvider. */
export function fakeHarness(provider: FakeProvider, opts: HarnessOptions = {}): Harness {
  const config = buildConfig({
    providers: { fake: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9' } },
    models: {
      'sim-small': { deployments: [{ provider: 'fake', model: 'small-upstream' }], price: SMALL_PRICE },
      'sim-large': { deployments: [{ provider: 'fake' }], price: LARGE_PRICE },
    },
  });
  return harness(config, { get: () => provider } as unknown as ProviderRegistry, opts);
}

/** Waits until no shadow call is in flight (each has recorded its pair and ledger event). */
export async function idle(service: ShadowService): Promise<void> {
  await vi.waitFor(() => expect(service.stats().inFlight).toBe(0), { timeout: 10_000, interval: 2 });
}
