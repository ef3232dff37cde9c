import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ExperimentConfig, experimentSchema } from '../config/routing-schema.js';
import type { ChatCompletionRequest } from '../providers/types.js';
import { Experiments, applyVariant } from './experiments.js';
import { type VariantRaw, alignVariants, emptyRaw, newcombe, percentile, summarize, tQuantile975, welch } from './experiment-stats.js';
import type { Requester } from './types.js';

const experiment = (e: unknown): ExperimentConfig => experimentSchema.parse(e);

const CONFIG: Record<string, ExperimentConfig> = {
  checkout: experiment({ route: 'auto', variants: [{ name: 'control', weight: 1 }, { name: 'concise', weight: 1, system: 'Be brief.' }] }),
  '3way': experiment({ route: 'fast', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 2 }, { name: 'c', weight: 7 }] }),
  off: experiment({ route: 'smart', enabled: false, variants: [{ name: 'control', weight: 1 }, { name: 'x', weight: 99 }] }),
};

const user = (userId: string | null, keyId = 'key_1'): Requester => ({ tenantId: 'ten_a', tier: 'standard', keyId, userId });

describe('Experiments: assignment', () => {
  const experiments = new Experiments(CONFIG);

  it('gives a user the same variant on every call and from every instance', () => {
    const other = new Experiments(CONFIG);
    for (let i = 0; i < 200; i++) {
      const first = experiments.assign('checkout', user(`user-${i}`));
      for (let k = 0; k < 3; k++) expect(experiments.assign('checkout', user(`user-${i}`))).toEqual(first);
      expect(other.assign('checkout', user(`user-${i}`, 'key_other'))).toEqual(first); // per user, whatever the key
    }
  });

  it('is a pure function of (experiment, user, weights): pinned values, and the same in another process', () => {
    const golden = { 'user-1': 1, 'user-2': 0, 'user-3': 1, 'user-4': 0, 'user-5': 1, 'user-6': 1, 'user-7': 0, 'user-8': 0, 'user-9': 1, 'user-10': 1 };
    const here = Object.fromEntries(Object.keys(golden).map((id) => [id, experiments.assign('checkout', user(id)).index]));
    expect(here).toEqual(golden);

    const module = fileURLToPath(new URL('./experiments.ts', import.meta.url));
    const script = `const { Experiments } = await import(${JSON.stringify(module)});
      const e = new Experiments(${JSON.stringify(CONFIG)});
      const ids = ${JSON.stringify(Object.keys(golden))};
      process.stdout.write(JSON.stringify(Object.fromEntries(ids.map((id) => [id, e.assign('checkout', { tenantId: 't', tier: '', keyId: 'k', userId: id }).index]))));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(golden);
  });

  it('sticks to the key when the request names no end user', () => {
    const a = experiments.assign('checkout', user(null, 'key_abc'));
    expect(experiments.assign('checkout', user(null, 'key_abc'))).toEqual(a);
    expect(experiments.assign('checkout', user('', 'key_abc'))).toEqual(a);
    expect(a).toEqual({ experiment: 'checkout', variant: 'concise', index: 1 }); // pinned
    // Different keys spread over the variants.
    const variants = new Set(Array.from({ length: 50 }, (_, i) => experiments.assign('checkout', user(null, `key_${i}`)).variant));
    expect(variants).toEqual(new Set(['control', 'concise']));
  });

  it('respects the weights within 1% over 100,000 users', () => {
    const counts = [0, 0, 0];
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[experiments.assign('3way', user(`u${i}`)).index]! += 1;
    const shares = counts.map((c) => c / n);
    [0.1, 0.2, 0.7].forEach((want, i) => expect(Math.abs(shares[i]! - want)).toBeLessThan(0.01));
  });

  it('gives everyone the control of a disabled experiment, and refuses an unknown one', () => {
    for (let i = 0; i < 20; i++) expect(experiments.assign('off', user(`u${i}`))).toEqual({ experiment: 'off', variant: 'control', index: 0 });
    expect(() => experiments.assign('nope', user('u'))).toThrow(/unknown experiment 'nope'/);
  });

  it('finds the enabled experiment of a route, also through an alias when given a resolver', () => {
    expect(experiments.forRoute('auto')?.id).toBe('checkout');
    expect(experiments.forRoute('fast')).toMatchObject({ id: '3way', route: 'fast', enabled: true });
    expect(experiments.forRoute('smart')).toBeUndefined(); // disabled
    expect(experiments.forRoute('other')).toBeUndefined();
    expect(experiments.list().map((e) => e.id)).toEqual(['checkout', '3way', 'off']);
    expect(experiments.get('off')?.enabled).toBe(false);

    const aliased = new Experiments({ e: experiment({ route: 'cheap', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }] }) }, {
      resolve: (n) => (n === 'cheap' ? 'fast' : n),
    });
    expect(aliased.forRoute('fast')?.id).toBe('e');
    expect(aliased.forRoute('cheap')?.id).toBe('e');
  });
});

describe('applyVariant', () => {
  const body = (): ChatCompletionRequest => ({
    model: 'auto',
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'developer', content: 'old rules' },
      { role: 'system', content: 'second system' },
    ],
    temperature: 1,
    stream: true,
    stream_options: { include_usage: true },
  });

  it('replaces the first system or developer message, keeping its role, in a new body', () => {
    const input = body();
    const snapshot = structuredClone(input);
    const out = applyVariant(input, { system: 'Be brief.' });
    expect(out).not.toBe(input);
    expect(out.messages).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'developer', content: 'Be brief.' },
      { role: 'system', content: 'second system' },
    ]);
    expect(input).toEqual(snapshot);
  });

  it('inserts the system prompt first when there is none', () => {
    const input: ChatCompletionRequest = { model: 'auto', messages: [{ role: 'user', content: 'hi' }] };
    const out = applyVariant(input, { system: 'You are terse.' });
    expect(out.messages).toEqual([{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hi' }]);
    expect(input.messages).toHaveLength(1);
  });

  it('merges params over the body but never over messages, model, stream or stream_options', () => {
    const input = body();
    const snapshot = structuredClone(input);
    const params = {
      temperature: 0.2,
      max_tokens: 300,
      response_format: { type: 'json_object' },
      model: 'other',
      stream: false,
      stream_options: null,
      messages: [],
    };
    const out = applyVariant(input, { params });
    expect(out).toEqual({ ...snapshot, temperature: 0.2, max_tokens: 300, response_format: { type: 'json_object' } });
    expect(input).toEqual(snapshot);
    // The config's objects are copied: a later stage changing the body cannot change the variant.
    (out.response_format as { type: string }).type = 'text';
    expect(params.response_format.type).toBe('json_object');
  });

  it('changes nothing without system or params (but still returns a new object)', () => {
    const input = body();
    const out = applyVariant(input, {});
    expect(out).toEqual(input);
    expect(out).not.toBe(input);
  });
});

describe('Experiments.validate', () => {
  const routes = new Set(['auto', 'smart']);
  const models = new Set(['fast', 'big', 'fast-alias']);
  const validate = (e: Record<string, unknown>) =>
    Experiments.validate(
      Object.fromEntries(Object.entries(e).map(([k, v]) => [k, experiment(v)])),
      (n) => routes.has(n),
      (n) => models.has(n),
    );
  const two = [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }];

  it('accepts routes and models, and variants on models or routes', () => {
    expect(
      validate({
        e1: { route: 'auto', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1, model: 'big', params: { temperature: 0 } }] },
        e2: { route: 'fast-alias', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3, model: 'smart' }] },
        e3: { route: 'auto', enabled: false, variants: two }, // a disabled one may share the route
      }),
    ).toEqual([]);
  });

  it('names every problem', () => {
    expect(
      validate({
        e1: { route: 'nowhere', variants: two },
        e2: { route: 'auto', variants: [{ name: 'a', weight: 1 }, { name: 'a', weight: 1, model: 'ghost' }] },
        e3: { route: 'auto', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1, params: { model: 'big', stream: true, messages: [], stream_options: {}, top_p: 1 } }] },
        'bad/id': { route: 'smart', variants: two },
      }),
    ).toEqual([
      "experiments.e1.route: unknown route or model 'nowhere'",
      "experiments.e2.variants.1.name: duplicate variant name 'a'",
      "experiments.e2.variants.1.model: unknown model 'ghost'",
      "experiments.e3.route: 'auto' already has experiment 'e2' (one enabled experiment per route)",
      'experiments.e3.variants.1.params.model: cannot be set by a variant (messages, model, stream, stream_options are the request\'s own)',
      'experiments.e3.variants.1.params.stream: cannot be set by a variant (messages, model, stream, stream_options are the request\'s own)',
      'experiments.e3.variants.1.params.messages: cannot be set by a variant (messages, model, stream, stream_options are the request\'s own)',
      'experiments.e3.variants.1.params.stream_options: cannot be set by a variant (messages, model, stream, stream_options are the request\'s own)',
      'experiments.bad/id: the id must be 1-64 characters of letters, digits and _ . : -',
    ]);
  });
});

describe('statistics', () => {
  it("Student's t quantile matches the tables; normal above 1000 degrees of freedom", () => {
    const table: [number, number][] = [[1, 12.706204736], [2, 4.302652730], [5, 2.570581836], [10, 2.228138852], [30, 2.042272456], [100, 1.983971519], [1000, 1.962339081]];
    for (const [df, t] of table) expect(tQuantile975(df)).toBeCloseTo(t, 8);
    expect(tQuantile975(7.3)).toBeCloseTo(2.345066737, 8); // scipy.stats.t.ppf(0.975, 7.3)
    expect(tQuantile975(5000)).toBeCloseTo(1.959963985, 9);
  });

  it("Newcombe's hybrid score interval matches Newcombe (1998), method 10", () => {
    const cases: [number, number, number, number, number, number][] = [
      [56, 70, 48, 80, 0.0524, 0.3339],
      [9, 10, 3, 10, 0.1705, 0.809],
      [6, 7, 2, 7, 0.0582, 0.8062],
      [5, 56, 0, 29, -0.0381, 0.1926],
      [0, 10, 0, 20, -0.1611, 0.2775],
    ];
    for (const [x1, n1, x2, n2, low, high] of cases) {
      const i = newcombe(x1, n1, x2, n2)!;
      expect(i.estimate).toBeCloseTo(x1 / n1 - x2 / n2, 12);
      expect(i.low).toBeCloseTo(low, 4);
      expect(i.high).toBeCloseTo(high, 4);
    }
    expect(newcombe(1, 0, 1, 10)).toBeNull();
  });

  it("Welch's interval matches scipy; null under 2 values a side; zero spread gives a point", () => {
    const i = welch([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12])!;
    expect(i.estimate).toBe(-3.5);
    expect(i.low).toBeCloseTo(-7.499399820271668, 9);
    expect(i.high).toBeCloseTo(0.49939982027166785, 9);
    expect(i.significant).toBe(false);
    expect(welch([1], [1, 2])).toBeNull();
    expect(welch([3, 3], [1, 1, 1])).toEqual({ estimate: 2, low: 2, high: 2, significant: true });
  });

  it('percentiles interpolate between closest ranks', () => {
    expect(percentile([30, 40, 50], 0.5)).toBe(40);
    expect(percentile([30, 40, 50], 0.95)).toBeCloseTo(49, 12);
    expect(percentile([7], 0.99)).toBe(7);
  });
});

describe('summarize', () => {
  // Treatment vs control with numbers checked against published tables (proportions) and scipy (means).
  const control: VariantRaw = {
    variant: 'control',
    requests: 10,
    errors: 3,
    latencies: [100, 110, 115, 120, 125, 130, 140, 150, 160, 400],
    ttfts: [],
    promptTokens: 1_000,
    completionTokens: 2_500,
    costPico: 10_350_000,
    costs: [1_000_000, 1_200_000, 900_000, 1_100_000, 1_000_000, 1_050_000, 950_000, 1_000_000, 1_150_000, 1_000_000],
    feedbackGood: 48,
    feedbackBad: 32,
  };
  const treatment: VariantRaw = {
    variant: 'concise',
    requests: 10,
    errors: 9,
    latencies: [900, 120, 135, 150, 160, 180, 200, 210, 250, 300], // any order
    ttfts: [50, 30, 40],
    promptTokens: 1_234,
    completionTokens: 1_001,
    costPico: 20_600_000,
    costs: [2_000_000, 2_100_000, 1_900_000, 2_050_000, 2_000_000, 2_200_000, 1_950_000, 2_000_000, 2_100_000, 2_300_000],
    feedbackGood: 56,
    feedbackBad: 14,
  };

  it('summarizes each variant', () => {
    const r = summarize([control, treatment]);
    expect(r.control).toBe('control');
    expect(r.confidence).toBe(0.95);
    const [c, t] = r.variants;
    expect(c).toMatchObject({ variant: 'control', requests: 10, errors: 3, errorRate: 0.3, streams: 0, ttftMs: null, meanPromptTokens: 100, meanCompletionTokens: 250, costPico: 10_350_000 });
    expect(c!.costPerRequestUsd).toBeCloseTo(1.035e-6, 15);
    expect(c!.feedback).toEqual({ count: 80, good: 48, bad: 32, mean: 0.6 });
    expect(c!.latencyMs!.mean).toBe(155);
    expect(c!.latencyMs!.p50).toBeCloseTo(127.5, 9);
    expect(c!.latencyMs!.p95).toBeCloseTo(292, 9);
    expect(c!.latencyMs!.p99).toBeCloseTo(378.4, 9);
    expect(t!.latencyMs!.mean).toBe(260.5);
    expect(t!.latencyMs!.p50).toBeCloseTo(190, 9);
    expect(t!.latencyMs!.p95).toBeCloseTo(630, 9);
    expect(t!.latencyMs!.p99).toBeCloseTo(846, 9);
    expect(t!.streams).toBe(3);
    expect(t!.ttftMs).toEqual({ mean: 40, p50: 40, p95: expect.closeTo(49, 9), p99: expect.closeTo(49.8, 9) });
    expect(t!.meanPromptTokens).toBeCloseTo(123.4, 12);
    expect(t!.feedback.mean).toBe(0.8);
  });

  it('compares each variant with the control, with 95% intervals', () => {
    const [d] = summarize([control, treatment]).differences;
    expect(d!.variant).toBe('concise');
    expect(d!.control).toBe('control');
    // Error rate 9/10 vs 3/10 (Newcombe 1998: 0.1705 to 0.8090).
    expect(d!.errorRate!.estimate).toBeCloseTo(0.6, 12);
    expect(d!.errorRate!.low).toBeCloseTo(0.1705, 4);
    expect(d!.errorRate!.high).toBeCloseTo(0.809, 4);
    expect(d!.errorRate!.significant).toBe(true);
    // Good feedback 56/70 vs 48/80 (Newcombe 1998: 0.0524 to 0.3339).
    expect(d!.feedbackMean!.estimate).toBeCloseTo(0.2, 12);
    expect(d!.feedbackMean!.low).toBeCloseTo(0.0524, 4);
    expect(d!.feedbackMean!.high).toBeCloseTo(0.3339, 4);
    // Latency: scipy.stats.ttest_ind(t, c, equal_var=False).confidence_interval(0.95).
    expect(d!.latencyMeanMs!.estimate).toBeCloseTo(105.5, 9);
    expect(d!.latencyMeanMs!.low).toBeCloseTo(-65.68547734482536, 7);
    expect(d!.latencyMeanMs!.high).toBeCloseTo(276.68547734482536, 7);
    expect(d!.latencyMeanMs!.significant).toBe(false);
    // Cost per request, USD (scipy in pico: 924415.6952171869 to 1125584.304782813).
    expect(d!.costPerRequestUsd!.estimate).toBeCloseTo(1.025e-6, 15);
    expect(d!.costPerRequestUsd!.low).toBeCloseTo(924_415.6952171869e-12, 15);
    expect(d!.costPerRequestUsd!.high).toBeCloseTo(1_125_584.304782813e-12, 15);
    expect(d!.costPerRequestUsd!.significant).toBe(true);
  });

  it('takes another control when told, and leaves intervals null without data', () => {
    const empty = emptyRaw('empty');
    const r = summarize([control, treatment, empty], treatment);
    expect(r.control).toBe('concise');
    expect(r.differences.map((d) => d.variant)).toEqual(['control', 'empty']);
    expect(r.differences[0]!.errorRate!.estimate).toBeCloseTo(-0.6, 12);
    expect(r.differences[1]).toEqual({ variant: 'empty', control: 'concise', errorRate: null, feedbackMean: null, latencyMeanMs: null, costPerRequestUsd: null });
    expect(r.variants[2]).toMatchObject({ requests: 0, errorRate: null, latencyMs: null, ttftMs: null, costPerRequestUsd: null, meanPromptTokens: null, feedback: { count: 0, mean: null } });
    expect(summarize([])).toEqual({ control: null, confidence: 0.95, variants: [], differences: [] });
  });

  it('aligns ledger rows to the configured variants: control first, missing ones empty, unknown ones last', () => {
    const aligned = alignVariants(CONFIG['checkout']!, [{ ...emptyRaw('zz-old'), requests: 1 }, { ...emptyRaw('concise'), requests: 2 }, { ...emptyRaw('aa-old'), requests: 3 }]);
    expect(aligned.map((r) => [r.variant, r.requests])).toEqual([['control', 0], ['concise', 2], ['aa-old', 3], ['zz-old', 1]]);
  });
});
