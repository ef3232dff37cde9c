import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Embedder } from '../cache/types.js';
import { driftSchema } from '../config/signals-schema.js';
import type { RequestContext } from '../pipeline/context.js';
import { mulberry32 } from '../providers/simulated/random.js';
import { DriftDetector, type DriftSample, psi } from './drift.js';

/** A seeded PRNG, so each run draws the same samples. */
const rng = mulberry32;

const LATIN = ['hello', 'please', 'summarize', 'the', 'report', 'write', 'an', 'email', 'about', 'sales', 'numbers', 'today'];
const CYRILLIC = ['привет', 'пожалуйста', 'кратко', 'отчёт', 'напиши', 'письмо', 'о', 'продажах', 'сегодня'];
const DIMS = 32;

/** A prompt from one of two populations: short Latin prompts near one direction, or long Cyrillic ones near another. */
function draw(random: () => number, shifted: boolean): DriftSample {
  const words = shifted ? CYRILLIC : LATIN;
  const text = Array.from({ length: 3 + Math.floor(random() * 8) }, () => words[Math.floor(random() * words.length)]).join(' ');
  // Log-normal-ish prompt lengths: median ~40 tokens, or ~600 when shifted.
  const promptTokens = Math.round(Math.exp((shifted ? Math.log(600) : Math.log(40)) + (random() + random() + random() - 1.5)));
  const v = new Float32Array(DIMS);
  for (let i = 0; i < DIMS; i++) v[i] = (random() - 0.5) * 0.6;
  v[shifted ? 1 : 0]! += 1;
  let n = 0;
  for (const x of v) n += x * x;
  for (let i = 0; i < DIMS; i++) v[i]! /= Math.sqrt(n);
  return { promptTokens, text, vector: v };
}

const T0 = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000);
const MIN = 60_000;

function setup(extra: Record<string, unknown> = {}) {
  const clock = { t: T0 };
  const config = driftSchema.parse({ recentMinutes: 15, baselineMinutes: 60, minSamples: 100, embedding: { sampleRate: 0 }, ...extra });
  const drift = new DriftDetector({ config, now: () => clock.t });
  return { clock, drift };
}

/** `perMinute` samples a minute for `minutes` minutes, starting at the clock. */
function feed(d: ReturnType<typeof setup>, random: () => number, minutes: number, perMinute: number, shifted: boolean, route = 'chat') {
  for (let m = 0; m < minutes; m++) {
    const start = d.clock.t;
    for (let i = 0; i < perMinute; i++) {
      d.clock.t = start + i * Math.floor(MIN / perMinute);
      d.drift.record(route, draw(random, shifted));
    }
    d.clock.t = start + MIN;
  }
}

const scoreOf = (drift: DriftDetector, feature: string, route = 'chat') => drift.scores().find((s) => s.route === route && s.feature === feature)!;

describe('PSI', () => {
  it('is 0 for identical histograms, grows with the shift, and stays finite with empty buckets', () => {
    expect(psi([10, 20, 30], [10, 20, 30])).toBeCloseTo(0, 10);
    expect(psi([30, 20, 10], [10, 20, 30])).toBeGreaterThan(0.3);
    expect(Number.isFinite(psi([100, 0, 0], [0, 0, 100]))).toBe(true);
  });
});

