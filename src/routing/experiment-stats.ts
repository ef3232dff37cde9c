/**
 * The statistics of A/B experiments: per-variant summaries from the ledger and the feedback,
 * and the difference of each variant to the control.
 *
 * Statistics (`summarize`), at 95% confidence, always "variant minus control":
 * - Proportions (error rate, share of good feedback): Newcombe's hybrid score interval (method
 *   10 of Newcombe 1998), built from each side's Wilson score interval:
 *     Wilson(x, n): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), p = x/n, z = 1.959964
 *     d = p1 - p2; low = d - sqrt((p1 - l1)² + (u2 - p2)²); high = d + sqrt((u1 - p1)² + (p2 - l2)²)
 *   (l, u: the Wilson bounds of each side). Unlike the normal (Wald) approximation it stays
 *   inside [-1, 1] and behaves for rates near 0, e.g. error rates of a few per mille.
 * - Means (latency, cost per request): Welch's t-interval (unequal variances):
 *     d = m1 - m2; se = sqrt(s1²/n1 + s2²/n2) (s²: sample variances, n - 1 denominator)
 *     df = se⁴ / ((s1²/n1)²/(n1-1) + (s2²/n2)²/(n2-1))  (Welch–Satterthwaite)
 *     d ± t(0.975, df)·se
 *   with Student's t quantile for df <= 1000 and the normal one (1.959964) above, where they
 *   differ by less than 0.1%. Needs at least 2 values on each side.
 * - Percentiles (p50/p95/p99): linear interpolation between closest ranks (numpy's default).
 * An interval is null when a side has no data (no requests, no feedback, fewer than 2 values).
 *
 * The raw rows (`VariantRaw`) come from the storage adapters (src/storage/experiment-rows.ts).
 */
import type { ExperimentConfig } from '../config/routing-schema.js';
import { type VariantRaw, emptyRaw } from '../storage/experiment-rows.js';
import { regularizedBeta } from '../util/beta.js';

export type { ExperimentResultsSource, VariantRaw } from '../storage/experiment-rows.js';
export { emptyRaw };

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                      */
/* ------------------------------------------------------------------------------------------ */

export interface Distribution {
  mean: number;
  p50: number;
  p95: number;
  p99: number;
}

export interface VariantSummary {
  variant: string;
  requests: number;
  errors: number;
  /** errors / requests; null without requests. */
  errorRate: number | null;
  latencyMs: Distribution | null;
  /** Streamed requests (those with a TTFT). */
  streams: number;
  /** Null without streams. */
  ttftMs: Distribution | null;
  meanPromptTokens: number | null;
  meanCompletionTokens: number | null;
  costPico: number;
  /** Mean cost per request, USD; null without requests. */
  costPerRequestUsd: number | null;
  feedback: { count: number; good: number; bad: number; /** Good = 1, bad = 0; null without feedback. */ mean: number | null };
}

/** A difference (variant minus control) with its 95% confidence interval. */
export interface Interval {
  estimate: number;
  low: number;
  high: number;
  /** The interval excludes 0. */
  significant: boolean;
}

export interface VariantDifference {
  variant: string;
  control: string;
  /** Newcombe hybrid score interval. */
  errorRate: Interval | null;
  /** Newcombe hybrid score interval (share of good verdicts). */
  feedbackMean: Interval | null;
  /** Welch t-interval. */
  latencyMeanMs: Interval | null;
  /** Welch t-interval, USD. */
  costPerRequestUsd: Interval | null;
}

export interface ExperimentResults {
  /** The control variant's name (null when there are no variants). */
  control: string | null;
  confidence: number;
  variants: VariantSummary[];
  /** One per variant other than the control, in order. */
  differences: VariantDifference[];
}

export const CONFIDENCE = 0.95;
/** The normal quantile for 95% two-sided: Φ⁻¹(0.975). */
export const Z_975 = 1.959963984540054;

/**
 * The raw rows in the experiment's variant order (the first is the control), with empty rows for
 * configured variants without data, then variants found only in the ledger (renamed or removed
 * since), by name.
 */
export function alignVariants(experiment: Pick<ExperimentConfig, 'variants'>, raws: readonly VariantRaw[]): VariantRaw[] {
  const byName = new Map(raws.map((r) => [r.variant, r]));
  const configured = experiment.variants.map((v) => byName.get(v.name) ?? emptyRaw(v.name));
  const names = new Set(experiment.variants.map((v) => v.name));
  const extra = raws.filter((r) => !names.has(r.variant)).sort((a, b) => (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0));
  return [...configured, ...extra];
}

