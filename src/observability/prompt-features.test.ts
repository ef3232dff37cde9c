import { describe, expect, it } from 'vitest';
import { SCRIPTS, addScriptMix, hammingDistance, lengthBucket, promptText, promptTokens, simhash } from './prompt-features.js';

function mix(text: string): Record<string, number> {
  const out = new Float64Array(SCRIPTS.length);
  addScriptMix(text, out);
  const r: Record<string, number> = {};
  SCRIPTS.forEach((s, i) => {
    if (out[i]) r[s] = Math.round(out[i]! * 100) / 100;
  });
  return r;
}

describe('script mix', () => {
  it('sorts letters into scripts, ignoring digits, spaces, punctuation and emoji', () => {
    expect(mix('Hello, world! 123 🙂')).toEqual({ latin: 1 });
    expect(mix('Привет мир')).toEqual({ cyrillic: 1 });
    expect(mix('Γειά σου')).toEqual({ greek: 1 });
    expect(mix('مرحبا')).toEqual({ arabic: 1 });
    expect(mix('שלום')).toEqual({ hebrew: 1 });
    expect(mix('नमस्ते')).toEqual({ devanagari: 1 });
    expect(mix('你好')).toEqual({ han: 1 });
    expect(mix('こんにちは カタカナ')).toEqual({ kana: 1 });
    expect(mix('안녕하세요')).toEqual({ hangul: 1 });
    expect(mix('สวัสดี')).toEqual({ thai: 1 });
    expect(mix('ሰላም')).toEqual({ other: 1 }); // Ethiopic
    expect(mix('Crème brûlée')).toEqual({ latin: 1 });
  });

  it('gives each prompt a total weight of 1, split by its letters', () => {
    expect(mix('abcd привет')).toEqual({ latin: 0.4, cyrillic: 0.6 });
    expect(mix('日本語のテキスト')).toEqual({ han: 0.38, kana: 0.63 });
    const out = new Float64Array(SCRIPTS.length);
    expect(addScriptMix('123 !!!', out)).toBe(false);
    expect(out.every((v) => v === 0)).toBe(true);
  });
});

describe('length buckets', () => {
  it('are log2 of the token count, capped', () => {
    expect([0, 1, 2, 3, 6, 7, 1000].map(lengthBucket)).toEqual([0, 1, 1, 2, 2, 3, 9]);
    expect(lengthBucket(10_000_000)).toBe(17);
  });
});

describe('prompt text and tokens', () => {
  const chat = (messages: unknown[]) => ({ operation: 'chat' as const, body: { model: 'm', messages } as never });
  it('takes the last user message of a chat and the string inputs of an embedding request', () => {
    expect(promptText(chat([{ role: 'system', content: 'sys' }, { role: 'user', content: 'first' }, { role: 'assistant', content: 'a' }, { role: 'user', content: [{ type: 'text', text: 'last' }] }]))).toBe('last');
    expect(promptText(chat([{ role: 'system', content: 'only system' }]))).toBe('');
    expect(promptText({ operation: 'embeddings', body: { model: 'e', input: ['a', 'b'] } })).toBe('a\nb');
    expect(promptText({ operation: 'embeddings', body: { model: 'e', input: [1, 2, 3] } })).toBe('');
  });
  it('prefers reported usage, else counts', () => {
    expect(promptTokens({ ...chat([{ role: 'user', content: 'hi' }]), usage: { prompt_tokens: 42, completion_tokens: 1, total_tokens: 43 } })).toBe(42);
    expect(promptTokens(chat([{ role: 'user', content: 'x'.repeat(400) }]))).toBeGreaterThan(10);
  });
});

describe('simhash', () => {
  it('puts near-identical prompts a few bits apart and unrelated ones far apart', () => {
    const a = simhash('Write me a poem about the sea and the sky at night, please')!;
    const same = simhash('write me a POEM about the sea and the sky at night please!!')!;
    const near = simhash('Write me a poem about the sea and the sky at night, pls')!;
    const other = simhash('What is the capital of France and how many people live there?')!;
    expect(hammingDistance(a, same)).toBe(0);
    expect(hammingDistance(a, near)).toBeLessThanOrEqual(12);
    expect(hammingDistance(a, other)).toBeGreaterThan(16);
    expect(simhash('!!! ...')).toBeUndefined();
  });
});
