/**
 * Comparing targets measured in turns: differences of percentiles over all samples, and the
 * median over rounds of the same difference taken slice by slice (slice i of each target ran in
 * round i), which a burst of outside load hitting a few rounds barely moves; the spread of those
 * per-round differences is the run's own noise.
 */
import { isClean, problems, type LoadResult } from './load.js';

export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** Quantile q (0-1) of `values`, linear interpolation between order statistics. */
export function quantile(values: number[], q: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (v[lo] as number) + ((v[hi] as number) - (v[lo] as number)) * (pos - lo);
}

/** The per-slice differences a - b of percentile `p`, in round order (slice i of each ran in round i). */
export function pairedDiffs(a: LoadResult, b: LoadResult, p: 'p50' | 'p99'): number[] {
  const n = Math.min(a.perSlice.length, b.perSlice.length);
  const diffs: number[] = [];
  for (let i = 0; i < n; i++) diffs.push((a.perSlice[i]?.[p] ?? NaN) - (b.perSlice[i]?.[p] ?? NaN));
  return diffs;
}

/** Median over rounds of the per-slice difference a - b (slices are in round order). */
export function pairedMedian(a: LoadResult | undefined, b: LoadResult | undefined, p: 'p50' | 'p99'): number {
  if (!a || !b) return Number.NaN;
  return median(pairedDiffs(a, b, p));
}

/** "tollgate: 3 errors; floor: no run" for the runs a verdict rests on; "" when all are clean. */
export function issuesOf(loads: Record<string, LoadResult | undefined>): string {
  return Object.entries(loads)
    .map(([name, l]) => (l === undefined ? `${name}: no run` : isClean(l) ? '' : `${name}: ${problems(l)}`))
    .filter(Boolean)
    .join('; ');
}

/** How one target's run differs from another's, both measured in the same rounds. */
export interface Difference {
  p50: number;
  p90: number;
  p99: number;
  /** Median over rounds of the per-slice difference. */
  perRound: { p50: number; p99: number };
  /** a - b of each round's p50, in round order. */
  roundDiffsP50: number[];
  /** Interquartile range of `roundDiffsP50` (quartiles by linear interpolation): the round-to-round noise. */
  iqrP50: number;
  /** Rounds in which a's p50 was above b's. */
  roundsSlower: number;
  /** a's CPU per request minus b's, µs (of the process the load hits). */
  cpuUsPerReq: number;
  /** What went wrong in either run ("" when both are clean). */
  issues: string;
}

interface NamedRun {
  name: string;
  load: LoadResult;
  cpu: { targetUsPerReq: number };
}

/** a - b: percentiles over all samples, per-round medians and spread, CPU per request. */
export function difference(a: NamedRun, b: NamedRun): Difference {
  const diffs = pairedDiffs(a.load, b.load, 'p50');
  return {
    p50: a.load.latencyMs.p50 - b.load.latencyMs.p50,
    p90: a.load.latencyMs.p90 - b.load.latencyMs.p90,
    p99: a.load.latencyMs.p99 - b.load.latencyMs.p99,
    perRound: { p50: pairedMedian(a.load, b.load, 'p50'), p99: pairedMedian(a.load, b.load, 'p99') },
    roundDiffsP50: diffs,
    iqrP50: quantile(diffs, 0.75) - quantile(diffs, 0.25),
    roundsSlower: diffs.filter((d) => d > 0).length,
    cpuUsPerReq: a.cpu.targetUsPerReq - b.cpu.targetUsPerReq,
    issues: issuesOf({ [a.name]: a.load, [b.name]: b.load }),
  };
}
