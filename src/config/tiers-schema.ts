/**
 * The `tiers` section of the config (rate limits and budgets per tenant, key and end user), and the
 * policy overrides a tenant or key may carry. See src/metering/policy.ts.
 */
import { z } from 'zod';
import { positiveInt } from './primitives.js';
import { requestLogPolicySchema } from './request-log-schema.js';

/** Bucket size as a multiple of the per-minute rate (1 = no burst beyond one minute's worth). */
const burst = z.number().min(1).max(10);
const usd = z.number().nonnegative();

/** A token-bucket rate limit. Omitted fields: no limit of that kind. */
export const rateLimitSchema = z
  .object({
    tokensPerMinute: positiveInt.optional(),
    requestsPerMinute: positiveInt.optional(),
    burst: burst.default(1),
  })
  .strict();
export type RateLimit = z.infer<typeof rateLimitSchema>;

/** Spend caps in USD. Omitted fields: no cap for that period. */
export const budgetSchema = z
  .object({
    dailyUsd: usd.optional(),
    monthlyUsd: usd.optional(),
    lifetimeUsd: usd.optional(),
  })
  .strict();
export type Budget = z.infer<typeof budgetSchema>;

/** Limits or budgets for each scope a request belongs to. */
const perScope = <T extends z.ZodTypeAny>(schema: T) =>
  z.object({ tenant: schema.optional(), key: schema.optional(), user: schema.optional() }).strict();

/** A tenant's or key's override of a tier's rate limit: a field set wins, `null` removes the tier's limit. */
export const rateLimitOverrideSchema = z
  .object({
    tokensPerMinute: positiveInt.nullable().optional(),
    requestsPerMinute: positiveInt.nullable().optional(),
    burst: burst.optional(),
  })
  .strict();

/** A tenant's or key's override of a tier's budget: a field set wins, `null` removes the tier's cap. */
export const budgetOverrideSchema = z
  .object({
    dailyUsd: usd.nullable().optional(),
    monthlyUsd: usd.nullable().optional(),
    lifetimeUsd: usd.nullable().optional(),
  })
  .strict();

/**
 * The `policy` a tenant or a key may carry (admin API `PUT .../policy`): overrides of its tier's
 * `limits` and `budgets`, per scope, merged field by field (src/metering/policy.ts).
 */
export const policyOverrideSchema = z
  .object({
    limits: perScope(rateLimitOverrideSchema).optional(),
    budgets: perScope(budgetOverrideSchema).optional(),
    /** Tenants only: whether the request log keeps this tenant's prompt and answer text (redacted). */
    requestLog: requestLogPolicySchema.optional(),
  })
  .strict();
export type PolicyOverrideInput = z.infer<typeof policyOverrideSchema>;

export const tierSchema = z
  .object({
    /** Models (public names) keys of this tier may use; omitted = all. */
    models: z.array(z.string().min(1)).optional(),
    /** Rate limits by tokens and requests, for the tenant, each key and each end user. */
    limits: perScope(rateLimitSchema).default({}),
    /** Spend caps for the tenant, each key and each end user. */
    budgets: perScope(budgetSchema).default({}),
  })
  .strict();
export type TierConfig = z.infer<typeof tierSchema>;
