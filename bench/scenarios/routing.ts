/**
 * Tiered routing, in process: how long a routing decision takes, and what routing saves on a
 * day of simulated mixed traffic (and at what quality risk).
 *
 * The prompts are the labelled set of test/fixtures/routing-prompts.jsonl (each labelled small,
 * medium or large by what a reasonable platform team would send it to; see classifier.test.ts).
 * The route has three tiers, small -> sim-small, medium -> sim-medium, large -> sim-large, the
 * built-in classifier and the {@link RULES} below (realistic rules of a route: customer tiers,
 * capability floors, cost ceilings).
 *
 * 1. Decision time: extractFeatures + BuiltinClassifier.classify + applyRules, i.e. everything
 *    the router computes per request before availability and fallbacks, over the labelled
 *    prompts in turn, with three requesters in turn (standard, free, premium: the rules take
 *    different paths), `warmupSeconds` of warm-up (JIT) then `seconds` measured (capped at
 *    {@link MAX_SAMPLES} decisions), each decision timed alone with process.hrtime.bigint()
 *    (the timer's own cost, measured apart, is included and reported). Target: p99 < 50 µs.
 *    Also: the mean cost of each stage (batches, no per-call timer) and the decision time on
 *    one 256 KB prompt (not in the mix) to show the scan is bounded.
 * 2. Cost of a day: BENCH_ROUTING_REQUESTS requests (default 100,000) drawn with a seeded PRNG
 *    (mulberry32, BENCH_ROUTING_SEED, default 42): a label by the mix BENCH_ROUTING_MIX
 *    (easy,medium,hard shares; default 60,30,10), then a prompt of that label uniformly. Each is
 *    priced routed (the tier the router picks for a `standard` customer) and all-large (every
 *    request to sim-large), and, for reference, "by label" (a perfect router: each request to
 *    its label's tier). Price = prompt tokens x input price + output tokens x output price
 *    (DEFAULT_SIM_PRICES, USD per million tokens; no cached input). Prompt tokens: the project's
 *    tokenizer (countPromptTokens: o200k_base + 3 per message + 3), plus the tool definitions'
 *    JSON text when the request has tools (upstreams bill those too). Output tokens: drawn as
 *    the simulator draws them, uniformly in the serving model's `outputTokens` range
 *    (DEFAULT_SIM_MODELS), capped by the request's max_tokens; each pricing (routed, all-large,
 *    by label) has its own seeded stream. Quality risk: the share of hard-labelled requests
 *    routed below large, and of all requests routed to a tier below their label.
 *
 * Environment: BENCH_ROUTING_MIX (60,30,10), BENCH_ROUTING_REQUESTS (100000), BENCH_ROUTING_SEED (42).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SIM_MODELS, DEFAULT_SIM_PRICES } from '../../src/config/defaults.js';
import { countPromptTokens, countText, loadTokenizer } from '../../src/metering/tokenizer.js';
import type { ChatCompletionRequest } from '../../src/providers/types.js';
import { BuiltinClassifier } from '../../src/routing/classifier.js';
import { extractFeatures } from '../../src/routing/features.js';
import { applyRules, compileRules } from '../../src/routing/rules.js';
import type { RequestFeatures, Requester, Rule } from '../../src/routing/types.js';
import { prng } from '../lib/random.js';
import { methodDoc, section, table, text, verdictTable, type Block } from '../lib/report.js';
import { REPO_ROOT } from '../lib/results.js';
import type { BenchSettings, Scenario, ScenarioReport, Verdict } from '../lib/scenario.js';
import { Samples, summarize, type LatencySummary } from '../lib/stats.js';
import { fmt } from '../lib/table.js';

const TIERS = ['small', 'medium', 'large'] as const;
type Tier = (typeof TIERS)[number];
const MODELS = ['sim-small', 'sim-medium', 'sim-large'] as const;
const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'routing-prompts.jsonl');
const MAX_SAMPLES = 5_000_000;
const P99_TARGET_US = 50;

/** The route's rules (what a platform team might configure on an `auto` route). */
export const RULES: Rule[] = [
  // Synthetic traffic never needs a big model.
  { when: { user: ['synthetic-monitor', 'load-test'] }, tier: 'small' },
  // Enterprise contracts promise the best model for code.
  { when: { tenant: ['acme-enterprise', 'globex'], hasCode: true }, tier: 'large' },
  // Free customers are capped at the medium tier.
  { when: { tenantTier: 'free' }, maxTier: 'medium' },
  // Premium customers' technical questions get at least the medium tier.
  { when: { tenantTier: 'premium', hasCode: true }, minTier: 'medium' },
  // Agents with a big context need the large model.
  { when: { hasTools: true, promptTokens: { gt: 2000 } }, minTier: 'large' },
  // A label or a yes/no (max_tokens <= 16) is a small model's job.
  { when: { maxTokens: { lte: 16 } }, maxTier: 'small' },
  // Long conversations need at least the medium tier.
  { when: { messages: { gt: 30 } }, minTier: 'medium' },
];

