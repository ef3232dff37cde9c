/**
 * A route's rules (config `routes.<name>.rules`), compiled once per route into closures.
 *
 * Semantics (see src/config/routing-schema.ts):
 *  - A rule matches when every field of its `when` holds (AND; an empty `when` always matches).
 *    String fields (`tenantTier`, `tenant`, `key`, `user`) take a value or a list (any of them);
 *    `user` never matches a request without an end user. Booleans compare with the feature.
 *    Numeric fields (`promptTokens`, `messages`, `maxTokens`) take `{gt, gte, lt, lte}`, every
 *    bound given must hold; `maxTokens` is false when the request sets no max_tokens.
 *  - Rules are evaluated in order. The first matching rule with `tier` decides outright (bounds
 *    of earlier matching rules do not apply to it: a fixed tier is a fixed tier).
 *  - Otherwise the classifier's tier is bounded by the `minTier` and `maxTier` of every matching
 *    rule (the highest floor and the lowest ceiling). When a floor and a ceiling conflict, the
 *    floor wins: floors usually say what the request needs (images, tools, a premium customer),
 *    ceilings what it may cost, and an answer from a model that cannot do the job is the worse
 *    failure. (A rule with both `tier` and bounds: `tier` wins when it matches.)
 *
 * Evaluating 10 rules is a few hundred nanoseconds: each condition is a short array of
 * monomorphic checks, no allocation per request except the returned object.
 */
import type { NumericCondition, RequestFeatures, Requester, Rule, RuleCondition } from './types.js';

type Check = (f: RequestFeatures, r: Requester) => boolean;

export interface CompiledRule {
  /** Index in the config's list. */
  readonly index: number;
  readonly test: Check;
  /** Fixed tier index, or -1. */
  readonly tier: number;
  /** Floor / ceiling tier indexes, or -1. */
  readonly minTier: number;
  readonly maxTier: number;
}

export interface CompiledRules {
  readonly rules: readonly CompiledRule[];
  /** The route's tiers, cheapest first. */
  readonly tierNames: readonly string[];
}

export interface RuleDecision {
  /** The tier index to serve. */
  tier: number;
  /** The rule that decided (a fixed tier) or whose bound moved the classifier's tier; null when none did. */
  rule: number | null;
}

function stringMatcher(value: string | string[]): (s: string | null) => boolean {
  if (typeof value === 'string') return (s) => s === value;
  if (value.length === 1) {
    const only = value[0];
    return (s) => s === only;
  }
  if (value.length <= 8) return (s) => s !== null && value.includes(s);
  const set = new Set(value);
  return (s) => s !== null && set.has(s);
}

function numericMatcher(c: NumericCondition): (n: number) => boolean {
  const gt = c.gt ?? -Infinity;
  const gte = c.gte ?? -Infinity;
  const lt = c.lt ?? Infinity;
  const lte = c.lte ?? Infinity;
  return (n) => n > gt && n >= gte && n < lt && n <= lte;
}

type BoolFeature = 'hasTools' | 'hasCode' | 'hasMath' | 'asksReasoning' | 'asksStructure' | 'jsonMode' | 'hasImages';
const BOOL_FEATURES: readonly BoolFeature[] = ['hasTools', 'hasCode', 'hasMath', 'asksReasoning', 'asksStructure', 'jsonMode', 'hasImages'];

function compileCondition(when: RuleCondition): Check {
  const checks: Check[] = [];
  if (when.tenantTier !== undefined) {
    const m = stringMatcher(when.tenantTier);
    checks.push((_f, r) => m(r.tier));
  }
  if (when.tenant !== undefined) {
    const m = stringMatcher(when.tenant);
    checks.push((_f, r) => m(r.tenantId));
  }
  if (when.key !== undefined) {
    const m = stringMatcher(when.key);
    checks.push((_f, r) => m(r.keyId));
  }
  if (when.user !== undefined) {
    const m = stringMatcher(when.user);
    checks.push((_f, r) => r.userId !== null && m(r.userId));
  }
  for (const name of BOOL_FEATURES) {
    const want = when[name];
    if (want !== undefined) checks.push((f) => f[name] === want);
  }
  if (when.promptTokens !== undefined) {
    const m = numericMatcher(when.promptTokens);
    checks.push((f) => m(f.promptTokens));
  }
  if (when.messages !== undefined) {
    const m = numericMatcher(when.messages);
    checks.push((f) => m(f.messages));
  }
  if (when.maxTokens !== undefined) {
    const m = numericMatcher(when.maxTokens);
    checks.push((f) => f.maxTokens !== null && m(f.maxTokens));
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0] as Check;
  if (checks.length === 2) {
    const [a, b] = checks as [Check, Check];
    return (f, r) => a(f, r) && b(f, r);
  }
  return (f, r) => {
    for (let i = 0; i < checks.length; i++) if (!(checks[i] as Check)(f, r)) return false;
    return true;
  };
}

/**
 * Compiles a route's rules against its tier names (cheapest first). Throws an Error naming the
 * first unknown tier: `rules.<i>.<field>: unknown tier 'x' (tiers: a, b, c)`.
 */
export function compileRules(rules: readonly Rule[], tierNames: readonly string[]): CompiledRules {
  const index = (i: number, field: 'tier' | 'minTier' | 'maxTier', name: string | undefined): number => {
    if (name === undefined) return -1;
    const t = tierNames.indexOf(name);
    if (t === -1) throw new Error(`rules.${i}.${field}: unknown tier '${name}' (tiers: ${tierNames.join(', ')})`);
    return t;
  };
  const compiled = rules.map((rule, i): CompiledRule => {
    const tier = index(i, 'tier', rule.tier);
    const minTier = index(i, 'minTier', rule.minTier);
    const maxTier = index(i, 'maxTier', rule.maxTier);
    if (tier === -1 && minTier === -1 && maxTier === -1) throw new Error(`rules.${i}: needs tier, minTier or maxTier`);
    return { index: i, test: compileCondition(rule.when ?? {}), tier, minTier, maxTier };
  });
  return { rules: compiled, tierNames: [...tierNames] };
}

/**
 * The tier to serve: the first matching rule with a fixed `tier`, else `classifierTier` (clamped
 * to the route's tiers) bounded by every matching rule's `minTier` / `maxTier` (floor wins).
 */
export function applyRules(compiled: CompiledRules, features: RequestFeatures, requester: Requester, classifierTier: number): RuleDecision {
  const top = compiled.tierNames.length - 1;
  let tier = classifierTier < 0 ? 0 : classifierTier > top ? top : classifierTier;
  const rules = compiled.rules;
  let floor = -1;
  let floorRule = -1;
  let ceiling = Infinity;
  let ceilingRule = -1;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i] as CompiledRule;
    if (!rule.test(features, requester)) continue;
    if (rule.tier !== -1) return { tier: rule.tier, rule: rule.index };
    if (rule.minTier > floor) {
      floor = rule.minTier;
      floorRule = rule.index;
    }
    if (rule.maxTier !== -1 && rule.maxTier < ceiling) {
      ceiling = rule.maxTier;
      ceilingRule = rule.index;
    }
  }
  let rule: number | null = null;
  if (tier > ceiling) {
    tier = ceiling;
    rule = ceilingRule;
  }
  if (tier < floor) {
    tier = floor;
    rule = floorRule;
  }
  return { tier, rule };
}
