/**
 * Verified semantic caching with a user-set error bound (after vCache: "vCache: Verified Semantic
 * Prompt Caching", ICLR 2026). A route with `cache.semantic.maxErrorRate` (δ) does not trust a
 * semantic candidate blindly: per cached entry it learns how often the entry's answer is wrong for
 * the questions it is matched with, and serves it only as often as that estimate allows.
 *
 * Per entry: n verified uses (the fresh answer was compared with the cached one), k of which
 * disagreed. The entry's error rate has a Beta posterior Beta(α, β) with
 *
 *     α = 1 + w·μ + k,   β = 1 + w·(1 − μ) + (n − k)
 *
 * where μ is the disagreement rate the route observed on its *other* entries and w their count of
 * verifications, capped at PRIOR_WEIGHT (a route whose candidates have proved right lets its new
 * entries start from there, but never counts more than PRIOR_WEIGHT observations). The estimate is
 * the posterior mean α / (α + β); its bound is the posterior's 95% quantile (one-sided upper
 * credible bound, computed exactly with the regularized incomplete beta function).
 *
 * Decision on a candidate the threshold accepts (vCache's explore/exploit rule): serve it from the
 * cache with probability s = min(1 − minRate, δ / bound), verify it otherwise. The probability of
 * serving a wrong answer per candidate is then s·ε ≤ (δ / bound)·ε ≤ δ whenever the entry's true
 * error ε is within its bound (95% credibility). New entries (bound near 1) are verified almost
 * always; entries confirmed many times are served almost always; `minRate` keeps a floor of
 * verification so drift is still seen.
 *
 * To verify is to treat the request as a miss: the upstream call it makes is the one a miss would
 * make, and the user gets the fresh answer (no added latency). Once the answer is complete the two
 * answers are compared off the response path: normalized exact match (case, whitespace and
 * punctuation ignored), else the built-in embedder's cosine of the two texts ≥ `answerSimilarity`.
 *
 * State lives in memory, per process (bounded; lost on restart, not shared between processes in
 * distributed mode: each process learns on its own traffic, which keeps each within the bound).
 */
import type { ChatCompletion } from '../providers/types.js';
import { BuiltinEmbedder } from './embedders/builtin.js';
import { regularizedBeta } from '../util/beta.js';

/** A route's verification settings (absent: not verified, today's behaviour). */
export interface VerifyPolicy {
  /** δ: the highest acceptable probability of a wrong answer per semantic candidate. */
  maxErrorRate: number;
  /** Two answers whose built-in cosine reaches this are equivalent. */
  answerSimilarity: number;
  /** Candidates verified at least this often, however trusted their entry. */
  minRate: number;
}

export const DEFAULT_ANSWER_SIMILARITY = 0.9;
export const DEFAULT_MIN_VERIFY_RATE = 0.02;
/** Observations of the route's other entries an entry's prior counts at most. */
export const PRIOR_WEIGHT = 50;
/** The credibility of the bound. */
export const BOUND_LEVEL = 0.95;
/** Characters of each answer the similarity compares (embedding is synchronous work). */
const COMPARE_CHARS = 4_000;

/* ------------------------------------------------------------------------------------------ */
/* Beta distribution                                                                           */
/* ------------------------------------------------------------------------------------------ */

/** The regularized incomplete beta function I_x(a, b): P(X ≤ x) for X ~ Beta(a, b). */
export const betaCdf = regularizedBeta;

/** The q-quantile of Beta(a, b), by bisection (1e-9 apart at most; some 30 µs). */
export function betaQuantile(q: number, a: number, b: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (betaCdf(mid, a, b) < q) lo = mid;
    else hi = mid;
  }
  return hi;
}

/* ------------------------------------------------------------------------------------------ */
/* Answer equivalence                                                                          */
/* ------------------------------------------------------------------------------------------ */

