import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { openDatabase } from '../storage/sqlite/database.js';
import { SqliteSemanticStore } from '../storage/sqlite/semantic-cache.js';
import { CacheDecision, checkModel, FEATURE_NAMES, FEATURE_VERSION, type DecisionModel } from './decision.js';
import { DECISION_MODEL } from './decision-model.js';
import { BuiltinEmbedder } from './embedders/builtin.js';
import { createHitGuard } from './guard.js';
import { SemanticCache } from './semantic.js';
import { DEFAULT_DECISION_THRESHOLD, STALE_DECISION_THRESHOLD } from './tuning.js';
import { HnswVectorIndex } from './vector-index.js';

const decision = new CacheDecision();
const reused = (query: string, cached: string) => decision.decide(query, cached).score >= DEFAULT_DECISION_THRESHOLD;

describe('CacheDecision: the default operating point', () => {
  it("refuses the issue's wrong answers (near-misses that share most words)", () => {
    // Issue 16: each was served the other's answer at the cosine threshold 0.65.
    expect(reused('How do you delete a question you asked on Quora?', 'How do you write a question on Quora?')).toBe(false);
    expect(reused('How can I specifically improve my English?', 'How can I improve my spoken English?')).toBe(false);
    expect(reused('What are some examples of abstract nouns?', 'What are some examples of abstract and concrete nouns?')).toBe(false);
    // Both directions (either may be the cached one).
    expect(reused('How do you write a question on Quora?', 'How do you delete a question you asked on Quora?')).toBe(false);
    expect(reused('What are some examples of abstract and concrete nouns?', 'What are some examples of abstract nouns?')).toBe(false);
  });

  it('still reuses clear paraphrases', () => {
    expect(reused('How do I reset my account password?', 'How can I reset my account password?')).toBe(true);
    expect(reused('how can I reset my account password', 'How can I reset my account password?')).toBe(true);
    expect(reused("What's the capital of France?", 'What is the capital of France?')).toBe(true);
    expect(reused('How can I safely rotate my API key?', 'How do I rotate my API key safely?')).toBe(true);
    expect(reused('How long does shipping to Canada take', 'How long does shipping to Canada take?')).toBe(true);
  });

  it('scores different numbers low and reports the guard finding', () => {
    const r = decision.decide('What is the refund policy for orders over $1000?', 'What is the refund policy for orders over $100?');
    expect(r.score).toBeLessThan(STALE_DECISION_THRESHOLD);
    expect(r.guardReason).toBe('numbers differ: $1000 vs $100');
  });

  it('an identical question scores 1', () => {
    expect(decision.decide('Explain quicksort.', 'Explain quicksort.').score).toBe(1);
  });

  it('computes the built-in cosine itself when not given one (another embedder configured)', () => {
    const e = new BuiltinEmbedder();
    const q = 'How do I reset my account password?';
    const c = 'How can I reset my account password?';
    const [vq, vc] = [e.embedOne(q), e.embedOne(c)];
    let cos = 0;
    for (let i = 0; i < vq.length; i++) cos += vq[i]! * vc[i]!;
    expect(decision.decide(q, c).score).toBeCloseTo(decision.decide(q, c, cos).score, 12);
  });
});

