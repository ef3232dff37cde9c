/**
 * The core scenario's report: derived figures (Tollgate's added latency, saturation share),
 * verdicts against the targets, caveats, and the tables for the console and bench/RESULTS.md.
 */
import { join } from 'node:path';
import { formatProfile, mainThreadProfile, summarizeCpuProfile, type ProfileSummary } from '../lib/cpuprofile.js';
import { issuesOf, pairedMedian } from '../lib/compare.js';
import { problems, rateShortfall, type LoadResult } from '../lib/load.js';
import { describeMachine, type MachineInfo } from '../lib/results.js';
import type { BenchSettings, Verdict } from '../lib/scenario.js';
import { fmt, fmtDelta, markdownTable, textTable } from '../lib/table.js';

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
}

export type { Mode } from '../lib/tollgate.js';
import type { Mode } from '../lib/tollgate.js';
export type TargetName = 'direct' | 'floor' | 'tollgate';
export const MODES: Mode[] = ['json', 'stream'];
export const TARGET_NAMES: TargetName[] = ['direct', 'floor', 'tollgate'];

export interface CpuUse {
  /** CPU time of the process the load hits, per request (µs). For direct: the simulator. */
  targetUsPerReq: number;
  /** The simulator's CPU per request (µs). */
  simUsPerReq: number;
  /** The load generator's (this process's) CPU per request (µs). */
  loadGenUsPerReq: number;
  /** CPU used by everything else on the machine during the run, in cores: noise. */
  foreignCores: number;
}

export interface RunRecord {
  kind: 'rate' | 'saturation';
  mode: Mode;
  target: TargetName;
  load: LoadResult;
  cpu: CpuUse;
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
}

function find(runs: RunRecord[], kind: RunRecord['kind'], mode: Mode, target: TargetName): RunRecord | undefined {
  return runs.find((r) => r.kind === kind && r.mode === mode && r.target === target);
}

function derive(runs: RunRecord[]): Derived {
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
  return { overhead, saturation };
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
  const out: string[] = [];
  const noisiest = runs.reduce((m, r) => Math.max(m, r.cpu.foreignCores), 0);
  if (noisiest > 0.25) {
    out.push(
      `Other processes used up to ${fmt(noisiest)} of the 2 cores during the runs (column "other load"): latencies, p99 above all, are inflated by that much contention; compare targets within a table (they took turns) rather than across runs.`,
    );
  }
  for (const r of runs.filter((x) => x.kind === 'rate' && rateShortfall(x.load))) {
    out.push(`${r.target} (${r.mode}) could not sustain ${rate} req/s here (${fmt(r.load.rps, 0)} req/s): its latency at that rate is time spent queueing, not per-request overhead.`);
  }
  // Requests still in flight when a slice stops may or may not have reached the simulator.
  for (const r of runs) {
    const u = r.upstream;
    if (!u) continue;
    if (u.calls > u.sent * 1.01 + 1) out.push(`${r.target} (${r.mode}, ${r.kind}) made ${u.calls} upstream calls for ${u.sent} requests: retries?`);
    else if (u.calls < u.answered * 0.99) out.push(`${r.target} (${r.mode}, ${r.kind}) answered ${u.answered} requests with ${u.calls} upstream calls: cache hits? (the core bench means to measure the proxy path)`);
  }
  return out;
}

interface Tables {
  rate: { header: string[]; rows: string[][] };
  overhead: { header: string[]; rows: string[][] };
  saturation: { header: string[]; rows: string[][] };
  memory: { header: string[]; rows: string[][] };
  verdicts: { header: string[]; rows: string[][] };
}

