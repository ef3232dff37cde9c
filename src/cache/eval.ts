/**
 * Evaluating the semantic cache's decision on labelled question pairs (`tollgate cache eval`):
 * reading a pairs file, the curve over a sweep of thresholds, and the threshold that reaches a
 * precision. Pure: the caller measures each pair (src/cli/cache-eval.ts does it with the
 * configured embedder, decision and guard) and hands the measures here.
 *
 * Definitions (the same as bench/eval-cache.ts and scripts/fit-cache-decision.lib.ts):
 * - Each pair alone in its own scope: cache a, ask b; "reused" = the cache serves a's answer for
 *   b (`reusedAt`: the guard passes when it is on, then the decision's score, or the cosine
 *   similarity, reaches the threshold; in `model` mode with the built-in embedder, the cosine
 *   prefilter of that threshold too: SemanticCache.lookup).
 * - duplicates reused = reused duplicates / duplicates; wrong (all) = reused non-duplicates /
 *   non-duplicates.
 * - hardest non-duplicates: the top third of the file's non-duplicates by word Jaccard of a and b
 *   (lower-case words; cutoff = the 2/3 quantile of the file's non-duplicates, ties included).
 * - precision at 1:1 = reuse_dup / (reuse_dup + wrong_rate) (as many duplicates as
 *   non-duplicates), on all non-duplicates and on the hardest.
 */
import type { CacheDecision } from './decision.js';
import type { HitGuard } from './types.js';

export interface LabelledPair {
  /** The question cached first. */
  a: string;
  /** The question asked next. */
  b: string;
  duplicate: boolean;
}

/** Limits of a pairs file (the CLI reads it whole). */
export interface PairsLimits {
  /** Bytes of the file. */
  maxBytes: number;
  /** Pairs (non-empty lines). */
  maxPairs: number;
  /** Characters of each question (the config's `cache.semantic.maxQuestionChars`: longer ones are never matched by meaning). */
  maxQuestionChars: number;
}

export const DEFAULT_PAIRS_LIMITS: PairsLimits = { maxBytes: 32 * 1024 * 1024, maxPairs: 100_000, maxQuestionChars: 4_000 };

/** A pairs file that cannot be used; `message` names the line and the field. */
export class PairsInputError extends Error {}

export interface ParsedPairs {
  pairs: LabelledPair[];
  /** Lines without `duplicate`: taken as duplicates (positive pairs). */
  unlabelled: number;
}

/** Problems listed before giving up on a file. */
const MAX_PROBLEMS = 5;

/**
 * Parses JSONL lines `{"a": "...", "b": "...", "duplicate": true|false}` (`duplicate` left out:
 * a positive pair). Throws a PairsInputError naming each bad line (up to 5) and its field.
 */
export function parsePairs(text: string, limits: PairsLimits = DEFAULT_PAIRS_LIMITS, source = 'pairs file'): ParsedPairs {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) throw new PairsInputError(`${source}: ${bytes} bytes, over the limit of ${limits.maxBytes} (split it)`);
  const pairs: LabelledPair[] = [];
  const problems: string[] = [];
  let unlabelled = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    if (pairs.length + problems.length >= limits.maxPairs) {
      throw new PairsInputError(`${source}: more than ${limits.maxPairs} pairs (line ${i + 1}); evaluate a sample of at most ${limits.maxPairs}`);
    }
    const problem = (msg: string) => problems.push(`line ${i + 1}: ${msg}`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      problem(`not valid JSON (${(err as Error).message})`);
    }
    if (problems.length >= MAX_PROBLEMS) break;
    if (v === undefined) continue;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problem('expected an object {"a": string, "b": string, "duplicate": true|false}');
      continue;
    }
    const o = v as Record<string, unknown>;
    let ok = true;
    for (const field of ['a', 'b'] as const) {
      const s = o[field];
      if (s === undefined) problem(`field "${field}" is missing`);
      else if (typeof s !== 'string') problem(`field "${field}" must be a string, got ${kindOf(s)}`);
      else if (!s.trim()) problem(`field "${field}" is empty`);
      else if (s.length > limits.maxQuestionChars) {
        problem(`field "${field}" has ${s.length} characters, over cache.semantic.maxQuestionChars (${limits.maxQuestionChars}): such questions are never matched by meaning`);
      } else continue;
      ok = false;
    }
    const d = o['duplicate'];
    if (d !== undefined && typeof d !== 'boolean') {
      problem(`field "duplicate" must be true or false, got ${kindOf(d)}`);
      ok = false;
    }
    if (problems.length >= MAX_PROBLEMS) break;
    if (!ok) continue;
    if (d === undefined) unlabelled++;
    pairs.push({ a: o['a'] as string, b: o['b'] as string, duplicate: typeof d === 'boolean' ? d : true });
  }
  if (problems.length > 0) {
    throw new PairsInputError(`${source}: ${problems.join('\n  ')}${problems.length >= MAX_PROBLEMS ? '\n  (stopped at the first problems)' : ''}`);
  }
  if (pairs.length === 0) throw new PairsInputError(`${source}: no pairs (expected JSONL lines {"a": "...", "b": "...", "duplicate": true|false})`);
  return { pairs, unlabelled };
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 20 ? `${v.slice(0, 20)}...` : v}"`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/* ------------------------------------------ hardness ---------------------------------------- */

