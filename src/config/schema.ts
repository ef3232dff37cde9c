/**
 * The configuration schema (zod). Every option has a default, so an empty file (or no file) is a
 * working embedded gateway on the built-in simulator. `tollgate.example.yaml` documents each key.
 */
import { z } from 'zod';
import { alertRulesSchema } from './alerts-schema.js';
import { cacheSchema, routeCacheSchema } from './cache-schema.js';
import { jobsSchema } from './jobs-schema.js';
import { quotasSchema } from './quotas-schema.js';
import { requestLogPolicySchema, requestLogSchema } from './request-log-schema.js';
import { ledgerSchema } from './ledger-schema.js';
import { experimentSchema, routeSchema } from './routing-schema.js';
import { abuseSchema, driftSchema } from './signals-schema.js';
import { tracingSchema } from './tracing-schema.js';

const url = (what: string) =>
  z
    .string({ required_error: `${what} is required` })
    .refine((v) => {
      try {
        const u = new URL(v);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    }, 'must be a URL (http:// or https://)');

const positiveInt = z.number().int().positive();

/** A URL with one of the given schemes (credentials allowed). */
const serviceUrl = (protocols: string[], example: string) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `must be a URL like ${example}`);
const nonNegInt = z.number().int().nonnegative();

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

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Largest request body accepted, in bytes (413 beyond). */
        bodyLimitBytes: positiveInt.default(4 * 1024 * 1024),
        /**
         * Deepest nesting of objects and arrays accepted in a JSON body (and a batch line); the body
         * itself is level 1. Deeper: 400 naming where (src/http/json-depth.ts).
         */
        maxJsonDepth: z.number().int().min(4).max(1_000).default(64),
        /** Grace period for in-flight requests on SIGTERM. */
        shutdownGraceMs: nonNegInt.default(10_000),
        /** Trust X-Forwarded-* from a proxy in front. */
        trustProxy: z.boolean().default(false),
        /**
         * The /readyz checks whose failure (down or slow) makes it answer 503; the others are
         * reported in its body only (status "degraded"). Absent: every check. [] keeps instances
         * in rotation through a dependency fault, when they still serve known keys.
         */
        readyzRequires: z.array(z.enum(['storage', 'postgres', 'redis'])).optional(),
      })
      .strict()
      .default({}),
    storage: z
      .discriminatedUnion('kind', [
        z
          .object({
            kind: z.literal('embedded'),
            /** Folder of the SQLite file. */
            dir: z.string().min(1).default('./.tollgate'),
            /**
             * How long a write waits for the lock another connection to the file holds (the ledger's
             * writer thread, a `tollgate` CLI command) before it gives up: 503 storage_unavailable.
             */
            busyTimeoutMs: z.number().int().min(0).max(60_000).default(5_000),
          })
          .strict(),
        z
          .object({
            kind: z.literal('distributed'),
            /** Shared counters (rate limits, budgets). */
            redisUrl: serviceUrl(['redis:', 'rediss:'], 'redis://host:6379'),
            /** Tenants, keys, ledger. */
            postgresUrl: serviceUrl(['postgres:', 'postgresql:'], 'postgres://user@host:5432/db'),
            /** PostgreSQL schema of Tollgate's tables (created if missing). */
            postgresSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier').default('tollgate'),
            /** Connections per process. */
            postgresPoolSize: positiveInt.default(10),
            /**
             * Deadline of the PostgreSQL reads a request waits for (an API key not in the auth
             * cache) and of the readiness check: past it the request gets 503 storage_unavailable
             * and /readyz reports postgres slow.
             */
            postgresQueryTimeoutMs: z.number().int().min(10).max(60_000).default(500),
            /**
             * Server-side statement_timeout of the gateway's connections (0: none). Also bounds a
             * silent connection: one owed an answer for this long + 1 s is dropped and reopened.
             */
            postgresStatementTimeoutMs: z.number().int().min(0).max(3_600_000).default(5_000),
            /** Deadline of opening a PostgreSQL connection (TCP connect to ready for queries). */
            postgresConnectTimeoutMs: z.number().int().min(100).max(60_000).default(2_000),
            /** Prefix of every Redis key, so several deployments can share one Redis. */
            redisPrefix: z.string().default('tollgate:'),
            /**
             * Deadline of every Redis command. A Redis that is slow, paused or cut off by a partition
             * (the connection still open, replies never coming) then fails like a dead one: rate
             * limits fail open, budgets 503 budget_unavailable, the cache misses.
             */
            redisCommandTimeoutMs: z.number().int().min(10).max(60_000).default(300),
            /** Folder for process-local state (the ledger spool that survives a PostgreSQL outage). */
            dir: z.string().min(1).default('./.tollgate'),
          })
          .strict(),
      ])
      .default({ kind: 'embedded', dir: './.tollgate' }),
    auth: z
      .object({
        /** How long an authenticated key is cached in memory: a revoked key may work this long. */
        cacheTtlMs: nonNegInt.default(5_000),
        /**
         * Past cacheTtlMs a known key is still answered from its last known state while it is
         * re-read in the background; when it cannot be re-read for this long (PostgreSQL down),
         * its requests get 503 storage_unavailable instead: a key revoked during an outage stops
         * working at the latest this long after its state was last read.
         */
        maxStaleMs: z.number().int().min(0).max(30 * 86_400_000).default(600_000),
        /** Create an admin key and a demo key on first start and print them once. */
        bootstrap: z.boolean().default(true),
      })
      .strict()
      .default({}),
    logging: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({}),
    metrics: z
      .object({
        /** false: no /metrics endpoint and no per-request metrics recorded (upstream, job and process metrics remain). */
        enabled: z.boolean().default(true),
        /** Top spending tenants named in the tenant metrics (the rest are `__other__`); at most twice this many over a process's life. */
        tenantLabels: z.number().int().min(0).max(500).default(20),
      })
      .strict()
      .default({}),
    /** OpenTelemetry traces (OTLP export), off by default. */
    tracing: tracingSchema.default({}),
    providers: z.record(providerSchema).optional(),
    models: z.record(modelSchema).optional(),
    tiers: z.record(tierSchema).optional(),
    resilience: resilienceSchema.default({}),
    killSwitches: z
      .object({
        /**
         * How often each process reloads the kill switches from the store: a switch made by
         * another process (or the CLI) takes effect within this long. Changes made through this
         * process's admin API apply at once.
         */
        refreshMs: positiveInt.default(500),
      })
      .strict()
      .default({}),
    alerts: z
      .object({
        /** Fractions of a budget whose crossing sends one alert per period (e.g. 0.5, 0.8, 1). */
        budgetThresholds: z.array(z.number().gt(0).max(1)).default([0.5, 0.8, 1]),
        /** Alert rules: latency, error rate, budget, drift, abuse, breaker (src/config/alerts-schema.ts). */
        rules: alertRulesSchema,
        /** How often the rules are evaluated. */
        evaluateMs: z.number().int().min(100).max(300_000).default(10_000),
        /** Where alerts go: a signed POST (see docs/API.md, webhooks). No webhook: no alerts. */
        webhook: z
          .object({
            url: url('url'),
            /** HMAC-SHA256 key for x-tollgate-signature. */
            secret: z.string().min(16, 'must be at least 16 characters'),
            timeoutMs: positiveInt.default(5_000),
            maxAttempts: positiveInt.max(10).default(4),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({}),
    metering: z
      .object({
        /** Output tokens assumed for a request without max_tokens, when reserving budget and rate limit. */
        defaultMaxOutputTokens: positiveInt.default(4096),
        /** A stream whose cost would pass its budget: `cutoff` ends it with an error event; `finish` lets it end. */
        streamOverBudget: z.enum(['cutoff', 'finish']).default('cutoff'),
        /** How often spooled usage events are written to the ledger (they are durable on local disk before). */
        ledgerFlushMs: positiveInt.default(200),
      })
      .strict()
      .default({}),
    /** Usage events in detail, then hourly roll-ups (src/config/ledger-schema.ts, src/metering/usage-rollup.ts). */
    ledger: ledgerSchema.default({}),
    cache: cacheSchema.default({}),
    /** Every request's metadata in the store (GET /admin/v1/requests), see src/observability/request-log.ts. */
    requestLog: requestLogSchema.default({}),
    /** Input drift per route (src/observability/drift.ts). */
    drift: driftSchema.default({}),
    /** Abuse and anomaly flags per key and end user, optional throttling (src/observability/abuse.ts). */
    abuse: abuseSchema.default({}),
    /** Async jobs, webhooks and the Batch API (src/jobs/). */
    jobs: jobsSchema.default({}),
    /** What each tenant may keep stored: files, jobs, feedback (src/config/quotas-schema.ts). */
    quotas: quotasSchema.default({}),
    embeddings: z
      .object({
        /** Single-input embedding requests for one deployment arriving within `windowMs` go upstream as one array request. */
        batching: z
          .object({
            enabled: z.boolean().default(true),
            windowMs: z.number().int().min(0).max(1_000).default(5),
            maxBatchSize: z.number().int().min(1).max(2048).default(64),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    /** Tiered routes: a name (e.g. `auto`) whose requests a classifier sends to the cheapest tier that can answer. */
    routes: z.record(routeSchema).default({}),
    /** A/B experiments by id: a route's traffic split between variants, sticky per user. */
    experiments: z.record(experimentSchema).default({}),
    flags: z
      .object({
        /** How often each process reloads the flags from the store (changes through any admin API also propagate at once over the change bus). */
        refreshMs: positiveInt.default(1_000),
      })
      .strict()
      .default({}),
    idempotency: z
      .object({
        /** How long the answer to a POST with an Idempotency-Key is replayed for the same key and body. */
        ttlMs: positiveInt.default(24 * 3_600_000),
        /** How long a request in flight holds its key if its process dies before answering. */
        leaseMs: positiveInt.default(10 * 60_000),
      })
      .strict()
      .default({}),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;

/** The validated configuration, with defaults for providers, models and tiers filled in. */
export type Config = Omit<Parsed, 'providers' | 'models' | 'tiers'> & {
  providers: Record<string, ProviderConfig>;
  models: Record<string, ModelConfig>;
  tiers: Record<string, TierConfig>;
};
