/**
 * The built-in embedder: no model weights, no network, deterministic, a few microseconds per
 * question. A bag of hashed lexical features, so it measures how much wording two questions
 * share (robust to word order, inflections and small spelling differences), not what they mean:
 * a real sentence-embedding model (the `deployment` or `onnx` embedders) catches paraphrases
 * that use different words.
 *
 * Features of a text (after NFKC, lower-casing and splitting on anything that is not a letter,
 * digit or combining mark; `n't` becomes `not`):
 * - word unigrams, lightly stemmed (plural, -ing, -ed, final e);
 * - character 3-, 4- and 5-grams of each word, with `<` `>` marking its ends (inflections,
 *   compounds, typos; scripts without spaces);
 * - unordered pairs of neighbouring content words (stop words skipped), so that the same words
 *   in a different construction still score a little lower than the same phrase.
 * Han, Hiragana and Katakana characters are one word each (their "bigrams" are character pairs).
 * A text with no letter or digit (emoji only) uses its non-space symbols as words.
 *
 * Weights, per distinct word: sublinear term frequency (1 + ln tf) times an IDF-like prior that
 * needs no corpus: a short built-in list of very common English words weighs little, other words
 * by length (longer words are rarer), words with digits or that look like code identifiers a
 * little more. Every feature is hashed (MurmurHash3's finalizer over FNV-1a) into `dimensions`
 * buckets with a sign from the hash (signed feature hashing keeps inner products unbiased), and
 * the vector is L2-normalized.
 *
 * An empty or whitespace-only text has no features: its vector is all zeros, so its cosine
 * similarity with everything (itself included) is 0 and it never hits the semantic cache.
 *
 * Changing anything that moves vectors must bump VERSION (part of `id`, hence of every semantic
 * scope), so vectors of two versions are never compared.
 */
import { FNV_OFFSET, FNV_PRIME, fmix32 as fmix, fnv1a } from '../../util/hash.js';
import type { Embedder, EmbedResult } from '../types.js';
import { isStopWord, stem, tokenize } from '../words.js';

const VERSION = 'v1';
export const BUILTIN_DEFAULT_DIMENSIONS = 256;

export interface BuiltinEmbedderOptions {
  /** Vector size (hash buckets), 32..4096; default 256 (1 KiB per vector). */
  dimensions?: number;
}

/* ------------------------------------------------------------------------------------------ */
/* Weights                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Relative weight of each feature family (the vector is normalized afterwards). */
const W_WORD = 1.0;
const W_CHARS = 0.9;
const W_PAIR = 0.45;
/** Weight of a stop word (before the family weight); its character n-grams are skipped. */
const W_STOP = 0.12;
/** Weight of a common word (COMMON_WORDS: frequent in any English text, so weakly informative). */
const W_COMMON = 0.45;

/**
 * Frequent English words beyond the stop words (general verbs, adjectives, adverbs and nouns of
 * everyday English, as in any word-frequency list): an IDF-like prior without a corpus. Matched
 * by stem (use / uses / used / using).
 */
const COMMON_WORDS =
  'use make take go come see look find think want try work call ask seem feel become leave put keep ' +
  'begin start help hear play move live believe hold bring happen write provide sit stand pay meet ' +
  'include continue set learn change lead understand watch follow create speak read allow spend grow ' +
  'offer remember consider appear wait serve send expect build stay reach remain suggest pass require ' +
  'report decide describe mean say said made found gave took went came ' +
  'good new long great little old right big high different small large next early young important ' +
  'few bad able best better sure possible free full special easy clear recent certain whole real ' +
  'simple main general specific available common usual usually often always simply actually ' +
  'probably maybe currently generally especially certainly quickly easily ' +
  'people person year day part place case point example fact kind type lot question problem ' +
  'answer reason method option step process result group area world life hand system program ' +
  'information detail details form order number';
const COMMON_STEMS = new Set<string>();

/**
 * The IDF-like prior of a (non stop) word: short words are common, long ones rare; words with
 * digits (versions, codes, amounts) and identifier-like words are specific.
 */
function wordPrior(w: string, stemmed: string): number {
  let digits = false;
  for (let i = 0; i < w.length; i++) {
    const c = w.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      digits = true;
      break;
    }
  }
  const len = w.length;
  let p = len >= 7 ? 1.15 : len >= 5 ? 1.0 : len === 4 ? 0.85 : len === 3 ? 0.7 : 0.55;
  if (digits) p = Math.max(p, 1.0);
  else if (COMMON_STEMS.has(stemmed)) p = W_COMMON;
  return p;
}

for (const w of COMMON_WORDS.split(' ')) COMMON_STEMS.add(stem(w));

/* ------------------------------------------------------------------------------------------ */
/* Hashing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Seeds that keep the feature families apart (a word and a character n-gram never share a key). */
const SEED_WORD = 0x9e3779b1;
const SEED_CHARS = 0x85ebca77;
const SEED_PAIR = 0xc2b2ae3d;

