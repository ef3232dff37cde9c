import { describe, expect, it } from 'vitest';
import { applyRules, compileRules } from './rules.js';
import type { RequestFeatures, Requester, Rule } from './types.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { requestFeatures } from '../../test/helpers/routing.js';

const TIERS = ['small', 'medium', 'large'];

/** A two-message request with a system prompt. */
const features = (over: Partial<RequestFeatures> = {}): RequestFeatures =>
  requestFeatures({ promptChars: 400, promptTokens: 100, lastUserChars: 400, messages: 2, hasSystem: true, ...over });

const requester = (over: Partial<Requester> = {}): Requester => ({ tenantId: 'acme', tier: 'standard', keyId: 'key_1', userId: 'u1', ...over });

const decide = (rules: Rule[], f: Partial<RequestFeatures>, r: Partial<Requester>, classifierTier: number) => applyRules(compileRules(rules, TIERS), features(f), requester(r), classifierTier);

describe('compileRules', () => {
  it('names the first unknown tier with the route tiers', () => {
    expect(() => compileRules([{ when: {}, tier: 'small' }, { when: {}, tier: 'huge' }], TIERS)).toThrow("rules.1.tier: unknown tier 'huge' (tiers: small, medium, large)");
    expect(() => compileRules([{ when: {}, minTier: 'xl' }], TIERS)).toThrow("rules.0.minTier: unknown tier 'xl' (tiers: small, medium, large)");
    expect(() => compileRules([{ when: {}, maxTier: 'Large' }], TIERS)).toThrow("rules.0.maxTier: unknown tier 'Large' (tiers: small, medium, large)");
  });

  it('refuses a rule with no action', () => {
    expect(() => compileRules([{ when: { hasCode: true } }], TIERS)).toThrow('rules.0: needs tier, minTier or maxTier');
  });

  it('compiles no rules', () => {
    const c = compileRules([], TIERS);
    expect(applyRules(c, features(), requester(), 2)).toEqual({ tier: 2, rule: null });
  });
});

