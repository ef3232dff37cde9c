/**
 * The `cache` section of the config, and the per-model `cache` overrides (a model, or an alias of
 * it, is a route). See src/cache/ and docs/CONFIG.md.
 */
import { z } from 'zod';
import { positiveInt } from './primitives.js';

const similarity = z.number().min(0).max(1);

/**
 * When an answer is cached (looked up and stored):
 * - `deterministic`: only when the output is reproducible enough: temperature 0, or a seed;
 * - `always`: every chat completion;
 * - `off`: never (not even with `x-tollgate-cache: force`).
 */
export const cacheModeSchema = z.enum(['deterministic', 'always', 'off']);
export type CacheMode = z.infer<typeof cacheModeSchema>;

/**
 * Verified semantic caching (src/cache/verify.ts): the highest acceptable probability that a
 * semantic candidate is answered wrongly from the cache. Absent: candidates are served unverified.
 */
const maxErrorRateSchema = z
  .number()
  .gt(0, { message: 'maxErrorRate must be above 0 (leave it out to turn verification off)' })
  .lt(1, { message: 'maxErrorRate must be below 1' });

/** How verification compares answers and how often it verifies at least. */
const verifySchema = z
  .object({
    /** Two answers whose built-in cosine similarity reaches this are the same answer (after normalized exact match). */
    answerSimilarity: similarity.optional(),
    /** Candidates verified at least this often, however trusted their entry (drift is still seen). */
    minRate: z.number().min(0).max(0.5).optional(),
  })
  .strict();

/**
 * The judge for borderline semantic candidates (src/cache/judge.ts): a small chat model of `models`
 * asked whether two questions need the same answer, for candidates scored in
 * [threshold - band, threshold). Metered; its verdicts remembered; a timeout counts as a miss.
 */
export const judgeSchema = z
  .object({
    /** A chat model of `models` (its price meters the calls). */
    model: z.string().min(1),
    /** Width of the borderline band below the threshold (score in `model` mode, cosine in `similarity` mode). */
    band: z.number().gt(0, { message: 'judge.band must be above 0' }).max(1).default(0.1),
    /** Deadline of a judge call; past it the candidate is a miss. */
    timeoutMs: positiveInt.max(60_000).default(1_500),
    /** Verdicts remembered per route, in memory (least recently used forgotten beyond). */
    maxCachedVerdicts: positiveInt.max(10_000_000).default(10_000),
  })
  .strict();

/** Per-route overrides (`models.<name>.cache`); what is left out comes from the `cache` section. */
export const routeCacheSchema = z
  .object({
    mode: cacheModeSchema.optional(),
    ttlMs: positiveInt.optional(),
    semantic: z
      .object({
        enabled: z.boolean().optional(),
        threshold: similarity.optional(),
        maxErrorRate: maxErrorRateSchema.optional(),
        verify: verifySchema.optional(),
        /** This route's judge (replaces the cache-wide one), or `false`: none on this route. */
        judge: z.union([judgeSchema, z.literal(false)]).optional(),
      })
      .strict()
      .optional(),
    staleFallback: z.boolean().optional(),
  })
  .strict();
export type RouteCacheConfig = z.infer<typeof routeCacheSchema>;

export const embedderSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('builtin'),
      /** Vector size (hashed features). */
      dimensions: z.number().int().min(32).max(4096).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('deployment'),
      /** An embedding model of `models` (any OpenAI-compatible /v1/embeddings); its cost is metered. */
      model: z.string().min(1),
      /** Asked of the upstream (`dimensions` parameter), when it supports it. */
      dimensions: positiveInt.optional(),
      timeoutMs: positiveInt.default(2_000),
    })
    .strict(),
  z
    .object({
      kind: z.literal('onnx'),
      /** A sentence-embedding model directory: model.onnx (or onnx/model.onnx) and tokenizer.json. */
      dir: z.string().min(1),
      maxSequenceLength: positiveInt.max(8192).default(256),
    })
    .strict(),
]);
export type EmbedderConfig = z.infer<typeof embedderSchema>;

