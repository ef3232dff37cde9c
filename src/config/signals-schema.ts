/**
 * The `drift` and `abuse` sections of the config: input drift per route and abuse signals per key
 * and end user (src/observability/drift.ts, abuse.ts). See docs/CONFIG.md#drift and #abuse.
 */
import { z } from 'zod';
import { positiveInt } from './primitives.js';

export const driftSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Routes (public model or route names) watched; empty = every configured name. */
    routes: z.array(z.string().min(1)).default([]),
    /** The recent window compared with the baseline. */
    recentMinutes: positiveInt.max(24 * 60).default(15),
    /** The baseline: this long, just before the recent window (rolling). */
    baselineMinutes: positiveInt.max(30 * 24 * 60).default(24 * 60),
    /** Time-bucket size of the recent window's aggregates. */
    slotSeconds: positiveInt.max(3_600).default(60),
    /** Samples both windows need before a feature's score is reported. */
    minSamples: positiveInt.default(100),
    embedding: z
      .object({
        /**
         * Share of requests whose prompt is embedded for the centroid when the cache did not
         * compute its vector (off the hot path, with the cache's embedder). 0: only the cache's vectors.
         */
        sampleRate: z.number().min(0).max(1).default(0.05),
        /** Sampled embeddings running at once; more are skipped. */
        maxConcurrent: positiveInt.max(64).default(2),
        /** Sample with a `deployment` embedder too (upstream calls, billed to no tenant); off: only the cache's vectors then. */
        sampleUpstream: z.boolean().default(false),
      })
      .strict()
      .default({}),
  })
  .strict()
  .refine((d) => d.recentMinutes * 60 >= d.slotSeconds, { message: 'recentMinutes must be at least one slot (slotSeconds)', path: ['recentMinutes'] });
export type DriftConfig = z.infer<typeof driftSchema>;

const action = z.enum(['flag', 'throttle']);
export type AbuseAction = z.infer<typeof action>;

export const abuseSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** What a flag does: `flag` only reports it; `throttle` also refuses the key's or user's requests (429) for a while. Each kind may override it. */
    action: action.default('flag'),
    throttle: z
      .object({
        /** How long a throttle lasts after the flag is raised (or raised again). */
        durationSeconds: positiveInt.default(300),
        /** Requests per minute still let through while throttled; 0 refuses all. */
        requestsPerMinute: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({}),
    /** A flag expires after this long without its condition recurring. */
    quietMinutes: positiveInt.default(15),
    /** Keys and end users tracked (least recently seen forgotten first). */
    maxSubjects: positiveInt.default(10_000),
    tokenSpike: z
      .object({
        enabled: z.boolean().default(true),
        action: action.optional(),
        /** A minute is a spike only above this many tokens (prompt + completion)... */
        minTokensPerMinute: positiveInt.default(20_000),
        /** ...and above mean + stddevs x standard deviation of the subject's own past minutes... */
        stddevs: z.number().positive().default(4),
        /** ...and above multiple x their mean. */
        multiple: z.number().min(1).default(5),
        /** Past minutes kept per subject (idle minutes count as 0). */
        historyMinutes: z.number().int().min(5).max(24 * 60).default(60),
      })
      .strict()
      .default({}),
    repeatedPrompts: z
      .object({
        enabled: z.boolean().default(true),
        action: action.optional(),
        /** Near-identical prompts within `windowSeconds` that raise the flag. */
        count: z.number().int().min(2).default(20),
        windowSeconds: positiveInt.default(600),
        /**
         * SimHash bits (of 64) two prompts may differ by and still count as the same: 0 = identical
         * after normalisation (case, spacing, punctuation); one word changed in a short prompt moves
         * ~4-12 bits, unrelated prompts ~32.
         */
        maxDistance: z.number().int().min(0).max(24).default(6),
        /** Shorter prompts ("hi", "thanks") are not counted. */
        minChars: z.number().int().nonnegative().default(16),
      })
      .strict()
      .default({}),
    longPrompts: z
      .object({
        enabled: z.boolean().default(true),
        action: action.optional(),
        /** A prompt over this many tokens raises the flag. */
        maxPromptTokens: positiveInt.default(32_000),
      })
      .strict()
      .default({}),
  })
  .strict();
export type AbuseConfig = z.infer<typeof abuseSchema>;
