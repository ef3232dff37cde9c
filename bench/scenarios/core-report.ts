/**
 * The core scenario's report: derived figures (Tollgate's added latency, saturation share; with
 * BENCH_BASELINE_ROOT, the current build against a baseline build), verdicts against the targets,
 * caveats, and the report document (lib/report.ts). The logs-to-a-file section is built by
 * core-logging.ts, the cold-start section by core-cold-start.ts.
 */
import { join } from 'node:path';
import { issuesOf, median, pairedMedian } from '../lib/compare.js';
import { mainThreadProfile, profileBlocks, summarizeCpuProfile, type ProfileSummary } from '../lib/cpuprofile.js';
import { type LoadResult } from '../lib/load.js';
import { closing, column, list, methodDoc, section, tableOf, text, type Block } from '../lib/report.js';
import { addedColumns, otherLoadCaveat, runColumns as col, runTable, shortfallCaveats, upstreamCaveat } from '../lib/run-report.js';
import type { BenchSettings, BuiltReport, Verdict } from '../lib/scenario.js';
import { fmt, fmtDelta } from '../lib/table.js';
import type { TurnCpu } from '../lib/turns.js';
import { coldStartSection, coldStartVerdict, deriveColdStart, type ColdStartDerived, type ColdStartRun } from './core-cold-start.js';
import { deriveLogging, FILE_TARGETS, loggingSection, loggingVerdicts, type LogGrowth, type LoggingDerived } from './core-logging.js';

export const TARGETS = { addedP50Ms: 1, addedP99Ms: 3, saturationPctOfFloor: 60, rssMB: 150 } as const;

export interface CoreSettings {
  rate: number;
  rateConnections: number;
  rateDriver: 'paced' | 'autocannon';
  leadInS: number;
  saturationConnections: number;
  profile: boolean;
  /**
   * BENCH_PIN=1: pin the proxy under test (floor, tollgate) to CPU 1 and the load generator and
   * simulator to CPU 0. Off by default: in trials it did not make tails steadier, and it denies
   * Tollgate's GC and libuv threads the second core they have in production.
   */
  pin: boolean;
  /** BENCH_BASELINE_ROOT: a build of another commit measured next to this one as target `baseline`. */
  baseline?: BaselineBuild;
}

/** The baseline build: its repository root and, when that is a git checkout, its commit. */
export interface BaselineBuild {
  root: string;
  commit?: string;
  /** The checkout has uncommitted changes to tracked files. */
  dirty?: boolean;
}

export type { Mode } from '../lib/tollgate.js';
import type { Mode } from '../lib/tollgate.js';
/**
 * `tollgate-file` and `tollgate-quiet` (stdout to a file, logging at info and at warn) appear only in
 * "What users run"; `baseline` runs only with BENCH_BASELINE_ROOT and appears only in its own section.
 */
export type TargetName = 'direct' | 'floor' | 'tollgate' | 'tollgate-file' | 'tollgate-quiet' | 'baseline';
export const MODES: Mode[] = ['json', 'stream'];
export const TARGET_NAMES: TargetName[] = ['direct', 'floor', 'tollgate'];
const isCoreTarget = (r: RunRecord) => TARGET_NAMES.includes(r.target);

export interface RunRecord {
  kind: 'rate' | 'saturation';
  mode: Mode;
  target: TargetName;
  load: LoadResult;
  /** For direct: the simulator's CPU is the target's. */
  cpu: TurnCpu;
  /** Simulator requests per answered request (expect 1: no retries, no cache hits). */
  upstreamCallsPerRequest?: number;
  /** Simulator requests during the run; requests sent and answered (lead-in included). */
  upstream?: { calls: number; sent: number; answered: number };
}

