/**
 * The `models` section of the config: each public model's fallback chain of deployments, aliases,
 * price and cache overrides. See src/routing/catalog.ts.
 */
import { z } from 'zod';
import { routeCacheSchema } from './cache-schema.js';
import { positiveInt } from './primitives.js';

/** USD per million tokens. */
export const priceSchema = z
  .object({
    input: z.number().nonnegative(),
    output: z.number().nonnegative().default(0),
    cachedInput: z.number().nonnegative().optional(),
    /**
     * Tokens an image input is billed as, when reserving before the call (upstream's usage is
     * billed after it): `low` for `detail: "low"`, `high` otherwise. Default 85 / 1,600.
     */
    imageTokens: z.object({ low: z.number().int().nonnegative(), high: z.number().int().nonnegative() }).strict().optional(),
  })
  .strict();

export const deploymentSchema = z
  .object({
    /** A key of `providers`. */
    provider: z.string().min(1),
    /** The model name upstream knows; defaults to the public model name. */
    model: z.string().min(1).optional(),
    /** Per-attempt timeout for this deployment (overrides resilience.attemptTimeoutMs). */
    timeoutMs: positiveInt.optional(),
  })
  .strict();

export const modelSchema = z
  .object({
    type: z.enum(['chat', 'embedding']).default('chat'),
    /** Ordered fallback chain: the first healthy deployment answers, the next on failure. */
    deployments: z.array(deploymentSchema).min(1, 'needs at least one deployment'),
    /** Other names that resolve to this model. */
    aliases: z.array(z.string().min(1)).default([]),
    price: priceSchema.optional(),
    /** Shown by GET /v1/models. */
    ownedBy: z.string().default('tollgate'),
    /** Cache policy of this route (overrides the `cache` section). */
    cache: routeCacheSchema.optional(),
  })
  .strict();
export type ModelConfig = z.infer<typeof modelSchema>;
