/**
 * Token counts: the estimate admission reserves budgets and rate limits with (every billable part
 * of a request), and counts for when upstream reports no usage (a server that ignores
 * include_usage, a stream cut short by a client disconnect). Uses gpt-tokenizer's o200k_base; for
 * other model families the count is an estimate, which is why upstream usage always wins when
 * present.
 *
 * Bounded work, whatever the input. Byte-pair encoding costs the square of a pre-token's length
 * (a 160,000-character word took 16 s), so:
 * - a run of whitespace, or of anything else, longer than {@link MAX_RUN} characters is counted in
 *   pieces of that length, and long texts in windows; a cut can change the merges next to it by a
 *   token, so each cut adds one token of margin (fuzzed: never under the whole text's count,
 *   which is the safe side for budgets);
 * - at most {@link EXACT_CHARS} characters and {@link EXACT_TOKENS} tokens of a request are
 *   counted with the tokenizer; beyond, every UTF-8 byte counts as one token (a token is at least
 *   one byte, so this is an upper bound);
 * - the async estimate yields to the event loop after every {@link SLICE_CHARS} characters (or
 *   the equivalent in JSON nodes), so no request holds it for more than a few milliseconds.
 * bench/scenarios/token-estimate.ts measures the cost against input size.
 */
import type { ChatCompletionRequest, ChatMessage, EmbeddingRequest, Usage } from '../providers/types.js';

type CountTokens = (text: string) => number;
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };
let counter: CountTokens | undefined;
let loading: Promise<CountTokens> | undefined;

/**
 * Loads the encoder (~0.5 s and some MB the first time), so processes that never need a local
 * count (CLI commands, gateways whose upstreams always report usage) never pay for it.
 */
export function loadTokenizer(): Promise<CountTokens> {
  // User text may contain strings like <|endoftext|>: counted as plain text instead of throwing.
  loading ??= import('gpt-tokenizer').then((m) => (counter = (text: string) => m.countTokens(text, PLAIN_TEXT)));
  return loading;
}

/** Runs (of whitespace, or of anything else) longer than this are counted in pieces of this length. */
export const MAX_RUN = 128;
/** Characters counted between two yields to the event loop (async estimate). */
export const SLICE_CHARS = 1_024;
/** Characters of one request counted with the tokenizer; beyond, one token per UTF-8 byte. */
export const EXACT_CHARS = 262_144;
/** Characters measured by bytes (past the exact budgets) between two yields. */
const TAIL_SLICE_CHARS = 65_536;
/** Tokens of one request counted with the tokenizer (bounds its CPU: ~1 µs a token at worst); beyond, one per UTF-8 byte. */
export const EXACT_TOKENS = 65_536;
/** What one JSON node (a key, a value, a bracket) weighs against {@link SLICE_CHARS} when walking a structure. */
const NODE_WEIGHT = 16;

/** OpenAI's chat format overhead: ~3 tokens per message plus 3 to prime the answer. */
const PER_MESSAGE = 3;
const PRIMING = 3;
/** Overhead of each tool definition in the prompt (its wrapper), beyond its text. */
const PER_TOOL = 8;

/** Tokens an image input is billed as, unless the model's price says otherwise. */
export const DEFAULT_IMAGE_TOKENS = {
  /** OpenAI's `detail: "low"`. */
  low: 85,
  /**
   * `high`/`auto`: OpenAI's most for a 2048 x 768 image (85 + 8 tiles x 170 = 1,445) and
   * Anthropic's ~1,600 for the largest image it does not downscale; the larger.
   */
  high: 1_600,
} as const;
export type ImageTokens = { low: number; high: number };

/** Running state of one count: tokens so far, what is left of the exact budgets, work since the last yield. */
interface Tally {
  tokens: number;
  exactCharsLeft: number;
  exactTokensLeft: number;
  sinceYield: number;
  count: CountTokens;
}

function newTally(exactChars: number, exactTokens: number, count?: CountTokens): Tally {
  const c = count ?? counter;
  if (!c) throw new Error('tokenizer not loaded: await loadTokenizer() first');
  return { tokens: 0, exactCharsLeft: exactChars, exactTokensLeft: exactTokens, sinceYield: 0, count: c };
}

/** ASCII whitespace (tab, newline, vertical tab, form feed, carriage return, space). */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/**
 * A cut at `k` that does not split a surrogate pair: one further when text[k - 1], text[k] is a
 * pair (never back, so a loop that cuts always moves on; a lone surrogate is cut anywhere).
 */
function cutAt(text: string, k: number): number {
  return k > 0 && k < text.length && isHighSurrogate(text.charCodeAt(k - 1)) && isLowSurrogate(text.charCodeAt(k)) ? k + 1 : k;
}

