/**
 * The shadow scenario's report: the user's latency with shadowing on against off (percentile
 * differences, per-round differences and their spread, the noise bar the verdict uses), proof that
 * the shadow calls happened (simulator calls per request, by model), the shadow report the
 * gateway kept (`GET /admin/v1/shadow/auto`), caveats, and the tables for the console and
 * bench/RESULTS.md.
 */
import { issuesOf, median, pairedMedian, quantile } from '../lib/compare.js';
import { problems, rateShortfall, type LoadResult } from '../lib/load.js';
import { describeMachine, type MachineInfo } from '../lib/results.js';
import type { BenchSettings, Verdict } from '../lib/scenario.js';
import { fmt, fmtDelta, markdownTable, textTable } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { TurnCpu } from '../lib/turns.js';

export type TargetName = 'shadow-off' | 'shadow-on';
export const BASELINE: TargetName = 'shadow-off';
export const SHADOWED: TargetName = 'shadow-on';

/** The route clients ask for, its one model, and the candidate shadow-on mirrors to. */
export const ROUTE = 'auto';
export const PRIMARY_MODEL = 'm-small';
export const CANDIDATE_MODEL = 'm-candidate';
/** USD per million tokens (the candidate dearer, so the report's cost delta shows). */
export const PRICES = { [PRIMARY_MODEL]: { input: 0.15, output: 0.6 }, [CANDIDATE_MODEL]: { input: 0.5, output: 1.5 } } as const;
/** The smallest added p50 the verdict calls noise whatever the spread (ms). */
export const NOISE_FLOOR_MS = 0.2;
/** Below this many simulator calls per request on shadow-on, the shadow calls did not all happen and the verdict is void. */
export const MIN_SHADOW_CALLS_PER_REQUEST = 1.9;

export interface ShadowSettings {
  rate: number;
  rateConnections: number;
  leadInS: number;
  modes: Mode[];
  /** The simulator's fixed time to the answer, both models (ms). */
  simLatencyMs: number;
  /** Shadow config of the shadow-on route. */
  shadow: { model: string; sampleRate: number; dailyBudgetUsd: number };
}

export interface TargetInfo {
  name: TargetName;
  description: string;
  /** Pre-flight answer: x-tollgate-tier and x-tollgate-model. */
  tierHeader: string | null;
  modelHeader: string | null;
  idleRss: { rssMB: number; peakRssMB: number };
  rssAfter?: { rssMB: number; peakRssMB: number };
  /** Requests written to the gateway in all (pre-flight, warm-up, lead-ins, measured). */
  requestsSent: number;
}

export interface RunRecord {
  mode: Mode;
  target: TargetName;
  load: LoadResult;
  cpu: TurnCpu;
  /** Simulator requests per answered request (expect 1 off, 2 on). */
  upstreamCallsPerRequest: number;
  upstream: { calls: number; sent: number; answered: number };
  /** Simulator requests during the slices, by model. */
  simByModel: Record<string, number>;
}

/** One candidate of `GET /admin/v1/shadow/:route` (snake_case, as the API answers). */
export interface ShadowReportEntry {
  shadow_model: string;
  pairs: number;
  failures: number;
  compared: number;
  agreement_rate: number | null;
  mean_similarity: number | null;
  primary_latency_p50_ms: number | null;
  shadow_latency_p50_ms: number | null;
  primary_cost_per_request_usd: string | null;
  shadow_cost_per_request_usd: string | null;
  cost_delta_pct: number | null;
}

export interface ShadowChecks {
  /** `GET /admin/v1/shadow` stats of shadow-on after the runs (in flight drained). */
  stats?: { mirrored: number; skipped_budget: number; skipped_busy: number; failed: number; in_flight: number };
  /** `GET /admin/v1/shadow/auto` of shadow-on, the configured candidate's entry. */
  report?: ShadowReportEntry;
  agreementThreshold?: number;
  /** Anything that went wrong while checking. */
  errors: string[];
}

export interface Added {
  p50: number;
  p90: number;
  p99: number;
  /** Median over rounds of the per-round difference (as lib/compare.ts). */
  perRound: { p50: number; p99: number };
  /** on - off of each round's p50, in round order. */
  roundDiffsP50: number[];
  /** Interquartile range of `roundDiffsP50` (quartiles by linear interpolation). */
  iqrP50: number;
  /** max(NOISE_FLOOR_MS, iqrP50): the verdict's bar. */
  noiseMs: number;
  /** Rounds in which shadow-on's p50 was above shadow-off's. */
  roundsSlower: number;
  cpuUsPerReq: number;
  issues: string;
}

