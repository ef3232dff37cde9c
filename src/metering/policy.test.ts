import { describe, expect, it } from 'vitest';
import type { TierConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { PolicyOverride } from '../storage/types.js';
import { type PolicySubject, mergeBudget, mergeLimit, parsePolicyOverride, resolvePolicy } from './policy.js';

const tiers: Record<string, TierConfig> = {
  standard: {
    limits: { tenant: { tokensPerMinute: 10_000, burst: 1 }, key: { requestsPerMinute: 60, tokensPerMinute: 2_000, burst: 2 } },
    budgets: { tenant: { dailyUsd: 10 }, key: { monthlyUsd: 5 }, user: { dailyUsd: 0.5 } },
  },
  open: { limits: {}, budgets: {} },
};

function subject(tenantPolicy: PolicyOverride | null = null, keyPolicy: PolicyOverride | null = null, tier = 'standard'): PolicySubject {
  return { tenantId: 'ten_a', keyId: 'key_a', tier, tenantPolicy, keyPolicy };
}

const byScope = <T extends { scope: string }>(items: T[]) => Object.fromEntries(items.map((i) => [i.scope, i]));

describe('mergeLimit / mergeBudget', () => {
  it('keeps the base when there is no override', () => {
    expect(mergeLimit({ tokensPerMinute: 5, burst: 2 })).toEqual({ tokensPerMinute: 5, burst: 2 });
    expect(mergeBudget({ dailyUsd: 1 })).toEqual({ dailyUsd: 1 });
  });

  it('lets a field set in an override win, field by field, and the last override win over the first', () => {
    expect(mergeLimit({ tokensPerMinute: 5, requestsPerMinute: 9, burst: 1 }, { tokensPerMinute: 50 }, { burst: 3 })).toEqual({
      tokensPerMinute: 50,
      requestsPerMinute: 9,
      burst: 3,
    });
    expect(mergeBudget({ dailyUsd: 1, monthlyUsd: 20 }, { dailyUsd: 2 }, { dailyUsd: 3, lifetimeUsd: 100 })).toEqual({
      dailyUsd: 3,
      monthlyUsd: 20,
      lifetimeUsd: 100,
    });
  });

  it('removes a field set to null, and returns undefined when nothing is left to limit', () => {
    expect(mergeLimit({ tokensPerMinute: 5, requestsPerMinute: 9, burst: 1 }, { requestsPerMinute: null })).toEqual({ tokensPerMinute: 5, burst: 1 });
    expect(mergeLimit({ tokensPerMinute: 5, burst: 1 }, { tokensPerMinute: null })).toBeUndefined();
    expect(mergeBudget({ dailyUsd: 1 }, { dailyUsd: null })).toBeUndefined();
    // null then a value: the later layer sets it again.
    expect(mergeBudget({ dailyUsd: 1 }, { dailyUsd: null }, { dailyUsd: 4 })).toEqual({ dailyUsd: 4 });
  });

  it('adds limits where the tier has none (burst defaults to 1)', () => {
    expect(mergeLimit(undefined, { requestsPerMinute: 3 })).toEqual({ requestsPerMinute: 3, burst: 1 });
    expect(mergeLimit(undefined, { burst: 4 })).toBeUndefined(); // a burst alone limits nothing
    expect(mergeBudget(undefined, { lifetimeUsd: 0 })).toEqual({ lifetimeUsd: 0 });
  });
});

describe('resolvePolicy: tier -> tenant policy -> key policy', () => {
  it('is the tier alone without policies', () => {
    const p = resolvePolicy(tiers, subject(), 'alice');
    expect(byScope(p.limits)).toEqual({
      tenant: expect.objectContaining({ id: 'ten_a', limit: { tokensPerMinute: 10_000, burst: 1 } }),
      key: expect.objectContaining({ id: 'key_a', limit: { requestsPerMinute: 60, tokensPerMinute: 2_000, burst: 2 } }),
    });
    expect(byScope(p.budgets)['user']).toMatchObject({ id: 'ten_a/alice', budget: { dailyUsd: 0.5 }, filter: { tenantId: 'ten_a', userId: 'alice' } });
  });

  it("overrides the tenant's own scope and sets defaults for its keys and users", () => {
    const tenant: PolicyOverride = {
      limits: { tenant: { tokensPerMinute: 500 }, key: { requestsPerMinute: 2 }, user: { requestsPerMinute: 1 } },
      budgets: { tenant: { dailyUsd: null, monthlyUsd: 50 }, user: { dailyUsd: 0.1 } },
    };
    const p = resolvePolicy(tiers, subject(tenant), 'alice');
    expect(byScope(p.limits)['tenant']?.limit).toEqual({ tokensPerMinute: 500, burst: 1 });
    expect(byScope(p.limits)['key']?.limit).toEqual({ requestsPerMinute: 2, tokensPerMinute: 2_000, burst: 2 });
    expect(byScope(p.limits)['user']?.limit).toEqual({ requestsPerMinute: 1, burst: 1 });
    expect(byScope(p.budgets)['tenant']?.budget).toEqual({ monthlyUsd: 50 });
    expect(byScope(p.budgets)['key']?.budget).toEqual({ monthlyUsd: 5 });
    expect(byScope(p.budgets)['user']?.budget).toEqual({ dailyUsd: 0.1 });
  });

  it("lets a key's policy win over its tenant's for the key and its users, never for the tenant", () => {
    const tenant: PolicyOverride = { limits: { key: { requestsPerMinute: 2 } }, budgets: { user: { dailyUsd: 0.1 } } };
    const key = {
      limits: { key: { requestsPerMinute: 100 }, tenant: { tokensPerMinute: 1 } },
      budgets: { key: { monthlyUsd: null, dailyUsd: 1 }, user: { dailyUsd: null } },
    } as PolicyOverride; // a `tenant` member cannot get past parsePolicyOverride; ignored if it did
    const p = resolvePolicy(tiers, subject(tenant, key), 'alice');
    expect(byScope(p.limits)['tenant']?.limit).toEqual({ tokensPerMinute: 10_000, burst: 1 });
    expect(byScope(p.limits)['key']?.limit).toEqual({ requestsPerMinute: 100, tokensPerMinute: 2_000, burst: 2 });
    expect(byScope(p.budgets)['key']?.budget).toEqual({ dailyUsd: 1 });
    expect(byScope(p.budgets)['user']).toBeUndefined(); // the key lifted its users' budget
  });

  it('applies policies on a tier without limits, or a tier no longer configured', () => {
    const tenant: PolicyOverride = { budgets: { tenant: { dailyUsd: 3 } } };
    expect(resolvePolicy(tiers, subject(tenant, null, 'open'), null).budgets).toEqual([
      { scope: 'tenant', id: 'ten_a', filter: { tenantId: 'ten_a' }, budget: { dailyUsd: 3 } },
    ]);
    expect(resolvePolicy(tiers, subject(tenant, null, 'gone'), null).budgets).toHaveLength(1);
    expect(resolvePolicy(tiers, subject(null, null, 'gone'), null)).toEqual({ limits: [], budgets: [] });
  });

  it('has no user scope without an end user', () => {
    const p = resolvePolicy(tiers, subject({ limits: { user: { requestsPerMinute: 1 } } }), null);
    expect(p.limits.map((l) => l.scope)).toEqual(['tenant', 'key']);
  });
});

describe('parsePolicyOverride', () => {
  const fail = (input: unknown, owner: 'tenant' | 'key' = 'tenant') => {
    try {
      parsePolicyOverride(input, owner);
    } catch (err) {
      expect(err).toBeInstanceOf(GatewayError);
      return err as GatewayError;
    }
    throw new Error('expected a GatewayError');
  };

  it('accepts the tier shapes with nulls and keeps them as given', () => {
    const policy = { limits: { tenant: { tokensPerMinute: 100, requestsPerMinute: null, burst: 2 } }, budgets: { user: { dailyUsd: 0 } } };
    expect(parsePolicyOverride(policy, 'tenant')).toEqual(policy);
    expect(parsePolicyOverride({}, 'key')).toEqual({});
  });

  it('names the field that is wrong', () => {
    expect(fail({ limits: { key: { tokensPerMinute: -5 } } })).toMatchObject({ status: 400, code: 'invalid_value', param: 'limits.key.tokensPerMinute' });
    expect(fail({ limits: { key: { tokensPerMinute: 1.5 } } }).param).toBe('limits.key.tokensPerMinute');
    expect(fail({ budgets: { user: { dailyUsd: 'ten' } } })).toMatchObject({ code: 'invalid_type', param: 'budgets.user.dailyUsd' });
    expect(fail({ budgets: { user: { dailyUsd: 'ten' } } }).message).toMatch(/'budgets\.user\.dailyUsd': expected number or null, got string/);
    expect(fail({ limits: { key: { tpm: 5 } } })).toMatchObject({ param: 'limits.key.tpm' });
    expect(fail({ limits: { key: { tpm: 5 } } }).message).toMatch(/unknown field \(expected one of: tokensPerMinute, requestsPerMinute, burst\)/);
    expect(fail({ limits: { team: {} } }).param).toBe('limits.team');
    expect(fail({ quotas: {} }).param).toBe('quotas');
    expect(fail({ limits: { key: { burst: 50 } } }).param).toBe('limits.key.burst');
  });

  it('refuses a body that is not an object', () => {
    expect(fail([1, 2])).toMatchObject({ status: 400, code: 'invalid_request', param: null });
    expect(fail('x').message).toMatch(/must be a JSON object/);
  });

  it("refuses a key policy that sets the tenant's scope", () => {
    const err = fail({ budgets: { tenant: { dailyUsd: 1 } } }, 'key');
    expect(err).toMatchObject({ status: 400, param: 'budgets.tenant' });
    expect(err.message).toMatch(/set the tenant's budgets on the tenant/);
    expect(parsePolicyOverride({ budgets: { tenant: { dailyUsd: 1 } } }, 'tenant')).toBeTruthy();
  });
});