const REQUESTERS: Requester[] = [
  { tenantId: 't-standard', tier: 'standard', keyId: 'k1', userId: 'u1' },
  { tenantId: 't-free', tier: 'free', keyId: 'k2', userId: null },
  { tenantId: 't-premium', tier: 'premium', keyId: 'k3', userId: 'u3' },
];
const STANDARD = REQUESTERS[0] as Requester;

interface Labelled {
  tier: Tier;
  messages: ChatCompletionRequest['messages'];
  tools?: ChatCompletionRequest['tools'];
  max_tokens?: number;
  response_format?: ChatCompletionRequest['response_format'];
  note?: string;
}

interface Prompt {
  index: number;
  label: number;
  body: ChatCompletionRequest;
  heldOut: boolean;
  /** Prompt tokens by the project's tokenizer (+ tool definitions). */
  tokens: number;
  maxTokens: number | null;
  /** Tier the router picks for a standard customer, and the classifier's score. */
  routed: number;
  score: number;
}

export interface RoutingSettings {
  mix: [number, number, number];
  requests: number;
  seed: number;
}

function routingSettings(): RoutingSettings {
  const raw = process.env.BENCH_ROUTING_MIX ?? '60,30,10';
  const parts = raw.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x) || x < 0) || parts.reduce((a, b) => a + b, 0) <= 0) {
    throw new Error(`BENCH_ROUTING_MIX: '${raw}' is not three non-negative shares (easy,medium,hard), e.g. 60,30,10`);
  }
  const sum = parts.reduce((a, b) => a + b, 0);
  const requests = Number(process.env.BENCH_ROUTING_REQUESTS ?? 100_000);
  if (!Number.isInteger(requests) || requests < 1) throw new Error(`BENCH_ROUTING_REQUESTS: '${process.env.BENCH_ROUTING_REQUESTS}' is not a positive integer`);
  const seed = Number(process.env.BENCH_ROUTING_SEED ?? 42);
  if (!Number.isInteger(seed)) throw new Error(`BENCH_ROUTING_SEED: '${process.env.BENCH_ROUTING_SEED}' is not an integer`);
  return { mix: parts.map((x) => x / sum) as [number, number, number], requests, seed };
}

function loadPrompts(): Labelled[] {
  return readFileSync(FIXTURE, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Labelled);
}

/* ---------------------------------------------------------------------------------------- */
/* 1. Decision time                                                                          */
/* ---------------------------------------------------------------------------------------- */

interface DecisionTiming {
  decisions: number;
  seconds: number;
  /** µs per decision, the timer's own cost included. */
  latencyUs: LatencySummary;
  /** µs of an empty hrtime.bigint() pair (median). */
  timerOverheadUs: number;
  /** Mean µs per call of each stage, batch-timed over every prompt. */
  stageMeanUs: { features: number; classify: number; rules: number; total: number };
  /** One 256 KB prompt, timed alone. */
  hugePrompt: { chars: number; latencyUs: LatencySummary };
}

