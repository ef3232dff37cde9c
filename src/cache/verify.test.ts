import { describe, expect, it } from 'vitest';
import type { ChatCompletion } from '../providers/types.js';
import { VerificationTracker, betaCdf, betaQuantile, compareAnswers, normalizeAnswer } from './verify.js';

const completion = (content: string): ChatCompletion => ({
  id: 'x',
  object: 'chat.completion',
  created: 0,
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
});

describe('Beta distribution', () => {
  it('matches closed forms', () => {
    // Beta(1, b): CDF 1 - (1 - x)^b; quantile 1 - (1 - q)^(1/b).
    for (const b of [1, 2, 5, 29, 150]) {
      expect(betaCdf(0.1, 1, b)).toBeCloseTo(1 - 0.9 ** b, 9);
      expect(betaQuantile(0.95, 1, b)).toBeCloseTo(1 - 0.05 ** (1 / b), 8);
    }
    // Beta(a, 1): CDF x^a.
    expect(betaCdf(0.3, 3, 1)).toBeCloseTo(0.027, 9);
    // Symmetric: the median of Beta(7, 7) is 1/2.
    expect(betaQuantile(0.5, 7, 7)).toBeCloseTo(0.5, 8);
    // Non-integer parameters stay monotone and in range.
    expect(betaQuantile(0.95, 1.4, 60.6)).toBeGreaterThan(betaQuantile(0.95, 1, 61));
  });
});

describe('answer equivalence', () => {
  it('ignores case, punctuation and spacing', () => {
    expect(normalizeAnswer('  Paris, of course!  ')).toBe('paris of course');
    expect(compareAnswers(completion('Paris, of course!'), completion('paris   of course'), 0.9).agree).toBe(true);
  });
  it('tells different answers apart, and accepts near-identical ones by similarity', () => {
    expect(compareAnswers(completion('Use the forgot password link.'), completion('Go to Profile and pick Security.'), 0.9).agree).toBe(false);
    const near = compareAnswers(
      completion('Open the settings page, choose the security tab and press the reset password button.'),
      completion('Open the settings page, choose the security tab and then press the reset password button.'),
      0.9,
    );
    expect(near.agree).toBe(true);
    expect(near.similarity).toBeLessThan(1);
  });
});

describe('VerificationTracker', () => {
  const policy = { maxErrorRate: 0.02, answerSimilarity: 0.9, minRate: 0.02 };

  it('serves with probability maxErrorRate / bound: a new entry almost never, a confirmed one almost always', () => {
    const t = new VerificationTracker({ maxEntries: 100 });
    t.random = () => 0.999;
    const fresh = t.decide('r', 'e1', policy);
    expect(fresh.bound).toBeCloseTo(0.95, 3); // Beta(1, 1)
    expect(fresh.serveProbability).toBeCloseTo(0.02 / 0.95, 6);
    expect(fresh.verify).toBe(true);
    for (let i = 0; i < 200; i++) t.record('r', 'e1', true, 'verify', 0.02);
    const trusted = t.decide('r', 'e1', policy);
    expect(trusted.bound).toBeLessThan(0.02);
    expect(trusted.serveProbability).toBeCloseTo(1 - policy.minRate, 9); // minRate still verifies
    // P(serve) x bound never exceeds the bound: the expected error per candidate stays under it.
    for (const d of [fresh, trusted]) expect(d.serveProbability * d.bound).toBeLessThanOrEqual(policy.maxErrorRate + 1e-12);
  });

  it('a disagreement raises the estimate and the bound', () => {
    const t = new VerificationTracker({ maxEntries: 100 });
    for (let i = 0; i < 100; i++) t.record('r', 'e1', true, 'verify', 0.02);
    const before = t.estimate('e1', 'r');
    t.record('r', 'e1', false, 'feedback', 0.02);
    const after = t.estimate('e1', 'r');
    expect(after.estimate).toBeGreaterThan(before.estimate);
    expect(after.bound).toBeGreaterThan(before.bound);
    expect(t.stats()[0]).toMatchObject({ verified: 100, disagreements: 0, feedbackBad: 1 });
  });

  it("new entries start from the route's other entries (at most PRIOR_WEIGHT observations)", () => {
    const t = new VerificationTracker({ maxEntries: 100 });
    for (let i = 0; i < 1000; i++) t.record('r', 'old', true, 'verify', 0.02);
    const newcomer = t.estimate('new', 'r');
    expect(newcomer.bound).toBeCloseTo(1 - 0.05 ** (1 / 51), 6); // Beta(1, 51)
    // Another route's record does not count.
    expect(t.estimate('new', 'other').bound).toBeCloseTo(0.95, 3);
  });

  it('forgets the least recently used entries beyond its bound', () => {
    const t = new VerificationTracker({ maxEntries: 2 });
    t.record('r', 'a', false, 'verify', 0.02);
    t.record('r', 'b', true, 'verify', 0.02);
    t.record('r', 'c', true, 'verify', 0.02);
    expect(t.estimate('a', 'r').n).toBe(0);
    expect(t.estimate('c', 'r').n).toBe(1);
  });
});