/** Counts text[from, to) with the tokenizer, against the exact budgets. */
function countExact(text: string, from: number, to: number, t: Tally): void {
  if (from >= to) return;
  const n = t.count(text.slice(from, to));
  // A cut can change the merges next to it (by a token, seen in fuzzing): one token of margin per
  // cut keeps the count at or above the whole text's.
  t.tokens += n + (from > 0 || to < text.length ? 1 : 0);
  t.exactTokensLeft -= n;
  t.exactCharsLeft -= to - from;
  t.sinceYield += to - from;
}

/**
 * Adds the tokens of `text` to the tally; yields (a point where the caller may give the event loop
 * a turn) after about every {@link SLICE_CHARS} characters of work. Windows of whole runs are
 * counted once they fill what is left of the slice; a run longer than MAX_RUN is counted alone,
 * in MAX_RUN pieces; once an exact budget is spent, the rest is counted by UTF-8 bytes.
 */
function* tallyText(text: string, t: Tally): Generator<void, void, void> {
  let windowStart = 0;
  let pos = 0;
  while (pos < text.length) {
    // Characters this window may still take before the exact budget is spent.
    const room = Math.min(text.length, windowStart + t.exactCharsLeft);
    if (pos >= room || t.exactTokensLeft <= 0) break;
    const space = isSpace(text.charCodeAt(pos));
    let end = pos + 1;
    while (end < room && isSpace(text.charCodeAt(end)) === space && end - pos <= MAX_RUN) end++;
    if (end - pos > MAX_RUN) {
      // A long run: find its end (within the room), then count it in MAX_RUN pieces.
      while (end < room && isSpace(text.charCodeAt(end)) === space) end++;
      countExact(text, windowStart, pos, t);
      let i = pos;
      while (i < end && t.exactTokensLeft > 0) {
        if (t.sinceYield + MAX_RUN > SLICE_CHARS) {
          t.sinceYield = 0;
          yield;
        }
        const j = cutAt(text, Math.min(i + MAX_RUN, end));
        countExact(text, i, j, t);
        i = j;
      }
      windowStart = pos = i;
    } else if (t.sinceYield + (end - windowStart) >= SLICE_CHARS) {
      // The window is full: count it without this run (which starts the next one), then yield.
      countExact(text, windowStart, pos, t);
      windowStart = pos;
      t.sinceYield = 0;
      yield;
    } else {
      pos = end;
    }
  }
  pos = Math.max(pos, windowStart);
  pos = cutAt(text, pos);
  countExact(text, windowStart, pos, t);
  // Past the exact budget: an upper bound (a token is at least one byte), at native speed, in
  // slices too (a few MB of slicing and measuring is milliseconds).
  while (pos < text.length) {
    const end = cutAt(text, Math.min(text.length, pos + TAIL_SLICE_CHARS));
    t.tokens += Buffer.byteLength(pos === 0 && end === text.length ? text : text.slice(pos, end), 'utf8');
    t.sinceYield += (end - pos) >> 5;
    pos = end;
    if (t.sinceYield >= SLICE_CHARS) {
      t.sinceYield = 0;
      yield;
    }
  }
  if (t.sinceYield >= SLICE_CHARS) {
    t.sinceYield = 0;
    yield;
  }
}

/**
 * Adds the tokens of any JSON value (tool schemas, response_format, unknown parameters): every key
 * and string counted as text, one token per number, boolean, null and structural node. Iterative:
 * no recursion, whatever the depth.
 */
function* tallyJson(value: unknown, t: Tally): Generator<void, void, void> {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    t.tokens += 1;
    t.sinceYield += NODE_WEIGHT;
    if (typeof v === 'string') yield* tallyText(v, t);
    else if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        yield* tallyText(k, t);
        stack.push(child);
      }
    }
    if (t.sinceYield >= SLICE_CHARS) {
      t.sinceYield = 0;
      yield;
    }
  }
}

function imageTokensOf(part: Record<string, unknown>, images: ImageTokens): number {
  const img = part['image_url'];
  const detail = img !== null && typeof img === 'object' ? (img as Record<string, unknown>)['detail'] : undefined;
  return detail === 'low' ? images.low : images.high;
}

function* tallyMessage(m: ChatMessage, t: Tally, images: ImageTokens): Generator<void, void, void> {
  t.tokens += PER_MESSAGE;
  for (const [k, v] of Object.entries(m)) {
    if (k === 'role') continue;
    if (k === 'content' && Array.isArray(v)) {
      for (const part of v as unknown[]) {
        if (part === null || typeof part !== 'object') continue;
        const p = part as Record<string, unknown>;
        if (p['type'] === 'text' && typeof p['text'] === 'string') yield* tallyText(p['text'], t);
        else if (p['type'] === 'image_url') t.tokens += imageTokensOf(p, images);
        else yield* tallyJson(p, t); // audio, files, anything new: counted as what it carries
      }
    } else if (typeof v === 'string') yield* tallyText(v, t);
    else if (v !== null && v !== undefined) yield* tallyJson(v, t);
  }
}

