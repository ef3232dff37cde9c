/**
 * The `providers` section of the config: the upstream providers by id (the built-in simulator,
 * OpenAI-compatible APIs, Anthropic), and the simulator's models and faults. See src/providers/.
 */
import { z } from 'zod';
import { httpUrl as url, nonNegInt, positiveInt } from './primitives.js';

/** Latency of a simulated model: a log-normal distribution given by its median and 95th percentile. */
export const latencySchema = z
  .object({
    median: z.number().nonnegative(),
    p95: z.number().nonnegative(),
  })
  .strict()
  .refine((v) => v.p95 >= v.median, { message: 'p95 must be >= median', path: ['p95'] });

export const faultSchema = z
  .object({
    /** Probability of answering with each HTTP status, e.g. { "500": 0.05, "429": 0.02 }. */
    errorRate: z.record(z.string().regex(/^[45]\d\d$/, 'must be a 4xx or 5xx status'), z.number().min(0).max(1)).default({}),
    /** Retry-After (seconds) sent with simulated 429 and 503 answers. */
    retryAfterSeconds: z.number().nonnegative().default(1),
    /** Probability that a request never answers (the caller's timeout must fire). */
    hangRate: z.number().min(0).max(1).default(0),
    /** Probability that the connection is reset before any answer. */
    resetRate: z.number().min(0).max(1).default(0),
    /** Probability that a stream breaks after some chunks. */
    midStreamBreakRate: z.number().min(0).max(1).default(0),
  })
  .strict()
  .refine(
    (f) => Object.values(f.errorRate).reduce((a, b) => a + b, 0) + f.hangRate + f.resetRate + f.midStreamBreakRate <= 1 + 1e-9,
    { message: 'the fault rates (errorRate, hangRate, resetRate, midStreamBreakRate) add up to more than 1' },
  );
export type FaultConfig = z.infer<typeof faultSchema>;

export const simModelSchema = z
  .object({
    type: z.enum(['chat', 'embedding']).default('chat'),
    /** Time to first token (ms). */
    ttftMs: latencySchema.default({ median: 0, p95: 0 }),
    /** Streaming speed once started. 0 = instant. */
    tokensPerSecond: z.number().nonnegative().default(0),
    /** Length of generated answers, in tokens, before max_tokens clips it. */
    outputTokens: z
      .object({ min: nonNegInt, max: nonNegInt })
      .strict()
      .refine((v) => v.max >= v.min, { message: 'max must be >= min', path: ['max'] })
      .default({ min: 16, max: 96 }),
    /** Embedding vector size (embedding models). */
    dimensions: positiveInt.default(256),
  })
  .strict();
export type SimModelConfig = z.infer<typeof simModelSchema>;

const simulatedProviderSchema = z
  .object({
    kind: z.literal('simulated'),
    /** Models this simulator serves. Defaults: sim-small, sim-medium, sim-large, sim-embed. */
    models: z.record(simModelSchema).optional(),
    faults: faultSchema.default({}),
  })
  .strict();

const openaiCompatibleProviderSchema = z
  .object({
    kind: z.literal('openai-compatible'),
    baseUrl: url('baseUrl'),
    apiKey: z.string().optional(),
    /** Extra headers sent with every request (e.g. OpenAI-Organization). */
    headers: z.record(z.string()).default({}),
    /** Azure OpenAI style: /openai/deployments/{model}/chat/completions?api-version=... and api-key header. */
    azure: z.object({ apiVersion: z.string().min(1) }).strict().optional(),
    /** Sockets kept per origin (keep-alive pool). */
    maxConnections: positiveInt.default(128),
    keepAliveTimeoutMs: positiveInt.default(30_000),
  })
  .strict();

const anthropicProviderSchema = z
  .object({
    kind: z.literal('anthropic'),
    baseUrl: url('baseUrl').default('https://api.anthropic.com'),
    apiKey: z.string().optional(),
    /** anthropic-version header. */
    version: z.string().default('2023-06-01'),
    headers: z.record(z.string()).default({}),
    /** Anthropic requires max_tokens; used when the request gives none. */
    defaultMaxTokens: positiveInt.default(4096),
    maxConnections: positiveInt.default(128),
    keepAliveTimeoutMs: positiveInt.default(30_000),
  })
  .strict();

export const providerSchema = z.discriminatedUnion('kind', [
  simulatedProviderSchema,
  openaiCompatibleProviderSchema,
  anthropicProviderSchema,
]);
export type ProviderConfig = z.infer<typeof providerSchema>;
export type SimulatedProviderConfig = z.infer<typeof simulatedProviderSchema>;
export type OpenAICompatibleProviderConfig = z.infer<typeof openaiCompatibleProviderSchema>;
export type AnthropicProviderConfig = z.infer<typeof anthropicProviderSchema>;