/** Per variant statistics and, for each variant but the control, its difference from the control. */
export function summarize(variants: VariantRaw[], control: VariantRaw | undefined = variants[0]): ExperimentResults {
  const summaries = variants.map(summarizeVariant);
  const differences: VariantDifference[] = [];
  if (control) {
    for (const v of variants) {
      if (v === control || v.variant === control.variant) continue;
      differences.push({
        variant: v.variant,
        control: control.variant,
        errorRate: newcombe(v.errors, v.requests, control.errors, control.requests),
        feedbackMean: newcombe(v.feedbackGood, v.feedbackGood + v.feedbackBad, control.feedbackGood, control.feedbackGood + control.feedbackBad),
        latencyMeanMs: welch(v.latencies, control.latencies),
        costPerRequestUsd: scale(welch(v.costs, control.costs), 1e-12),
      });
    }
  }
  return { control: control?.variant ?? null, confidence: CONFIDENCE, variants: summaries, differences };
}

function summarizeVariant(v: VariantRaw): VariantSummary {
  const n = v.requests;
  const feedback = v.feedbackGood + v.feedbackBad;
  return {
    variant: v.variant,
    requests: n,
    errors: v.errors,
    errorRate: n > 0 ? v.errors / n : null,
    latencyMs: distribution(v.latencies),
    streams: v.ttfts.length,
    ttftMs: distribution(v.ttfts),
    meanPromptTokens: n > 0 ? v.promptTokens / n : null,
    meanCompletionTokens: n > 0 ? v.completionTokens / n : null,
    costPico: v.costPico,
    costPerRequestUsd: n > 0 ? v.costPico / n / 1e12 : null,
    feedback: { count: feedback, good: v.feedbackGood, bad: v.feedbackBad, mean: feedback > 0 ? v.feedbackGood / feedback : null },
  };
}

/* ------------------------------------------------------------------------------------------ */
/* Statistics                                                                                   */
/* ------------------------------------------------------------------------------------------ */

export function distribution(values: readonly number[]): Distribution | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return { mean: mean(values), p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99) };
}

/** The q-quantile (0-1) of sorted values, interpolating linearly between closest ranks. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, n - 1)] as number;
  return a + (h - lo) * (b - a);
}

function mean(values: readonly number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample variance (n - 1), two-pass. */
function variance(values: readonly number[], m: number): number {
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return ss / (values.length - 1);
}

function interval(estimate: number, low: number, high: number): Interval {
  return { estimate, low, high, significant: low > 0 || high < 0 };
}

function scale(i: Interval | null, factor: number): Interval | null {
  return i && interval(i.estimate * factor, i.low * factor, i.high * factor);
}

/** Wilson score interval of x successes out of n (n > 0). */
export function wilson(x: number, n: number, z = Z_975): { low: number; high: number } {
  const p = x / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

/** Newcombe's hybrid score interval for p1 - p2 (x1/n1 minus x2/n2); null when a side is empty. */
export function newcombe(x1: number, n1: number, x2: number, n2: number, z = Z_975): Interval | null {
  if (n1 <= 0 || n2 <= 0) return null;
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const w1 = wilson(x1, n1, z);
  const w2 = wilson(x2, n2, z);
  const d = p1 - p2;
  return interval(d, d - Math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2), d + Math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2));
}

/** Welch's t-interval for mean(a) - mean(b); null when a side has fewer than 2 values. */
export function welch(a: readonly number[], b: readonly number[]): Interval | null {
  if (a.length < 2 || b.length < 2) return null;
  const m1 = mean(a);
  const m2 = mean(b);
  const q1 = variance(a, m1) / a.length;
  const q2 = variance(b, m2) / b.length;
  const d = m1 - m2;
  const se = Math.sqrt(q1 + q2);
  if (se === 0) return interval(d, d, d);
  const df = (q1 + q2) ** 2 / (q1 ** 2 / (a.length - 1) + q2 ** 2 / (b.length - 1));
  const t = tQuantile975(df);
  return interval(d, d - t * se, d + t * se);
}

/** t(0.975, df): Student's quantile for df <= 1000 (bisection on the CDF), the normal one above. */
export function tQuantile975(df: number): number {
  if (!(df > 0)) return NaN;
  if (df > 1000) return Z_975;
  // Upper tail P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2, decreasing in t; find where it is 0.025.
  let lo = Z_975;
  let hi = 1e6;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (regularizedBeta(df / (df + mid * mid), df / 2, 0.5) / 2 > 0.025) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