describe('DriftDetector', () => {
  it('stays low when the recent prompts come from the same distribution (different samples)', () => {
    const d = setup();
    const random = rng(1);
    feed(d, random, 60, 20, false); // the baseline hour
    feed(d, random, 15, 20, false); // the recent window: new draws, same population
    d.clock.t -= 1;
    for (const feature of ['length', 'script', 'embedding']) {
      const s = scoreOf(d.drift, feature);
      expect(s.recentSamples).toBe(300);
      expect(s.baselineSamples).toBe(1200);
      expect(s.score, feature).not.toBeNull();
      expect(s.score!, feature).toBeLessThan(0.05);
    }
  });

  it('rises when the prompts get longer, change script and move in embedding space', () => {
    const d = setup();
    const random = rng(2);
    feed(d, random, 60, 20, false);
    feed(d, random, 15, 20, true);
    d.clock.t -= 1;
    expect(scoreOf(d.drift, 'length').score!).toBeGreaterThan(1);
    expect(scoreOf(d.drift, 'script').score!).toBeGreaterThan(1);
    expect(scoreOf(d.drift, 'embedding').score!).toBeGreaterThan(0.3);
  });

  it('reports no score until both windows have minSamples, and forgets what is older than the baseline', () => {
    const d = setup();
    const random = rng(3);
    feed(d, random, 10, 5, false);
    expect(scoreOf(d.drift, 'length')).toMatchObject({ score: null, baselineSamples: 0 });
    feed(d, random, 60, 5, false);
    expect(scoreOf(d.drift, 'length').score).toBeNull(); // the recent window has 75 < 100
    d.clock.t += 3 * 3_600_000; // three quiet hours
    expect(scoreOf(d.drift, 'length')).toMatchObject({ score: null, recentSamples: 0, baselineSamples: 0 });
  });

  it('keeps bounded aggregates over days of traffic (baseline = about one window)', () => {
    const d = setup();
    const random = rng(4);
    feed(d, random, 48 * 60, 2, false);
    d.clock.t -= 1;
    const s = scoreOf(d.drift, 'length');
    expect(s.recentSamples).toBe(30);
    // 60 baseline minutes, plus up to one coarse slot (2 minutes) not yet dropped.
    expect(s.baselineSamples).toBeGreaterThanOrEqual(120);
    expect(s.baselineSamples).toBeLessThanOrEqual(124);
  });

  it('watches only the configured routes', () => {
    const d = setup({ routes: ['chat'] });
    d.drift.record('other', draw(rng(5), false));
    d.drift.record('chat', draw(rng(5), false));
    expect(new Set(d.drift.scores().map((s) => s.route))).toEqual(new Set(['chat']));
  });

  it('uses the cache vector when there is one, else embeds a sample in the background, bounded', async () => {
    const clock = { t: T0 };
    let calls = 0;
    const waiting: Array<() => void> = [];
    const embedder: Embedder = {
      id: 'test',
      dimensions: 2,
      async embed() {
        calls++;
        await new Promise<void>((r) => waiting.push(r));
        return { vectors: [new Float32Array([0, 1])] };
      },
      async close() {},
    };
    const config = driftSchema.parse({ minSamples: 1, embedding: { sampleRate: 1, maxConcurrent: 1 } });
    const drift = new DriftDetector({ config, embedder, now: () => clock.t });
    const ctx = (vector?: Float32Array) =>
      ({ operation: 'chat', body: { model: 'm', messages: [{ role: 'user', content: 'hello there' }] }, prompt: { text: 'hello there', tokens: 5 }, model: { name: 'm' }, usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 }, ...(vector ? { cache: { outcome: 'miss', vector } } : {}) }) as unknown as RequestContext;
    drift.observe(ctx(new Float32Array([1, 0])), { status: 200, latencyMs: 1 });
    expect(calls).toBe(0); // the cache's vector was used
    drift.observe(ctx(), { status: 200, latencyMs: 1 });
    drift.observe(ctx(), { status: 200, latencyMs: 1 }); // one embedding at a time: skipped
    expect(calls).toBe(1);
    expect(drift.embedStats.skipped).toBe(1);
    for (const r of waiting) r();
    await drift.drain();
    expect(drift.embedStats.sampled).toBe(1);
    expect(scoreOf(drift, 'embedding', 'm')).toMatchObject({ recentSamples: 2 });
    expect(scoreOf(drift, 'length', 'm')).toMatchObject({ recentSamples: 3 });
  });

  it('does not sample with an upstream (paid) embedder unless told to', () => {
    let calls = 0;
    const embedder: Embedder = { id: 'deployment', dimensions: 2, embed: async () => (calls++, { vectors: [new Float32Array([1, 0])] }), close: async () => {} };
    const ctx = { operation: 'chat', body: { model: 'm', messages: [{ role: 'user', content: 'hello there' }] }, prompt: { text: 'hello there', tokens: 3 }, model: { name: 'm' } } as unknown as RequestContext;
    for (const sampleUpstream of [false, true]) {
      const config = driftSchema.parse({ embedding: { sampleRate: 1, sampleUpstream } });
      new DriftDetector({ config, embedder, embedderIsUpstream: true }).observe(ctx, { status: 200, latencyMs: 1 });
    }
    expect(calls).toBe(1);
  });

  it('exposes tollgate_drift_score{route,feature} at scrape time, once scores are ready', async () => {
    const d = setup();
    const registry = new Registry();
    d.drift.registerMetrics(registry);
    const random = rng(6);
    feed(d, random, 4, 20, false);
    expect(await registry.metrics()).not.toMatch(/tollgate_drift_score\{/); // no baseline yet
    feed(d, random, 60, 20, false);
    feed(d, random, 15, 20, true);
    d.clock.t -= 1;
    const text = await registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith('tollgate_drift_score{route="chat",feature="script"}'));
    expect(line).toBeDefined();
    expect(Number(line!.split(' ')[1])).toBeGreaterThan(1);
  });
});