/** Request fields that are not sent as prompt text (or are bounded and tiny). */
const NOT_PROMPT = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'n',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'logprobs',
  'top_logprobs',
  'user',
  'metadata',
  'store',
  'parallel_tool_calls',
  'service_tier',
]);

/** The billable parts of a chat request: every message part, tools and their schemas, response_format, and any other parameter sent upstream. */
function* tallyChat(body: object, t: Tally, images: ImageTokens): Generator<void, void, void> {
  t.tokens += PRIMING;
  const messages = 'messages' in body ? body.messages : undefined;
  for (const m of Array.isArray(messages) ? messages : []) yield* tallyMessage(m, t, images);
  for (const [k, v] of Object.entries(body)) {
    if (NOT_PROMPT.has(k) || v === undefined || v === null) continue;
    if ((k === 'tools' || k === 'functions') && Array.isArray(v)) t.tokens += PER_TOOL * v.length;
    yield* tallyJson(v, t);
  }
}

function* tallyEmbedding(input: unknown, t: Tally): Generator<void, void, void> {
  if (typeof input === 'string') return yield* tallyText(input, t);
  if (!Array.isArray(input)) return;
  for (const item of input as unknown[]) {
    if (typeof item === 'string') yield* tallyText(item, t);
    else if (Array.isArray(item)) t.tokens += item.length; // token ids
    else t.tokens += 1;
    t.sinceYield += NODE_WEIGHT;
    if (t.sinceYield >= SLICE_CHARS) {
      t.sinceYield = 0;
      yield;
    }
  }
}

export interface EstimateOptions {
  /** Tokens an image is billed as (the model's `price.imageTokens`). */
  imageTokens?: ImageTokens | undefined;
  /** Characters counted with the tokenizer before the byte bound takes over (default {@link EXACT_CHARS}). */
  exactChars?: number;
  /** Tokens counted with the tokenizer before the byte bound takes over (default {@link EXACT_TOKENS}). */
  exactTokens?: number;
  /** The byte-pair counter (default gpt-tokenizer's o200k_base; tests wrap it to watch the work). */
  counter?: CountTokens;
}

function steps(operation: 'chat' | 'embeddings', body: unknown, t: Tally, opts: EstimateOptions): Generator<void, void, void> {
  // The body as sent (validated by the route's schema, or a job's stored body): read defensively.
  const fields = typeof body === 'object' && body !== null ? body : {};
  if (operation === 'embeddings') return tallyEmbedding('input' in fields ? fields.input : undefined, t);
  return tallyChat(fields, t, opts.imageTokens ?? DEFAULT_IMAGE_TOKENS);
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The prompt tokens of a request's every billable part, yielding to the event loop as it goes.
 * Not under the tokenizer's count of the same parts (cuts carry a token of margin, the byte bound only adds).
 */
export async function estimatePromptTokens(operation: 'chat' | 'embeddings', body: unknown, opts: EstimateOptions = {}): Promise<number> {
  if (!opts.counter) await loadTokenizer();
  const t = newTally(opts.exactChars ?? EXACT_CHARS, opts.exactTokens ?? EXACT_TOKENS, opts.counter);
  for (const _ of steps(operation, body, t, opts)) await turn();
  return t.tokens;
}

/**
 * The same count without yielding, for code that cannot wait (observers after settle): keep
 * `exactChars` small there, it bounds the time taken (the rest is counted by bytes). The tokenizer
 * must be loaded.
 */
export function estimatePromptTokensSync(operation: 'chat' | 'embeddings', body: unknown, opts: EstimateOptions = {}): number {
  const t = newTally(opts.exactChars ?? EXACT_CHARS, opts.exactTokens ?? EXACT_TOKENS, opts.counter);
  for (const _ of steps(operation, body, t, opts)) {
    /* run to the end */
  }
  return t.tokens;
}

/** Counts a text's tokens (bounded as above, without yielding); the tokenizer must be loaded. */
export function countText(text: string, exactChars = EXACT_CHARS): number {
  const t = newTally(exactChars, EXACT_TOKENS);
  for (const _ of tallyText(text, t)) {
    /* run to the end */
  }
  return t.tokens;
}

/** Messages' prompt tokens (text parts, tool calls, names), as in {@link estimatePromptTokensSync}. */
export function countPromptTokens(messages: readonly ChatMessage[], exactChars = EXACT_CHARS): number {
  return estimatePromptTokensSync('chat', { messages }, { exactChars });
}

export function countEmbeddingInput(input: EmbeddingRequest['input'], exactChars = EXACT_CHARS): number {
  return estimatePromptTokensSync('embeddings', { input }, { exactChars });
}

/** Usage counted locally for a chat exchange: every billable part of the request, and the answer's text. */
export async function estimateUsage(request: Pick<ChatCompletionRequest, 'messages'>, completionText: string): Promise<Usage> {
  const prompt = await estimatePromptTokens('chat', request);
  const completion = countText(completionText);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
