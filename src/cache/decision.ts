/**
 * The semantic cache's decision: may the answer cached for `cached` answer `query`? A score in
 * [0, 1] (an estimate of the probability that a person would call the two questions duplicates)
 * from several signals, compared with the route's threshold (`cache.semantic.threshold`).
 *
 * Why not a cosine threshold alone: the built-in embedder measures shared wording, and questions
 * that share most of their words are exactly the near-misses that need another answer ("How do
 * you delete a question on Quora?" / "How do you write a question on Quora?": cosine 0.93). The
 * decision looks at what the two questions do NOT share, and how much it matters:
 *
 * - the built-in embedder's cosine similarity of the two texts;
 * - the content words (not stop words) of each side with no match on the other side (same stem,
 *   or a long common prefix: utilize / utilization), weighted by IDF: their share of each side,
 *   the largest one, how many, and whether the first content word (often the verb: delete /
 *   write) is among them;
 * - the false-hit guard's findings (guard.ts): different numbers, names, negations, opposites;
 * - the question type (what / how / why / which / who / when / where / yes-no);
 * - who it is about and how it asks: the persons of the pronouns (I / you / they), the modal
 *   verbs (should / would / will...; not can: "how can I" asks what "how do I" asks), the
 *   other function words on one side only;
 * - length difference, word order (longest common subsequence of the content words), overlap of
 *   word bigrams, and of all words.
 *
 * The model is a small gradient-boosted tree ensemble over these features, fitted on labelled
 * question pairs by `npm run fit:cache-decision` (scripts/fit-cache-decision.ts), which writes
 * decision-model.ts (the trees, the IDF table, the evaluated thresholds) deterministically. The
 * IDF table comes from the same training questions (stems seen in at least a few of them; other
 * words count as rare). Changing the features means refitting: the model names FEATURE_VERSION.
 *
 * Cost: about 50 µs per (query, candidate) when both are new (bench/eval-cache.ts measures it);
 * analyses are memoized (the last 256 texts), so a lookup that examines several candidates
 * analyses its query once, and hot entries once.
 */
import { BuiltinEmbedder } from './embedders/builtin.js';
import { DefaultHitGuard } from './guard.js';
import { DECISION_MODEL } from './decision-model.js';
import type { HitGuard } from './types.js';
import { boundedMemo } from '../util/memo.js';
import { isStopWord, sameStem, stem, tokenize } from './words.js';

/** Bumped whenever the features change (the shipped model must have been fitted on the same). */
export const FEATURE_VERSION = 2;

/** The features, in order (names kept in the model file, checked at load). */
export const FEATURE_NAMES = [
  'cosine',
  'unmatchedShareQuery',
  'unmatchedShareCached',
  'maxUnmatchedIdf',
  'unmatchedCountQuery',
  'unmatchedCountCached',
  'guardNumbers',
  'guardNegation',
  'guardNames',
  'guardOpposites',
  'questionTypeDiffers',
  'lengthDifference',
  'orderLcs',
  'bigramOverlap',
  'minContentWords',
  'wordJaccard',
  'firstContentUnmatched',
  'unmatchedIdfSum',
  'personDiffers',
  'modalDiffers',
  'functionWordsDiffer',
  'tokenLengthRatio',
] as const;

export const FEATURE_COUNT = FEATURE_NAMES.length;

/** Tree ensemble of full binary trees of depth `depth`, stored in heap order. */
export interface DecisionModel {
  version: number;
  featureVersion: number;
  features: readonly string[];
  depth: number;
  /** Margin before the trees. */
  base: number;
  /** Per tree: 2^depth - 1 internal nodes (feature index, threshold: x[f] <= t goes left), 2^depth leaves. */
  trees: ReadonlyArray<{ f: readonly number[]; t: readonly number[]; leaf: readonly number[] }>;
  /** "stem idf*10" entries separated by spaces. */
  idf: string;
  /** IDF of a stem not in the table (rare). */
  idfUnknown: number;
  /** The fitted default score threshold, and the relaxed one of the last-resort fallback. */
  threshold: number;
  staleThreshold: number;
  /**
   * Built-in embedder cosine below which the score never reaches the thresholds in practice
   * (lookups skip such candidates without reading them from the store).
   */
  minCosine: number;
  /**
   * The same per score threshold: prefilter[floor(100 * threshold)] (101 entries; a lower
   * threshold never has a higher prefilter), so a lookup at the default skips more candidates.
   */
  prefilter: readonly number[];
}