describe('the shipped decision model (src/cache/decision-model.ts)', () => {
  it('has the shape and version this code expects, and sane thresholds', () => {
    expect(() => checkModel(DECISION_MODEL)).not.toThrow();
    expect(DECISION_MODEL.featureVersion).toBe(FEATURE_VERSION);
    expect(DECISION_MODEL.features).toEqual([...FEATURE_NAMES]);
    expect(DECISION_MODEL.trees.length).toBeGreaterThanOrEqual(50);
    expect(DECISION_MODEL.idf.split(' ').length).toBeGreaterThan(1000);
    expect(DEFAULT_DECISION_THRESHOLD).toBe(DECISION_MODEL.threshold);
    expect(DECISION_MODEL.threshold).toBeGreaterThan(0.5);
    expect(DECISION_MODEL.threshold).toBeLessThan(1);
    expect(DECISION_MODEL.staleThreshold).toBeLessThanOrEqual(DECISION_MODEL.threshold);
    expect(DECISION_MODEL.minCosine).toBeGreaterThanOrEqual(0);
    expect(DECISION_MODEL.minCosine).toBeLessThan(DECISION_MODEL.threshold);
    // The per-threshold prefilter: never looser at a higher threshold, never above 0.95.
    const at = Array.from({ length: 101 }, (_, k) => decision.minCosineAt(k / 100));
    for (let k = 1; k < at.length; k++) expect(at[k]!).toBeGreaterThanOrEqual(at[k - 1]!);
    expect(Math.max(...at)).toBeLessThanOrEqual(0.95);
    expect(decision.minCosineAt(DECISION_MODEL.staleThreshold)).toBeLessThanOrEqual(decision.minCosineAt(DECISION_MODEL.threshold));
  });

  it('a model fitted on other features is refused with a clear error', () => {
    const stale: DecisionModel = { ...DECISION_MODEL, featureVersion: FEATURE_VERSION - 1 };
    expect(() => new CacheDecision(stale)).toThrow(/fit:cache-decision/);
    const reordered: DecisionModel = { ...DECISION_MODEL, features: [...DECISION_MODEL.features].reverse() };
    expect(() => new CacheDecision(reordered)).toThrow(/feature list/);
  });
});

describe('SemanticCache with the decision (model mode)', () => {
  const open: SemanticCache[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  const make = async () => {
    const embedder = new BuiltinEmbedder();
    const cache = new SemanticCache({
      embedder,
      index: new HnswVectorIndex({ dimensions: embedder.dimensions, maxEntries: 100 }),
      store: new SqliteSemanticStore(openDatabase(':memory:')),
      guard: createHitGuard(),
      decision: new CacheDecision(),
      candidates: 4,
      log: createLogger('silent'),
    });
    await cache.start();
    await cache.loaded;
    open.push(cache);
    const put = async (question: string) => {
      const vector = embedder.embedOne(question);
      const id = `t/r/${question.length}-${Math.random().toString(36).slice(2)}`;
      await cache.put({ id, scope: 's', tenantId: 't', route: 'r', embedder: embedder.id, question, vector, answer: `answer to ${question}`, createdAt: Date.now(), expiresAt: Date.now() + 60_000, threshold: null });
      return id;
    };
    const lookup = (question: string, threshold = DEFAULT_DECISION_THRESHOLD) => cache.lookup('s', question, embedder.embedOne(question), threshold);
    return { cache, put, lookup };
  };

  it('serves a paraphrase, refuses a near-miss the cosine threshold served', async () => {
    const { cache, put, lookup } = await make();
    await put('How do you write a question on Quora?');
    await put('How can I reset my account password?');
    const hit = await lookup('How do I reset my account password?');
    expect(hit?.entry.question).toBe('How can I reset my account password?');
    expect(hit?.score).toBeGreaterThanOrEqual(DEFAULT_DECISION_THRESHOLD);
    expect(await lookup('How do you delete a question you asked on Quora?')).toBeUndefined();
    expect(cache.decisionRejections).toBeGreaterThan(0);
    // The threshold is the decision's score: a permissive one serves the near-miss.
    expect((await lookup('How do you delete a question you asked on Quora?', 0.05))?.entry.question).toBe('How do you write a question on Quora?');
  });

  it('a bad report sets a similarity floor that refuses the same question; good reports lower it', async () => {
    const { cache, put, lookup } = await make();
    const id = await put('How can I reset my account password?');
    const hit = await lookup('How do I reset my account password?');
    expect(hit?.entry.id).toBe(id);
    expect(await cache.feedback(id, true, hit!.similarity, DEFAULT_DECISION_THRESHOLD)).toBe('none'); // no floor to lower
    expect(await cache.feedback(id, false, hit!.similarity, DEFAULT_DECISION_THRESHOLD)).toBe('demoted');
    expect(await lookup('How do I reset my account password?')).toBeUndefined();
    expect(await cache.feedback(id, true, hit!.similarity, DEFAULT_DECISION_THRESHOLD)).toBe('promoted');
  });
});