describe('applyRules', () => {
  it('the first matching rule with a tier decides outright', () => {
    const rules: Rule[] = [
      { when: { hasImages: true }, tier: 'large' },
      { when: { tenantTier: 'free' }, tier: 'small' },
      { when: { tenantTier: 'free' }, tier: 'medium' },
    ];
    expect(decide(rules, {}, { tier: 'free' }, 2)).toEqual({ tier: 0, rule: 1 });
    expect(decide(rules, { hasImages: true }, { tier: 'free' }, 0)).toEqual({ tier: 2, rule: 0 });
    expect(decide(rules, {}, { tier: 'premium' }, 1)).toEqual({ tier: 1, rule: null });
  });

  it('a fixed tier ignores the bounds of earlier matching rules', () => {
    const rules: Rule[] = [
      { when: {}, maxTier: 'small' },
      { when: { hasCode: true }, tier: 'large' },
    ];
    expect(decide(rules, { hasCode: true }, {}, 1)).toEqual({ tier: 2, rule: 1 });
    expect(decide(rules, {}, {}, 2)).toEqual({ tier: 0, rule: 0 });
  });

  it('clamps the classifier tier by the minTier / maxTier of every matching rule', () => {
    const rules: Rule[] = [
      { when: { hasTools: true }, minTier: 'medium' },
      { when: { tenantTier: 'free' }, maxTier: 'medium' },
      { when: { asksReasoning: true }, minTier: 'large' },
      { when: { promptTokens: { gt: 10_000 } }, maxTier: 'small' },
    ];
    expect(decide(rules, { hasTools: true }, {}, 0)).toEqual({ tier: 1, rule: 0 });
    expect(decide(rules, { hasTools: true }, {}, 2)).toEqual({ tier: 2, rule: null });
    expect(decide(rules, {}, { tier: 'free' }, 2)).toEqual({ tier: 1, rule: 1 });
    expect(decide(rules, {}, { tier: 'free' }, 0)).toEqual({ tier: 0, rule: null });
    // Highest floor of the matching rules.
    expect(decide(rules, { hasTools: true, asksReasoning: true }, {}, 0)).toEqual({ tier: 2, rule: 2 });
    // Floor and ceiling conflict: the floor wins.
    expect(decide(rules, { asksReasoning: true }, { tier: 'free' }, 0)).toEqual({ tier: 2, rule: 2 });
    // Lowest ceiling.
    expect(decide(rules, { promptTokens: 20_000 }, { tier: 'free' }, 2)).toEqual({ tier: 0, rule: 3 });
  });

  it('clamps an out-of-range classifier tier to the route', () => {
    expect(decide([], {}, {}, 7)).toEqual({ tier: 2, rule: null });
    expect(decide([], {}, {}, -1)).toEqual({ tier: 0, rule: null });
  });

  it('matches string fields by value or any of a list', () => {
    const rules: Rule[] = [
      { when: { tenant: ['acme', 'globex'], key: 'key_9' }, tier: 'large' },
      { when: { user: ['alice', 'bob'] }, tier: 'medium' },
      { when: { tenantTier: ['free', 'trial'] }, tier: 'small' },
    ];
    expect(decide(rules, {}, { tenantId: 'globex', keyId: 'key_9' }, 0).tier).toBe(2);
    expect(decide(rules, {}, { tenantId: 'globex', keyId: 'key_1' }, 0).rule).toBeNull(); // AND: the key does not match
    expect(decide(rules, {}, { userId: 'bob' }, 0)).toEqual({ tier: 1, rule: 1 });
    expect(decide(rules, {}, { userId: null }, 2)).toEqual({ tier: 2, rule: null }); // no end user: `user` never matches
    expect(decide(rules, {}, { tier: 'trial' }, 2)).toEqual({ tier: 0, rule: 2 });
    // Long lists (a Set inside).
    const many = Array.from({ length: 20 }, (_, i) => `t${i}`);
    expect(decide([{ when: { tenant: many }, tier: 'large' }], {}, { tenantId: 't17' }, 0).tier).toBe(2);
    expect(decide([{ when: { tenant: many }, tier: 'large' }], {}, { tenantId: 't20' }, 0).tier).toBe(0);
  });

  it('matches boolean features exactly', () => {
    const rules: Rule[] = [{ when: { hasCode: false, jsonMode: true }, maxTier: 'small' }];
    expect(decide(rules, { jsonMode: true }, {}, 2).tier).toBe(0);
    expect(decide(rules, { jsonMode: true, hasCode: true }, {}, 2).tier).toBe(2);
    expect(decide(rules, {}, {}, 2).tier).toBe(2);
  });

  it('numeric conditions: every bound given must hold', () => {
    const between: Rule[] = [{ when: { promptTokens: { gte: 100, lt: 200 } }, tier: 'medium' }];
    expect(decide(between, { promptTokens: 99 }, {}, 0).tier).toBe(0);
    expect(decide(between, { promptTokens: 100 }, {}, 0).tier).toBe(1);
    expect(decide(between, { promptTokens: 199 }, {}, 0).tier).toBe(1);
    expect(decide(between, { promptTokens: 200 }, {}, 0).tier).toBe(0);
    const strict: Rule[] = [{ when: { messages: { gt: 10, lte: 20 } }, minTier: 'large' }];
    expect(decide(strict, { messages: 10 }, {}, 0).tier).toBe(0);
    expect(decide(strict, { messages: 11 }, {}, 0).tier).toBe(2);
    expect(decide(strict, { messages: 20 }, {}, 0).tier).toBe(2);
    expect(decide(strict, { messages: 21 }, {}, 0).tier).toBe(0);
  });

  it('a maxTokens condition is false when the request sets no max_tokens', () => {
    const rules: Rule[] = [{ when: { maxTokens: { lte: 50 } }, tier: 'small' }];
    expect(decide(rules, { maxTokens: 20 }, {}, 2).tier).toBe(0);
    expect(decide(rules, { maxTokens: 500 }, {}, 2).tier).toBe(2);
    expect(decide(rules, { maxTokens: null }, {}, 2)).toEqual({ tier: 2, rule: null });
    // Even a condition every number meets.
    expect(decide([{ when: { maxTokens: { gte: 0 } }, tier: 'small' }], { maxTokens: null }, {}, 2).tier).toBe(2);
  });

  it('an empty condition always matches', () => {
    expect(decide([{ when: {}, minTier: 'medium' }], {}, {}, 0)).toEqual({ tier: 1, rule: 0 });
  });
});
