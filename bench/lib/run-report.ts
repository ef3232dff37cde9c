/**
 * What the reports of measured runs share: the columns of a run (throughput, latency percentiles,
 * CPU per request, upstream calls, other load, errors), the columns of one target's difference
 * from another (lib/compare.ts `difference`), and the caveats the numbers themselves call for
 * (other load on the machine, a fixed rate not sustained, upstream calls that do not match the
 * requests).
 */
import { median, type Difference } from './compare.js';
import { problems, rateShortfall, type LoadResult } from './load.js';
import { column, tableOf, type Block, type Column } from './report.js';
import { fmt, fmtDelta } from './table.js';
import type { TurnCpu } from './turns.js';

/** A measured run as the reports see it. */
export interface RunLike {
  load: LoadResult;
  cpu: TurnCpu;
  upstreamCallsPerRequest?: number | undefined;
}

/** The columns of a measured run. */
export const runColumns = {
  mode: column<{ mode: string }>('mode', (r) => r.mode),
  target: column<{ target: string }>('target', (r) => r.target),
  rps: column<RunLike>('req/s', (r) => fmt(r.load.rps, 0)),
  /** p50, p90, p99, p99.9 and max of the latency, ms. */
  latency: [
    column<RunLike>('p50 ms', (r) => fmt(r.load.latencyMs.p50)),
    column<RunLike>('p90 ms', (r) => fmt(r.load.latencyMs.p90)),
    column<RunLike>('p99 ms', (r) => fmt(r.load.latencyMs.p99)),
    column<RunLike>('p99.9 ms', (r) => fmt(r.load.latencyMs.p999)),
    column<RunLike>('max ms', (r) => fmt(r.load.latencyMs.max)),
  ],
  ttfb: column<RunLike>('TTFB p50 ms', (r) => fmt(r.load.ttfbMs?.p50)),
  /** CPU µs per request of the process the load hits, e.g. "(gateway)". */
  cpu: (what: string) => column<RunLike>(`CPU µs/req (${what})`, (r) => fmt(r.cpu.targetUsPerReq, 0)),
  simCpu: column<RunLike>('CPU µs/req (sim)', (r) => fmt(r.cpu.simUsPerReq, 0)),
  /** Simulator requests per answered request ('—' where not counted). */
  upstream: (title: string) => column<RunLike>(title, (r) => (r.upstreamCallsPerRequest === undefined ? '—' : fmt(r.upstreamCallsPerRequest))),
  otherLoad: column<RunLike>('other load (cores)', (r) => fmt(r.cpu.foreignCores)),
  errors: column<RunLike>('errors', (r) => problems(r.load) || 'ok'),
};

/** A table of runs: the `lead` columns (e.g. mode and target), throughput, latency, the `middle` columns, other load and errors. */
export function runTable<R extends RunLike>(runs: readonly R[], lead: Column<NoInfer<R>>[], middle: Column<NoInfer<R>>[]): Block {
  return tableOf(runs, [...lead, runColumns.rps, ...runColumns.latency, ...middle, runColumns.otherLoad, runColumns.errors]);
}

/** Memory of a gateway: RSS after start-up, after the runs, and its peak. */
export const rssColumns: Column<{ idleRss: { rssMB: number }; rssAfter?: { rssMB: number; peakRssMB: number } | undefined }>[] = [
  column('RSS idle (MB)', (t) => fmt(t.idleRss.rssMB, 1)),
  column('RSS after (MB)', (t) => fmt(t.rssAfter?.rssMB, 1)),
  column('peak RSS (MB)', (t) => fmt(t.rssAfter?.peakRssMB, 1)),
];

const ms = (v: number) => `${fmtDelta(v)} ms`;

/** Columns of a difference: added percentiles over all samples, per-round medians, round-to-round noise, CPU. */
export const addedColumns = {
  p50: column<Pick<Difference, 'p50'>>('added p50', (d) => ms(d.p50)),
  p90: column<Pick<Difference, 'p90'>>('added p90', (d) => ms(d.p90)),
  p99: column<Pick<Difference, 'p99'>>('added p99', (d) => ms(d.p99)),
  roundP50: column<Pick<Difference, 'perRound'>>('per-round median: added p50', (d) => ms(d.perRound.p50)),
  roundP99: column<Pick<Difference, 'perRound'>>('added p99', (d) => ms(d.perRound.p99)),
  iqr: column<Pick<Difference, 'iqrP50'>>('IQR of per-round added p50', (d) => `${fmt(d.iqrP50)} ms`),
  cpu: column<Pick<Difference, 'cpuUsPerReq'>>('added CPU µs/req (gateway)', (d) => fmtDelta(d.cpuUsPerReq, 0)),
};

/** "<label>, added p50 per round (ms, in round order): +0.01, -0.02 (median +0.00)" */
export function roundsLine(label: string, d: Pick<Difference, 'roundDiffsP50'>): string {
  return `${label}, added p50 per round (ms, in round order): ${d.roundDiffsP50.map((x) => fmtDelta(x)).join(', ')} (median ${fmtDelta(median(d.roundDiffsP50))})`;
}

/**
 * "Other processes used up to 0.40 of the 2 cores during the runs (column "other load"): <effect>"
 * when the noisiest run saw more than 0.25 cores of other load; undefined otherwise.
 */
export function otherLoadCaveat(cores: number[], effect: string, during = 'the runs'): string | undefined {
  const noisiest = cores.reduce((m, c) => Math.max(m, c), 0);
  return noisiest > 0.25 ? `Other processes used up to ${fmt(noisiest)} of the 2 cores during ${during} (column "other load"): ${effect}` : undefined;
}

/** "<label> could not sustain 1000 req/s here (812 req/s): its latency at that rate is time spent queueing…", for each run that missed its rate. */
export function shortfallCaveats(runs: { label: string; load: LoadResult }[], rate: number, notOverhead = false): string[] {
  return runs
    .filter((r) => rateShortfall(r.load))
    .map((r) => `${r.label} could not sustain ${rate} req/s here (${fmt(r.load.rps, 0)} req/s): its latency at that rate is time spent queueing${notOverhead ? ', not per-request overhead' : ''}.`);
}

/** Other load during `runs` (with its `effect`), then each run ("<target> (<mode>)") that missed the fixed `rate`. */
export function rateCaveats(runs: readonly (RunLike & { mode: string; target: string })[], rate: number, effect: string, notOverhead = false): string[] {
  return [
    otherLoadCaveat(
      runs.map((r) => r.cpu.foreignCores),
      effect,
    ),
    ...shortfallCaveats(
      runs.map((r) => ({ label: `${r.target} (${r.mode})`, load: r.load })),
      rate,
      notOverhead,
    ),
  ].filter((n): n is string => n !== undefined);
}

/**
 * Upstream calls that do not match the requests (requests in flight when a slice stops may or may
 * not have reached the simulator, hence the margins): retries, or cache hits (`hitsNote` follows).
 */
export function upstreamCaveat(label: string, u: { calls: number; sent: number; answered: number }, hitsNote = ''): string | undefined {
  if (u.calls > u.sent * 1.01 + 1) return `${label} made ${u.calls} upstream calls for ${u.sent} requests: retries?`;
  if (u.calls < u.answered * 0.99) return `${label} answered ${u.answered} requests with ${u.calls} upstream calls: cache hits?${hitsNote}`;
  return undefined;
}
