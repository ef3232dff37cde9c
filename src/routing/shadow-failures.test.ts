/** ShadowService: failed shadow calls (fallback, refusal, timeout, unknown model, failing store) and shutdown (in-flight cap, drain). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BuiltinEmbedder } from '../cache/embedders/builtin.js';
import type { ShadowService } from './shadow.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { cfg, closeShadowHarnesses, FakeProvider, fakeHarness, idle, input, simHarness } from '../../test/helpers/shadow.js';

afterEach(async () => {
  vi.useRealTimers();
  await closeShadowHarnesses();
});

/**
 * Waits until no shadow call is in flight, for tests whose setTimeout is faked (vi.waitFor would
 * move the fake clock): polls on setImmediate, which those tests leave real.
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