export interface Derived {
  overhead: Record<
    Mode,
    {
      vsDirect: { p50: number; p99: number };
      vsFloor: { p50: number; p99: number };
      /**
       * Median over rounds of (Tollgate's slice - the other target's slice of the same round):
       * less swayed by a burst of outside load that hit a few rounds.
       */
      perRound: { vsDirect: { p50: number; p99: number }; vsFloor: { p50: number; p99: number } };
      issues: string;
    }
  >;
  saturation: Record<Mode, { tollgateRps: number; floorRps: number; directRps: number; pctOfFloor: number; issues: string }>;
  /** With a baseline build: the current build (tollgate) against it. */
  beforeAfter?: Record<Mode, BeforeAfter>;
  /** tollgate, tollgate-file and tollgate-quiet: what logging to a file costs. */
  logging: Partial<Record<Mode, LoggingDerived>>;
  /** The new process of the cold-start phase against steady. */
  coldStart?: ColdStartDerived;
}

/** Per mode: the current build (`tollgate`) and the baseline build, measured in the same rounds. */
export interface BeforeAfter {
  /** Median over rounds of each saturation slice's req/s. */
  saturationRps: { tollgate: number; baseline: number };
  /** tollgate / baseline of those medians. */
  saturationRatio: number;
  /** tollgate / baseline of each round's saturation slice, in round order. */
  roundRatios: number[];
  /** At the fixed rate, over all samples. */
  rateMs: { tollgate: { p50: number; p99: number }; baseline: { p50: number; p99: number } };
  /** tollgate - baseline at the fixed rate: median over rounds of the per-slice difference. */
  rateDiffPerRound: { p50: number; p99: number };
  /** CPU µs per request of the gateway process, at the fixed rate and at saturation. */
  cpuUsPerReq: { rate: { tollgate: number; baseline: number }; saturation: { tollgate: number; baseline: number } };
  issues: string;
}

function find(runs: RunRecord[], kind: RunRecord['kind'], mode: Mode, target: TargetName): RunRecord | undefined {
  return runs.find((r) => r.kind === kind && r.mode === mode && r.target === target);
}

function derive(runs: RunRecord[], logGrowth: LogGrowth, coldStart: ColdStartRun | undefined): Derived {
  const overhead = {} as Derived['overhead'];
  const saturation = {} as Derived['saturation'];
  for (const mode of MODES) {
    const [d, f, t] = TARGET_NAMES.map((n) => find(runs, 'rate', mode, n)?.load);
    overhead[mode] = {
      vsDirect: { p50: (t?.latencyMs.p50 ?? NaN) - (d?.latencyMs.p50 ?? NaN), p99: (t?.latencyMs.p99 ?? NaN) - (d?.latencyMs.p99 ?? NaN) },
      vsFloor: { p50: (t?.latencyMs.p50 ?? NaN) - (f?.latencyMs.p50 ?? NaN), p99: (t?.latencyMs.p99 ?? NaN) - (f?.latencyMs.p99 ?? NaN) },
      perRound: {
        vsDirect: { p50: pairedMedian(t, d, 'p50'), p99: pairedMedian(t, d, 'p99') },
        vsFloor: { p50: pairedMedian(t, f, 'p50'), p99: pairedMedian(t, f, 'p99') },
      },
      issues: issuesOf({ direct: d, floor: f, tollgate: t }),
    };
    const [sd, sf, st] = TARGET_NAMES.map((n) => find(runs, 'saturation', mode, n)?.load);
    saturation[mode] = {
      directRps: sd?.rps ?? NaN,
      floorRps: sf?.rps ?? NaN,
      tollgateRps: st?.rps ?? NaN,
      pctOfFloor: ((st?.rps ?? NaN) / (sf?.rps ?? NaN)) * 100,
      issues: issuesOf({ floor: sf, tollgate: st }),
    };
  }
  const beforeAfter = runs.some((r) => r.target === 'baseline') ? deriveBeforeAfter(runs) : undefined;
  const steady = find(runs, 'saturation', 'json', 'tollgate-file')?.load.perSlice.map((x) => x.rps) ?? [];
  return {
    overhead,
    saturation,
    ...(beforeAfter ? { beforeAfter } : {}),
    logging: deriveLogging(runs, MODES, logGrowth),
    ...(coldStart ? { coldStart: deriveColdStart(coldStart, steady) } : {}),
  };
}

