/**
 * The `jobs` section of the config: async jobs, their workers, webhooks and the Batch API. See
 * src/jobs/ and docs/CONFIG.md#jobs.
 */
import { z } from 'zod';
import { nonNegInt, positiveInt } from './primitives.js';

/** Where job webhooks may be sent. Private and loopback addresses are refused unless allowed. */
export const webhookPolicySchema = z
  .object({
    /** Allow http:// URLs (https:// always is). */
    allowHttp: z.boolean().default(true),
    /** Allow 127.0.0.0/8, ::1 and `localhost` (tests, local development). */
    allowLoopback: z.boolean().default(false),
    /** Allow private, link-local and unique-local networks (10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10). */
    allowPrivate: z.boolean().default(false),
    /** When not empty, only these hosts: exact names, or `*.example.com` for its subdomains. */
    hosts: z.array(z.string().min(1)).default([]),
    /**
     * Master key of the per-tenant signing secrets (each tenant's is derived from it; read it with
     * GET /admin/v1/tenants/{id}/webhook-secret). Unset: a random key kept in the storage folder
     * (embedded mode); distributed mode needs it set so every process signs alike.
     */
    signingSecret: z.string().min(16, 'must be at least 16 characters').optional(),
    timeoutMs: positiveInt.default(10_000),
    /** Delivery attempts before the webhook is given up (kept in the job's delivery log). */
    maxAttempts: positiveInt.max(20).default(8),
    /** First retry delay; doubled each attempt, with jitter, up to maxDelayMs. */
    baseDelayMs: positiveInt.default(1_000),
    maxDelayMs: positiveInt.default(10 * 60_000),
  })
  .strict();
export type WebhookPolicy = z.infer<typeof webhookPolicySchema>;

export const jobsSchema = z
  .object({
    /** Run jobs in this process (workers). The API accepts jobs either way: a process with workers off only submits. */
    workers: z.boolean().default(true),
    /** Jobs run at once by this process. */
    concurrency: positiveInt.max(10_000).default(16),
    /** Jobs run at once by this process per provider (of the model's first deployment); 0 = only `concurrency`. */
    providerConcurrency: nonNegInt.default(0),
    /** Executions of a job before it is dead-lettered (failed for good, last error kept). */
    maxAttempts: positiveInt.max(100).default(3),
    retry: z
      .object({
        baseDelayMs: positiveInt.default(1_000),
        maxDelayMs: positiveInt.default(60_000),
      })
      .strict()
      .default({}),
    /** How long a worker's claim on a job lasts without a heartbeat (a dead process's jobs are retried after it). */
    leaseMs: positiveInt.min(1_000).default(30_000),
    /** How often an idle worker looks for jobs (a submit through any process also wakes it). */
    pollMs: positiveInt.default(500),
    /** Queue class per tier: lower runs first (premium first). Tiers not listed: 1. */
    priorityByTier: z.record(z.number().int().min(0).max(9)).default({ premium: 0, standard: 1, free: 2 }),
    /** Longest `deadline` a job may ask for, and the deadline of jobs that give none, ms. */
    maxDeadlineMs: positiveInt.default(7 * 24 * 3_600_000),
    /** Largest request body a job may carry, bytes. */
    maxBodyBytes: positiveInt.default(4 * 1024 * 1024),
    /**
     * How long a finished job (succeeded, failed, cancelled, expired) is kept, ms, counted from its
     * end; then it is deleted with its webhook delivery log (its webhook delivered or given up).
     */
    retentionMs: positiveInt.default(30 * 24 * 3_600_000),
    webhooks: webhookPolicySchema.default({}),
    batch: z
      .object({
        /** Largest file accepted by POST /v1/files, bytes. */
        maxFileBytes: positiveInt.default(100 * 1024 * 1024),
        /** Most request lines in one batch input file. */
        maxRequests: positiveInt.default(50_000),
        /** How long uploaded and output files are kept, ms. */
        fileTtlMs: positiveInt.default(30 * 24 * 3_600_000),
        /** Uploads (POST /v1/files) one API key may have in progress at once, per process; more get 429. */
        maxConcurrentUploadsPerKey: positiveInt.default(2),
        /** Uploads in progress at once in this process, all keys together; more get 429. */
        maxConcurrentUploads: positiveInt.default(16),
        /** An upload whose body stops arriving for this long is ended (408), ms. */
        uploadIdleTimeoutMs: positiveInt.default(30_000),
        /** An upload whose body takes longer than this in all is ended (408), ms. */
        uploadTimeoutMs: positiveInt.default(10 * 60_000),
      })
      .strict()
      .default({}),
  })
  .strict();
export type JobsConfig = z.infer<typeof jobsSchema>;
