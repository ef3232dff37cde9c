/**
 * The built-in complexity classifier: a score in [0, 1] from a request's features (features.ts),
 * mapped to one of the route's tiers (cheapest first).
 *
 * The score is a sum of signals, clamped to [0, 1]:
 *
 * | signal | adds | why |
 * | --- | --- | --- |
 * | primary signals: code, math, asks reasoning, tools | 1st 0.34, 2nd +0.26, 3rd +0.20, 4th +0.15 | each is a kind of work where small models fall short; one makes a request "medium", two make it "large" |
 * | length of the prompt (estimated tokens) | 0 up to 30 tokens, 0.33 at 80 (log), then slowly up to 0.50 at 2,000 | a short instruction is a simple ask; 80+ tokens carry pasted material or many requirements |
 * | conversation depth (user turns beyond the first) | 0.04 each, at most 0.12 | later turns of a long exchange build on earlier context |
 * | asks for structure (or JSON mode) | 0.12 | a shape to follow: helps a borderline request up, never decides alone |
 * | images | 0.10 | vision input (small vision models handle simple questions) |
 * | max_tokens >= 2,000 / >= 4,000 | 0.10 / 0.20 | a long answer was asked for |
 * | max_tokens <= 16 | -0.20 | a one-word answer (a label, yes/no) |
 *
 * So with three tiers: a short plain question (no signal, < 30 tokens) scores ~0 (small); one
 * primary signal, or a paragraph of pasted text, lands in the middle (medium); two primary
 * signals (code + reasoning: "debug this", math + reasoning: "prove that"), or one with a long
 * prompt (a stack trace, a contract to analyze, an agent's tool results), land at the top
 * (large). The primary signals are sub-additive because they overlap ("prove" is both math and
 * reasoning) and the second one adds less information than the first.
 *
 * The tier is the score's slice of [0, 1]: with N tiers, cut points at 1/N, 2/N... by default
 * (3 tiers: < 0.333 the first, < 0.667 the second, else the third), or the `cutPoints` given.
 * With one tier, always 0.
 *
 * The weights follow what each signal means. They were checked, and the length knee placed,
 * against the development part of test/fixtures/routing-prompts.jsonl; its held-out part,
 * written after the weights were frozen, measures how that generalises (classifier.test.ts).
 * Known blind spots (the features cannot see them): short writing tasks ("write an email to my
 * landlord") look like short questions and go one tier down; short famous proofs and short
 * "explain X vs Y" questions about hard topics sit on the medium/large border.
 */
import type { Classification, Classifier, RequestFeatures } from './types.js';

export interface BuiltinClassifierOptions {
  /**
   * Score thresholds between tiers, ascending, in (0, 1): `cutPoints[i]` is the lowest score of
   * tier i + 1. Used when the route has `cutPoints.length + 1` tiers; other tier counts split
   * [0, 1] evenly.
   */
  cutPoints?: number[];
}

/** The weights of the score (see the module comment). */
export const WEIGHTS = {
  /** Length: nothing up to `lengthFloorTokens`, `lengthKnee` at `lengthKneeTokens` (log), then slowly up to `lengthMax` at `lengthCeilTokens`. */
  lengthFloorTokens: 30,
  lengthKneeTokens: 80,
  lengthKnee: 0.33,
  lengthCeilTokens: 2000,
  lengthMax: 0.5,
  perExtraTurn: 0.04,
  depthMax: 0.12,
  /** What the 1st, 2nd, 3rd and 4th primary signal (code, math, reasoning, tools) add. */
  primary: [0.34, 0.26, 0.2, 0.15],
  structure: 0.12,
  images: 0.1,
  longAnswer: 0.1,
  veryLongAnswer: 0.2,
  tinyAnswer: -0.2,
} as const;

const LOG_LOW = Math.log(WEIGHTS.lengthKneeTokens / WEIGHTS.lengthFloorTokens);
const LOG_HIGH = Math.log(WEIGHTS.lengthCeilTokens / WEIGHTS.lengthKneeTokens);
/** Cumulative score of 0..4 primary signals. */
const PRIMARY_SUM = [0, 0.34, 0.6, 0.8, 0.95];

// Reasons are shared constant strings: no formatting per request.
const REASON = {
  long: 'long prompt',
  mediumLength: 'medium-length prompt',
  deep: 'deep conversation',
  structure: 'asks structure',
  images: 'images',
  longAnswer: 'long answer requested',
  tinyAnswer: 'tiny answer requested',
} as const;