function deriveBeforeAfter(runs: RunRecord[]): Record<Mode, BeforeAfter> {
  const out = {} as Record<Mode, BeforeAfter>;
  for (const mode of MODES) {
    const [rt, rb, st, sb] = [find(runs, 'rate', mode, 'tollgate'), find(runs, 'rate', mode, 'baseline'), find(runs, 'saturation', mode, 'tollgate'), find(runs, 'saturation', mode, 'baseline')];
    const satRps = (r: RunRecord | undefined) => median(r?.load.perSlice.map((x) => x.rps) ?? []);
    const tRounds = st?.load.perSlice ?? [];
    const bRounds = sb?.load.perSlice ?? [];
    const saturationRps = { tollgate: satRps(st), baseline: satRps(sb) };
    out[mode] = {
      saturationRps,
      saturationRatio: saturationRps.tollgate / saturationRps.baseline,
      roundRatios: tRounds.slice(0, bRounds.length).map((x, i) => x.rps / (bRounds[i]?.rps ?? NaN)),
      rateMs: {
        tollgate: { p50: rt?.load.latencyMs.p50 ?? NaN, p99: rt?.load.latencyMs.p99 ?? NaN },
        baseline: { p50: rb?.load.latencyMs.p50 ?? NaN, p99: rb?.load.latencyMs.p99 ?? NaN },
      },
      rateDiffPerRound: { p50: pairedMedian(rt?.load, rb?.load, 'p50'), p99: pairedMedian(rt?.load, rb?.load, 'p99') },
      cpuUsPerReq: {
        rate: { tollgate: rt?.cpu.targetUsPerReq ?? NaN, baseline: rb?.cpu.targetUsPerReq ?? NaN },
        saturation: { tollgate: st?.cpu.targetUsPerReq ?? NaN, baseline: sb?.cpu.targetUsPerReq ?? NaN },
      },
      issues: issuesOf({ 'tollgate (rate)': rt?.load, 'baseline (rate)': rb?.load, 'tollgate (saturation)': st?.load, 'baseline (saturation)': sb?.load }),
    };
  }
  return out;
}

function verdicts(derived: Derived, rss: { rssMB: number } | undefined, rate: number): Verdict[] {
  const out: Verdict[] = [];
  for (const mode of MODES) {
    const o = derived.overhead[mode];
    for (const [p, limit] of [['p50', TARGETS.addedP50Ms], ['p99', TARGETS.addedP99Ms]] as const) {
      const v = o.vsDirect[p];
      out.push({
        name: `${mode}: added ${p} over direct at ${rate.toLocaleString('en-US')} req/s`,
        target: `<= ${limit} ms`,
        actual: `${fmt(v)} ms`,
        pass: !o.issues && Number.isFinite(v) && v <= limit,
        ...(o.issues ? { note: o.issues } : {}),
      });
    }
  }
  for (const mode of MODES) {
    const s = derived.saturation[mode];
    out.push({
      name: `${mode}: saturation throughput, % of floor`,
      target: `>= ${TARGETS.saturationPctOfFloor}%`,
      actual: `${fmt(s.pctOfFloor, 1)}% (${fmt(s.tollgateRps, 0)} vs ${fmt(s.floorRps, 0)} req/s)`,
      pass: !s.issues && Number.isFinite(s.pctOfFloor) && s.pctOfFloor >= TARGETS.saturationPctOfFloor,
      ...(s.issues ? { note: s.issues } : {}),
    });
  }
  out.push({
    name: 'Tollgate RSS after the runs',
    target: `<= ${TARGETS.rssMB} MB`,
    actual: rss ? `${fmt(rss.rssMB, 1)} MB` : 'n/a',
    pass: rss !== undefined && rss.rssMB <= TARGETS.rssMB,
  });
  return out;
}