type Router = (body: ChatCompletionRequest, requester: Requester) => number;

function timeDecisions(settings: BenchSettings, bodies: ChatCompletionRequest[], route: Router): DecisionTiming {
  let sink = 0;
  const n = bodies.length;
  // Warm-up: the JIT settles.
  const warmEnd = process.hrtime.bigint() + BigInt(Math.round(settings.warmupSeconds * 1e9));
  for (let i = 0; process.hrtime.bigint() < warmEnd; i++) sink += route(bodies[i % n] as ChatCompletionRequest, REQUESTERS[i % 3] as Requester);

  // The timer alone.
  const overhead = new Samples();
  for (let i = 0; i < 100_000; i++) {
    const a = process.hrtime.bigint();
    const b = process.hrtime.bigint();
    overhead.push(Number(b - a) / 1000);
  }

  const samples = new Samples();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(settings.seconds * 1e9));
  let t1 = start;
  for (let i = 0; t1 < end && i < MAX_SAMPLES; i++) {
    const body = bodies[i % n] as ChatCompletionRequest;
    const who = REQUESTERS[i % 3] as Requester;
    const t0 = process.hrtime.bigint();
    sink += route(body, who);
    t1 = process.hrtime.bigint();
    samples.push(Number(t1 - t0) / 1000);
  }
  const seconds = Number(t1 - start) / 1e9;

  // Stage means, batch-timed (no timer per call).
  const classifier = new BuiltinClassifier();
  const compiled = compileRules(RULES, [...TIERS]);
  const passes = Math.max(20, Math.round(200_000 / n));
  const feats: RequestFeatures[] = bodies.map((b) => extractFeatures(b));
  const tiers = feats.map((f) => classifier.classify(f, 3).tier);
  const batch = (fn: (i: number) => number): number => {
    for (let i = 0; i < n * 5; i++) sink += fn(i % n);
    const s = process.hrtime.bigint();
    for (let p = 0; p < passes; p++) for (let i = 0; i < n; i++) sink += fn(i);
    return Number(process.hrtime.bigint() - s) / 1000 / (passes * n);
  };
  const features = batch((i) => extractFeatures(bodies[i] as ChatCompletionRequest).promptChars);
  const classify = batch((i) => classifier.classify(feats[i] as RequestFeatures, 3).tier);
  const rules = batch((i) => applyRules(compiled, feats[i] as RequestFeatures, REQUESTERS[i % 3] as Requester, tiers[i] as number).tier);
  const total = batch((i) => route(bodies[i] as ChatCompletionRequest, REQUESTERS[i % 3] as Requester));

  // A 256 KB paste (a log) with the question at the end.
  const line = '2025-02-11T09:14:02.123Z INFO  worker-7 processed batch 18231 in 412 ms (ok=500, retried=0)\n';
  const paste = line.repeat(Math.ceil((256 * 1024) / line.length));
  const huge: ChatCompletionRequest = {
    model: 'auto',
    messages: [
      { role: 'system', content: 'You are an SRE assistant.' },
      { role: 'user', content: `${paste}\nWhy did throughput drop after 09:00? Analyze the log above step by step.` },
    ],
  };
  const hugeSamples = new Samples();
  for (let i = 0; i < 3000; i++) {
    const t0 = process.hrtime.bigint();
    sink += route(huge, STANDARD);
    const t = process.hrtime.bigint();
    if (i >= 500) hugeSamples.push(Number(t - t0) / 1000);
  }
  if (sink === -1) process.stdout.write(''); // keep the results alive

  return {
    decisions: samples.length,
    seconds,
    latencyUs: summarize(samples.values()),
    timerOverheadUs: summarize(overhead.values()).p50,
    stageMeanUs: { features, classify, rules, total },
    hugePrompt: { chars: (huge.messages[1]?.content as string).length, latencyUs: summarize(hugeSamples.values()) },
  };
}

