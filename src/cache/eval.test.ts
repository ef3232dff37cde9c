import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { openDatabase } from '../storage/sqlite/database.js';
import { SqliteSemanticStore } from '../storage/sqlite/semantic-cache.js';
import { CacheDecision, DECISION_EMBEDDER_ID } from './decision.js';
import { BuiltinEmbedder } from './embedders/builtin.js';
import {
  type Judge,
  type LabelledPair,
  type PairMeasure,
  PairsInputError,
  curve,
  hardestThird,
  measurePairs,
  parsePairs,
  reusedAt,
  sweep,
  thresholdFor,
} from './eval.js';
import { createHitGuard } from './guard.js';
import { SemanticCache } from './semantic.js';
import { HnswVectorIndex } from './vector-index.js';

const limits = { maxBytes: 10_000, maxPairs: 10, maxQuestionChars: 40 };

describe('parsePairs', () => {
  it('reads labelled lines, skips blank ones, and takes a line without "duplicate" as a positive pair', () => {
    const text = ['{"a": "q1", "b": "q2", "duplicate": false}', '', '  {"a": "q3", "b": "q4"}  ', '{"a": "q5", "b": "q6", "duplicate": true}'].join('\n');
    expect(parsePairs(text, limits)).toEqual({
      pairs: [
        { a: 'q1', b: 'q2', duplicate: false },
        { a: 'q3', b: 'q4', duplicate: true },
        { a: 'q5', b: 'q6', duplicate: true },
      ],
      unlabelled: 1,
    });
  });

  it('names each bad line and field', () => {
    const text = [
      '{"a": "ok", "b": "ok"}',
      '{"a": "ok"}',
      'not json',
      '{"a": 3, "b": "ok"}',
      '{"a": "ok", "b": "ok", "duplicate": "yes"}',
      `{"a": "${'x'.repeat(41)}", "b": "ok"}`,
    ].join('\n');
    const err = (() => {
      try {
        parsePairs(text, limits, 'pairs.jsonl');
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(err).toBeInstanceOf(PairsInputError);
    expect(err.message).toContain('pairs.jsonl: line 2: field "b" is missing');
    expect(err.message).toContain('line 3: not valid JSON');
    expect(err.message).toContain('line 4: field "a" must be a string, got number 3');
    expect(err.message).toContain('line 5: field "duplicate" must be true or false, got "yes"');
    expect(err.message).toContain('line 6: field "a" has 41 characters, over cache.semantic.maxQuestionChars (40)');
  });

  it('refuses an empty question, a non-object line, a file over its limits and a file with no pairs', () => {
    expect(() => parsePairs('{"a": " ", "b": "x"}', limits)).toThrow(/line 1: field "a" is empty/);
    expect(() => parsePairs('["a", "b"]', limits)).toThrow(/line 1: expected an object/);
    expect(() => parsePairs('{"a": "x", "b": "y"}\n'.repeat(11), limits)).toThrow(/more than 10 pairs \(line 11\)/);
    expect(() => parsePairs('x'.repeat(10_001), limits)).toThrow(/10001 bytes, over the limit of 10000/);
    expect(() => parsePairs('\n\n', limits)).toThrow(/no pairs/);
  });
});

describe('hardestThird', () => {
  it('is the non-duplicates at or above the 2/3 quantile of their word Jaccard (duplicates never count)', () => {
    const pairs: LabelledPair[] = [
      { a: 'a b c d', b: 'a b c d', duplicate: true }, // 1.0, a duplicate
      { a: 'a b c d', b: 'e f g h', duplicate: false }, // 0
      { a: 'a b c d', b: 'a e f g', duplicate: false }, // 1/7
      { a: 'a b c d', b: 'a b e f', duplicate: false }, // 2/6
      { a: 'A b c d', b: 'a b c e', duplicate: false }, // 3/5 (lower-cased)
      { a: 'a, b, c!', b: 'a b c d', duplicate: false }, // 3/4 (punctuation is no word)
      { a: 'x y', b: 'x z', duplicate: false }, // 1/3
    ];
    const { overlap, cutoff, hard } = hardestThird(pairs);
    expect(overlap[5]).toBeCloseTo(0.75);
    // Non-duplicates sorted: 0, 1/7, 1/3, 1/3, 3/5, 3/4 -> index floor(6 * 2 / 3) = 4: 3/5.
    expect(cutoff).toBeCloseTo(0.6);
    expect(hard).toEqual([false, false, false, false, true, true, false]);
  });

  it('has no hardest pairs (cutoff NaN) when the file has no non-duplicates', () => {
    const { cutoff, hard } = hardestThird([{ a: 'x', b: 'y', duplicate: true }]);
    expect(cutoff).toBeNaN();
    expect(hard).toEqual([false]);
  });
});

describe('reusedAt', () => {
  it('similarity mode: the guard, then the cosine against the threshold', () => {
    const judge: Judge = { mode: 'similarity' };
    expect(reusedAt({ similarity: 0.8 }, 0.8, judge)).toBe(true);
    expect(reusedAt({ similarity: 0.79 }, 0.8, judge)).toBe(false);
    expect(reusedAt({ similarity: 0.99, guardReason: 'numbers differ' }, 0.5, judge)).toBe(false);
  });

  it('model mode: the guard, the cosine prefilter of the threshold (built-in embedder), then the score', () => {
    const judge: Judge = { mode: 'model', minCosineAt: (t) => (t >= 0.9 ? 0.7 : 0.5) };
    expect(reusedAt({ similarity: 0.6, score: 0.95 }, 0.85, judge)).toBe(true);
    expect(reusedAt({ similarity: 0.6, score: 0.95 }, 0.9, judge)).toBe(false); // below the prefilter at 0.9
    expect(reusedAt({ similarity: 0.9, score: 0.84 }, 0.85, judge)).toBe(false);
    expect(reusedAt({ similarity: 0.9, score: 0.99, guardReason: 'negation' }, 0.1, judge)).toBe(false);
    // Another embedder: no prefilter, the similarity (not computed) plays no part.
    expect(reusedAt({ similarity: Number.NaN, score: 0.9 }, 0.9, { mode: 'model' })).toBe(true);
  });
});

/** 4 duplicates and 6 non-duplicates (the last 2 the hardest), with their scores. */
const PAIRS: LabelledPair[] = [
  ...[1, 2, 3, 4].map((i) => ({ a: `dup ${i}`, b: `dup ${i}?`, duplicate: true })),
  ...[1, 2, 3, 4, 5, 6].map((i) => ({ a: `neg ${i}`, b: `neg ${i}!`, duplicate: false })),
];
const HARD = [false, false, false, false, false, false, false, false, true, true];
const MEASURES: PairMeasure[] = [0.95, 0.9, 0.8, 0.6, 0.1, 0.2, 0.3, 0.85, 0.7, 0.92].map((score) => ({ similarity: 1, score }));
MEASURES[4]!.guardReason = 'numbers differ';
MEASURES[4]!.score = 0.99; // refused by the guard whatever its score
const JUDGE: Judge = { mode: 'model' };

describe('curve', () => {
  it('counts duplicates reused, wrong answers on all and on the hardest, and precision at 1:1', () => {
    const [p50, p85, p91] = curve(PAIRS, MEASURES, HARD, JUDGE, [0.5, 0.85, 0.91]);
    // 0.5: dups 4/4; non-dups reused: 0.85, 0.7, 0.92 -> 3/6; hardest 2/2.
    expect(p50).toMatchObject({ reusedDuplicates: 4, reuseDup: 1, wrongAllCount: 3, wrongAll: 0.5, wrongHardCount: 2, wrongHard: 1 });
    expect(p50!.precisionAll).toBeCloseTo(1 / 1.5);
    expect(p50!.precisionHard).toBeCloseTo(0.5);
    // 0.85: dups 0.95, 0.9 -> 2/4; non-dups 0.85, 0.92 -> 2/6; hardest 0.92 -> 1/2.
    expect(p85).toMatchObject({ reusedDuplicates: 2, reuseDup: 0.5, wrongAllCount: 2, wrongHardCount: 1, wrongHard: 0.5 });
    expect(p85!.precisionAll).toBeCloseTo(0.5 / (0.5 + 2 / 6));
    expect(p85!.precisionHard).toBeCloseTo(0.5);
    // 0.91: dups 1/4; non-dups 0.92 (hardest) -> 1/6, 1/2.
    expect(p91).toMatchObject({ reusedDuplicates: 1, reuseDup: 0.25, wrongAllCount: 1, wrongHardCount: 1 });
    expect(p91!.precisionAll).toBeCloseTo(0.25 / (0.25 + 1 / 6));
    expect(p91!.precisionHard).toBeCloseTo(0.25 / 0.75);
  });

  it('has no precision (NaN) where nothing is reused', () => {
    const [p] = curve(PAIRS, MEASURES, HARD, JUDGE, [0.99]);
    expect(p).toMatchObject({ reusedDuplicates: 0, wrongAllCount: 0 });
    expect(p!.precisionAll).toBeNaN();
  });

  it('sweeps 0.01 to 0.99 plus the configured threshold', () => {
    const s = sweep([0.875, 0.88]);
    expect(s).toHaveLength(100);
    expect(s[0]).toBe(0.01);
    expect(s.at(-1)).toBe(0.99);
    expect(s).toContain(0.875);
  });
});

describe('thresholdFor', () => {
  const points = curve(PAIRS, MEASURES, HARD, JUDGE, sweep());

  it('is the lowest threshold whose precision at 1:1 on all non-duplicates reaches the target', () => {
    // Precision (all) 0.75 first at 0.86 (dups 2/4, wrong 1/6 -> 0.5 / 0.667 = 0.75).
    const r = thresholdFor(points, 0.75);
    expect(r.point?.threshold).toBe(0.86);
    expect(r.point?.precisionAll).toBeCloseTo(0.75);
    // At 0.91..0.92 it falls again (1/4 reused, 1/6 wrong: 0.6): reported, not hidden.
    expect(r.dipsAbove).toEqual([0.91, 0.92]);
  });

  it('on the hardest non-duplicates', () => {
    // Hardest precision: 0.86..0.9: 0.5 / (0.5 + 0.5) = 0.5; 0.93..0.95: 1/4 reused, none wrong = 1.
    const r = thresholdFor(points, 0.9, 'hardest');
    expect(r.point?.threshold).toBe(0.93);
    expect(r.point?.reusedDuplicates).toBe(1);
  });

  it('not reached: no point, and the best one (highest precision, most reuse among equals)', () => {
    const noisy = curve(PAIRS, MEASURES.map((m, i) => (i === 5 ? { ...m, score: 0.99 } : m)), HARD, JUDGE, sweep());
    const r = thresholdFor(noisy, 0.99);
    expect(r.point).toBeUndefined();
    // Precision 0.6 is the highest: at 0.31..0.6 (4/4 reused, 4/6 wrong), 0.86..0.9 (2/4, 2/6) and
    // 0.93..0.95 (1/4, 1/6); the one reusing the most wins.
    expect(r.best?.threshold).toBe(0.31);
    expect(r.best?.reuseDup).toBe(1);
    expect(r.best?.precisionAll).toBeCloseTo(0.6);
  });
});

describe('measurePairs + reusedAt decide as SemanticCache.lookup does (each pair alone in its scope)', () => {
  const { pairs } = parsePairs(readFileSync(join(process.cwd(), 'test', 'fixtures', 'cache-eval-pairs.jsonl'), 'utf8'));
  const THRESHOLDS = [0.2, 0.5, 0.6, 0.7, 0.79, 0.84, 0.88, 0.92];

  for (const mode of ['model', 'similarity'] as const) {
    for (const withGuard of [true, false]) {
      it(`${mode} mode, guard ${withGuard ? 'on' : 'off'}`, async () => {
        const embedder = new BuiltinEmbedder();
        const guard = withGuard ? createHitGuard() : undefined;
        const decision = mode === 'model' ? new CacheDecision() : undefined;
        const cache = new SemanticCache({
          embedder,
          index: new HnswVectorIndex({ dimensions: embedder.dimensions, maxEntries: 1_000 }),
          store: new SqliteSemanticStore(openDatabase(':memory:')),
          guard,
          decision,
          candidates: 4,
          log: createLogger('silent'),
        });
        await cache.start();
        await cache.loaded;
        try {
          const now = Date.now();
          for (const [i, p] of pairs.entries()) {
            await cache.put({ id: `t/r/${i}`, scope: `pair-${i}`, tenantId: 't', route: 'r', embedder: embedder.id, question: p.a, vector: embedder.embedOne(p.a), answer: 'x', createdAt: now, expiresAt: now + 60_000, threshold: null });
          }
          const sims = pairs.map((p) => {
            const va = embedder.embedOne(p.a);
            const vb = embedder.embedOne(p.b);
            return va.reduce((acc, x, k) => acc + x * vb[k]!, 0);
          });
          const measures = measurePairs(pairs, sims, { guard, decision, builtinSimilarity: embedder.id === DECISION_EMBEDDER_ID });
          const judge: Judge = { mode, ...(decision ? { minCosineAt: (t: number) => decision.minCosineAt(t) } : {}) };
          let reused = 0;
          for (const t of THRESHOLDS) {
            for (const [i, p] of pairs.entries()) {
              const hit = await cache.lookup(`pair-${i}`, p.b, embedder.embedOne(p.b), t);
              expect({ pair: i, t, reused: reusedAt(measures[i]!, t, judge) }).toEqual({ pair: i, t, reused: hit !== undefined });
              if (hit) reused++;
            }
          }
          expect(reused).toBeGreaterThan(0);
        } finally {
          await cache.close();
        }
      });
    }
  }
});