/** Caveats the numbers themselves call for. */
function notes(runs: RunRecord[], rate: number): string[] {
  const label = (r: RunRecord) => `${r.target} (${r.mode}, ${r.kind})`;
  return [
    otherLoadCaveat(
      runs.map((r) => r.cpu.foreignCores),
      'latencies, p99 above all, are inflated by that much contention; compare targets within a table (they took turns) rather than across runs.',
    ),
    ...shortfallCaveats(
      runs.filter((r) => r.kind === 'rate').map((r) => ({ label: `${r.target} (${r.mode})`, load: r.load })),
      rate,
      true,
    ),
    ...runs.map((r) => r.upstream && upstreamCaveat(label(r), r.upstream, ' (the core bench means to measure the proxy path)')),
  ].filter((n): n is string => n !== undefined);
}

function tables(runs: RunRecord[], derived: Derived, memory: Record<TargetName, MemoryUse | undefined>, idle: { rssMB: number }): Record<'rate' | 'overhead' | 'saturation' | 'memory', Block> {
  const perRequest = [col.cpu('target'), col.simCpu, col.upstream('upstream calls/req')];
  const pctOfFloor = column<RunRecord>('% of floor', (r) => `${fmt((r.load.rps / (find(runs, 'saturation', r.mode, 'floor')?.load.rps ?? NaN)) * 100, 1)}%`);
  return {
    rate: runTable(
      runs.filter((r) => r.kind === 'rate' && isCoreTarget(r)),
      [col.mode, col.target],
      [col.ttfb, ...perRequest],
    ),
    overhead: tableOf(
      MODES.flatMap((mode) => {
        const o = derived.overhead[mode];
        return [
          { mode, vs: 'direct', ...o.vsDirect, perRound: o.perRound.vsDirect },
          { mode, vs: 'floor', ...o.vsFloor, perRound: o.perRound.vsFloor },
        ];
      }),
      [col.mode, column('vs', (x) => x.vs), addedColumns.p50, addedColumns.p99, addedColumns.roundP50, addedColumns.roundP99],
    ),
    saturation: tableOf(
      runs.filter((r) => r.kind === 'saturation' && isCoreTarget(r)),
      [col.mode, col.target, col.rps, pctOfFloor, ...col.latency.slice(0, 3), ...perRequest, col.otherLoad, col.errors],
    ),
    memory: tableOf(
      [{ name: 'tollgate (idle, after start-up)', rss: idle.rssMB, peak: '' }, ...[...TARGET_NAMES, ...FILE_TARGETS].map((n) => ({ name: n === 'direct' ? 'simulator' : n, rss: memory[n]?.rssMB, peak: fmt(memory[n]?.peakRssMB, 1) }))],
      [column('process', (x) => x.name), column('RSS after runs (MB)', (x) => fmt(x.rss, 1)), column('peak RSS (MB)', (x) => x.peak)],
    ),
  };
}

/** Placement when pinned (BENCH_PIN=1). */
export const LOAD_CPU = '0';
export const PROXY_CPU = '1';

export type MemoryUse = { rssMB: number; peakRssMB: number };

export interface ReportInput {
  runs: RunRecord[];
  memory: Record<TargetName, MemoryUse | undefined>;
  tollgateIdleRss: MemoryUse;
  /** With a baseline build (core.baseline): its RSS right after start-up. */
  baselineIdleRss?: MemoryUse | undefined;
  core: CoreSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  sat: { count: number; sliceS: number };
  maxTokens: number;
  profileDir?: string | undefined;
  /** How much tollgate-file's and tollgate-quiet's logs grew during each mode's runs. */
  logGrowth: LogGrowth;
  /** The cold-start phase (absent if it did not run). */
  coldStart?: ColdStartRun | undefined;
}

