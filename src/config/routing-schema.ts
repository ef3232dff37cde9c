/**
 * Config of routing: tiered routes (`routes`), A/B experiments (`experiments`) and shadow traffic
 * (per route). See src/routing/ and docs/CONFIG.md.
 */
import { z } from 'zod';
import { routeCacheSchema } from './cache-schema.js';

const name = z.string().regex(/^[A-Za-z0-9_.:/-]{1,64}$/, 'must be 1-64 characters of letters, digits and _ . : / -');
const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);
const numeric = z
  .object({ gt: z.number().optional(), gte: z.number().optional(), lt: z.number().optional(), lte: z.number().optional() })
  .strict();

export const ruleSchema = z
  .object({
    when: z
      .object({
        tenantTier: stringOrList.optional(),
        tenant: stringOrList.optional(),
        key: stringOrList.optional(),
        user: stringOrList.optional(),
        hasTools: z.boolean().optional(),
        hasCode: z.boolean().optional(),
        hasMath: z.boolean().optional(),
        asksReasoning: z.boolean().optional(),
        asksStructure: z.boolean().optional(),
        jsonMode: z.boolean().optional(),
        hasImages: z.boolean().optional(),
        promptTokens: numeric.optional(),
        messages: numeric.optional(),
        maxTokens: numeric.optional(),
      })
      .strict(),
    /** Serve from this tier (a tier name of the route). */
    tier: z.string().min(1).optional(),
    /** At least / at most this tier. */
    minTier: z.string().min(1).optional(),
    maxTier: z.string().min(1).optional(),
  })
  .strict()
  .refine((r) => r.tier !== undefined || r.minTier !== undefined || r.maxTier !== undefined, 'needs tier, minTier or maxTier');

export const escalationSchema = z
  .object({
    /** Checks an answer from a lower tier must pass, else the next tier up is asked. */
    on: z.array(z.enum(['empty', 'length', 'invalid_json'])).min(1).default(['empty', 'length', 'invalid_json']),
    /** Most extra tiers tried for one request. */
    maxSteps: z.number().int().min(1).max(5).default(1),
  })
  .strict();

export const shadowSchema = z
  .object({
    /** The candidate: a public model name. */
    model: z.string().min(1),
    /** Share of the route's requests mirrored, 0-1. */
    sampleRate: z.number().min(0).max(1),
    /** Each tenant's shadow spend per day, USD (separate from its budgets; mirroring stops at the cap). */
    dailyBudgetUsd: z.number().nonnegative().default(1),
    /** Similarity of the two answers (cache embedder) at or above which they "agree". */
    agreementThreshold: z.number().min(0).max(1).default(0.8),
  })
  .strict();

export const routeSchema = z
  .object({
    /** Other names clients may send (e.g. `auto`). */
    aliases: z.array(z.string().min(1)).default([]),
    /** Tiers from cheapest to largest: name -> ordered fallback chain of public model names. */
    tiers: z.record(z.array(z.string().min(1)).min(1, 'needs at least one model')).refine((t) => Object.keys(t).length > 0, 'needs at least one tier'),
    /** `builtin`: the complexity classifier (src/routing/classifier.ts); `none`: the first tier unless a rule says otherwise. */
    classifier: z.enum(['builtin', 'none']).default('builtin'),
    /** Evaluated in order; the first rule with `tier` that matches decides; `minTier`/`maxTier` of every matching rule bound the choice. */
    rules: z.array(ruleSchema).default([]),
    escalate: escalationSchema.optional(),
    shadow: shadowSchema.optional(),
    cache: routeCacheSchema.optional(),
    ownedBy: z.string().default('tollgate'),
  })
  .strict();
export type RouteConfig = z.infer<typeof routeSchema>;

export const variantSchema = z
  .object({
    name: name,
    /** Relative share of the traffic (any positive numbers; normalized). */
    weight: z.number().positive(),
    /** Serve with this model (a public model or route name); default: what was asked. */
    model: z.string().min(1).optional(),
    /** Replace (or add) the system prompt. */
    system: z.string().optional(),
    /** Request parameters to set (temperature, top_p, max_tokens...). */
    params: z.record(z.unknown()).optional(),
  })
  .strict();

export const experimentSchema = z
  .object({
    /** The route or model name whose requests are split. */
    route: z.string().min(1),
    variants: z.array(variantSchema).min(2, 'needs at least two variants'),
    /** Off: every request gets the first variant (the control) and nothing is recorded as an experiment. */
    enabled: z.boolean().default(true),
    description: z.string().default(''),
  })
  .strict();
export type ExperimentConfig = z.infer<typeof experimentSchema>;