/* ---------------------------------------------------------------------------------------- */
/* 2. Cost of a day                                                                          */
/* ---------------------------------------------------------------------------------------- */

interface Pricing {
  usd: number;
  promptTokens: number;
  outputTokens: number;
  /** Requests and USD per tier. */
  requestsPerTier: [number, number, number];
  usdPerTier: [number, number, number];
}

interface DaySimulation {
  requests: number;
  mix: [number, number, number];
  seed: number;
  /** Requests drawn per label. */
  perLabel: [number, number, number];
  routed: Pricing;
  allLarge: Pricing;
  byLabel: Pricing;
  /** confusion[label][routed tier], in requests. */
  confusion: number[][];
  /** Hard-labelled requests routed below large / hard-labelled requests. */
  hardBelowLarge: number;
  /** Requests routed to a tier below their label / all requests. */
  belowLabel: number;
  /** Requests routed to a tier above their label / all requests. */
  aboveLabel: number;
}

const emptyPricing = (): Pricing => ({ usd: 0, promptTokens: 0, outputTokens: 0, requestsPerTier: [0, 0, 0], usdPerTier: [0, 0, 0] });

/** Output tokens as the simulator draws them: uniform in the model's range, at least 1, capped by max_tokens. */
function drawOutput(model: string, rnd: () => number, maxTokens: number | null): number {
  const range = DEFAULT_SIM_MODELS[model]?.outputTokens ?? { min: 0, max: 0 };
  let n = range.max <= range.min ? range.min : range.min + Math.floor(rnd() * (range.max - range.min + 1));
  n = Math.max(1, n);
  return maxTokens !== null && n > maxTokens ? maxTokens : n;
}

function price(p: Pricing, tier: number, promptTokens: number, outputTokens: number): void {
  const model = MODELS[tier] as string;
  const pr = DEFAULT_SIM_PRICES[model] as { input: number; output: number };
  const usd = (promptTokens * pr.input + outputTokens * pr.output) / 1e6;
  p.usd += usd;
  p.promptTokens += promptTokens;
  p.outputTokens += outputTokens;
  inc(p.requestsPerTier, tier);
  p.usdPerTier[tier] = (p.usdPerTier[tier] as number) + usd;
}

function simulateDay(prompts: Prompt[], s: RoutingSettings): DaySimulation {
  const byLabel: Prompt[][] = [[], [], []];
  for (const p of prompts) (byLabel[p.label] as Prompt[]).push(p);
  const pick = prng(s.seed);
  const outRouted = prng((s.seed ^ 0x2545f491) >>> 0);
  const outLarge = prng((s.seed ^ 0x9e3779b9) >>> 0);
  const outLabel = prng((s.seed ^ 0x85ebca6b) >>> 0);
  const day: DaySimulation = {
    requests: s.requests,
    mix: s.mix,
    seed: s.seed,
    perLabel: [0, 0, 0],
    routed: emptyPricing(),
    allLarge: emptyPricing(),
    byLabel: emptyPricing(),
    confusion: TIERS.map(() => TIERS.map(() => 0)),
    hardBelowLarge: 0,
    belowLabel: 0,
    aboveLabel: 0,
  };
  let below = 0;
  let above = 0;
  for (let r = 0; r < s.requests; r++) {
    const u = pick();
    const label = u < s.mix[0] ? 0 : u < s.mix[0] + s.mix[1] ? 1 : 2;
    const pool = byLabel[label] as Prompt[];
    const p = pool[Math.floor(pick() * pool.length)] as Prompt;
    inc(day.perLabel, label);
    inc(day.confusion[label] as number[], p.routed);
    if (p.routed < label) below++;
    if (p.routed > label) above++;
    price(day.routed, p.routed, p.tokens, drawOutput(MODELS[p.routed] as string, outRouted, p.maxTokens));
    price(day.allLarge, 2, p.tokens, drawOutput('sim-large', outLarge, p.maxTokens));
    price(day.byLabel, label, p.tokens, drawOutput(MODELS[label] as string, outLabel, p.maxTokens));
  }
  const hard = day.perLabel[2];
  const hardRow = day.confusion[2] as number[];
  day.hardBelowLarge = hard ? ((hardRow[0] as number) + (hardRow[1] as number)) / hard : 0;
  day.belowLabel = below / s.requests;
  day.aboveLabel = above / s.requests;
  return day;
}