export function wordSet(s: string): Set<string> {
  return new Set(s.toLowerCase().normalize('NFKC').split(/[^\p{L}\p{N}]+/u).filter(Boolean));
}

export function jaccard(x: Set<string>, y: Set<string>): number {
  let inter = 0;
  for (const w of x) if (y.has(w)) inter++;
  const union = x.size + y.size - inter;
  return union ? inter / union : 0;
}

/**
 * The hardest third of the non-duplicates: word Jaccard of a and b at or above the 2/3 quantile
 * of the non-duplicates' (`cutoff`; NaN when there are none).
 */
export function hardestThird(pairs: readonly LabelledPair[]): { overlap: number[]; cutoff: number; hard: boolean[] } {
  const overlap = pairs.map((p) => jaccard(wordSet(p.a), wordSet(p.b)));
  const xs = pairs.flatMap((p, i) => (p.duplicate ? [] : [overlap[i]!])).sort((x, y) => x - y);
  const cutoff = xs.length ? xs[Math.floor((xs.length * 2) / 3)]! : Number.NaN;
  return { overlap, cutoff, hard: pairs.map((p, i) => !p.duplicate && overlap[i]! >= cutoff) };
}

/* ------------------------------------------ decision ---------------------------------------- */

/** What the cache's lookup would see for one pair (cache a, ask b). */
export interface PairMeasure {
  /** Cosine similarity of the two questions under the configured embedder (NaN when not computed: `model` mode with another embedder, where it decides nothing). */
  similarity: number;
  /** The guard's refusal (only when `cache.semantic.guard` is on): final whatever the score. */
  guardReason?: string;
  /** The decision's score (`model` mode). */
  score?: number;
}

export type DecisionMode = 'model' | 'similarity';

export interface Judge {
  mode: DecisionMode;
  /**
   * `model` mode with the built-in embedder (`builtin:v1:256`): the cosine below which a lookup
   * skips a candidate at a threshold (CacheDecision.minCosineAt). Undefined: no prefilter.
   */
  minCosineAt?: (threshold: number) => number;
}

/**
 * Measures each pair as SemanticCache.lookup examines a candidate: the guard (when on) checks b
 * against a; the decision (`model` mode) scores (query b, cached a), given the built-in cosine when
 * `similarities` are the built-in embedder's (`builtinSimilarity`), else computing its own.
 * `similarities[i]`: the configured embedder's cosine of a and b (NaN when not computed).
 */
export function measurePairs(
  pairs: readonly LabelledPair[],
  similarities: readonly number[],
  opts: { guard?: HitGuard | undefined; decision?: Pick<CacheDecision, 'decide'> | undefined; builtinSimilarity: boolean },
): PairMeasure[] {
  return pairs.map((p, i) => {
    const m: PairMeasure = { similarity: similarities[i]! };
    const verdict = opts.guard?.check(p.b, p.a);
    if (verdict && !verdict.ok) m.guardReason = verdict.reason;
    if (opts.decision) m.score = opts.decision.decide(p.b, p.a, opts.builtinSimilarity ? similarities[i] : undefined).score;
    return m;
  });
}

/** Whether the cache serves a's answer for b at `threshold` (the rule of SemanticCache.lookup for an entry alone in its scope, without learned floors). */
export function reusedAt(m: PairMeasure, threshold: number, judge: Judge): boolean {
  if (m.guardReason !== undefined) return false;
  if (judge.mode === 'similarity') return m.similarity >= threshold;
  if (judge.minCosineAt && m.similarity < judge.minCosineAt(threshold)) return false;
  return (m.score ?? 0) >= threshold;
}

