/**
 * The `resilience` section of the config: timeouts, retries and circuit breakers of upstream
 * calls. See src/resilience/ and src/pipeline/stages/invoke.ts.
 */
import { z } from 'zod';
import { nonNegInt, positiveInt } from './primitives.js';

export const breakerSchema = z
  .object({
    /** Consecutive failures that open the breaker. */
    failureThreshold: positiveInt.default(5),
    /** How long an open breaker rejects before letting probes through. */
    cooldownMs: positiveInt.default(15_000),
    /** Probes admitted at once while half-open. */
    halfOpenMaxProbes: positiveInt.default(1),
    /** Successful probes needed to close again. */
    successesToClose: positiveInt.default(1),
  })
  .strict();
export type BreakerConfig = z.infer<typeof breakerSchema>;

export const retrySchema = z
  .object({
    /** Retries on the same deployment after the first attempt (then the next deployment). */
    maxRetries: nonNegInt.default(1),
    baseDelayMs: nonNegInt.default(100),
    maxDelayMs: nonNegInt.default(5_000),
    /** A Retry-After longer than this skips to the next deployment instead of waiting. */
    maxRetryAfterMs: nonNegInt.default(10_000),
  })
  .strict();
export type RetryConfig = z.infer<typeof retrySchema>;

export const resilienceSchema = z
  .object({
    /** Per attempt: until the full JSON answer, or until the first chunk of a stream. */
    attemptTimeoutMs: positiveInt.default(60_000),
    /** Once a stream has started: the longest silence between two chunks. */
    streamIdleTimeoutMs: positiveInt.default(60_000),
    /** The whole request, all attempts and waits included. */
    deadlineMs: positiveInt.default(180_000),
    retry: retrySchema.default({}),
    breaker: breakerSchema.default({}),
  })
  .strict();
export type ResilienceConfig = z.infer<typeof resilienceSchema>;