export const cacheSchema = z
  .object({
    /** Master switch: off = no lookups, no stores, no single flight. */
    enabled: z.boolean().default(true),
    mode: cacheModeSchema.default('deterministic'),
    /** How long an answer is served from the cache. */
    ttlMs: positiveInt.default(3_600_000),
    /**
     * Requests larger than this (bytes of body; tokens x 4 for a job) bypass the cache: keying a
     * multi-megabyte body is synchronous work on the event loop, and such bodies rarely repeat.
     */
    maxBodyBytes: positiveInt.default(256 * 1024),
    exact: z
      .object({
        /** Embedded mode: the in-memory LRU's bounds (distributed mode keeps entries in Redis, with the TTL). */
        maxEntries: positiveInt.default(10_000),
        maxBytes: positiveInt.default(64 * 1024 * 1024),
        /**
         * Entries one tenant may hold (both modes; in Redis too): a tenant over it evicts its own
         * least recently used entry. Default: a quarter of `maxEntries` (see `tenantShares`).
         */
        maxEntriesPerTenant: positiveInt.optional(),
        /** Embedded mode: bytes one tenant may hold in the LRU. Default: a quarter of `maxBytes`. */
        maxBytesPerTenant: positiveInt.optional(),
      })
      .strict()
      .default({}),
    semantic: z
      .object({
        enabled: z.boolean().default(true),
        /**
         * How a candidate is judged: `model` (the fitted decision over several signals,
         * src/cache/decision.ts; thresholds are its score, 0..1) or `similarity` (the embedder's
         * cosine similarity alone, plus the guard; thresholds are similarities).
         */
        decision: z.enum(['model', 'similarity']).default('model'),
        /**
         * What a cached question needs to answer a new one: the decision's score (`model`) or the
         * cosine similarity (`similarity`). Default: the evaluated operating point of the mode
         * (src/cache/tuning.ts).
         */
        threshold: similarity.optional(),
        /** The relaxed threshold of the last-resort fallback (`staleFallback`), on the same scale. */
        staleThreshold: similarity.optional(),
        /** Reject near hits whose numbers, names or negations differ (src/cache/guard.ts). */
        guard: z.boolean().default(true),
        /** Entries in the in-process index, over every tenant and route (least recently used evicted). */
        maxEntries: positiveInt.default(100_000),
        /**
         * Semantic entries one tenant may hold (in the index and in the store): a tenant over it
         * evicts its own least recently used entry. Default: a quarter of `maxEntries`.
         */
        maxEntriesPerTenant: positiveInt.optional(),
        /** Nearest entries examined per lookup (the best one that passes the guard answers). */
        candidates: positiveInt.max(32).default(4),
        /**
         * Verified semantic caching (off when absent): the highest acceptable probability of a
         * wrong answer per semantic candidate, e.g. 0.02. Candidates are then sometimes answered
         * upstream and compared with the cached answer (src/cache/verify.ts). Per route too.
         */
        maxErrorRate: maxErrorRateSchema.optional(),
        verify: verifySchema.default({}),
        /** A judge model for borderline candidates (off when absent; src/cache/judge.ts). Per route too. */
        judge: judgeSchema.optional(),
        /** Questions longer than this (characters) are not cached by meaning. */
        maxQuestionChars: positiveInt.default(4_000),
        embedder: embedderSchema.default({ kind: 'builtin' }),
      })
      .strict()
      .default({}),
    /** Identical requests in flight at once share one upstream call (per tenant). */
    singleFlight: z.boolean().default(true),
    /** When every deployment failed, answer from the semantic cache (relaxed threshold) marked stale. */
    staleFallback: z.boolean().default(false),
    /** How long POST /v1/feedback can name a request that was answered from the cache. */
    feedbackWindowMs: positiveInt.default(24 * 3_600_000),
  })
  .strict();
export type CacheConfig = z.infer<typeof cacheSchema>;

/** The share of a global bound one tenant gets when its per-tenant bound is not configured. */
export const DEFAULT_TENANT_SHARE = 0.25;

/** What one tenant may hold in the cache (fair shares): each bound resolved, never above its global one. */
export interface TenantShares {
  exactEntries: number;
  exactBytes: number;
  semanticEntries: number;
}

export function tenantShares(c: Pick<CacheConfig, 'exact' | 'semantic'>): TenantShares {
  const share = (configured: number | undefined, global: number) =>
    Math.min(global, configured ?? Math.max(1, Math.floor(global * DEFAULT_TENANT_SHARE)));
  return {
    exactEntries: share(c.exact.maxEntriesPerTenant, c.exact.maxEntries),
    exactBytes: share(c.exact.maxBytesPerTenant, c.exact.maxBytes),
    semanticEntries: share(c.semantic.maxEntriesPerTenant, c.semantic.maxEntries),
  };
}