/* ------------------------------------------- curve ------------------------------------------ */

/** Thresholds 0.01 .. 0.99 (and `extra` ones, e.g. the configured threshold), sorted. */
export function sweep(extra: number[] = []): number[] {
  const out = new Set<number>();
  for (let i = 1; i <= 99; i++) out.add(i / 100);
  for (const t of extra) out.add(Math.round(t * 10_000) / 10_000);
  return [...out].sort((x, y) => x - y);
}

export interface CurvePoint {
  threshold: number;
  /** Reused duplicates (count) and their share of the duplicates. */
  reusedDuplicates: number;
  reuseDup: number;
  /** Reused non-duplicates (count) and their share of the non-duplicates. */
  wrongAllCount: number;
  wrongAll: number;
  /** The same on the hardest third of the non-duplicates. */
  wrongHardCount: number;
  wrongHard: number;
  /** reuseDup / (reuseDup + wrong) at a 1:1 mix; NaN when nothing is reused (or a class is missing). */
  precisionAll: number;
  precisionHard: number;
}

export interface Counts {
  pairs: number;
  duplicates: number;
  nonDuplicates: number;
  hardest: number;
}

export function countsOf(pairs: readonly LabelledPair[], hard: readonly boolean[]): Counts {
  const duplicates = pairs.filter((p) => p.duplicate).length;
  return { pairs: pairs.length, duplicates, nonDuplicates: pairs.length - duplicates, hardest: hard.filter(Boolean).length };
}

export function curve(pairs: readonly LabelledPair[], measures: readonly PairMeasure[], hard: readonly boolean[], judge: Judge, thresholds: number[] = sweep()): CurvePoint[] {
  const n = countsOf(pairs, hard);
  const precision = (reuse: number, wrong: number, haveNeg: boolean) => (n.duplicates === 0 || !haveNeg || reuse + wrong === 0 ? Number.NaN : reuse / (reuse + wrong));
  return thresholds.map((t) => {
    let rd = 0;
    let rn = 0;
    let rh = 0;
    for (let i = 0; i < pairs.length; i++) {
      if (!reusedAt(measures[i]!, t, judge)) continue;
      if (pairs[i]!.duplicate) rd++;
      else {
        rn++;
        if (hard[i]) rh++;
      }
    }
    const reuseDup = n.duplicates ? rd / n.duplicates : 0;
    const wrongAll = n.nonDuplicates ? rn / n.nonDuplicates : 0;
    const wrongHard = n.hardest ? rh / n.hardest : 0;
    return {
      threshold: t,
      reusedDuplicates: rd,
      reuseDup,
      wrongAllCount: rn,
      wrongAll,
      wrongHardCount: rh,
      wrongHard,
      precisionAll: precision(reuseDup, wrongAll, n.nonDuplicates > 0),
      precisionHard: precision(reuseDup, wrongHard, n.hardest > 0),
    };
  });
}

/* ------------------------------------------ target ------------------------------------------ */

export interface TargetResult {
  precision: number;
  on: 'all' | 'hardest';
  /** The lowest threshold of the sweep whose precision reaches the target (with some reuse). */
  point?: CurvePoint;
  /** Not reached: the point with the highest precision (most reuse among equals). */
  best?: CurvePoint;
  /** Higher thresholds of the sweep where the precision falls below the target again (small samples: a noisy curve). */
  dipsAbove: number[];
}

/** The lowest threshold whose precision at 1:1 (on all non-duplicates, or the hardest) is >= `target`. */
export function thresholdFor(points: readonly CurvePoint[], target: number, on: 'all' | 'hardest' = 'all'): TargetResult {
  const prec = (p: CurvePoint) => (on === 'all' ? p.precisionAll : p.precisionHard);
  const sorted = [...points].sort((x, y) => x.threshold - y.threshold);
  const point = sorted.find((p) => p.reusedDuplicates > 0 && prec(p) >= target);
  if (point) {
    const dipsAbove = sorted.filter((p) => p.threshold > point.threshold && !Number.isNaN(prec(p)) && prec(p) < target).map((p) => p.threshold);
    return { precision: target, on, point, dipsAbove };
  }
  let best: CurvePoint | undefined;
  for (const p of sorted) {
    if (Number.isNaN(prec(p))) continue;
    if (!best || prec(p) > prec(best) || (prec(p) === prec(best) && p.reuseDup > best.reuseDup)) best = p;
  }
  return { precision: target, on, ...(best ? { best } : {}), dipsAbove: [] };
}
