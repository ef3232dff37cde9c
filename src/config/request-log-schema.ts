/**
 * The `requestLog` section of the config: every request's metadata in the store, written in
 * batches off the hot path (src/observability/request-log.ts), kept `retentionDays`. See
 * docs/CONFIG.md#requestlog.
 */
import { z } from 'zod';
import { positiveInt } from './primitives.js';

export const requestLogSchema = z
  .object({
    /** Write one row per request (read with GET /admin/v1/requests). */
    enabled: z.boolean().default(true),
    /**
     * Prompt and answer text: `opt-in` stores it (redacted) for tenants whose policy sets
     * `requestLog.content: true`; `off` never stores it, whatever the tenants asked.
     */
    content: z.enum(['opt-in', 'off']).default('opt-in'),
    /** Longest prompt or answer text kept, in characters (the rest is cut off). */
    maxTextChars: positiveInt.max(1_000_000).default(4_000),
    /** Rows waiting to be written, at most; past it the oldest are dropped (tollgate_request_log_dropped_total). */
    maxPending: positiveInt.default(10_000),
    /** Rows per write. */
    batchSize: positiveInt.max(5_000).default(500),
    /** How often waiting rows are written (sooner when a batch is full). */
    flushMs: positiveInt.default(1_000),
    /**
     * Rows older than this are deleted (checked every few minutes, in bounded batches). Default 3
     * days (was 7): a row is ~0.43 KB in the embedded database, ~11 GB a day at 300 req/s, and the
     * usage ledger keeps each request's tokens, cost, status and latency for
     * ledger.detailRetentionDays (7) anyway. See docs/CONFIG.md#requestlog.
     */
    retentionDays: z.number().positive().default(3),
  })
  .strict();

export type RequestLogConfig = z.infer<typeof requestLogSchema>;

/** A tenant's request-log settings, carried by its policy (PUT /admin/v1/tenants/{id}/policy). */
export const requestLogPolicySchema = z
  .object({
    /** Store this tenant's prompt and answer text (redacted) in the request log. */
    content: z.boolean(),
  })
  .strict();