/** Question words and auxiliaries that open a question: its type. */
const QUESTION_WORDS = new Set([
  'what', 'how', 'why', 'which', 'who', 'whom', 'whose', 'when', 'where', 'whether',
  'can', 'could', 'is', 'are', 'was', 'were', 'do', 'does', 'did', 'should', 'would', 'will', 'shall',
  'may', 'might', 'must', 'has', 'have', 'had', 'am',
]);
/** Auxiliaries that ask the same thing (yes/no questions): one type. */
const YES_NO = new Set(['can', 'could', 'is', 'are', 'was', 'were', 'do', 'does', 'did', 'would', 'will', 'shall', 'may', 'might', 'must', 'has', 'have', 'had', 'am', 'should']);

/** Grammatical person of pronouns and possessives (who the question is about): 1, 2, 3. */
const PERSON = new Map<string, number>([
  ...['i', 'me', 'my', 'mine', 'myself', 'we', 'us', 'our', 'ours', 'ourselves'].map((w) => [w, 1] as const),
  ...['you', 'your', 'yours', 'yourself', 'yourselves', 'u', 'ur'].map((w) => [w, 2] as const),
  ...['he', 'him', 'his', 'himself', 'she', 'her', 'hers', 'herself', 'they', 'them', 'their', 'theirs', 'themselves'].map((w) => [w, 3] as const),
]);
/**
 * Modal verbs that change what is asked (should / would / will / must...). "can" and "could" are
 * left out: "How can I X?" asks what "How do I X?" asks.
 */
const MODALS = new Set(['should', 'would', 'will', 'shall', 'may', 'might', 'must']);
/** Function words whose presence on one side only says little (articles, question fillers). */
const WEAK_FUNCTION_WORDS = new Set(['a', 'an', 'the', 'why', 'what', 'how', 'is', 'are', 'do', 'does', 'can', 'could', 'some', 'any', 'that', 'which']);

interface TextAnalysis {
  /** Stems of every word, in order. */
  stems: string[];
  /** Content words' stems, distinct, in order of first appearance. */
  content: string[];
  /** The question's type: the first question word ('yes-no' for an auxiliary), or ''. */
  qtype: string;
  words: Set<string>;
  bigrams: Set<string>;
  /** Bit set of the persons used (1 << person). */
  persons: number;
  /** Modal verbs used, sorted and joined. */
  modals: string;
  /** Function words (stop words that are not weak), for the symmetric difference. */
  functionWords: Set<string>;
  tokens: number;
}

function analyze(text: string): TextAnalysis {
  const tokens = tokenize(text.normalize('NFKC').toLowerCase());
  const stems: string[] = [];
  const content: string[] = [];
  const words = new Set<string>();
  let qtype = '';
  let persons = 0;
  const modals = new Set<string>();
  const functionWords = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const w = tokens[i]!;
    const stop = isStopWord(w);
    const person = PERSON.get(w);
    if (person) persons |= 1 << person;
    if (MODALS.has(w)) modals.add(w);
    if ((stop || person) && !WEAK_FUNCTION_WORDS.has(w)) functionWords.add(w);
    const s = stop ? w : stem(w);
    stems.push(s);
    words.add(w);
    if (!qtype && i < 4 && QUESTION_WORDS.has(w)) qtype = YES_NO.has(w) ? 'yes-no' : w;
    if (!stop && w.length >= 2 && /\p{L}/u.test(w) && w !== 'not' && !content.includes(s)) content.push(s);
  }
  const bigrams = new Set<string>();
  for (let i = 1; i < stems.length; i++) bigrams.add(`${stems[i - 1]} ${stems[i]}`);
  return { stems, content, qtype, words, bigrams, persons, modals: [...modals].sort().join(' '), functionWords, tokens: tokens.length };
}

/** The last analyses, a lookup's query and the candidates of recent lookups (hot entries are analysed once). */
const analyzeMemo = boundedMemo<TextAnalysis>(analyze, 256);

function lcs(x: string[], y: string[]): number {
  if (!x.length || !y.length) return 0;
  const prev = new Array<number>(y.length + 1).fill(0);
  const cur = new Array<number>(y.length + 1).fill(0);
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      cur[j] = sameStem(x[i - 1]!, y[j - 1]!) ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    for (let j = 0; j <= y.length; j++) prev[j] = cur[j]!;
  }
  return prev[y.length]!;
}

