/**
 * The configuration schema (zod). Every option has a default, so an empty file (or no file) is a
 * working embedded gateway on the built-in simulator. `tollgate.example.yaml` documents each key.
 * Sections with their own file (*-schema.ts) are assembled here; their schemas and types are
 * re-exported, so the rest of the gateway imports the config's types from this file.
 */
import { z } from 'zod';
import { alertRulesSchema } from './alerts-schema.js';
import { cacheSchema } from './cache-schema.js';
import { jobsSchema } from './jobs-schema.js';
import { ledgerSchema } from './ledger-schema.js';
import { modelSchema, type ModelConfig } from './models-schema.js';
import { httpUrl as url, nonNegInt, positiveInt } from './primitives.js';
import { providerSchema, type ProviderConfig } from './providers-schema.js';
import { quotasSchema } from './quotas-schema.js';
import { requestLogSchema } from './request-log-schema.js';
import { resilienceSchema } from './resilience-schema.js';
import { experimentSchema, routeSchema } from './routing-schema.js';
import { abuseSchema, driftSchema } from './signals-schema.js';
import { storageSchema } from './storage-schema.js';
import { tierSchema, type TierConfig } from './tiers-schema.js';
import { tracingSchema } from './tracing-schema.js';

export { deploymentSchema, modelSchema, priceSchema, type ModelConfig } from './models-schema.js';
export {
  faultSchema,
  latencySchema,
  providerSchema,
  simModelSchema,
  type AnthropicProviderConfig,
  type FaultConfig,
  type OpenAICompatibleProviderConfig,
  type ProviderConfig,
  type SimModelConfig,
  type SimulatedProviderConfig,
} from './providers-schema.js';
export { breakerSchema, resilienceSchema, retrySchema, type BreakerConfig, type ResilienceConfig, type RetryConfig } from './resilience-schema.js';
export {
  budgetOverrideSchema,
  budgetSchema,
  policyOverrideSchema,
  rateLimitOverrideSchema,
  rateLimitSchema,
  tierSchema,
  type Budget,
  type PolicyOverrideInput,
  type RateLimit,
  type TierConfig,
} from './tiers-schema.js';

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
         * itself is level 1. Deeper: 400 naming where (src/wire/json-depth.ts).
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
    storage: storageSchema.default({ kind: 'embedded', dir: './.tollgate' }),
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
        /** The per-request access line (src/observability/access-log.ts). */
        access: z
          .object({
            /** all: every request (sampled by `sample`); errors-and-slow: only those; off: none. */
            mode: z.enum(['all', 'errors-and-slow', 'off']).default('all'),
            /** In `all` mode, the share of requests that neither failed nor were slow that get a line (errors and slow ones always do). */
            sample: z.number().min(0).max(1).default(1),
            /** A request this slow (ms, arrival to the end of the answer) or slower counts as slow. */
            slowMs: z.number().int().min(0).max(3_600_000).default(5_000),
          })
          .strict()
          .default({}),
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
