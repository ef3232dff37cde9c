/**
 * Deterministic embeddings without model weights: a signed feature-hashing of words, word pairs
 * and character trigrams, L2-normalised. Texts that share words get close vectors, so a semantic
 * cache in front of the simulator behaves plausibly; unrelated texts are nearly orthogonal.
 */
import { fnv1a } from '../../util/hash.js';

const STOPWORDS = new Set(
  (
    'a an the and or but if of to in on at by for with from as is are was were be been being do does did ' +
    'i me my we our you your he she it its they them their this that these those what which who how ' +
    'can could would should will shall may might must please there here so than then too very just'
  ).split(' '),
);

const WORD_WEIGHT = 1;
const STOPWORD_WEIGHT = 0.15;
const PAIR_WEIGHT = 0.35;
const TRIGRAM_WEIGHT = 0.25;

/** Lowercased words of a text, with a crude plural/verb-ending stemming. */
export function embeddingWords(text: string): string[] {
  const raw = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return raw.map(stem);
}

function stem(word: string): string {
  if (word.length > 5 && word.endsWith('ing')) return word.slice(0, -3);
  if (word.length > 4 && word.endsWith('ed')) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss')) return word.slice(0, -1);
  return word;
}

function addFeature(vec: Float64Array, feature: string, weight: number): void {
  const h = fnv1a(feature);
  const index = h % vec.length;
  // An independent bit for the sign keeps collisions from adding up in one direction.
  const sign = fnv1a(feature, 0x9747b28c) & 1 ? 1 : -1;
  vec[index] = (vec[index] ?? 0) + sign * weight;
}

/** A unit vector of `dimensions` numbers for `text`; the same text always gives the same vector. */
export function embedText(text: string, dimensions: number): number[] {
  const vec = new Float64Array(dimensions);
  const words = embeddingWords(text);
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const stop = STOPWORDS.has(w);
    addFeature(vec, `w:${w}`, stop ? STOPWORD_WEIGHT : WORD_WEIGHT);
    if (!stop) {
      const padded = `^${w}$`;
      for (let j = 0; j + 3 <= padded.length; j++) addFeature(vec, `t:${padded.slice(j, j + 3)}`, TRIGRAM_WEIGHT);
    }
    const next = words[i + 1];
    if (next !== undefined) addFeature(vec, `p:${w} ${next}`, PAIR_WEIGHT);
  }
  let norm = 0;
  for (let i = 0; i < vec.length; i++) norm += (vec[i] as number) ** 2;
  const out = new Array<number>(dimensions);
  if (norm === 0) {
    // Empty (or symbol-only) text: a fixed unit vector rather than NaNs.
    out.fill(0);
    out[0] = 1;
    return out;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) out[i] = (vec[i] as number) * inv;
  return out;
}

/** OpenAI's `encoding_format: 'base64'`: the little-endian float32 bytes, base64-encoded. */
export function toBase64(vector: readonly number[]): string {
  const f32 = Float32Array.from(vector);
  return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');
}

/** Cosine similarity of two vectors of the same length. */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