function tables(runs: RunRecord[], derived: Derived, memory: Record<TargetName, { rssMB: number; peakRssMB: number } | undefined>, idle: { rssMB: number }, vs: Verdict[]): Tables {
  const status = (r: RunRecord) => problems(r.load) || 'ok';
  const upstream = (r: RunRecord) => (r.upstreamCallsPerRequest === undefined ? '—' : fmt(r.upstreamCallsPerRequest));
  const rateRuns = runs.filter((r) => r.kind === 'rate');
  const satRuns = runs.filter((r) => r.kind === 'saturation');
  return {
    rate: {
      header: ['mode', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'TTFB p50 ms', 'CPU µs/req (target)', 'CPU µs/req (sim)', 'upstream calls/req', 'other load (cores)', 'errors'],
      rows: rateRuns.map((r) => [
        r.mode,
        r.target,
        fmt(r.load.rps, 0),
        fmt(r.load.latencyMs.p50),
        fmt(r.load.latencyMs.p90),
        fmt(r.load.latencyMs.p99),
        fmt(r.load.latencyMs.p999),
        fmt(r.load.latencyMs.max),
        fmt(r.load.ttfbMs?.p50),
        fmt(r.cpu.targetUsPerReq, 0),
        fmt(r.cpu.simUsPerReq, 0),
        upstream(r),
        fmt(r.cpu.foreignCores),
        status(r),
      ]),
    },
    overhead: {
      header: ['mode', 'vs', 'added p50', 'added p99', 'per-round median: added p50', 'added p99'],
      rows: MODES.flatMap((m) => {
        const o = derived.overhead[m];
        const ms = (v: number) => `${fmtDelta(v)} ms`;
        return [
          [m, 'direct', ms(o.vsDirect.p50), ms(o.vsDirect.p99), ms(o.perRound.vsDirect.p50), ms(o.perRound.vsDirect.p99)],
          [m, 'floor', ms(o.vsFloor.p50), ms(o.vsFloor.p99), ms(o.perRound.vsFloor.p50), ms(o.perRound.vsFloor.p99)],
        ];
      }),
    },
    saturation: {
      header: ['mode', 'target', 'req/s', '% of floor', 'p50 ms', 'p90 ms', 'p99 ms', 'CPU µs/req (target)', 'CPU µs/req (sim)', 'upstream calls/req', 'other load (cores)', 'errors'],
      rows: satRuns.map((r) => [
        r.mode,
        r.target,
        fmt(r.load.rps, 0),
        `${fmt((r.load.rps / (find(runs, 'saturation', r.mode, 'floor')?.load.rps ?? NaN)) * 100, 1)}%`,
        fmt(r.load.latencyMs.p50),
        fmt(r.load.latencyMs.p90),
        fmt(r.load.latencyMs.p99),
        fmt(r.cpu.targetUsPerReq, 0),
        fmt(r.cpu.simUsPerReq, 0),
        upstream(r),
        fmt(r.cpu.foreignCores),
        status(r),
      ]),
    },
    memory: {
      header: ['process', 'RSS after runs (MB)', 'peak RSS (MB)'],
      rows: [
        ['tollgate (idle, after start-up)', fmt(idle.rssMB, 1), ''],
        ...TARGET_NAMES.map((n) => [n === 'direct' ? 'simulator' : n, fmt(memory[n]?.rssMB, 1), fmt(memory[n]?.peakRssMB, 1)]),
      ],
    },
    verdicts: {
      header: ['target', 'goal', 'measured', 'verdict'],
      rows: vs.map((v) => [v.name, v.target, v.actual, `${v.pass ? 'PASS' : 'MISS'}${v.note ? ` (${v.note})` : ''}`]),
    },
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
  core: CoreSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  sat: { count: number; sliceS: number };
  date: Date;
  machine: MachineInfo;
  maxTokens: number;
  profileDir?: string | undefined;
}

export interface CoreReport {
  summary: string;
  markdown: string;
  verdicts: Verdict[];
  derived: Derived;
  caveats: string[];
  profile?: ProfileSummary;
}

export function buildReport(input: ReportInput): CoreReport {
  const { runs, memory, core: c, settings: s, rate, sat, date, machine } = input;
  const derived = derive(runs);
  const vs = verdicts(derived, memory.tollgate, c.rate);
  const caveats = notes(runs, c.rate);
  let profile: ProfileSummary | undefined;
  if (input.profileDir) {
    const file = mainThreadProfile(input.profileDir);
    if (file) profile = summarizeCpuProfile(join(input.profileDir, file), 25);
    else caveats.push(`Tollgate wrote no .cpuprofile to ${input.profileDir} (did it exit cleanly on SIGTERM?).`);
  }
  const tb = tables(runs, derived, memory, input.tollgateIdleRss, vs);
  const R = c.rate.toLocaleString('en-US');
  const rateLabel =
    c.rateDriver === 'paced'
      ? `evenly paced, open loop (request i leaves at start + i/rate whatever the earlier ones are doing), ${R} req/s, up to ${c.rateConnections} connections (undici Pool), ${c.leadInS} s unmeasured lead-in`
      : `autocannon overallRate ${R} req/s, ${c.rateConnections} connections (bursty: each connection sends its share at the start of every second)`;
  const setup = [
    `- Upstream: \`tollgate sim --latency 0 --tps 0\` (instant answers). Floor: \`bench/floor-proxy.mjs\` (node:http + undici Pool, no features). Tollgate: \`tollgate start\` with one openai-compatible provider pointing at the simulator; API-key auth, \`logging.level: info\` (stdout to /dev/null), metrics on${c.profile ? ', **run under --cpu-prof (numbers are slower than normal)**' : ''}.`,
    `- Request: \`POST /v1/chat/completions\`, model sim-small, one short user message, \`max_tokens: ${input.maxTokens}\`; \`stream: true\` for the stream rows. Same bytes to every target.`,
    `- Latency: client side, from writing the request to the last byte of the answer, µs precision (hrtime), 2xx only. TTFB: to the first body byte. Added latency: Tollgate's percentile minus the other target's, over all samples (the verdicts use these); "per-round median": the median over rounds of the same difference taken slice by slice within each round, which a burst of outside load in a few rounds barely moves.`,
    `- Fixed rate: ${rateLabel}; ${s.seconds} s per target, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. Saturation: autocannon, ${c.saturationConnections} connections, ${s.seconds} s per target as ${sat.count} rounds of ${fmt(sat.sliceS)} s. In each round the targets take turns (direct, floor, tollgate), never at once, so outside load falls on all of them alike. Warm-up: ${s.warmupSeconds} s per target first.${c.pin ? ` Pinned: load generator and simulator on CPU ${LOAD_CPU}, floor and Tollgate on CPU ${PROXY_CPU}.` : ''}`,
    `- CPU µs/req: CPU time (user + system, from /proc) of the process the load hits (for direct: the simulator), per request; the load generator's own is in the raw JSON. Upstream calls/req: simulator requests per answered request (1.00 = no retries, no cache hits). Other load: CPU used by every other process on the machine during the runs, in cores (2 cores, shared: noise).`,
  ].join('\n');

  const md = [
    '## Core gateway overhead (`npm run bench -- core`)',
    '',
    `Date: ${date.toISOString()}  `,
    `Machine: ${describeMachine(machine)}`,
    '',
    setup,
    '',
    `### Fixed rate: ${c.rate.toLocaleString('en-US')} req/s`,
    '',
    markdownTable(tb.rate.header, tb.rate.rows),
    '',
    `### Tollgate's added latency at ${c.rate.toLocaleString('en-US')} req/s`,
    '',
    markdownTable(tb.overhead.header, tb.overhead.rows),
    '',
    `### Saturation: ${c.saturationConnections} connections`,
    '',
    markdownTable(tb.saturation.header, tb.saturation.rows),
    '',
    '### Memory',
    '',
    markdownTable(tb.memory.header, tb.memory.rows),
    '',
    '### Targets',
    '',
    markdownTable(tb.verdicts.header, tb.verdicts.rows),
    ...(caveats.length ? ['', '### Caveats', '', ...caveats.map((n) => `- ${n}`)] : []),
    ...(profile ? ['', "### Where Tollgate's CPU goes (--cpu-prof over the whole run)", '', formatProfile(profile, markdownTable)] : []),
  ].join('\n');

  const summary = [
    `Machine: ${describeMachine(machine)}`,
    '',
    `Fixed rate (${c.rateDriver}, ${c.rate} req/s, ${s.seconds} s):`,
    textTable(tb.rate.header, tb.rate.rows),
    '',
    `Tollgate's added latency at ${c.rate} req/s:`,
    textTable(tb.overhead.header, tb.overhead.rows),
    '',
    `Saturation (${c.saturationConnections} connections, ${s.seconds} s):`,
    textTable(tb.saturation.header, tb.saturation.rows),
    '',
    'Memory:',
    textTable(tb.memory.header, tb.memory.rows),
    '',
    'Targets:',
    textTable(tb.verdicts.header, tb.verdicts.rows),
    ...(caveats.length ? ['', 'Caveats:', ...caveats.map((n) => `- ${n}`)] : []),
    ...(profile ? ['', formatProfile(profile, textTable)] : []),
  ].join('\n');

  return { summary, markdown: md, verdicts: vs, derived, caveats, ...(profile ? { profile } : {}) };
}