function jaccard(x: Set<string>, y: Set<string>): number {
  let inter = 0;
  for (const w of x) if (y.has(w)) inter++;
  const union = x.size + y.size - inter;
  return union ? inter / union : 0;
}

export type IdfTable = { get(stem: string): number | undefined; unknown: number };

export function parseIdf(table: string, unknown: number): IdfTable {
  const map = new Map<string, number>();
  for (const entry of table.split(' ')) {
    const k = entry.lastIndexOf(':');
    if (k > 0) map.set(entry.slice(0, k), Number(entry.slice(k + 1)) / 10);
  }
  return { get: (s) => map.get(s), unknown };
}

/** Guard findings as features: the category of the guard's first refusal reason. */
function guardFindings(guard: HitGuard, query: string, cached: string): [number, number, number, number] {
  const v = guard.check(query, cached);
  if (v.ok) return [0, 0, 0, 0];
  const r = v.reason;
  if (r.startsWith('numbers')) return [1, 0, 0, 0];
  if (r.startsWith('negation')) return [0, 1, 0, 0];
  if (r.startsWith('names') || r.startsWith('quoted')) return [0, 0, 1, 0];
  if (r.startsWith('opposite')) return [0, 0, 0, 1];
  return [0, 0, 0, 0];
}

/** Of `x`'s content stems: their total IDF weight, the weight and number of those `y` lacks, and the heaviest one `y` lacks. */
function unmatched(x: string[], y: string[], idfOf: (s: string) => number): { total: number; missing: number; count: number; max: number } {
  let total = 0;
  let missing = 0;
  let count = 0;
  let max = 0;
  for (const s of x) {
    const w = idfOf(s);
    total += w;
    if (!y.some((o) => sameStem(s, o))) {
      missing += w;
      count++;
      if (w > max) max = w;
    }
  }
  return { total, missing, count, max };
}

/**
 * The features of (query, cached question, built-in cosine similarity of the two), in
 * FEATURE_NAMES order. Exported for the fitting script and the evaluation.
 */
export function decisionFeatures(query: string, cached: string, cosine: number, idf: IdfTable, guard: HitGuard, out: Float64Array = new Float64Array(FEATURE_COUNT)): Float64Array {
  const q = analyzeMemo(query);
  const c = analyzeMemo(cached);
  const idfOf = (s: string) => idf.get(s) ?? idf.unknown;
  const uq = unmatched(q.content, c.content, idfOf);
  const uc = unmatched(c.content, q.content, idfOf);
  const g = guardFindings(guard, query, cached);
  const nq = q.content.length;
  const nc = c.content.length;
  const firstQ = q.content[0];
  const firstC = c.content[0];
  const firstUnmatched =
    (firstQ !== undefined && !c.content.some((x) => sameStem(firstQ, x))) || (firstC !== undefined && !q.content.some((x) => sameStem(firstC, x))) ? 1 : 0;
  out[0] = cosine;
  out[1] = uq.total > 0 ? uq.missing / uq.total : 0;
  out[2] = uc.total > 0 ? uc.missing / uc.total : 0;
  out[3] = Math.max(uq.max, uc.max);
  out[4] = Math.min(uq.count, 8);
  out[5] = Math.min(uc.count, 8);
  out[6] = g[0];
  out[7] = g[1];
  out[8] = g[2];
  out[9] = g[3];
  out[10] = q.qtype === c.qtype ? 0 : 1;
  out[11] = Math.max(nq, nc) > 0 ? Math.abs(nq - nc) / Math.max(nq, nc) : 0;
  out[12] = Math.max(nq, nc) > 0 ? lcs(q.content, c.content) / Math.max(nq, nc) : 1;
  out[13] = jaccard(q.bigrams, c.bigrams);
  out[14] = Math.min(nq, nc, 12);
  out[15] = jaccard(q.words, c.words);
  out[16] = firstUnmatched;
  out[17] = Math.min(uq.missing + uc.missing, 40);
  out[18] = q.persons === c.persons ? 0 : 1;
  out[19] = q.modals === c.modals ? 0 : 1;
  let fd = 0;
  for (const w of q.functionWords) if (!c.functionWords.has(w)) fd++;
  for (const w of c.functionWords) if (!q.functionWords.has(w)) fd++;
  out[20] = Math.min(fd, 6);
  out[21] = Math.max(q.tokens, c.tokens) > 0 ? Math.min(q.tokens, c.tokens) / Math.max(q.tokens, c.tokens) : 1;
  return out;
}

