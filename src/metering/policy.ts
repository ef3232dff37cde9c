/**
 * The limits and budgets that apply to one request: its tier's, for the tenant, the key and the
 * end user (when known).
 */
import type { AuthInfo } from '../auth/authenticator.js';
import type { Budget, RateLimit, TierConfig } from '../config/schema.js';

export type Scope = 'tenant' | 'key' | 'user';

export interface ScopeId {
  scope: Scope;
  /** tenant id, key id, or `tenantId/userId` (end users are per tenant). */
  id: string;
  /** For ledger look-ups. */
  filter: { tenantId?: string; keyId?: string; userId?: string };
}

export interface Policy {
  limits: Array<ScopeId & { limit: RateLimit }>;
  budgets: Array<ScopeId & { budget: Budget }>;
}

export function scopesOf(auth: AuthInfo, endUser: string | null | undefined): ScopeId[] {
  const scopes: ScopeId[] = [
    { scope: 'tenant', id: auth.tenantId, filter: { tenantId: auth.tenantId } },
    { scope: 'key', id: auth.keyId, filter: { keyId: auth.keyId } },
  ];
  if (endUser) scopes.push({ scope: 'user', id: `${auth.tenantId}/${endUser}`, filter: { tenantId: auth.tenantId, userId: endUser } });
  return scopes;
}

/** Resolves the request's policy from its tier. */
export function resolvePolicy(tiers: Record<string, TierConfig>, auth: AuthInfo, endUser: string | null | undefined): Policy {
  const tier = tiers[auth.tier];
  const policy: Policy = { limits: [], budgets: [] };
  if (!tier) return policy;
  for (const s of scopesOf(auth, endUser)) {
    const limit = tier.limits[s.scope];
    if (limit && (limit.tokensPerMinute !== undefined || limit.requestsPerMinute !== undefined)) policy.limits.push({ ...s, limit });
    const budget = tier.budgets[s.scope];
    if (budget && (budget.dailyUsd !== undefined || budget.monthlyUsd !== undefined || budget.lifetimeUsd !== undefined)) {
      policy.budgets.push({ ...s, budget });
    }
  }
  return policy;
}

/** Whether any tier limits or budgets anything (if not, admission has nothing to do). */
export function tiersLimitAnything(tiers: Record<string, TierConfig>): boolean {
  return Object.values(tiers).some((t) => Object.values(t.limits).some(Boolean) || Object.values(t.budgets).some(Boolean));
}
