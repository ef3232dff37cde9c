import { countTokens } from 'gpt-tokenizer';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_IMAGE_TOKENS,
  EXACT_CHARS,
  EXACT_TOKENS,
  MAX_RUN,
  SLICE_CHARS,
  countText,
  estimatePromptTokens,
  estimatePromptTokensSync,
  loadTokenizer,
} from './tokenizer.js';

/** The real counter, wrapped to record what it was asked to encode. */
function watched() {
  const calls: string[] = [];
  let chars = 0;
  return {
    calls,
    chars: () => chars,
    counter: (text: string) => {
      calls.push(text);
      chars += text.length;
      return countTokens(text);
    },
  };
}

/** The longest run of whitespace or of non-whitespace in a text. */
function longestRun(text: string): number {
  let best = 0;
  for (const m of text.matchAll(/[\t\n\v\f\r ]+|[^\t\n\v\f\r ]+/g)) best = Math.max(best, m[0].length);
  return best;
}

const ENGLISH = 'The gateway reserves the worst case before the call, then settles the real usage after it. ';
const CODE = 'function add(a: number, b: number): number {\n  return a + b; // sums\n}\n';
const CJK = '東京は日本の首都であり、世界最大の都市圏の一つです。';
const EMOJI = 'ok 👍🏽 done ✅ ';

describe('token estimate: bounded work whatever the input', () => {
  beforeAll(async () => {
    await loadTokenizer();
  });

  it.each([
    ['a 4 MB word', 'x'.repeat(4_000_000)],
    ['1 MB of Japanese without spaces', CJK.repeat(40_000)],
    ['1 MB of spaces', ' '.repeat(1_000_000)],
    ['4 MB of English', ENGLISH.repeat(45_000)],
  ])('%s: the tokenizer sees no run longer than MAX_RUN and at most EXACT_CHARS characters', (_name, text) => {
    const w = watched();
    const n = estimatePromptTokensSync('chat', { messages: [{ role: 'user', content: text }] }, { counter: w.counter });
    expect(Math.max(...w.calls.map(longestRun))).toBeLessThanOrEqual(MAX_RUN);
    expect(w.chars()).toBeLessThanOrEqual(EXACT_CHARS);
    // Beyond the exact part, every byte is a token: never fewer tokens than bytes past the cap.
    expect(n).toBeGreaterThanOrEqual(Buffer.byteLength(text.slice(EXACT_CHARS), 'utf8'));
  });

  it('stops counting exactly after EXACT_TOKENS tokens (random text: ~1 token a character), then counts bytes', () => {
    let s = '';
    for (let i = 0; i < 400_000; i++) s += String.fromCharCode(33 + ((i * 7919 + (i >> 3) * 104729) % 94));
    let encoded = 0;
    const w = watched();
    const n = estimatePromptTokensSync('chat', { messages: [{ role: 'user', content: s }] }, {
      counter: (t) => {
        const k = w.counter(t);
        encoded += k;
        return k;
      },
    });
    expect(encoded).toBeLessThanOrEqual(EXACT_TOKENS + MAX_RUN);
    expect(w.chars()).toBeLessThan(s.length);
    expect(n).toBeGreaterThanOrEqual(encoded + Buffer.byteLength(s.slice(w.chars()), 'utf8'));
  });

  it('never counts fewer tokens than the tokenizer on the whole text (pieces only add)', () => {
    const texts = [
      ENGLISH.repeat(50),
      CODE.repeat(40),
      CJK.repeat(30),
      EMOJI.repeat(100),
      'y'.repeat(3_000),
      `${'ab'.repeat(700)} ${'\n'.repeat(400)} tail`,
      Buffer.from(Array.from({ length: 2_000 }, (_, i) => (i * 7919) % 256)).toString('base64'),
    ];
    for (const text of texts) {
      const exact = countTokens(text);
      const estimate = countText(text);
      expect(estimate, text.slice(0, 30)).toBeGreaterThanOrEqual(exact);
      // ... and stays close for ordinary text (long runs cut in pieces cost a little more).
      if (longestRun(text) <= MAX_RUN) expect(estimate, text.slice(0, 30)).toBeLessThanOrEqual(Math.ceil(exact * 1.02) + 2);
    }
  });

  it('does not split a surrogate pair at a piece, at the exact cap or in the tail, and always moves on (lone surrogates too)', () => {
    const w = watched();
    const pairs = '😀'.repeat(200); // 400 UTF-16 units, no spaces
    for (const exactChars of [101, 128, 129, 255, 256, 257]) {
      estimatePromptTokensSync('chat', { messages: [{ role: 'user', content: pairs }] }, { counter: w.counter, exactChars });
    }
    expect(w.calls.length).toBeGreaterThan(0);
    for (const piece of w.calls) expect(piece).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
    // Pre-fix, each of these looped for ever: a lone high surrogate at the end of a 129-character
    // run, and a pair straddling the exact cap inside a long run.
    expect(countText(`${'x'.repeat(128)}\ud800 tail`)).toBeGreaterThan(0);
    expect(countText(`${'x'.repeat(127)}\ud800`)).toBeGreaterThan(0);
    expect(countText('\udc00\ud800'.repeat(300))).toBeGreaterThan(0);
    expect(countText(' '.repeat(EXACT_CHARS - 129) + '😀'.repeat(100))).toBeGreaterThan(0);
    expect(countText('a'.repeat(EXACT_CHARS - 1) + '😀'.repeat(100_000))).toBeGreaterThan(400_000);
  });

  it('never counts fewer tokens than the tokenizer on random mixes of scripts, digits, emoji and whitespace (fuzz, seeded)', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const alphabet = ['a', 'Z', '7', ' ', '\t', '\n', 'ж', 'Щ', '東', 'の', '😀', '👍🏽', '.', ',', "'", '-', '\u00a0', 'é', '٣'];
    for (let n = 0; n < 300; n++) {
      const len = 1 + Math.floor(rnd() * 3_000);
      let text = '';
      while (text.length < len) {
        const c = alphabet[Math.floor(rnd() * alphabet.length)]!;
        text += c.repeat(1 + Math.floor(rnd() * (rnd() < 0.1 ? 300 : 4)));
      }
      expect(countText(text), JSON.stringify(text.slice(0, 40))).toBeGreaterThanOrEqual(countTokens(text, { disallowedSpecial: new Set() }));
    }
  });

  it('the async estimate gives the event loop a turn after at most SLICE_CHARS characters of work', async () => {
    const w = watched();
    let sinceTurn = 0;
    let worst = 0;
    let turns = 0;
    const counter = (text: string) => {
      sinceTurn += text.length;
      worst = Math.max(worst, sinceTurn);
      return w.counter(text);
    };
    let running = true;
    const tick = () => {
      turns++;
      sinceTurn = 0;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const body = {
      messages: [
        { role: 'user', content: 'z'.repeat(200_000) },
        { role: 'user', content: ENGLISH.repeat(1_000) },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', description: CJK.repeat(2_000) } } }],
    };
    const n = await estimatePromptTokens('chat', body, { counter });
    running = false;
    expect(n).toBeGreaterThan(0);
    expect(turns).toBeGreaterThan(20);
    expect(worst).toBeLessThanOrEqual(SLICE_CHARS + MAX_RUN);
  });

  it('counts special-token text such as <|endoftext|> as plain text instead of throwing', async () => {
    expect(await estimatePromptTokens('chat', { messages: [{ role: 'user', content: 'a <|endoftext|> b <|im_start|>' }] })).toBeGreaterThan(6);
  });

  it('walks deeply nested JSON without recursion', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) deep = { p: deep };
    const n = estimatePromptTokensSync('chat', { messages: [], tools: [{ type: 'function', function: { name: 'f', parameters: deep } }] });
    expect(n).toBeGreaterThan(100_000);
  });
});

