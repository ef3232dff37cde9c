import { describe, expect, it } from 'vitest';
import { dot as cosine, norm } from '../../util/vector.js';
import { BuiltinEmbedder } from './builtin.js';

describe('BuiltinEmbedder', () => {
  const embedder = new BuiltinEmbedder();

  it('names its space by version and dimensions', () => {
    expect(embedder.id).toBe('builtin:v1:256');
    expect(embedder.dimensions).toBe(256);
    const small = new BuiltinEmbedder({ dimensions: 384 });
    expect(small.id).toBe('builtin:v1:384');
    expect(small.dimensions).toBe(384);
  });

  it('honours the dimensions option and rejects bad values', async () => {
    const e = new BuiltinEmbedder({ dimensions: 64 });
    const { vectors } = await e.embed(['How do I reset my password?']);
    expect(vectors[0]).toBeInstanceOf(Float32Array);
    expect(vectors[0]!.length).toBe(64);
    expect(norm(vectors[0]!)).toBeCloseTo(1, 5);
    expect(() => new BuiltinEmbedder({ dimensions: 0 })).toThrow(RangeError);
    expect(() => new BuiltinEmbedder({ dimensions: 10.5 })).toThrow(RangeError);
    expect(() => new BuiltinEmbedder({ dimensions: 100_000 })).toThrow(RangeError);
  });

  it('returns one unit-length vector per text, and no cost', async () => {
    const texts = ['What is the capital of France?', 'Explain quicksort in two sentences.', 'x'];
    const result = await embedder.embed(texts);
    expect(result.cost).toBeUndefined();
    expect(result.vectors).toHaveLength(3);
    for (const v of result.vectors) {
      expect(v.length).toBe(256);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
  });

  it('is deterministic (same text, same vector, across instances)', async () => {
    const text = 'How do I configure retries for the OpenAI provider?';
    const a = (await embedder.embed([text])).vectors[0]!;
    const b = (await new BuiltinEmbedder().embed([text])).vectors[0]!;
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(cosine(a, embedder.embedOne(text))).toBeCloseTo(1, 6);
  });

  it('puts paraphrases closer than unrelated sentences', () => {
    const cases: Array<[string, string, string]> = [
      ['How do I reset my password?', 'How can I reset the password of my account?', 'What is the weather like in Paris today?'],
      ['What is the refund policy for damaged items?', "What's your policy on refunds for items that arrived damaged?", 'How many calories are in a banana?'],
      ['Explain how photosynthesis works in plants', 'How does photosynthesis work in a plant?', 'Recommend a good science fiction novel'],
      ['Translate this sentence into German', 'Please translate the following sentence to German', 'Why is the sky blue?'],
    ];
    for (const [a, paraphrase, unrelated] of cases) {
      const va = embedder.embedOne(a);
      const close = cosine(va, embedder.embedOne(paraphrase));
      const far = cosine(va, embedder.embedOne(unrelated));
      expect(close, `${a} / ${paraphrase}`).toBeGreaterThan(far + 0.2);
      expect(close).toBeGreaterThan(0.4);
      expect(far).toBeLessThan(0.25);
    }
  });

  it('ignores case, punctuation and Unicode compatibility forms', () => {
    const a = embedder.embedOne('How do I RESET my password??');
    const b = embedder.embedOne('how do i reset my password');
    expect(cosine(a, b)).toBeCloseTo(1, 5);
    // NFKC: full-width letters are the ASCII ones.
    expect(cosine(embedder.embedOne('ｐａｓｓｗｏｒｄ'), embedder.embedOne('password'))).toBeCloseTo(1, 5);
  });

  it('gives an empty or whitespace-only text an all-zero vector (similarity 0 with everything)', async () => {
    const { vectors } = await embedder.embed(['', '   \n\t ']);
    for (const v of vectors) {
      expect(v.length).toBe(256);
      expect(v.every((x) => x === 0)).toBe(true);
      expect(cosine(v, embedder.embedOne('hello world'))).toBe(0);
    }
  });

  it('embeds emoji-only, CJK and other scripts without crashing', () => {
    const texts = ['🚀🔥', '👍🏽 ❤️', '東京の天気はどうですか', '如何重置我的密码？', 'Как сбросить пароль?', 'كيف أعيد تعيين كلمة المرور؟', 'पासवर्ड कैसे रीसेट करें', '\u0000\uffff\ud800'];
    for (const t of texts) {
      const v = embedder.embedOne(t);
      expect(v.length).toBe(256);
      expect(Number.isFinite(norm(v))).toBe(true);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
    // Character n-grams make scripts without spaces comparable.
    const zh1 = embedder.embedOne('如何重置我的密码？');
    const zh2 = embedder.embedOne('我的密码如何重置');
    const zh3 = embedder.embedOne('今天北京天气怎么样');
    expect(cosine(zh1, zh2)).toBeGreaterThan(cosine(zh1, zh3) + 0.3);
    const ru1 = embedder.embedOne('Как сбросить пароль?');
    const ru2 = embedder.embedOne('Как мне сбросить мой пароль');
    const ru3 = embedder.embedOne('Какая сегодня погода в Москве');
    expect(cosine(ru1, ru2)).toBeGreaterThan(cosine(ru1, ru3) + 0.2);
  });

  it('respects the abort signal', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(embedder.embed(['hi'], { signal: ac.signal })).rejects.toThrow();
  });
});
