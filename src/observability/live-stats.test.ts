import { describe, expect, it } from 'vitest';
import { type BusMessage, LocalChangeBus } from '../storage/change-bus.js';
import { LATENCY_BOUNDS_MS, type LiveSample, LiveStats, histogramQuantile } from './live-stats.js';

const T0 = 1_800_000_000_000;

function sample(over: Partial<LiveSample> = {}): LiveSample {
  return {
    at: T0,
    status: 200,
    latencyMs: 100,
    tier: 'none',
    servedModel: 'sim-small',
    promptTokens: 10,
    completionTokens: 5,
    costPico: 1_000_000, // $0.000001
    savedPico: 0,
    fallback: false,
    streamError: false,
    ...over,
  };
}

describe('LiveStats', () => {
  it('counts requests, errors, refusals and failures separately', () => {
    let now = T0;
    const s = new LiveStats({ now: () => now });
    s.record(sample());
    s.record(sample({ status: 502 }));
    s.record(sample({ status: 200, streamError: true }));
    s.record(sample({ status: 429 }));
    s.record(sample({ status: 402 }));
    s.record(sample({ status: 400 }));
    s.record(sample({ status: 499 }));
    s.record(sample({ fallback: true }));
    now = T0 + 500;
    const snap = s.snapshot(60);
    expect(snap.requests).toBe(8);
    expect(snap.errors).toBe(2);
    expect(snap.refusals).toBe(2);
    expect(snap.failures).toBe(2);
    expect(snap.fallbacks).toBe(1);
    expect(snap.errorRate).toBeCloseTo(2 / 8);
    expect(snap.costUsd).toBeCloseTo(8e-6);
    expect(snap.costPerRequestUsd).toBeCloseTo(1e-6);
    expect(snap.promptTokens).toBe(80);
    expect(snap.models).toEqual({ 'sim-small': 8 });
    expect(snap.nodes).toBe(1);
  });

  it('computes latency quantiles per tier from the histogram buckets', () => {
    const s = new LiveStats({ now: () => T0 });
    for (let i = 0; i < 90; i++) s.record(sample({ tier: 'small', latencyMs: 40 }));
    for (let i = 0; i < 10; i++) s.record(sample({ tier: 'small', latencyMs: 3000 }));
    for (let i = 0; i < 10; i++) s.record(sample({ tier: 'large', latencyMs: 700, status: 500 }));
    const p50 = s.latencyQuantile(0.5, { tier: 'small', windowSec: 60 })!;
    const p99 = s.latencyQuantile(0.99, { tier: 'small', windowSec: 60 })!;
    expect(p50).toBeGreaterThan(25);
    expect(p50).toBeLessThanOrEqual(50);
    expect(p99).toBeGreaterThan(2500);
    expect(p99).toBeLessThanOrEqual(4000);
    const large = s.latencyQuantile(0.5, { tier: 'large', windowSec: 60 })!;
    expect(large).toBeGreaterThan(600);
    expect(large).toBeLessThanOrEqual(1000);
    expect(s.latencyQuantile(0.5, { tier: 'absent', windowSec: 60 })).toBeNull();
    expect(s.errorRate({ tier: 'large', windowSec: 60 })).toBe(1);
    expect(s.errorRate({ tier: 'small', windowSec: 60 })).toBe(0);
    expect(s.snapshot(60).tiers['large']?.errors).toBe(10);
  });

  it('forgets what is older than the window, and what is older than an hour', () => {
    let now = T0;
    const s = new LiveStats({ now: () => now });
    s.record(sample());
    now = T0 + 120_000;
    s.record(sample({ at: now }));
    expect(s.snapshot(60).requests).toBe(1);
    expect(s.snapshot(3600).requests).toBe(2);
    now = T0 + 3_601_000; // an hour later, the slot of T0 is reused
    s.record(sample({ at: now }));
    expect(s.snapshot(3600).requests).toBe(2);
  });

  it('reports cache hit rate and savings', () => {
    const s = new LiveStats({ now: () => T0 });
    s.record(sample({ cache: 'hit', costPico: 0, savedPico: 2e9 }));
    s.record(sample({ cache: 'semantic', costPico: 0, savedPico: 2e9 }));
    s.record(sample({ cache: 'miss' }));
    s.record(sample({ cache: 'miss' }));
    s.record(sample({ cache: 'bypass' }));
    const snap = s.snapshot(60);
    expect(snap.cacheHitRate).toBeCloseTo(0.5);
    expect(snap.savedUsd).toBeCloseTo(0.004);
    expect(snap.cache).toEqual({ hit: 1, semantic: 1, miss: 2, bypass: 1 });
  });

  it('builds chart series with one point per step', () => {
    let now = T0;
    const s = new LiveStats({ now: () => now });
    for (let i = 0; i < 10; i++) s.record(sample({ at: T0 + i * 1000, tier: 'small', ttftMs: 30 }));
    now = T0 + 9_000;
    const series = s.series(10, 5);
    expect(series.t.length).toBeGreaterThanOrEqual(2);
    expect(series.requestsPerSec.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(series.latency['small']?.p95.some((v) => v !== null)).toBe(true);
    expect(series.tierMix['small']?.length).toBe(series.t.length);
    expect(series.modelMix['sim-small']?.some((v) => v > 0)).toBe(true);
    expect(series.ttftP50Ms.some((v) => v !== null && v > 25 && v <= 50)).toBe(true);
  });

  it('merges the buckets of its peers over the bus and drops a silent peer', async () => {
    let now = T0;
    const bus = new LocalChangeBus();
    const a = new LiveStats({ now: () => now, bus, nodeId: 'a' });
    const b = new LiveStats({ now: () => now, bus, nodeId: 'b' });
    for (let i = 0; i < 3; i++) a.record(sample({ tier: 'small', latencyMs: 40 }));
    for (let i = 0; i < 3; i++) b.record(sample({ tier: 'small', latencyMs: 3000, status: 503 }));
    await a.publish();
    await b.publish();
    for (const s of [a, b]) {
      const snap = s.snapshot(60);
      expect(snap.nodes).toBe(2);
      expect(snap.requests).toBe(6);
      expect(snap.errors).toBe(3);
      expect(s.errorRate({ tier: 'small', windowSec: 60 })).toBeCloseTo(0.5);
      // quantiles come from the summed histograms: half fast, half slow
      expect(s.latencyQuantile(0.25, { windowSec: 60 })).toBeLessThanOrEqual(50);
      expect(s.latencyQuantile(0.9, { windowSec: 60 })).toBeGreaterThan(2500);
    }
    // Republishing the same seconds replaces them: nothing is counted twice.
    b.record(sample());
    await b.publish();
    expect(a.snapshot(60).requests).toBe(7);
    // b goes silent: after 10 s a stops counting it.
    now = T0 + 11_000;
    await a.publish();
    expect(a.snapshot(60).nodes).toBe(1);
    expect(a.snapshot(60).requests).toBe(3);
  });

  it('ignores malformed peer messages', () => {
    const a = new LiveStats({ now: () => T0, nodeId: 'a' });
    a.receive('evil', [{ t: 'x' }, null, { t: Math.floor(T0 / 1000), requests: -5, errors: 'a', tiers: { x: { latency: 'no' } } }]);
    const snap = a.snapshot(60);
    expect(snap.requests).toBe(0);
    expect(snap.nodes).toBe(2);
  });

  it('publishes the change kind other processes expect', async () => {
    const seen: BusMessage[] = [];
    const bus = new LocalChangeBus();
    bus.subscribe((c) => seen.push(c));
    const a = new LiveStats({ now: () => T0, bus, nodeId: 'a' });
    a.record(sample());
    await a.publish();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ kind: 'live-stats', node: 'a' });
  });
});

describe('histogramQuantile', () => {
  it('interpolates within a bucket and is null when empty', () => {
    const h = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
    expect(histogramQuantile(h, 0.5)).toBeNull();
    h[1] = 10; // (5, 10]
    expect(histogramQuantile(h, 0.5)).toBeCloseTo(7.5);
  });
});
