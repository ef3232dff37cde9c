/**
 * The core scenario's cold-start phase and its report section: after the steady runs, a new
 * gateway (tollgate-file's config, stdout to a file) is started and, from its first request, held
 * at saturation (50 connections, JSON) for BENCH_COLD_SECONDS (default 30) in one autocannon run
 * whose 2xx answers are counted per second. Reported against steady (tollgate-file's JSON
 * saturation, median over rounds): req/s of each second, the second that first reaches 80% of
 * steady, the first 5 s and whole-phase averages, and the verdict (>= 80% within 5 s).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runAutocannon } from '../lib/autocannon.js';
import { issuesOf, median } from '../lib/compare.js';
import { combine, type LoadResult } from '../lib/load.js';
import { memoryMB } from '../lib/process.js';
import { column, list, section, tableOf, text, type Block } from '../lib/report.js';
import { positiveEnv, type BenchSettings, type Verdict } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
import { chatRequest, launchGateway } from '../lib/tollgate.js';

/** Issue 18: a new process serves this share of steady throughput... */
export const COLD_TARGET_PCT = 80;
/** ...within this many seconds of its first request. */
export const COLD_TARGET_S = 5;

/** BENCH_COLD_SECONDS: how long the cold-start phase lasts (whole seconds). */
export function coldSeconds(): number {
  return Math.max(1, Math.round(positiveEnv('BENCH_COLD_SECONDS', 30)));
}

export interface ColdStartRun {
  seconds: number;
  connections: number;
  /** 2xx answers in each whole second from the start of the load. */
  perSecond: number[];
  load: LoadResult;
  /** The new process's RSS right after start-up and after the phase. */
  rss: { idle: { rssMB: number; peakRssMB: number }; after: { rssMB: number; peakRssMB: number } };
  /** Its log file's size at the end over the requests sent. */
  logBytesPerReq: number;
}

/** Starts the new gateway in `dir` and loads it from its first chat request; stops it after. */
export async function runColdStart(o: { s: BenchSettings; dir: string; simOrigin: string; seconds: number; connections: number; cpus?: string }): Promise<ColdStartRun> {
  const logFile = join(o.dir, 'tollgate-cold.log');
  const g = await launchGateway({ name: 'tollgate-cold', root: o.s.root, dir: join(o.dir, 'cold'), simOrigin: o.simOrigin, log: o.s.log, logFile, ...(o.cpus !== undefined ? { cpus: o.cpus } : {}) });
  try {
    o.s.log(`cold start: ${o.seconds} s at saturation (${o.connections} connections, JSON) from the first request, counted per second`);
    const perSecond = new Array<number>(o.seconds).fill(0);
    const t0 = process.hrtime.bigint();
    const slice = await runAutocannon({
      request: chatRequest(g.origin, 'json', g.apiKey),
      connections: o.connections,
      durationS: o.seconds,
      onResponse: (status) => {
        const second = Math.floor(Number(process.hrtime.bigint() - t0) / 1e9);
        if (status >= 200 && status < 300 && second < o.seconds) perSecond[second] = (perSecond[second] ?? 0) + 1;
      },
    });
    const load = combine([slice]);
    o.s.log(`cold start: req/s per second ${perSecond.join(', ')}`);
    return { seconds: o.seconds, connections: o.connections, perSecond, load, rss: { idle: g.idleRss, after: memoryMB(g.proc.pid) }, logBytesPerReq: statSync(logFile).size / Math.max(1, load.sent) };
  } finally {
    await g.proc.stop(5_000);
  }
}

export interface ColdStartDerived {
  /** tollgate-file's JSON saturation req/s, median over rounds. */
  steadyRps: number;
  perSecondPctOfSteady: number[];
  /** The first second (1-based) whose req/s reached COLD_TARGET_PCT of steady; absent if none did. */
  secondsTo80?: number;
  /** Average req/s over the first COLD_TARGET_S seconds and over the whole phase, % of steady. */
  first5Pct: number;
  allPct: number;
  /**
   * Median req/s of the phase's last COLD_TARGET_S seconds: where the new process ends up in one
   * continuous run, next to steady (measured in short slices, each opening its connections).
   */
  lastSecondsRps: number;
  issues: string;
}

