/**
 * Cheap features of a request's prompt, shared by the drift and abuse detectors: the text the
 * end user wrote, its prompt token count (both read as `ctx.prompt`, worked out once per request
 * by src/pipeline/context.ts), its script mix and a near-duplicate fingerprint (SimHash). Every
 * function is O(text length) with a fixed cap, allocation-light, and pure.
 */
import { countEmbeddingInput, countPromptTokens } from '../metering/tokenizer.js';
import type { ChatMessage, Usage } from '../providers/types.js';
import type { OperationRequest, RequestContext } from '../pipeline/context.js';
import { fmix32 as fmix } from '../util/hash.js';

/** The scripts a prompt's letters are sorted into (the order is the bucket index). */
export const SCRIPTS = [
  'latin',
  'cyrillic',
  'greek',
  'arabic',
  'hebrew',
  'devanagari',
  'han',
  'kana',
  'hangul',
  'thai',
  'other',
] as const;
export type Script = (typeof SCRIPTS)[number];

/** Characters of a prompt looked at for its script mix and fingerprint (the rest is not read). */
export const MAX_ANALYSED_CHARS = 4_096;

/** Prompt-length buckets: bucket i holds token counts n with floor(log2(n + 1)) = i (the last one everything above). */
export const LENGTH_BUCKETS = 18;

export function lengthBucket(tokens: number): number {
  const n = Math.max(0, Math.floor(tokens));
  return Math.min(LENGTH_BUCKETS - 1, 31 - Math.clz32(n + 1));
}

function contentText(m: ChatMessage): string {
  if (typeof m.content === 'string') return m.content;
  if (!Array.isArray(m.content)) return '';
  let text = '';
  for (const part of m.content) if (part.type === 'text' && typeof part.text === 'string') text += part.text;
  return text;
}

/**
 * The text the end user wrote: a chat's last user message (the cache embeds the same text, so
 * its vector can be reused), an embedding request's string input(s). '' when there is none.
 */
export function promptText(ctx: OperationRequest): string {
  if (ctx.operation === 'embeddings') {
    const input = ctx.body.input;
    if (typeof input === 'string') return input;
    let text = '';
    for (const item of input) {
      if (typeof item !== 'string') continue;
      text += (text ? '\n' : '') + item;
      if (text.length >= MAX_ANALYSED_CHARS) break;
    }
    return text;
  }
  const messages = ctx.body.messages;
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role === 'user') return contentText(m);
  }
  return '';
}

/** Characters an observer counts with the tokenizer (the rest by bytes): bounded work after each request. */
const OBSERVED_EXACT_CHARS = 16_384;

/**
 * The request's prompt tokens: upstream's usage when there is one, else admission's estimate,
 * else counted with the tokenizer when it is loaded (bounded: the first 16K characters, the rest
 * by bytes), else estimated from characters (~4 per token).
 */
export function promptTokens(ctx: OperationRequest & { usage?: Usage | undefined; admission?: RequestContext['admission'] }): number {
  if (ctx.usage) return ctx.usage.prompt_tokens;
  if (ctx.admission?.promptTokens !== undefined) return ctx.admission.promptTokens;
  try {
    if (ctx.operation === 'embeddings') return countEmbeddingInput(ctx.body.input, OBSERVED_EXACT_CHARS);
    return countPromptTokens(ctx.body.messages, OBSERVED_EXACT_CHARS);
  } catch {
    let chars = 0;
    if (ctx.operation === 'embeddings') {
      const input = ctx.body.input;
      chars = typeof input === 'string' ? input.length : JSON.stringify(input).length;
    } else {
      for (const m of ctx.body.messages ?? []) chars += contentText(m).length;
    }
    return Math.ceil(chars / 4);
  }
}

/** The prompt's text and token count, as the drift and abuse detectors read them (`ctx.prompt`). */
export interface PromptFeatures {
  text: string;
  tokens: number;
}

/** Works out a request's PromptFeatures (src/pipeline/context.ts memoises them per request, as `ctx.prompt`). */
export function promptOf(ctx: OperationRequest & { usage?: Usage | undefined; admission?: RequestContext['admission'] }): PromptFeatures {
  return { text: promptText(ctx), tokens: promptTokens(ctx) };
}

const LATIN = 0;
const CYRILLIC = 1;
const GREEK = 2;
const ARABIC = 3;
const HEBREW = 4;
const DEVANAGARI = 5;
const HAN = 6;
const KANA = 7;
const HANGUL = 8;
const THAI = 9;
const OTHER = 10;
const NONE = -1;
const LETTER = /\p{L}/u;