/* ---------------------------------------------------------------------------------------- */
/* Report                                                                                    */
/* ---------------------------------------------------------------------------------------- */

function inc(row: number[], i: number): void {
  row[i] = (row[i] as number) + 1;
}

const pct = (x: number, d = 1) => `${(x * 100).toFixed(d)}%`;
const usd = (x: number) => `$${x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');

function report(settings: BenchSettings, s: RoutingSettings, prompts: Prompt[], timing: DecisionTiming, day: DaySimulation): ScenarioReport {
  const { date, machine } = settings;
  const l = timing.latencyUs;
  const verdicts: Verdict[] = [
    {
      name: 'routing decision (features + classifier + 7 rules), p99',
      target: `< ${P99_TARGET_US} µs`,
      actual: `${fmt(l.p99, 2)} µs`,
      pass: l.p99 < P99_TARGET_US,
      note: `p50 ${fmt(l.p50, 2)} µs, p99.9 ${fmt(l.p999, 2)} µs, ${int(timing.decisions)} decisions`,
    },
  ];

  // Labelled-set accuracy of the router as configured (standard customer).
  const conf = TIERS.map(() => TIERS.map(() => 0));
  for (const p of prompts) inc(conf[p.label] as number[], p.routed);
  const acc = (ps: Prompt[]) => ps.filter((p) => p.routed === p.label).length / Math.max(1, ps.length);
  const heldOut = prompts.filter((p) => p.heldOut);

  const timingTable = table(
    ['what', 'decisions', 'p50 µs', 'p90 µs', 'p99 µs', 'p99.9 µs', 'max µs', 'mean µs'],
    [
      ['labelled prompts, 3 requesters in turn', int(timing.decisions), fmt(l.p50, 2), fmt(l.p90, 2), fmt(l.p99, 2), fmt(l.p999, 2), fmt(l.max, 1), fmt(l.mean, 2)],
      [
        `one ${Math.round(timing.hugePrompt.chars / 1024)} KB prompt (not in the mix)`,
        int(timing.hugePrompt.latencyUs.count),
        fmt(timing.hugePrompt.latencyUs.p50, 2),
        fmt(timing.hugePrompt.latencyUs.p90, 2),
        fmt(timing.hugePrompt.latencyUs.p99, 2),
        fmt(timing.hugePrompt.latencyUs.p999, 2),
        fmt(timing.hugePrompt.latencyUs.max, 1),
        fmt(timing.hugePrompt.latencyUs.mean, 2),
      ],
    ],
  );
  const st = timing.stageMeanUs;
  const stageTable = table(
    ['stage', 'mean µs per call'],
    [
      ['extractFeatures', fmt(st.features, 3)],
      ['BuiltinClassifier.classify (3 tiers)', fmt(st.classify, 3)],
      [`applyRules (${RULES.length} rules)`, fmt(st.rules, 3)],
      ['all three', fmt(st.total, 3)],
    ],
  );

  const tierRow = (name: string, p: Pricing) => [
    name,
    usd(p.usd),
    int(p.promptTokens),
    int(p.outputTokens),
    ...TIERS.map((_t, i) => pct((p.requestsPerTier[i] as number) / day.requests)),
    ...TIERS.map((_t, i) => pct(p.usd ? (p.usdPerTier[i] as number) / p.usd : 0)),
    usd((p.usd / day.requests) * 1000),
  ];
  const costTable = table(
    ['pricing', 'USD / day', 'prompt tokens', 'output tokens', 'requests: small', 'medium', 'large', 'cost: small', 'medium', 'large', 'USD per 1k req'],
    [tierRow('routed (builtin classifier + rules)', day.routed), tierRow('all to sim-large', day.allLarge), tierRow('by label (a perfect router)', day.byLabel)],
  );
  const savings = 1 - day.routed.usd / day.allLarge.usd;
  const ratio = day.allLarge.usd / day.routed.usd;
  const confTable = table(
    ['label \\ routed to', ...TIERS, 'requests'],
    TIERS.map((t, i) => [t, ...(day.confusion[i] as number[]).map(int), int(day.perLabel[i] as number)]),
  );
  const labelConfTable = table(
    ['label \\ routed to', ...TIERS],
    TIERS.map((t, i) => [t, ...(conf[i] as number[]).map(String)]),
  );
  const mixText = s.mix.map((x) => Math.round(x * 100)).join('/');

  const method = [
    `Route: tiers small → sim-small, medium → sim-medium, large → sim-large; \`classifier: builtin\` (3 tiers, even cut points); ${RULES.length} rules (bench/scenarios/routing.ts \`RULES\`: synthetic users → small; enterprise tenants' code → large; free customers ≤ medium; premium code ≥ medium; tools with > 2,000 prompt tokens ≥ large; max_tokens ≤ 16 ≤ small; > 30 messages ≥ medium).`,
    `Prompts: test/fixtures/routing-prompts.jsonl, ${prompts.length} labelled prompts (${TIERS.map((t, i) => `${prompts.filter((p) => p.label === i).length} ${t}`).join(', ')}; ${heldOut.length} of them held out from the classifier's tuning).`,
    `Decision time: extractFeatures + classify + applyRules per request, in process, over the prompts in turn with a standard, a free and a premium customer in turn; ${settings.warmupSeconds} s warm-up, then ${fmt(timing.seconds, 1)} s measured; each decision timed alone with process.hrtime.bigint() (that timer costs ${fmt(timing.timerOverheadUs, 3)} µs a pair here and is included). Stage means: each stage alone over all prompts in batches, no per-call timer.`,
    `Cost of a day: ${int(day.requests)} requests drawn with mulberry32 (seed ${day.seed}) as ${mixText} easy/medium/hard (labels small/medium/large; BENCH_ROUTING_MIX), then a prompt of that label uniformly. Each priced at DEFAULT_SIM_PRICES (USD per million tokens: sim-small 0.15 in / 0.60 out, sim-medium 1.00 / 4.00, sim-large 5.00 / 15.00; no cache discounts): prompt tokens by the project's tokenizer (\`countPromptTokens\`, o200k_base, + the tool definitions' JSON when the request has tools), output tokens drawn as the simulator draws them (uniform in the serving model's \`outputTokens\` range: small 12-60, medium 24-120, large 40-200; capped by max_tokens), one seeded stream per pricing. Routing uses a standard customer. "By label" sends each request to its label's tier: what a perfect router would cost.`,
    `Quality risk: hard (large-labelled) requests routed below large, and all requests routed to a tier below their label. Labels are a person's judgement, not measured answer quality: the figures bound the risk, they do not measure it.`,
  ];

  const blocks: Block[] = [
    ...section('Routing decision time', timingTable, stageTable),
    ...section(
      `Cost of a day (${int(day.requests)} requests, ${mixText} easy/medium/hard)`,
      costTable,
      text(`Routed: **${usd(day.routed.usd)} a day vs ${usd(day.allLarge.usd)} all on sim-large: ${pct(savings)} saved (${fmt(ratio, 1)}x cheaper)**; a perfect router would cost ${usd(day.byLabel.usd)} (${pct(1 - day.byLabel.usd / day.allLarge.usd)} saved).`),
      text(
        `Quality risk: ${pct(day.hardBelowLarge)} of the hard requests went below large (${int((day.confusion[2] as number[])[0] as number)} to small, ${int((day.confusion[2] as number[])[1] as number)} to medium); ${pct(day.belowLabel)} of all requests went to a tier below their label, ${pct(day.aboveLabel)} to a tier above it (cost, not quality).`,
      ),
      text('Requests of the day, by label and routed tier:'),
      confTable,
      text(`The labelled prompts themselves (each once, standard customer): accuracy ${pct(acc(prompts))} (held-out part ${pct(acc(heldOut))}).`),
      labelConfTable,
    ),
    ...section('Targets', verdictTable(verdicts)),
  ];

  const raw = {
    date: date.toISOString(),
    machine,
    settings: { seconds: settings.seconds, warmupSeconds: settings.warmupSeconds, ...s },
    rules: RULES,
    prices: Object.fromEntries(MODELS.map((m) => [m, DEFAULT_SIM_PRICES[m]])),
    outputTokens: Object.fromEntries(MODELS.map((m) => [m, DEFAULT_SIM_MODELS[m]?.outputTokens])),
    timing,
    day,
    labelled: {
      accuracy: acc(prompts),
      heldOutAccuracy: acc(heldOut),
      confusion: conf,
      prompts: prompts.map((p) => ({ index: p.index, label: TIERS[p.label], routed: TIERS[p.routed], score: Math.round(p.score * 1000) / 1000, tokens: p.tokens, heldOut: p.heldOut })),
    },
    verdicts,
  };
  return { doc: methodDoc('Tiered routing (`npm run bench -- routing`)', settings, method, blocks), verdicts, raw };
}