export interface CoreReport extends BuiltReport<Derived> {
  profile?: ProfileSummary;
}

export function buildReport(input: ReportInput): CoreReport {
  const { runs, memory, core: c, settings: s, rate, sat } = input;
  const derived = derive(runs, input.logGrowth, input.coldStart);
  const vs = [
    ...verdicts(derived, memory.tollgate, c.rate),
    ...loggingVerdicts(derived.logging, MODES),
    ...(input.coldStart && derived.coldStart ? [coldStartVerdict(derived.coldStart, input.coldStart)] : []),
  ];
  const caveats = notes(runs, c.rate);
  let profile: ProfileSummary | undefined;
  if (input.profileDir) {
    const file = mainThreadProfile(input.profileDir);
    if (file) profile = summarizeCpuProfile(join(input.profileDir, file), 25);
    else caveats.push(`Tollgate wrote no .cpuprofile to ${input.profileDir} (did it exit cleanly on SIGTERM?).`);
  }
  const tb = tables(runs, derived, memory, input.tollgateIdleRss);
  const R = c.rate.toLocaleString('en-US');
  const rateLabel =
    c.rateDriver === 'paced'
      ? `evenly paced, open loop (request i leaves at start + i/rate whatever the earlier ones are doing), ${R} req/s, up to ${c.rateConnections} connections (undici Pool), ${c.leadInS} s unmeasured lead-in`
      : `autocannon overallRate ${R} req/s, ${c.rateConnections} connections (bursty: each connection sends its share at the start of every second)`;
  const setup = [
    `Upstream: \`tollgate sim --latency 0 --tps 0\` (instant answers). Floor: \`bench/floor-proxy.mjs\` (node:http + undici Pool, no features). Tollgate: \`tollgate start\` with one openai-compatible provider pointing at the simulator; API-key auth, \`logging.level: info\` (stdout to /dev/null), metrics on${c.profile ? ', **run under --cpu-prof (numbers are slower than normal)**' : ''}. Also measured, shown in "What users run": \`tollgate-file\` (the same, stdout to a file) and \`tollgate-quiet\` (stdout to a file, \`logging.level: warn\`).`,
    `Request: \`POST /v1/chat/completions\`, model sim-small, one short user message, \`max_tokens: ${input.maxTokens}\`; \`stream: true\` for the stream rows. Same bytes to every target.`,
    `Latency: client side, from writing the request to the last byte of the answer, µs precision (hrtime), 2xx only. TTFB: to the first body byte. Added latency: Tollgate's percentile minus the other target's, over all samples (the verdicts use these); "per-round median": the median over rounds of the same difference taken slice by slice within each round, which a burst of outside load in a few rounds barely moves.`,
    `Fixed rate: ${rateLabel}; ${s.seconds} s per target, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. Saturation: autocannon, ${c.saturationConnections} connections, ${s.seconds} s per target as ${sat.count} rounds of ${fmt(sat.sliceS)} s. In each round the targets take turns (direct, floor, tollgate${c.baseline ? ', baseline' : ''}, tollgate-file, tollgate-quiet; the last two swap places every other round), never at once, so outside load falls on all of them alike. Warm-up: ${s.warmupSeconds} s per target first.${c.pin ? ` Pinned: load generator and simulator on CPU ${LOAD_CPU}, floor and Tollgate on CPU ${PROXY_CPU}.` : ''}`,
    `CPU µs/req: CPU time (user + system, from /proc) of the process the load hits (for direct: the simulator), per request; the load generator's own is in the raw JSON. Upstream calls/req: simulator requests per answered request (1.00 = no retries, no cache hits). Other load: CPU used by every other process on the machine during the runs, in cores (2 cores, shared: noise).`,
  ];
  const doc = methodDoc('Core gateway overhead (`npm run bench -- core`)', s, setup, [
    ...section(`Fixed rate: ${R} req/s`, tb.rate),
    ...section(`Tollgate's added latency at ${R} req/s`, tb.overhead),
    ...section(`Saturation: ${c.saturationConnections} connections`, tb.saturation),
    ...loggingSection(derived.logging, MODES, R),
    ...(input.coldStart && derived.coldStart ? coldStartSection(derived.coldStart, input.coldStart) : []),
    ...section('Memory', tb.memory),
    ...(c.baseline && derived.beforeAfter ? beforeAfterSection(c.baseline, derived.beforeAfter, memory, input, R) : []),
    ...closing({ verdicts: vs, caveats }),
    ...(profile ? section("Where Tollgate's CPU goes (--cpu-prof over the whole run)", ...profileBlocks(profile)) : []),
  ]);
  return { doc, verdicts: vs, derived, caveats, ...(profile ? { profile } : {}) };
}