interface WordInfo {
  word: string;
  /** Occurrences in the text. */
  tf: number;
  /** FNV-1a of the stem (of the word itself for a stop word), unsigned. */
  hash: number;
  prior: number;
  stop: boolean;
}

/* ------------------------------------------------------------------------------------------ */
/* The embedder                                                                                */
/* ------------------------------------------------------------------------------------------ */

export class BuiltinEmbedder implements Embedder {
  readonly id: string;
  readonly dimensions: number;
  /** Scratch accumulator, reused by every call (embedding is synchronous). */
  private readonly acc: Float64Array;

  constructor(opts: BuiltinEmbedderOptions = {}) {
    const d = opts.dimensions ?? BUILTIN_DEFAULT_DIMENSIONS;
    if (!Number.isInteger(d) || d < 32 || d > 4096) throw new RangeError(`builtin embedder: dimensions must be an integer in 32..4096, got ${d}`);
    this.dimensions = d;
    this.id = `builtin:${VERSION}:${d}`;
    this.acc = new Float64Array(d);
  }

  async embed(texts: string[], opts?: { signal?: AbortSignal }): Promise<EmbedResult> {
    opts?.signal?.throwIfAborted();
    return { vectors: texts.map((t) => this.embedOne(t)) };
  }

  async close(): Promise<void> {}

  /** The vector of one text, synchronously (unit length, or all zeros for a text with no features). */
  embedOne(text: string): Float32Array {
    const acc = this.acc;
    acc.fill(0);
    const normalized = text.normalize('NFKC').toLowerCase();
    let words = tokenize(normalized);
    if (words.length === 0) words = symbols(normalized);

    // Distinct words (first-seen order) with their counts, stems' hashes and priors.
    const distinct = new Map<string, WordInfo>();
    const sequence: WordInfo[] = [];
    for (const w of words) {
      let info = distinct.get(w);
      if (!info) {
        const stop = isStopWord(w);
        const s = stop ? w : stem(w);
        info = { word: w, tf: 0, hash: fnv1a(s, FNV_OFFSET ^ SEED_WORD), prior: stop ? W_STOP : wordPrior(w, s), stop };
        distinct.set(w, info);
      }
      info.tf++;
      sequence.push(info);
    }

    for (const info of distinct.values()) {
      const weight = (1 + Math.log(info.tf)) * info.prior;
      this.add(fmix(info.hash), W_WORD * weight);
      if (!info.stop) this.addCharGrams(info.word, W_CHARS * weight);
    }

    // Unordered pairs of neighbouring content words (by their stems' hashes).
    let prev: WordInfo | undefined;
    for (const info of sequence) {
      if (info.stop) continue;
      if (prev !== undefined && prev.hash !== info.hash) {
        const lo = Math.min(prev.hash, info.hash);
        const hi = Math.max(prev.hash, info.hash);
        this.add(fmix(Math.imul(lo ^ SEED_PAIR, FNV_PRIME) ^ hi), W_PAIR * Math.sqrt(prev.prior * info.prior));
      }
      prev = info;
    }

    let norm = 0;
    for (let i = 0; i < acc.length; i++) norm += acc[i]! * acc[i]!;
    const out = new Float32Array(acc.length);
    if (norm > 0) {
      const inv = 1 / Math.sqrt(norm);
      for (let i = 0; i < acc.length; i++) out[i] = acc[i]! * inv;
    }
    return out;
  }

  private add(h: number, w: number): void {
    const i = h % this.dimensions;
    this.acc[i]! += h & 0x80000000 ? -w : w;
  }

  /**
   * Character 3..5-grams of `<word>`, each of weight `total / sqrt(count)` so that a word's
   * n-grams together weigh about `total` whatever its length. Hashed incrementally (no substrings).
   */
  private addCharGrams(w: string, total: number): void {
    const len = w.length + 2;
    if (len < 3) return;
    // n-grams: for each start, lengths 3..5 while within the word.
    let count = 0;
    for (let n = 3; n <= 5; n++) if (len >= n) count += len - n + 1;
    const each = total / Math.sqrt(count);
    for (let start = 0; start + 3 <= len; start++) {
      let h = FNV_OFFSET ^ SEED_CHARS;
      for (let k = 0; k < 5 && start + k < len; k++) {
        const pos = start + k;
        const c = pos === 0 ? 0x3c : pos === len - 1 ? 0x3e : w.charCodeAt(pos - 1);
        h = Math.imul(h ^ c, FNV_PRIME);
        if (k >= 2) this.add(fmix(h ^ k), each);
      }
    }
  }
}

/** The non-space code points of a text with no words (emoji, symbols), as words. */
function symbols(text: string): string[] {
  const out: string[] = [];
  for (const ch of text) if (!/\s/u.test(ch)) out.push(ch);
  return out;
}
