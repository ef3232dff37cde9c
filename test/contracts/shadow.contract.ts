/**
 * Behaviour every `ShadowStore` adapter must have (src/routing/shadow.ts). An adapter's test file
 * calls `runShadowStoreContract(name, factory)`; `factory` must return an empty store each time,
 * with a `close` that releases what it opened.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ShadowReport, type ShadowStore, shadowReports } from '../../src/routing/shadow-report.js';
import type { ShadowPair } from '../../src/routing/types.js';

const T0 = Date.UTC(2025, 0, 1);
const HOUR = 3_600_000;

export interface ShadowStoreUnderTest {
  store: ShadowStore;
  close(): Promise<void>;
}

let seq = 0;
function pair(overrides: Partial<ShadowPair> = {}): ShadowPair {
  return {
    requestId: `req_${++seq}`,
    ts: T0,
    tenantId: 'ten_a',
    route: 'auto',
    primaryModel: 'sim-large',
    shadowModel: 'sim-small',
    primaryLatencyMs: 100,
    shadowLatencyMs: 50,
    primaryPromptTokens: 20,
    primaryCompletionTokens: 30,
    shadowPromptTokens: 20,
    shadowCompletionTokens: 25,
    primaryCostPico: 1_000_000,
    shadowCostPico: 250_000,
    similarity: 0.9,
    shadowStatus: 200,
    error: '',
    ...overrides,
  };
}

export function runShadowStoreContract(name: string, factory: () => Promise<ShadowStoreUnderTest>): void {
  describe(`ShadowStore contract: ${name}`, () => {
    let subject: ShadowStoreUnderTest;
    let store: ShadowStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });

    afterEach(async () => {
      await subject.close();
    });

    const report = (from = T0 - HOUR, to = T0 + 24 * HOUR, threshold = 0.8, route = 'auto') => shadowReports(store, route, from, to, threshold);

    it('reports nothing for a route without pairs', async () => {
      expect(await report()).toEqual([]);
      await store.put(pair({ route: 'other' }));
      expect(await report()).toEqual([]);
    });

    it('compares one candidate with the primary: agreement, similarity, latency, cost', async () => {
      const sims = [0.95, 0.85, 0.8, 0.5];
      const latencies: Array<[number, number]> = [
        [100, 40],
        [300, 60],
        [200, 80],
        [400, 500],
      ];
      for (let i = 0; i < 4; i++) {
        await store.put(
          pair({
            similarity: sims[i]!,
            primaryLatencyMs: latencies[i]![0],
            shadowLatencyMs: latencies[i]![1],
            primaryCostPico: 1_000_000 * (i + 1),
            shadowCostPico: 100_000 * (i + 1),
          }),
        );
      }
      const [r, ...rest] = await report();
      expect(rest).toEqual([]);
      const expected: ShadowReport = {
        shadowModel: 'sim-small',
        pairs: 4,
        failures: 0,
        compared: 4,
        agreementRate: 0.75, // 0.8 is at the threshold: it agrees
        meanSimilarity: (0.95 + 0.85 + 0.8 + 0.5) / 4,
        primaryLatencyMeanMs: 250,
        shadowLatencyMeanMs: 170,
        primaryLatencyP50Ms: 200, // nearest rank: the 2nd of 4
        shadowLatencyP50Ms: 60,
        latencyDeltaMeanMs: -80,
        latencyDeltaP50Ms: -140,
        primaryCostPerRequestPico: 2_500_000,
        shadowCostPerRequestPico: 250_000,
        costDeltaPerRequestPico: -2_250_000,
        costDeltaPct: -90,
      };
      expect(r).toEqual({ ...expected, meanSimilarity: expect.closeTo(expected.meanSimilarity!, 9), costDeltaPct: expect.closeTo(-90, 9) });
    });

    it('takes the agreement threshold per call', async () => {
      for (const similarity of [0.6, 0.7, 0.9]) await store.put(pair({ similarity }));
      expect((await report(undefined, undefined, 0.65))[0]?.agreementRate).toBeCloseTo(2 / 3, 9);
      expect((await report(undefined, undefined, 0.95))[0]?.agreementRate).toBe(0);
      expect((await report(undefined, undefined, 0))[0]?.agreementRate).toBe(1);
    });

    it('counts failures but compares latency, cost and similarity over successful pairs only', async () => {
      await store.put(pair({ primaryLatencyMs: 100, shadowLatencyMs: 50, similarity: 0.9 }));
      await store.put(pair({ primaryLatencyMs: 300, shadowLatencyMs: 30_000, similarity: null, shadowStatus: 504, error: 'timeout', shadowCostPico: 0 }));
      await store.put(pair({ primaryLatencyMs: 300, shadowLatencyMs: 5, similarity: null, shadowStatus: 503, error: 'HTTP 503', shadowCostPico: 0 }));
      const [r] = await report();
      expect(r).toMatchObject({
        pairs: 3,
        failures: 2,
        compared: 1,
        agreementRate: 1,
        meanSimilarity: 0.9,
        primaryLatencyMeanMs: 100,
        shadowLatencyMeanMs: 50,
        primaryLatencyP50Ms: 100,
        shadowLatencyP50Ms: 50,
        primaryCostPerRequestPico: 1_000_000,
        shadowCostPerRequestPico: 250_000,
      });
    });

    it('has no agreement or similarity when no pair was compared (no embedder), and no comparison when all failed', async () => {
      await store.put(pair({ similarity: null }));
      expect((await report())[0]).toMatchObject({ pairs: 1, compared: 0, agreementRate: null, meanSimilarity: null, primaryLatencyMeanMs: 100 });
      await store.put(pair({ shadowModel: 'sim-broken', shadowStatus: 502, similarity: null, error: 'x' }));
      const broken = (await report()).find((r) => r.shadowModel === 'sim-broken');
      expect(broken).toEqual({
        shadowModel: 'sim-broken',
        pairs: 1,
        failures: 1,
        compared: 0,
        agreementRate: null,
        meanSimilarity: null,
        primaryLatencyMeanMs: null,
        shadowLatencyMeanMs: null,
        primaryLatencyP50Ms: null,
        shadowLatencyP50Ms: null,
        latencyDeltaMeanMs: null,
        latencyDeltaP50Ms: null,
        primaryCostPerRequestPico: null,
        shadowCostPerRequestPico: null,
        costDeltaPerRequestPico: null,
        costDeltaPct: null,
      });
    });

    it('gives one entry per shadow model, sorted by name', async () => {
      await store.put(pair({ shadowModel: 'sim-medium', shadowLatencyMs: 70 }));
      await store.put(pair({ shadowModel: 'sim-small' }));
      await store.put(pair({ shadowModel: 'sim-medium', shadowLatencyMs: 90 }));
      const r = await report();
      expect(r.map((x) => [x.shadowModel, x.pairs])).toEqual([
        ['sim-medium', 2],
        ['sim-small', 1],
      ]);
      expect(r[0]?.shadowLatencyMeanMs).toBe(80);
    });

    it('covers from (inclusive) to to (exclusive)', async () => {
      await store.put(pair({ ts: T0 - 1 }));
      await store.put(pair({ ts: T0 }));
      await store.put(pair({ ts: T0 + HOUR - 1 }));
      await store.put(pair({ ts: T0 + HOUR }));
      expect((await report(T0, T0 + HOUR))[0]?.pairs).toBe(2);
      expect(await report(T0 + 2 * HOUR, T0 + 3 * HOUR)).toEqual([]);
    });

    it('is idempotent by request id: a pair written twice counts once', async () => {
      await store.put(pair({ requestId: 'dup', shadowLatencyMs: 10 }));
      await store.put(pair({ requestId: 'dup', shadowLatencyMs: 999 }));
      expect((await report())[0]).toMatchObject({ pairs: 1, shadowLatencyMeanMs: 10 });
    });

    it('keeps pico-dollar costs beyond 32 bits exact', async () => {
      const big = 3_000_000_000_123; // $3, in pico-dollars
      await store.put(pair({ primaryCostPico: big, shadowCostPico: big + 2 }));
      await store.put(pair({ primaryCostPico: big, shadowCostPico: big }));
      const [r] = await report();
      expect(r?.primaryCostPerRequestPico).toBe(big);
      expect(r?.shadowCostPerRequestPico).toBe(big + 1);
      expect(r?.costDeltaPerRequestPico).toBe(1);
    });

    it('takes the median of an odd number of pairs as the middle one', async () => {
      for (const ms of [30, 10, 20]) await store.put(pair({ shadowLatencyMs: ms, primaryLatencyMs: ms * 10 }));
      expect((await report())[0]).toMatchObject({ shadowLatencyP50Ms: 20, primaryLatencyP50Ms: 200, latencyDeltaP50Ms: -180 });
    });
  });
}