/** "Before and after": the current build against the baseline build, per mode, then memory. */
function beforeAfterSection(b: BaselineBuild, ba: Record<Mode, BeforeAfter>, memory: Record<TargetName, MemoryUse | undefined>, input: ReportInput, R: string): Block[] {
  const build = (name: 'tollgate' | 'baseline') => (name === 'tollgate' ? 'tollgate (this build)' : `baseline${b.commit ? ` (${b.commit})` : ''}`);
  const rows = MODES.flatMap((mode) => (['tollgate', 'baseline'] as const).map((name) => ({ mode, name, x: ba[mode] })));
  const pct = (v: number) => `${fmt(v * 100, 1)}%`;
  const title = `Before and after (baseline: ${b.root}${b.commit ? `, commit ${b.commit}${b.dirty ? ' with uncommitted changes' : ''}` : ''})`;
  const rss = (name: 'tollgate' | 'baseline', idle: MemoryUse | undefined) =>
    `${name}: ${fmt(idle?.rssMB, 1)} MB after start-up, ${fmt(memory[name]?.rssMB, 1)} MB after the runs (peak ${fmt(memory[name]?.peakRssMB, 1)} MB)`;
  return section(
    title,
    text(
      `\`baseline\` is \`tollgate start\` from ${b.root}/dist with the same config, simulator and key setup as \`tollgate\` (a tenant, key and embedded state of its own), measured in the same rounds, right after \`tollgate\`. Saturation req/s: median over rounds of each slice's req/s; "tollgate / baseline" is the ratio of those medians (above 100%: this build serves more). Latency at ${R} req/s over all samples; CPU µs/req of the gateway process.`,
    ),
    tableOf(rows, [
      column('mode', (r) => r.mode),
      column('build', (r) => build(r.name)),
      column('saturation req/s (median of rounds)', (r) => fmt(r.x.saturationRps[r.name], 0)),
      column('tollgate / baseline', (r) => (r.name === 'tollgate' ? pct(r.x.saturationRatio) : '')),
      column(`p50 ms at ${R} req/s`, (r) => fmt(r.x.rateMs[r.name].p50)),
      column('p99 ms', (r) => fmt(r.x.rateMs[r.name].p99)),
      column(`CPU µs/req at ${R} req/s`, (r) => fmt(r.x.cpuUsPerReq.rate[r.name], 0)),
      column('CPU µs/req at saturation', (r) => fmt(r.x.cpuUsPerReq.saturation[r.name], 0)),
    ]),
    list([
      ...MODES.map((mode) => {
        const x = ba[mode];
        return `${mode}: tollgate / baseline saturation req/s per round (in round order): ${x.roundRatios.map(pct).join(', ')}; tollgate - baseline at ${R} req/s, per-round median: p50 ${fmtDelta(x.rateDiffPerRound.p50)} ms, p99 ${fmtDelta(x.rateDiffPerRound.p99)} ms${x.issues ? `; issues: ${x.issues}` : ''}`;
      }),
      `RSS: ${rss('tollgate', input.tollgateIdleRss)}; ${rss('baseline', input.baselineIdleRss)}`,
    ]),
  );
}