export interface Derived {
  added: Partial<Record<Mode, Added>>;
}

function find(runs: RunRecord[], mode: Mode, target: TargetName): RunRecord | undefined {
  return runs.find((r) => r.mode === mode && r.target === target);
}

function added(runs: RunRecord[], mode: Mode): Added | undefined {
  const a = find(runs, mode, SHADOWED);
  const b = find(runs, mode, BASELINE);
  if (!a || !b) return undefined;
  const n = Math.min(a.load.perSlice.length, b.load.perSlice.length);
  const diffs: number[] = [];
  for (let i = 0; i < n; i++) diffs.push((a.load.perSlice[i]?.p50 ?? NaN) - (b.load.perSlice[i]?.p50 ?? NaN));
  const iqr = quantile(diffs, 0.75) - quantile(diffs, 0.25);
  return {
    p50: a.load.latencyMs.p50 - b.load.latencyMs.p50,
    p90: a.load.latencyMs.p90 - b.load.latencyMs.p90,
    p99: a.load.latencyMs.p99 - b.load.latencyMs.p99,
    perRound: { p50: pairedMedian(a.load, b.load, 'p50'), p99: pairedMedian(a.load, b.load, 'p99') },
    roundDiffsP50: diffs,
    iqrP50: iqr,
    noiseMs: Math.max(NOISE_FLOOR_MS, Number.isFinite(iqr) ? iqr : 0),
    roundsSlower: diffs.filter((d) => d > 0).length,
    cpuUsPerReq: a.cpu.targetUsPerReq - b.cpu.targetUsPerReq,
    issues: issuesOf({ [SHADOWED]: a.load, [BASELINE]: b.load }),
  };
}

function derive(runs: RunRecord[], modes: Mode[]): Derived {
  const out: Derived = { added: {} };
  for (const mode of modes) {
    const a = added(runs, mode);
    if (a) out.added[mode] = a;
  }
  return out;
}

