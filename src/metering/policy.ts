/**
 * The limits and budgets that apply to one request, for the tenant, the key and the end user
 * (when known). Each scope's values are merged, field by field, from three layers:
 *
 *   tier (config `tiers.<tier>.limits/.budgets`)  ->  tenant policy  ->  key policy
 *
 * A field an override sets wins; `null` removes the layer below's limit for that field. The
 * tenant's policy overrides its own scope and sets the defaults of its keys and end users; a
 * key's policy overrides its own scope and its end users (never its tenant's, which all of the
 * tenant's keys share).
 */
import type { ZodIssue } from 'zod';
import type { AuthInfo } from '../auth/authenticator.js';
import { type Budget, type PolicyOverrideInput, type RateLimit, type TierConfig, policyOverrideSchema } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { BudgetOverride, PolicyOverride, RateLimitOverride } from '../storage/types.js';

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

/** What resolvePolicy needs of the caller's identity (`mergedPolicy`: filled on first use). */
export type PolicySubject = Pick<AuthInfo, 'tenantId' | 'keyId' | 'tier' | 'tenantPolicy' | 'keyPolicy' | 'mergedPolicy'>;

export function scopesOf(auth: Pick<AuthInfo, 'tenantId' | 'keyId'>, endUser: string | null | undefined): ScopeId[] {
  const scopes: ScopeId[] = [
    { scope: 'tenant', id: auth.tenantId, filter: { tenantId: auth.tenantId } },
    { scope: 'key', id: auth.keyId, filter: { keyId: auth.keyId } },
  ];
  if (endUser) scopes.push({ scope: 'user', id: `${auth.tenantId}/${endUser}`, filter: { tenantId: auth.tenantId, userId: endUser } });
  return scopes;
}

const LIMIT_FIELDS = ['tokensPerMinute', 'requestsPerMinute'] as const;
const BUDGET_FIELDS = ['dailyUsd', 'monthlyUsd', 'lifetimeUsd'] as const;

/** A tier's rate limit with overrides applied in order; undefined when nothing is limited. */
export function mergeLimit(base: RateLimit | undefined, ...overrides: Array<RateLimitOverride | undefined>): RateLimit | undefined {
  const out: RateLimit = { burst: base?.burst ?? 1 };
  for (const f of LIMIT_FIELDS) if (base?.[f] !== undefined) out[f] = base[f];
  for (const o of overrides) {
    if (!o) continue;
    for (const f of LIMIT_FIELDS) {
      const v = o[f];
      if (v === null) delete out[f];
      else if (v !== undefined) out[f] = v;
    }
    if (o.burst !== undefined) out.burst = o.burst;
  }
  return out.tokensPerMinute !== undefined || out.requestsPerMinute !== undefined ? out : undefined;
}

/** A tier's budget with overrides applied in order; undefined when nothing is capped. */
export function mergeBudget(base: Budget | undefined, ...overrides: Array<BudgetOverride | undefined>): Budget | undefined {
  const out: Budget = {};
  for (const f of BUDGET_FIELDS) if (base?.[f] !== undefined) out[f] = base[f];
  for (const o of overrides) {
    if (!o) continue;
    for (const f of BUDGET_FIELDS) {
      const v = o[f];
      if (v === null) delete out[f];
      else if (v !== undefined) out[f] = v;
    }
  }
  return BUDGET_FIELDS.some((f) => out[f] !== undefined) ? out : undefined;
}

/** Resolves the request's policy: its tier's, then its tenant's overrides, then its key's. */
export function resolvePolicy(tiers: Record<string, TierConfig>, auth: PolicySubject, endUser: string | null | undefined): Policy {
  const merged = mergedFor(tiers, auth);
  const policy: Policy = { limits: [], budgets: [] };
  if (merged.empty) return policy;
  for (const s of scopesOf(auth, endUser)) {
    const limit = merged.limits[s.scope];
    if (limit) policy.limits.push({ ...s, limit });
    const budget = merged.budgets[s.scope];
    if (budget) policy.budgets.push({ ...s, budget });
  }
  return policy;
}