/** The model's score (probability of a duplicate) for a feature vector. */
export function scoreFeatures(model: DecisionModel, x: ArrayLike<number>): number {
  let margin = model.base;
  const internal = (1 << model.depth) - 1;
  for (const tree of model.trees) {
    let node = 0;
    while (node < internal) node = x[tree.f[node]!]! <= tree.t[node]! ? 2 * node + 1 : 2 * node + 2;
    margin += tree.leaf[node - internal]!;
  }
  return 1 / (1 + Math.exp(-margin));
}

export interface DecisionResult {
  score: number;
  /** The guard's refusal reason, when it found one (a feature of the score; with `cache.semantic.guard` on, SemanticCache refuses such a candidate anyway). */
  guardReason?: string;
}

/**
 * The decision for the semantic cache: a fitted model (the shipped one by default), its IDF
 * table, the guard, and a built-in embedder for the cosine feature when the configured embedder
 * is another one (its similarity is on another scale).
 */
export class CacheDecision {
  readonly model: DecisionModel;
  private readonly idf: IdfTable;
  private readonly guard: HitGuard;
  private readonly embedder = new BuiltinEmbedder();
  private readonly x = new Float64Array(FEATURE_COUNT);

  constructor(model: DecisionModel = DECISION_MODEL, guard: HitGuard = new DefaultHitGuard()) {
    checkModel(model);
    this.model = model;
    this.idf = parseIdf(model.idf, model.idfUnknown);
    this.guard = guard;
  }

  /** The fitted default threshold of the score. */
  get threshold(): number {
    return this.model.threshold;
  }

  get staleThreshold(): number {
    return this.model.staleThreshold;
  }

  /** The built-in embedder's cosine similarity below which a candidate need not be examined (at the stale threshold). */
  get minCosine(): number {
    return this.model.minCosine;
  }

  /** The same for a score threshold: below it, no pair of the fitting data reached `threshold` (but for 0.5% of them). */
  minCosineAt(threshold: number): number {
    const k = Math.min(100, Math.max(0, Math.floor(threshold * 100 + 1e-9)));
    return Math.min(this.model.prefilter[k] ?? 0, 0.95); // an identical question (cosine 1 up to rounding) is always examined
  }

  /**
   * The score of serving `cached`'s answer for `query`. `builtinCosine`: their similarity under
   * the built-in embedder (`builtin:v1:256`) when the caller has it; computed otherwise.
   */
  decide(query: string, cached: string, builtinCosine?: number): DecisionResult {
    if (query === cached) return { score: 1 };
    const cos = builtinCosine ?? this.cosine(query, cached);
    const x = decisionFeatures(query, cached, cos, this.idf, this.guard, this.x);
    const score = scoreFeatures(this.model, x);
    if (x[6] || x[7] || x[8] || x[9]) {
      const v = this.guard.check(query, cached);
      if (!v.ok) return { score, guardReason: v.reason };
    }
    return { score };
  }

  private cosine(a: string, b: string): number {
    const va = this.vectorOf(a);
    const vb = this.vectorOf(b);
    let s = 0;
    for (let i = 0; i < va.length; i++) s += va[i]! * vb[i]!;
    return s;
  }

  private readonly vectorOf = boundedMemo<Float32Array>((text) => this.embedder.embedOne(text), 256);
}

/** The built-in embedder's id whose similarities are the model's cosine feature as they are. */
export const DECISION_EMBEDDER_ID = new BuiltinEmbedder().id;

export function checkModel(model: DecisionModel): void {
  if (model.featureVersion !== FEATURE_VERSION) throw new Error(`cache decision model: fitted on features v${model.featureVersion}, this code computes v${FEATURE_VERSION} (run npm run fit:cache-decision)`);
  if (model.features.length !== FEATURE_COUNT || model.features.some((f, i) => f !== FEATURE_NAMES[i])) throw new Error('cache decision model: its feature list differs from this code (run npm run fit:cache-decision)');
  if (model.prefilter.length !== 101) throw new Error('cache decision model: its prefilter table has the wrong shape (run npm run fit:cache-decision)');
  const internal = (1 << model.depth) - 1;
  for (const t of model.trees) {
    if (t.f.length !== internal || t.t.length !== internal || t.leaf.length !== internal + 1) throw new Error('cache decision model: a tree has the wrong shape');
    if (t.f.some((f) => f < 0 || f >= FEATURE_COUNT)) throw new Error('cache decision model: a tree uses an unknown feature');
  }
}