export const routingScenario: Scenario = {
  name: 'routing',
  description: 'tiered routing: decision time (features + classifier + rules) and the cost of a day of mixed traffic, routed vs all-large',
  async run(settings: BenchSettings): Promise<ScenarioReport> {
    const s = routingSettings();
    const labelled = loadPrompts();
    const classifier = new BuiltinClassifier();
    const compiled = compileRules(RULES, [...TIERS]);
    const route: Router = (body, who) => {
      const f = extractFeatures(body);
      return applyRules(compiled, f, who, classifier.classify(f, 3).tier).tier;
    };

    await loadTokenizer();
    const prompts: Prompt[] = labelled.map((r, index) => {
      const body: ChatCompletionRequest = { model: 'auto', messages: r.messages };
      if (r.tools) body.tools = r.tools;
      if (r.max_tokens !== undefined) body.max_tokens = r.max_tokens;
      if (r.response_format) body.response_format = r.response_format;
      const f = extractFeatures(body);
      const c = classifier.classify(f, 3);
      return {
        index,
        label: TIERS.indexOf(r.tier),
        body,
        heldOut: r.note?.startsWith('held-out:') === true,
        tokens: countPromptTokens(r.messages) + (r.tools?.length ? countText(JSON.stringify(r.tools)) : 0),
        maxTokens: r.max_tokens ?? null,
        routed: applyRules(compiled, f, STANDARD, c.tier).tier,
        score: c.score,
      };
    });
    if (prompts.some((p) => p.label < 0)) throw new Error(`${FIXTURE}: a prompt has an unknown tier label`);

    settings.log(`${prompts.length} labelled prompts; timing routing decisions for ${settings.seconds} s after ${settings.warmupSeconds} s of warm-up`);
    const timing = timeDecisions(
      settings,
      prompts.map((p) => p.body),
      route,
    );
    settings.log(`p50 ${fmt(timing.latencyUs.p50, 2)} µs, p99 ${fmt(timing.latencyUs.p99, 2)} µs over ${int(timing.decisions)} decisions; simulating a day of ${int(s.requests)} requests`);
    const day = simulateDay(prompts, s);
    return report(settings, s, prompts, timing, day);
  },
};