/** A caller's limits and budgets per scope, its three layers merged (see AuthInfo.mergedPolicy). */
export interface MergedPolicy {
  empty: boolean;
  limits: Partial<Record<Scope, RateLimit>>;
  budgets: Partial<Record<Scope, Budget>>;
}

/**
 * The merged values per scope, worked out once per identity object and kept on it: the
 * Authenticator hands out the same AuthInfo for a key while it is cached, and a new one when the
 * key or its tenant changes.
 */
function mergedFor(tiers: Record<string, TierConfig>, auth: PolicySubject): MergedPolicy {
  return (auth.mergedPolicy ??= merge(tiers, auth));
}

function merge(tiers: Record<string, TierConfig>, auth: PolicySubject): MergedPolicy {
  const tier = tiers[auth.tier];
  const tenant = auth.tenantPolicy ?? undefined;
  const key = auth.keyPolicy ?? undefined;
  const m: MergedPolicy = { empty: true, limits: {}, budgets: {} };
  for (const scope of ['tenant', 'key', 'user'] as const) {
    // A key's policy never reaches its tenant's scope (shared by every key of the tenant).
    const keyLayer = scope === 'tenant' ? undefined : key;
    const limit = mergeLimit(tier?.limits[scope], tenant?.limits?.[scope], keyLayer?.limits?.[scope]);
    const budget = mergeBudget(tier?.budgets[scope], tenant?.budgets?.[scope], keyLayer?.budgets?.[scope]);
    if (limit) m.limits[scope] = limit;
    if (budget) m.budgets[scope] = budget;
    if (limit || budget) m.empty = false;
  }
  return m;
}

// The validated input must be storable as it is.
const _storable = (p: PolicyOverrideInput): PolicyOverride => p;
void _storable;

/**
 * Validates a policy for a tenant or a key (a key's may not touch the tenant scope). Throws a
 * 400 GatewayError naming the field, e.g. `limits.key.tokensPerMinute`.
 */
export function parsePolicyOverride(input: unknown, owner: 'tenant' | 'key'): PolicyOverride {
  const result = policyOverrideSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const { param, message } = describePolicyIssue(issue);
    if (!param) throw new GatewayError('invalid_request', `The policy must be a JSON object: ${message}.`);
    throw new GatewayError(issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value', `Invalid policy field '${param}': ${message}.`, {
      param,
    });
  }
  const policy = result.data;
  if (owner === 'key') {
    if (policy.requestLog !== undefined) {
      throw new GatewayError('invalid_value', "Invalid policy field 'requestLog': the request log's content setting belongs to the tenant; set it on the tenant's policy.", {
        param: 'requestLog',
      });
    }
    for (const section of ['limits', 'budgets'] as const) {
      if (policy[section]?.tenant !== undefined) {
        throw new GatewayError(
          'invalid_value',
          `Invalid policy field '${section}.tenant': a key's policy applies to the key and its end users; set the tenant's ${section} on the tenant.`,
          { param: `${section}.tenant` },
        );
      }
    }
  }
  return policy;
}

function describePolicyIssue(issue: ZodIssue): { param: string; message: string } {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const known = knownFields(path);
    return {
      param: [...path, issue.keys[0]!].join('.'),
      message: `unknown field${known ? ` (expected one of: ${known})` : ''}`,
    };
  }
  if (issue.code === 'invalid_type') {
    const nullable = issue.expected === 'number' && path.at(-1) !== 'burst';
    return { param: path.join('.'), message: `expected ${issue.expected}${nullable ? ' or null' : ''}, got ${issue.received}` };
  }
  return { param: path.join('.'), message: issue.message.replace(/^Number must be/, 'must be') };
}

function knownFields(path: string[]): string | undefined {
  if (path.length === 0) return 'limits, budgets, requestLog';
  if (path[0] === 'requestLog') return 'content';
  if (path.length === 1) return 'tenant, key, user';
  if (path.length === 2) return path[0] === 'limits' ? 'tokensPerMinute, requestsPerMinute, burst' : BUDGET_FIELDS.join(', ');
  return undefined;
}