/** The script bucket of a code point, or -1 for what is not a letter (digits, spaces, punctuation, emoji). */
export function scriptOf(cp: number): number {
  if (cp < 0x80) return (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a) ? LATIN : NONE;
  if (cp <= 0x24f) return cp >= 0xc0 && cp !== 0xd7 && cp !== 0xf7 ? LATIN : NONE;
  if (cp >= 0x370 && cp <= 0x3ff) return GREEK;
  if (cp >= 0x400 && cp <= 0x52f) return CYRILLIC;
  if (cp >= 0x590 && cp <= 0x5ff) return HEBREW;
  if ((cp >= 0x600 && cp <= 0x6ff) || (cp >= 0x750 && cp <= 0x77f) || (cp >= 0x8a0 && cp <= 0x8ff)) return ARABIC;
  if (cp >= 0x900 && cp <= 0x97f) return DEVANAGARI;
  if (cp >= 0xe00 && cp <= 0xe7f) return THAI;
  if (cp >= 0x1100 && cp <= 0x11ff) return HANGUL;
  if (cp >= 0x1c80 && cp <= 0x1c8f) return CYRILLIC;
  if (cp >= 0x1e00 && cp <= 0x1eff) return LATIN;
  if (cp >= 0x1f00 && cp <= 0x1fff) return GREEK;
  if (cp >= 0x2000 && cp <= 0x2bff) return NONE; // punctuation, symbols, arrows, maths
  if (cp >= 0x2c60 && cp <= 0x2c7f) return LATIN;
  if (cp >= 0x2de0 && cp <= 0x2dff) return CYRILLIC;
  if (cp >= 0x3000 && cp <= 0x303f) return NONE; // CJK punctuation
  if ((cp >= 0x3040 && cp <= 0x30ff) || (cp >= 0x31f0 && cp <= 0x31ff)) return KANA;
  if (cp >= 0x3130 && cp <= 0x318f) return HANGUL;
  if ((cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xf900 && cp <= 0xfaff)) return HAN;
  if (cp >= 0xa640 && cp <= 0xa69f) return CYRILLIC;
  if (cp >= 0xa720 && cp <= 0xa7ff) return LATIN;
  if (cp >= 0xa8e0 && cp <= 0xa8ff) return DEVANAGARI;
  if ((cp >= 0xa960 && cp <= 0xa97f) || (cp >= 0xac00 && cp <= 0xd7ff)) return HANGUL;
  if (cp >= 0xfb1d && cp <= 0xfb4f) return HEBREW;
  if ((cp >= 0xfb50 && cp <= 0xfdff) || (cp >= 0xfe70 && cp <= 0xfeff)) return ARABIC;
  if (cp >= 0xfe00 && cp <= 0xfe0f) return NONE; // variation selectors
  if ((cp >= 0xff21 && cp <= 0xff3a) || (cp >= 0xff41 && cp <= 0xff5a)) return LATIN;
  if (cp >= 0xff66 && cp <= 0xff9f) return KANA;
  if (cp >= 0x1f000 && cp <= 0x1faff) return NONE; // emoji
  if (cp >= 0x20000 && cp <= 0x3134f) return HAN;
  return LETTER.test(String.fromCodePoint(cp)) ? OTHER : NONE;
}

/**
 * Adds the text's script mix to `out` (length SCRIPTS.length) as fractions of its letters that
 * sum to 1, so each prompt weighs the same whatever its length. Returns false (and adds nothing)
 * for a text without letters.
 */
export function addScriptMix(text: string, out: Float64Array): boolean {
  const counts = new Uint32Array(SCRIPTS.length);
  let letters = 0;
  const end = Math.min(text.length, MAX_ANALYSED_CHARS);
  for (let i = 0; i < end; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    const s = scriptOf(cp);
    if (s >= 0) {
      counts[s]!++;
      letters++;
    }
  }
  if (letters === 0) return false;
  for (let s = 0; s < counts.length; s++) if (counts[s]) out[s]! += counts[s]! / letters;
  return true;
}

/** A 64-bit fingerprint as two unsigned 32-bit halves. */
export interface Fingerprint {
  hi: number;
  lo: number;
}

/** Characters of a prompt fingerprinted for near-duplicates. */
export const MAX_FINGERPRINT_CHARS = 2_048;

/**
 * SimHash of the text's words and neighbouring word pairs (lower-cased; anything that is not a
 * letter or digit separates words), over its first MAX_FINGERPRINT_CHARS characters: texts that
 * differ only in case, spacing and punctuation get the same fingerprint, texts that differ in a
 * word or two land a few bits apart, unrelated texts ~32 bits apart. Undefined for a text without
 * words. Words are hashed as they are scanned (no substrings).
 */
export function simhash(text: string): Fingerprint | undefined {
  const t = text.length > MAX_FINGERPRINT_CHARS ? text.slice(0, MAX_FINGERPRINT_CHARS).toLowerCase() : text.toLowerCase();
  const weights = new Int32Array(64);
  let features = 0;
  const add = (a: number, b: number) => {
    features++;
    for (let bit = 0; bit < 32; bit++) {
      weights[bit]! += (a >>> bit) & 1;
      weights[bit + 32]! += (b >>> bit) & 1;
    }
  };
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  let inWord = false;
  let prevA = 0;
  let prevB = 0;
  let hasPrev = false;
  const endWord = () => {
    const a = fmix(h1);
    const b = fmix(h2 ^ 0x5bd1e995);
    add(a, b);
    if (hasPrev) add(fmix(Math.imul(prevA, 31) ^ a ^ 0x27d4eb2f), fmix(Math.imul(prevB, 37) ^ b ^ 0x165667b1));
    prevA = a;
    prevB = b;
    hasPrev = true;
    h1 = 0x811c9dc5;
    h2 = 0x9747b28c;
    inWord = false;
  };
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    const wordChar = c < 0x80 ? (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) : (c >= 0xd800 && c <= 0xdfff) || scriptOf(c) >= 0;
    if (wordChar) {
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x01000193);
      inWord = true;
    } else if (inWord) endWord();
  }
  if (inWord) endWord();
  if (features === 0) return undefined;
  let lo = 0;
  let hi = 0;
  const half = features / 2;
  for (let bit = 0; bit < 32; bit++) {
    if (weights[bit]! > half) lo |= 1 << bit;
    if (weights[bit + 32]! > half) hi |= 1 << bit;
  }
  return { hi: hi >>> 0, lo: lo >>> 0 };
}

function popcount(x: number): number {
  let v = x >>> 0;
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

export function hammingDistance(a: Fingerprint, b: Fingerprint): number {
  return popcount(a.hi ^ b.hi) + popcount(a.lo ^ b.lo);
}
