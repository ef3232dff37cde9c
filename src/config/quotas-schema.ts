/**
 * The `quotas` section of the config: how much each tenant may keep stored (src/metering/storage-quotas.ts,
 * docs/CONFIG.md#quotas). Counted in the database itself (kept by triggers), checked before a
 * write that adds to it; a tenant at a quota gets 402 `storage_quota_exceeded` naming the setting
 * until it deletes something or its data expires.
 */
import { z } from 'zod';
import { positiveInt } from './primitives.js';

export const quotasSchema = z
  .object({
    /** Files (uploaded and batch output) a tenant may keep. */
    files: positiveInt.default(10_000),
    /** Bytes of files a tenant may keep. */
    fileBytes: positiveInt.default(10 * 1024 ** 3),
    /** Jobs a tenant may keep (queued, running, and finished ones within jobs.retentionMs); a batch's lines count one each. */
    jobs: positiveInt.default(1_000_000),
    /** Bytes of job request bodies a tenant may keep. */
    jobBytes: positiveInt.default(10 * 1024 ** 3),
    /** Feedback verdicts (POST /v1/feedback, one per request id) a tenant may keep. */
    feedback: positiveInt.default(1_000_000),
  })
  .strict();
export type QuotasConfig = z.infer<typeof quotasSchema>;