export function deriveColdStart(run: ColdStartRun, steadySliceRps: number[]): ColdStartDerived {
  const steadyRps = median(steadySliceRps);
  const pcts = run.perSecond.map((n) => (n / steadyRps) * 100);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const reached = pcts.findIndex((p) => p >= COLD_TARGET_PCT);
  return {
    steadyRps,
    perSecondPctOfSteady: pcts,
    ...(reached >= 0 ? { secondsTo80: reached + 1 } : {}),
    first5Pct: avg(pcts.slice(0, COLD_TARGET_S)),
    allPct: avg(pcts),
    lastSecondsRps: median(run.perSecond.slice(-COLD_TARGET_S)),
    issues: issuesOf({ 'tollgate-cold': run.load }),
  };
}

export function coldStartVerdict(d: ColdStartDerived, run: ColdStartRun): Verdict {
  const best = Math.max(...d.perSecondPctOfSteady.slice(0, COLD_TARGET_S));
  return {
    name: `cold start: a new process's JSON saturation req/s, % of steady (${fmt(d.steadyRps, 0)} req/s)`,
    target: `>= ${COLD_TARGET_PCT}% within ${COLD_TARGET_S} s of the first request`,
    actual: d.secondsTo80 !== undefined ? `in second ${d.secondsTo80} (${fmt(d.perSecondPctOfSteady[d.secondsTo80 - 1], 1)}%)` : `not in ${run.seconds} s (best of the first ${COLD_TARGET_S}: ${fmt(best, 1)}%)`,
    pass: !d.issues && d.secondsTo80 !== undefined && d.secondsTo80 <= COLD_TARGET_S,
    ...(d.issues ? { note: d.issues } : {}),
  };
}

export function coldStartSection(d: ColdStartDerived, run: ColdStartRun): Block[] {
  const seconds = run.perSecond.map((n, i) => ({ second: i + 1, n, pct: d.perSecondPctOfSteady[i] ?? NaN }));
  return section(
    `Cold start: a new process, first ${run.seconds} s`,
    text(
      `After the steady runs, a new \`tollgate start\` with tollgate-file's config (stdout to a file, a tenant, key and state folder of its own) is started; once /healthz answers, autocannon sends it JSON requests with ${run.connections} connections for ${run.seconds} s, its first chat request being the first of the load. 2xx answers are counted per second from the start of the load. Steady: tollgate-file's JSON saturation req/s, median over rounds (${fmt(d.steadyRps, 0)} req/s).`,
    ),
    tableOf(seconds, [column('second', (x) => String(x.second)), column('req/s', (x) => String(x.n)), column('% of steady', (x) => `${fmt(x.pct, 1)}%`)]),
    list([
      `first second at >= ${COLD_TARGET_PCT}% of steady: ${d.secondsTo80 !== undefined ? `second ${d.secondsTo80}` : `none in ${run.seconds} s`}`,
      `average over the first ${Math.min(COLD_TARGET_S, run.seconds)} s: ${fmt(d.first5Pct, 1)}% of steady; over all ${run.seconds} s: ${fmt(d.allPct, 1)}%`,
      `median of the last ${Math.min(COLD_TARGET_S, run.seconds)} s: ${fmt(d.lastSecondsRps, 0)} req/s (${fmt((d.lastSecondsRps / d.steadyRps) * 100, 1)}% of steady; one continuous run, whereas steady comes from short slices that each open their connections)`,
      `RSS: ${fmt(run.rss.idle.rssMB, 1)} MB after start-up, ${fmt(run.rss.after.rssMB, 1)} MB after the phase (peak ${fmt(run.rss.after.peakRssMB, 1)} MB); log ${fmt(run.logBytesPerReq, 0)} bytes/req${d.issues ? `; issues: ${d.issues}` : ''}`,
    ]),
  );
}