function verdicts(runs: RunRecord[], derived: Derived, modes: Mode[], rate: number): Verdict[] {
  const R = rate.toLocaleString('en-US');
  return modes.map((mode): Verdict => {
    const name = `${mode}: user latency unchanged with shadowing on (sampleRate 1, ${R} req/s)`;
    const target = `added p50 within ±max(${NOISE_FLOOR_MS} ms, IQR of per-round p50 differences)`;
    const a = derived.added[mode];
    if (!a) return { name, target, actual: 'n/a', pass: false, note: 'no run' };
    const on = find(runs, mode, SHADOWED);
    const off = find(runs, mode, BASELINE);
    const notes: string[] = [];
    if (a.issues) notes.push(a.issues);
    const shadowed = on !== undefined && on.upstreamCallsPerRequest >= MIN_SHADOW_CALLS_PER_REQUEST;
    if (!shadowed) notes.push(`shadow-on made ${fmt(on?.upstreamCallsPerRequest)} simulator calls per request (< ${MIN_SHADOW_CALLS_PER_REQUEST}): not every request was mirrored, so this did not measure shadowing`);
    if (off && off.upstreamCallsPerRequest > 1.05) notes.push(`shadow-off made ${fmt(off.upstreamCallsPerRequest)} simulator calls per request: not the baseline it should be`);
    const within = Number.isFinite(a.p50) && Math.abs(a.p50) <= a.noiseMs;
    const roundWithin = Number.isFinite(a.perRound.p50) && Math.abs(a.perRound.p50) <= a.noiseMs;
    if (within !== roundWithin) notes.push(`the per-round median (${fmtDelta(a.perRound.p50)} ms) ${roundWithin ? 'is' : 'is not'} within it`);
    return {
      name,
      target,
      actual: `${fmtDelta(a.p50)} ms; noise ${fmt(a.noiseMs)} ms (IQR ${fmt(a.iqrP50)} ms); per-round median ${fmtDelta(a.perRound.p50)} ms`,
      pass: within && shadowed && !a.issues && !(off && off.upstreamCallsPerRequest > 1.05),
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
  });
}

function notes(runs: RunRecord[], targets: TargetInfo[], checks: ShadowChecks, sh: ShadowSettings): string[] {
  const out: string[] = [];
  const noisiest = runs.reduce((x, r) => Math.max(x, r.cpu.foreignCores), 0);
  if (noisiest > 0.25) {
    out.push(
      `Other processes used up to ${fmt(noisiest)} of the 2 cores during the runs (column "other load"): latencies, p99 above all, are inflated by that much contention, and the noise bar widens with it; the per-round medians and the CPU µs/req resist it best.`,
    );
  }
  for (const r of runs.filter((x) => rateShortfall(x.load))) {
    out.push(`${r.target} (${r.mode}) could not sustain ${sh.rate} req/s here (${fmt(r.load.rps, 0)} req/s): its latency at that rate is time spent queueing.`);
  }
  for (const t of targets) {
    if (t.tierHeader !== 'small' || t.modelHeader !== PRIMARY_MODEL) {
      out.push(`${t.name} answered the pre-flight request with x-tollgate-tier: ${t.tierHeader ?? '(none)'}, x-tollgate-model: ${t.modelHeader ?? '(none)'} (expected small, ${PRIMARY_MODEL}).`);
    }
  }
  const st = checks.stats;
  if (st) {
    if (st.skipped_busy > 0) out.push(`shadow-on dropped ${st.skipped_busy} sampled requests because 16 shadow calls were already in flight (skippedBusy): those requests were not mirrored.`);
    if (st.skipped_budget > 0) out.push(`shadow-on skipped ${st.skipped_budget} sampled requests for the daily shadow budget (skippedBudget).`);
    if (st.failed > 0) out.push(`${st.failed} shadow calls failed.`);
  }
  const rep = checks.report;
  const on = targets.find((t) => t.name === SHADOWED);
  if (rep && on && rep.pairs < on.requestsSent * 0.99) out.push(`The shadow report holds ${rep.pairs} pairs for ${on.requestsSent} requests sent to shadow-on: pairs missing?`);
  for (const e of checks.errors) out.push(e);
  return out;
}

export interface ReportInput {
  runs: RunRecord[];
  targets: TargetInfo[];
  checks: ShadowChecks;
  shadow: ShadowSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  date: Date;
  machine: MachineInfo;
  maxTokens: number;
}

export interface ShadowBenchReport {
  summary: string;
  markdown: string;
  verdicts: Verdict[];
  derived: Derived;
  caveats: string[];
}

export function buildReport(input: ReportInput): ShadowBenchReport {
  const { runs, targets, checks, shadow: sh, settings: s, rate, date, machine } = input;
  const derived = derive(runs, sh.modes);
  const vs = verdicts(runs, derived, sh.modes, sh.rate);
  const caveats = notes(runs, targets, checks, sh);
  const R = sh.rate.toLocaleString('en-US');
  const ms = (v: number) => `${fmtDelta(v)} ms`;

  const rateTable = {
    header: ['mode', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'CPU µs/req (gateway)', 'CPU µs/req (sim)', 'sim calls/req', `calls ${PRIMARY_MODEL}`, `calls ${CANDIDATE_MODEL}`, 'other load (cores)', 'errors'],
    rows: runs.map((r) => [
      r.mode,
      r.target,
      fmt(r.load.rps, 0),
      fmt(r.load.latencyMs.p50),
      fmt(r.load.latencyMs.p90),
      fmt(r.load.latencyMs.p99),
      fmt(r.load.latencyMs.p999),
      fmt(r.load.latencyMs.max),
      fmt(r.cpu.targetUsPerReq, 0),
      fmt(r.cpu.simUsPerReq, 0),
      fmt(r.upstreamCallsPerRequest),
      String(r.simByModel[PRIMARY_MODEL] ?? 0),
      String(r.simByModel[CANDIDATE_MODEL] ?? 0),
      fmt(r.cpu.foreignCores),
      problems(r.load) || 'ok',
    ]),
  };
  const addedTable = {
    header: ['mode', 'added p50', 'added p90', 'added p99', 'per-round median: added p50', 'added p99', 'IQR of per-round added p50', 'noise bar', 'rounds on > off', 'added CPU µs/req (gateway)'],
    rows: sh.modes.flatMap((mode) => {
      const a = derived.added[mode];
      if (!a) return [];
      return [[mode, ms(a.p50), ms(a.p90), ms(a.p99), ms(a.perRound.p50), ms(a.perRound.p99), `${fmt(a.iqrP50)} ms`, `${fmt(a.noiseMs)} ms`, `${a.roundsSlower}/${a.roundDiffsP50.length}`, fmtDelta(a.cpuUsPerReq, 0)]];
    }),
  };
  const roundsLines = sh.modes.flatMap((mode) => {
    const a = derived.added[mode];
    return a ? [`- ${mode}, added p50 per round (ms, in round order): ${a.roundDiffsP50.map((d) => fmtDelta(d)).join(', ')} (median ${fmtDelta(median(a.roundDiffsP50))})`] : [];
  });
  const verdictTable = {
    header: ['target', 'goal', 'measured', 'verdict'],
    rows: vs.map((v) => [v.name, v.target, v.actual, `${v.pass ? 'PASS' : 'MISS'}${v.note ? ` (${v.note})` : ''}`]),
  };
  const targetTable = {
    header: ['target', 'shadow', 'x-tollgate-tier', 'x-tollgate-model', 'requests sent', 'RSS idle (MB)', 'RSS after (MB)', 'peak RSS (MB)'],
    rows: targets.map((t) => [
      t.name,
      t.name === SHADOWED ? `${sh.shadow.model}, sampleRate ${sh.shadow.sampleRate}` : 'none',
      t.tierHeader ?? '—',
      t.modelHeader ?? '—',
      String(t.requestsSent),
      fmt(t.idleRss.rssMB, 1),
      fmt(t.rssAfter?.rssMB, 1),
      fmt(t.rssAfter?.peakRssMB, 1),
    ]),
  };

  const st = checks.stats;
  const rep = checks.report;
  const on = targets.find((t) => t.name === SHADOWED);
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${fmt(v * 100, 1)}%`);
  const checkLines = [
    `- Shadow calls: simulator calls per request ≈ 1 on shadow-off and ≈ 2 on shadow-on (columns "sim calls/req" and calls by model: every ${CANDIDATE_MODEL} call is a shadow call).`,
    `- Shadow service of shadow-on (\`GET /admin/v1/shadow\`, after the runs, in-flight calls drained): ${st ? `${st.mirrored} mirrored, ${st.skipped_busy} skipped (busy), ${st.skipped_budget} skipped (budget), ${st.failed} failed, ${st.in_flight} still in flight` : 'n/a'}, for ${on?.requestsSent ?? 'n/a'} requests sent to it (pre-flight, warm-up, lead-ins and measured).`,
    `- Shadow report (\`GET /admin/v1/shadow/${ROUTE}\`): ${
      rep
        ? `${rep.shadow_model}: ${rep.pairs} pairs recorded, ${rep.failures} failed, ${rep.compared} compared; agreement rate ${pct(rep.agreement_rate)} (similarity >= ${checks.agreementThreshold ?? 'n/a'} with the built-in embedder), mean similarity ${fmt(rep.mean_similarity ?? undefined, 3)}; p50 latency primary ${rep.primary_latency_p50_ms ?? 'n/a'} ms vs shadow ${rep.shadow_latency_p50_ms ?? 'n/a'} ms (as the gateway times them); cost per request ${rep.primary_cost_per_request_usd ?? 'n/a'} vs ${rep.shadow_cost_per_request_usd ?? 'n/a'} USD (${rep.cost_delta_pct === null ? 'n/a' : `${fmtDelta(rep.cost_delta_pct, 1)}%`})`
        : 'n/a'
    }. The simulator's two models answer the same prompt with different generated text, so the agreement rate only shows the comparison ran; it says nothing about real models.`,
  ];

  const setup = [
    `- Upstream: one \`tollgate sim\` with two chat models, \`${PRIMARY_MODEL}\` and \`${CANDIDATE_MODEL}\`, each answering after a fixed ${sh.simLatencyMs} ms (\`ttftMs: {median: ${sh.simLatencyMs}, p95: ${sh.simLatencyMs}}\`: no random spread, so the simulator adds no noise of its own) with every token at once (\`tokensPerSecond: 0\`).`,
    `- Targets, both \`tollgate start\` in front of it, set up as in core (one openai-compatible provider, API-key auth, \`logging.level: info\` to /dev/null, metrics on, embedded storage, each its own state folder) with \`cache: {enabled: false}\` (every request goes upstream) and a route \`${ROUTE}\` with \`tiers: {small: [${PRIMARY_MODEL}]}\` and \`classifier: none\`: \`shadow-off\` has no shadow; \`shadow-on\` adds \`shadow: {model: ${sh.shadow.model}, sampleRate: ${sh.shadow.sampleRate}, dailyBudgetUsd: ${sh.shadow.dailyBudgetUsd}}\`, so every answered request is sent again to ${CANDIDATE_MODEL} in the background, its answer compared with the user's (built-in embedder: the cache is off, so the gateway makes one for shadowing) and the pair stored.`,
    `- Request: \`POST /v1/chat/completions\`, \`model: ${ROUTE}\`, one short user message, \`max_tokens: ${input.maxTokens}\`${sh.modes.includes('stream') ? '; `stream: true` for the stream rows (the shadow call itself is never streamed)' : ''}. Same bytes to both targets (each with its own API key).`,
    `- Fixed rate: evenly paced, open loop, ${R} req/s, up to ${sh.rateConnections} connections, ${sh.leadInS} s unmeasured lead-in; ${s.seconds} s per target and mode, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. In each round the targets take turns, never at once, the first alternating. After each slice the bench waits for the gateway and the simulator to go idle, so the shadow calls a slice started finish (and are charged to it) before the other target runs. Warm-up: ${s.warmupSeconds} s per target at the same paced rate, ${sh.modes.join(' and ')}.`,
    `- Latency: client side, from writing the request to the last byte of the answer, µs precision, 2xx only. Added: shadow-on's percentile minus shadow-off's over all samples; per-round median: the median over rounds of the same difference slice by slice.`,
    `- **Noise and the verdict**: the run measures its own noise as the interquartile range (25th to 75th percentile, linear interpolation) of the ${rate.count} per-round p50 differences (on − off), with a floor of ${NOISE_FLOOR_MS} ms. The user's latency counts as unchanged (PASS) when the added p50 over all samples is within ± that bar, no run had errors, and shadow-on really mirrored (>= ${MIN_SHADOW_CALLS_PER_REQUEST} simulator calls per request; shadow-off <= 1.05). The IQR is the spread of a single round's difference, so the bar is lenient: a systematic shift smaller than the round-to-round spread passes; "rounds on > off" shows whether the rounds lean one way.`,
    `- CPU µs/req: CPU time (user + system, /proc) of the gateway process per request sent, shadow calls included (they run in the same process); sim: the simulator's, which serves both the user's and the shadow calls, so its extra work is in shadow-on's latency too. Other load: CPU of everything else, in cores (2 cores, shared: noise).`,
  ].join('\n');

  const markdown = [
    '## Shadow traffic: the user\'s latency with shadowing on (`npm run bench -- shadow`)',
    '',
    `Date: ${date.toISOString()}  `,
    `Machine: ${describeMachine(machine)}`,
    '',
    setup,
    '',
    `### Fixed rate: ${R} req/s`,
    '',
    markdownTable(rateTable.header, rateTable.rows),
    '',
    `### Added latency of shadow-on over shadow-off at ${R} req/s`,
    '',
    markdownTable(addedTable.header, addedTable.rows),
    '',
    ...roundsLines,
    '',
    '### Targets',
    '',
    markdownTable(verdictTable.header, verdictTable.rows),
    '',
    '### Checks',
    '',
    ...checkLines,
    '',
    markdownTable(targetTable.header, targetTable.rows),
    ...(caveats.length ? ['', '### Caveats', '', ...caveats.map((n) => `- ${n}`)] : []),
  ].join('\n');

  const summary = [
    `Machine: ${describeMachine(machine)}`,
    '',
    `Fixed rate (paced, ${sh.rate} req/s, ${s.seconds} s per target and mode):`,
    textTable(rateTable.header, rateTable.rows),
    '',
    `Added latency of shadow-on over shadow-off:`,
    textTable(addedTable.header, addedTable.rows),
    ...roundsLines,
    '',
    'Targets:',
    textTable(verdictTable.header, verdictTable.rows),
    '',
    'Checks:',
    ...checkLines,
    textTable(targetTable.header, targetTable.rows),
    ...(caveats.length ? ['', 'Caveats:', ...caveats.map((n) => `- ${n}`)] : []),
  ].join('\n');

  return { summary, markdown, verdicts: vs, derived, caveats };
}