/** The text an answer says: each choice's content, or its tool calls (name and arguments). */
export function answerText(body: ChatCompletion): string {
  return body.choices
    .map((c) => c.message.content ?? (c.message.tool_calls ?? []).map((t) => `${t.function.name}(${t.function.arguments})`).join(' '))
    .join('\n');
}

/** Lower case, punctuation removed, whitespace collapsed. */
export function normalizeAnswer(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\p{P}\p{S}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

let comparer: BuiltinEmbedder | undefined;

/** Whether two answers say the same: normalized exact match, else built-in cosine ≥ `minSimilarity`. */
export function compareAnswers(cached: ChatCompletion, fresh: ChatCompletion, minSimilarity: number): { agree: boolean; similarity: number } {
  const a = normalizeAnswer(answerText(cached));
  const b = normalizeAnswer(answerText(fresh));
  if (a === b) return { agree: true, similarity: 1 };
  if (a === '' || b === '') return { agree: false, similarity: 0 };
  comparer ??= new BuiltinEmbedder();
  const va = comparer.embedOne(a.slice(0, COMPARE_CHARS));
  const vb = comparer.embedOne(b.slice(0, COMPARE_CHARS));
  let s = 0;
  for (let i = 0; i < va.length; i++) s += va[i]! * vb[i]!;
  return { agree: s >= minSimilarity, similarity: s };
}

/* ------------------------------------------------------------------------------------------ */
/* The estimate and the decision                                                               */
/* ------------------------------------------------------------------------------------------ */

interface EntryState {
  route: string;
  n: number;
  k: number;
}

interface RouteState {
  maxErrorRate: number;
  /** Semantic candidates decided (served or verified). */
  candidates: number;
  served: number;
  /** Verification calls made (their answers compared). */
  verified: number;
  /** Of those, disagreements. */
  disagreements: number;
  /** Verifications started whose answer is still to be compared. */
  pending: number;
  feedbackGood: number;
  feedbackBad: number;
  /** Σ over candidates of P(served)·estimate and P(served)·bound. */
  expectedError: number;
  expectedBound: number;
  /** Observations (verified + feedback) and disagreements (including bad feedback): the priors. */
  n: number;
  k: number;
}

export interface VerifyDecision {
  verify: boolean;
  /** The entry's posterior mean and its 95% upper bound at decision time. */
  estimate: number;
  bound: number;
  /** The probability it was served with. */
  serveProbability: number;
}

/** A route's figures, for the admin API, /metrics and the dashboard. */
export interface RouteVerificationStats {
  route: string;
  maxErrorRate: number;
  candidates: number;
  served: number;
  verified: number;
  disagreements: number;
  feedbackGood: number;
  feedbackBad: number;
  /** verified / candidates. */
  verificationRate: number;
  /** disagreements / verified (0 before the first). */
  observedDisagreement: number;
  /** Expected share of candidates answered wrongly from the cache (Σ P(served)·estimate / candidates). */
  estimatedError: number;
  /** Its upper bound (Σ P(served)·bound / candidates), ≤ maxErrorRate by construction. */
  errorBound: number;
}

export interface VerificationTrackerOptions {
  /** Entries whose state is kept (least recently used forgotten beyond). */
  maxEntries: number;
}

export class VerificationTracker {
  /** The draw that decides serve vs verify (tests inject a deterministic one: GatewayOptions.random). */
  random: () => number = Math.random;
  private readonly entries = new Map<string, EntryState>();
  private readonly routes = new Map<string, RouteState>();
  private readonly maxEntries: number;

  constructor(opts: VerificationTrackerOptions) {
    this.maxEntries = Math.max(1, opts.maxEntries);
  }

  private route(route: string, maxErrorRate: number): RouteState {
    let r = this.routes.get(route);
    if (!r) {
      r = { maxErrorRate, candidates: 0, served: 0, verified: 0, disagreements: 0, pending: 0, feedbackGood: 0, feedbackBad: 0, expectedError: 0, expectedBound: 0, n: 0, k: 0 };
      this.routes.set(route, r);
    }
    r.maxErrorRate = maxErrorRate;
    return r;
  }

  /** Declares a route (so the admin API and /metrics list it before its first candidate). */
  declare(route: string, maxErrorRate: number): void {
    this.route(route, maxErrorRate);
  }

  private entry(id: string, route: string): EntryState {
    let e = this.entries.get(id);
    if (e) {
      this.entries.delete(id); // most recently used last
    } else {
      e = { route, n: 0, k: 0 };
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(id, e);
    return e;
  }

  /** The entry's estimate and bound: Beta posterior with the route's other entries as prior (see the header). */
  estimate(id: string, route: string): { estimate: number; bound: number; n: number; k: number } {
    const e = this.entries.get(id);
    const r = this.routes.get(route);
    const n = e?.n ?? 0;
    const k = e?.k ?? 0;
    const otherN = Math.max(0, (r?.n ?? 0) - n);
    const otherK = Math.min(otherN, Math.max(0, (r?.k ?? 0) - k));
    const w = Math.min(otherN, PRIOR_WEIGHT);
    const mu = otherN > 0 ? otherK / otherN : 0;
    const alpha = 1 + w * mu + k;
    const beta = 1 + w * (1 - mu) + (n - k);
    return { estimate: alpha / (alpha + beta), bound: betaQuantile(BOUND_LEVEL, alpha, beta), n, k };
  }

  /** A candidate the threshold accepted: serve it from the cache, or verify it? */
  decide(route: string, id: string, policy: VerifyPolicy): VerifyDecision {
    const r = this.route(route, policy.maxErrorRate);
    this.entry(id, route);
    const { estimate, bound } = this.estimate(id, route);
    const serveProbability = Math.max(0, Math.min(1 - policy.minRate, bound > 0 ? policy.maxErrorRate / bound : 1));
    const verify = this.random() >= serveProbability;
    r.candidates++;
    r.expectedError += serveProbability * estimate;
    r.expectedBound += serveProbability * bound;
    if (verify) r.pending++;
    else r.served++;
    return { verify, estimate, bound, serveProbability };
  }

  /** A verification's outcome (`source: 'verify'`), or a client's verdict on a served candidate (`'feedback'`). */
  record(route: string, id: string, agree: boolean, source: 'verify' | 'feedback', maxErrorRate: number): void {
    const r = this.route(route, maxErrorRate);
    const e = this.entry(id, route);
    e.n++;
    r.n++;
    if (!agree) {
      e.k++;
      r.k++;
    }
    if (source === 'verify') {
      r.pending = Math.max(0, r.pending - 1);
      r.verified++;
      if (!agree) r.disagreements++;
    } else if (agree) r.feedbackGood++;
    else r.feedbackBad++;
  }

  /** A verification whose answer never came to be compared (upstream failed, answer not cacheable). */
  abandon(route: string): void {
    const r = this.routes.get(route);
    if (r) r.pending = Math.max(0, r.pending - 1);
  }

  /** The entry is gone (evicted, invalidated, removed). */
  forget(id: string): void {
    this.entries.delete(id);
  }

  stats(): RouteVerificationStats[] {
    return [...this.routes].map(([route, r]) => ({
      route,
      maxErrorRate: r.maxErrorRate,
      candidates: r.candidates,
      served: r.served,
      verified: r.verified,
      disagreements: r.disagreements,
      feedbackGood: r.feedbackGood,
      feedbackBad: r.feedbackBad,
      verificationRate: r.candidates > 0 ? r.verified / r.candidates : 0,
      observedDisagreement: r.verified > 0 ? r.disagreements / r.verified : 0,
      estimatedError: r.candidates > 0 ? r.expectedError / r.candidates : 0,
      errorBound: r.candidates > 0 ? r.expectedBound / r.candidates : 0,
    }));
  }
}