/** The primary signals, in the order their reasons are given. */
const PRIMARIES: ReadonlyArray<readonly [keyof RequestFeatures, string]> = [
  ['hasCode', 'code'],
  ['hasMath', 'math'],
  ['asksReasoning', 'asks reasoning'],
  ['hasTools', 'tools'],
];

/** What the length of a prompt adds to the score (estimated tokens -> [0, lengthMax]). */
export function lengthScore(tokens: number): number {
  const w = WEIGHTS;
  if (tokens <= w.lengthFloorTokens) return 0;
  if (tokens < w.lengthKneeTokens) return (w.lengthKnee * Math.log(tokens / w.lengthFloorTokens)) / LOG_LOW;
  if (tokens >= w.lengthCeilTokens) return w.lengthMax;
  return w.lengthKnee + ((w.lengthMax - w.lengthKnee) * Math.log(tokens / w.lengthKneeTokens)) / LOG_HIGH;
}

/** The score in [0, 1] of a request's features, pushing the signals that weighed into `reasons`. */
export function complexityScore(f: RequestFeatures, reasons?: string[]): number {
  const w = WEIGHTS;
  let s = lengthScore(f.promptTokens);
  if (reasons && s >= 0.15) reasons.push(s >= w.lengthKnee ? REASON.long : REASON.mediumLength);
  if (f.userTurns > 1) {
    const d = Math.min(w.depthMax, (f.userTurns - 1) * w.perExtraTurn);
    s += d;
    if (reasons && d >= 0.08) reasons.push(REASON.deep);
  }
  let primaries = 0;
  for (const [signal, reason] of PRIMARIES) {
    if (f[signal] === true) {
      primaries++;
      reasons?.push(reason);
    }
  }
  s += PRIMARY_SUM[primaries] as number;
  if (f.asksStructure || f.jsonMode) {
    s += w.structure;
    reasons?.push(REASON.structure);
  }
  if (f.hasImages) {
    s += w.images;
    reasons?.push(REASON.images);
  }
  const max = f.maxTokens;
  if (max !== null) {
    if (max >= 4000) {
      s += w.veryLongAnswer;
      reasons?.push(REASON.longAnswer);
    } else if (max >= 2000) {
      s += w.longAnswer;
      reasons?.push(REASON.longAnswer);
    } else if (max <= 16) {
      s += w.tinyAnswer;
      reasons?.push(REASON.tinyAnswer);
    }
  }
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

/** The tier of `score` among `tiers` tiers, evenly split or by `cutPoints` (length tiers - 1). */
export function tierOf(score: number, tiers: number, cutPoints?: readonly number[]): number {
  if (tiers <= 1) return 0;
  if (cutPoints && cutPoints.length === tiers - 1) {
    let t = 0;
    while (t < cutPoints.length && score >= (cutPoints[t] as number)) t++;
    return t;
  }
  const t = Math.floor(score * tiers);
  return t >= tiers ? tiers - 1 : t;
}

/** The complexity classifier (config `classifier: builtin`). */
export class BuiltinClassifier implements Classifier {
  readonly name = 'builtin';
  private readonly cutPoints: readonly number[] | undefined;

  constructor(options: BuiltinClassifierOptions = {}) {
    const cuts = options.cutPoints;
    if (cuts !== undefined) {
      for (let i = 0; i < cuts.length; i++) {
        const c = cuts[i] as number;
        if (!(c > 0 && c < 1)) throw new Error(`cutPoints.${i}: must be in (0, 1), got ${c}`);
        if (i > 0 && c <= (cuts[i - 1] as number)) throw new Error(`cutPoints.${i}: must be greater than the previous cut point`);
      }
      this.cutPoints = [...cuts];
    }
  }

  classify(features: RequestFeatures, tiers: number): Classification {
    const reasons: string[] = [];
    const score = complexityScore(features, reasons);
    return { tier: tierOf(score, tiers, this.cutPoints), score, reasons };
  }
}

/** No classification (config `classifier: none`): always the first (cheapest) tier; rules decide the rest. */
export class FixedClassifier implements Classifier {
  readonly name = 'none';

  classify(_features: RequestFeatures, _tiers: number): Classification {
    return { tier: 0, score: 0, reasons: [] };
  }
}
