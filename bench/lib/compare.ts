/**
 * Comparing targets measured in turns: differences of percentiles over all samples, and the
 * median over rounds of the same difference taken slice by slice (slice i of each target ran in
 * round i), which a burst of outside load hitting a few rounds barely moves.
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