describe('token estimate: every billable part of a request', () => {
  beforeAll(async () => {
    await loadTokenizer();
  });
  const user = (content: unknown) => ({ role: 'user', content });
  const est = (body: Record<string, unknown>) => estimatePromptTokensSync('chat', { messages: [user('hi')], ...body });
  let base = 0;
  beforeAll(() => {
    base = est({});
  });

  it('counts tool definitions and their schemas', () => {
    const description = ENGLISH.repeat(100);
    const withTool = est({ tools: [{ type: 'function', function: { name: 'lookup', description, parameters: { type: 'object', properties: { q: { type: 'string', description } } } } }] });
    expect(withTool - base).toBeGreaterThanOrEqual(2 * countTokens(description));
  });

  it('counts response_format schemas and any other parameter sent upstream', () => {
    const schema = { type: 'object', properties: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`field_${i}`, { type: 'string', description: ENGLISH }])) };
    expect(est({ response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }) - base).toBeGreaterThan(50 * countTokens(ENGLISH));
    expect(est({ prediction: { type: 'content', content: ENGLISH.repeat(20) } }) - base).toBeGreaterThanOrEqual(countTokens(ENGLISH.repeat(20)));
    // Parameters that are not prompt text add nothing.
    expect(est({ temperature: 0.2, max_tokens: 5, user: 'u'.repeat(50), metadata: { a: 'b'.repeat(50) }, n: 3 })).toBe(base);
  });

  it('counts every content part: text parts, images at the model rate, other parts by what they carry', () => {
    const text = ENGLISH.repeat(10);
    const parts = (p: unknown[]) => estimatePromptTokensSync('chat', { messages: [user(p)] });
    expect(parts([{ type: 'text', text }, { type: 'text', text }])).toBeGreaterThanOrEqual(2 * countTokens(text));
    const img = (detail?: string) => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100_000)}`, ...(detail ? { detail } : {}) } });
    const empty = parts([]);
    expect(parts([img()]) - empty).toBe(DEFAULT_IMAGE_TOKENS.high);
    expect(parts([img('low'), img('high')]) - empty).toBe(DEFAULT_IMAGE_TOKENS.low + DEFAULT_IMAGE_TOKENS.high);
    expect(estimatePromptTokensSync('chat', { messages: [user([img()])] }, { imageTokens: { low: 1, high: 5_000 } }) - empty).toBe(5_000);
    expect(parts([{ type: 'input_audio', input_audio: { data: 'UklGR'.repeat(1_000), format: 'wav' } }]) - empty).toBeGreaterThan(1_000);
  });

  it('counts tool calls and tool results in the conversation', () => {
    const args = JSON.stringify({ query: ENGLISH.repeat(5) });
    const n = estimatePromptTokensSync('chat', {
      messages: [
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: args } }] },
        { role: 'tool', tool_call_id: 'c1', content: ENGLISH.repeat(5) },
      ],
    });
    expect(n).toBeGreaterThanOrEqual(countTokens(args) + countTokens(ENGLISH.repeat(5)));
  });

  it('counts embeddings input: strings, lists of strings, token arrays', () => {
    expect(estimatePromptTokensSync('embeddings', { input: ENGLISH })).toBe(countTokens(ENGLISH));
    expect(estimatePromptTokensSync('embeddings', { input: [ENGLISH, ENGLISH] })).toBe(2 * countTokens(ENGLISH));
    expect(estimatePromptTokensSync('embeddings', { input: [[1, 2, 3], [4, 5]] })).toBe(5);
    expect(estimatePromptTokensSync('embeddings', { input: [1, 2, 3, 4] })).toBe(4);
  });
});
