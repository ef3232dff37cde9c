/**
 * The shadow scenario's report: the user's latency with shadowing on against off (percentile
 * differences, per-round differences and their spread, the noise bar the verdict uses), proof that
 * the shadow calls happened (simulator calls per request, by model), the shadow report the
 * gateway kept (`GET /admin/v1/shadow/auto`), caveats, and the report document (lib/report.ts).
 */
import { difference, type Difference } from '../lib/compare.js';
import { closing, column, list, methodDoc, section, tableOf } from '../lib/report.js';
import { addedColumns, rateCaveats, roundsLine, rssColumns, runColumns as col, runTable } from '../lib/run-report.js';
import type { BenchSettings, BuiltReport, Verdict } from '../lib/scenario.js';
import { fmt, fmtDelta } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { MeasuredRun } from '../lib/turns.js';

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

/** One target's fixed-rate run (simulator calls per answered request: expect 1 off, 2 on). */
export interface RunRecord extends MeasuredRun {
  mode: Mode;
  target: TargetName;
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

/** shadow-on minus shadow-off (lib/compare.ts), with the verdict's noise bar. */
export interface Added extends Difference {
  /** max(NOISE_FLOOR_MS, iqrP50): the verdict's bar. */
  noiseMs: number;
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
  const { roundsSlower, cpuUsPerReq, issues, ...d } = difference({ name: SHADOWED, ...a }, { name: BASELINE, ...b });
  return { ...d, noiseMs: Math.max(NOISE_FLOOR_MS, Number.isFinite(d.iqrP50) ? d.iqrP50 : 0), roundsSlower, cpuUsPerReq, issues };
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
  const out = rateCaveats(runs, sh.rate, 'latencies, p99 above all, are inflated by that much contention, and the noise bar widens with it; the per-round medians and the CPU µs/req resist it best.');
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
  out.push(...checks.errors);
  return out;
}

export interface ReportInput {
  runs: RunRecord[];
  targets: TargetInfo[];
  checks: ShadowChecks;
  shadow: ShadowSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  maxTokens: number;
}

export function buildReport(input: ReportInput): BuiltReport<Derived> {
  const { runs, targets, checks, shadow: sh, settings: s, rate } = input;
  const derived = derive(runs, sh.modes);
  const vs = verdicts(runs, derived, sh.modes, sh.rate);
  const caveats = notes(runs, targets, checks, sh);
  const R = sh.rate.toLocaleString('en-US');
  const added = sh.modes.flatMap((mode) => {
    const a = derived.added[mode];
    return a ? [{ mode, ...a }] : [];
  });

  const byModel = [PRIMARY_MODEL, CANDIDATE_MODEL].map((model) => column<RunRecord>(`calls ${model}`, (r) => String(r.simByModel[model] ?? 0)));
  const rateTable = runTable(runs, [col.mode, col.target], [col.cpu('gateway'), col.simCpu, col.upstream('sim calls/req'), ...byModel]);
  const addedTable = tableOf(added, [
    col.mode,
    addedColumns.p50,
    addedColumns.p90,
    addedColumns.p99,
    addedColumns.roundP50,
    addedColumns.roundP99,
    addedColumns.iqr,
    column('noise bar', (a) => `${fmt(a.noiseMs)} ms`),
    column('rounds on > off', (a) => `${a.roundsSlower}/${a.roundDiffsP50.length}`),
    addedColumns.cpu,
  ]);
  const targetTable = tableOf(targets, [
    column('target', (t) => t.name),
    column('shadow', (t) => (t.name === SHADOWED ? `${sh.shadow.model}, sampleRate ${sh.shadow.sampleRate}` : 'none')),
    column('x-tollgate-tier', (t) => t.tierHeader ?? '—'),
    column('x-tollgate-model', (t) => t.modelHeader ?? '—'),
    column('requests sent', (t) => String(t.requestsSent)),
    ...rssColumns,
  ]);

  const st = checks.stats;
  const rep = checks.report;
  const on = targets.find((t) => t.name === SHADOWED);
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${fmt(v * 100, 1)}%`);
  const checkLines = [
    `Shadow calls: simulator calls per request ≈ 1 on shadow-off and ≈ 2 on shadow-on (columns "sim calls/req" and calls by model: every ${CANDIDATE_MODEL} call is a shadow call).`,
    `Shadow service of shadow-on (\`GET /admin/v1/shadow\`, after the runs, in-flight calls drained): ${st ? `${st.mirrored} mirrored, ${st.skipped_busy} skipped (busy), ${st.skipped_budget} skipped (budget), ${st.failed} failed, ${st.in_flight} still in flight` : 'n/a'}, for ${on?.requestsSent ?? 'n/a'} requests sent to it (pre-flight, warm-up, lead-ins and measured).`,
    `Shadow report (\`GET /admin/v1/shadow/${ROUTE}\`): ${
      rep
        ? `${rep.shadow_model}: ${rep.pairs} pairs recorded, ${rep.failures} failed, ${rep.compared} compared; agreement rate ${pct(rep.agreement_rate)} (similarity >= ${checks.agreementThreshold ?? 'n/a'} with the built-in embedder), mean similarity ${fmt(rep.mean_similarity ?? undefined, 3)}; p50 latency primary ${rep.primary_latency_p50_ms ?? 'n/a'} ms vs shadow ${rep.shadow_latency_p50_ms ?? 'n/a'} ms (as the gateway times them); cost per request ${rep.primary_cost_per_request_usd ?? 'n/a'} vs ${rep.shadow_cost_per_request_usd ?? 'n/a'} USD (${rep.cost_delta_pct === null ? 'n/a' : `${fmtDelta(rep.cost_delta_pct, 1)}%`})`
        : 'n/a'
    }. The simulator's two models answer the same prompt with different generated text, so the agreement rate only shows the comparison ran; it says nothing about real models.`,
  ];

  const setup = [
    `Upstream: one \`tollgate sim\` with two chat models, \`${PRIMARY_MODEL}\` and \`${CANDIDATE_MODEL}\`, each answering after a fixed ${sh.simLatencyMs} ms (\`ttftMs: {median: ${sh.simLatencyMs}, p95: ${sh.simLatencyMs}}\`: no random spread, so the simulator adds no noise of its own) with every token at once (\`tokensPerSecond: 0\`).`,
    `Targets, both \`tollgate start\` in front of it, set up as in core (one openai-compatible provider, API-key auth, \`logging.level: info\` to /dev/null, metrics on, embedded storage, each its own state folder) with \`cache: {enabled: false}\` (every request goes upstream) and a route \`${ROUTE}\` with \`tiers: {small: [${PRIMARY_MODEL}]}\` and \`classifier: none\`: \`shadow-off\` has no shadow; \`shadow-on\` adds \`shadow: {model: ${sh.shadow.model}, sampleRate: ${sh.shadow.sampleRate}, dailyBudgetUsd: ${sh.shadow.dailyBudgetUsd}}\`, so every answered request is sent again to ${CANDIDATE_MODEL} in the background, its answer compared with the user's (built-in embedder: the cache is off, so the gateway makes one for shadowing) and the pair stored.`,
    `Request: \`POST /v1/chat/completions\`, \`model: ${ROUTE}\`, one short user message, \`max_tokens: ${input.maxTokens}\`${sh.modes.includes('stream') ? '; `stream: true` for the stream rows (the shadow call itself is never streamed)' : ''}. Same bytes to both targets (each with its own API key).`,
    `Fixed rate: evenly paced, open loop, ${R} req/s, up to ${sh.rateConnections} connections, ${sh.leadInS} s unmeasured lead-in; ${s.seconds} s per target and mode, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. In each round the targets take turns, never at once, the first alternating. After each slice the bench waits for the gateway and the simulator to go idle, so the shadow calls a slice started finish (and are charged to it) before the other target runs. Warm-up: ${s.warmupSeconds} s per target at the same paced rate, ${sh.modes.join(' and ')}.`,
    `Latency: client side, from writing the request to the last byte of the answer, µs precision, 2xx only. Added: shadow-on's percentile minus shadow-off's over all samples; per-round median: the median over rounds of the same difference slice by slice.`,
    `**Noise and the verdict**: the run measures its own noise as the interquartile range (25th to 75th percentile, linear interpolation) of the ${rate.count} per-round p50 differences (on − off), with a floor of ${NOISE_FLOOR_MS} ms. The user's latency counts as unchanged (PASS) when the added p50 over all samples is within ± that bar, no run had errors, and shadow-on really mirrored (>= ${MIN_SHADOW_CALLS_PER_REQUEST} simulator calls per request; shadow-off <= 1.05). The IQR is the spread of a single round's difference, so the bar is lenient: a systematic shift smaller than the round-to-round spread passes; "rounds on > off" shows whether the rounds lean one way.`,
    `CPU µs/req: CPU time (user + system, /proc) of the gateway process per request sent, shadow calls included (they run in the same process); sim: the simulator's, which serves both the user's and the shadow calls, so its extra work is in shadow-on's latency too. Other load: CPU of everything else, in cores (2 cores, shared: noise).`,
  ];

  const doc = methodDoc("Shadow traffic: the user's latency with shadowing on (`npm run bench -- shadow`)", s, setup, [
    ...section(`Fixed rate: ${R} req/s`, rateTable),
    ...section(`Added latency of shadow-on over shadow-off at ${R} req/s`, addedTable, list(added.map((a) => roundsLine(a.mode, a)))),
    ...closing({ verdicts: vs, checks: [list(checkLines), targetTable], caveats }),
  ]);
  return { doc, verdicts: vs, derived, caveats };
}
