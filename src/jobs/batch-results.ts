/**
 * A batch's output and error files, and its request counts, from its jobs: a succeeded job's
 * answer goes to the output file; a failed one's HTTP status and OpenAI error body, or why a job
 * never ran (cancelled, expired), to the error file; both in input order.
 */
import { ERROR_CODES, type ErrorSpec } from '../errors.js';
import type { BatchRecord, JobRecord, JobStatus } from './types.js';

const NOT_RUN: Record<'cancelled' | 'expired', { code: string; message: string }> = {
  cancelled: { code: 'batch_cancelled', message: 'This request was not executed because the batch was cancelled.' },
  expired: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' },
};

function errorType(code: string, status: number): string {
  return (ERROR_CODES as Record<string, ErrorSpec>)[code]?.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
}

/**
 * The lines of the output file (succeeded jobs) and of the error file (every other job), in
 * input order (`jobs` as JobStore.batchJobs gives them). A job that ran and failed has its
 * HTTP status and OpenAI error body as its response; one that never ran (cancelled, expired, or
 * still unfinished when the batch ended) has no response and an error naming why.
 */
export function resultLines(jobs: readonly JobRecord[], end: 'completed' | 'cancelled' | 'expired'): { output: string[]; errors: string[] } {
  const output: string[] = [];
  const errors: string[] = [];
  for (const job of jobs) {
    const id = `batch_req_${job.id}`;
    const customId = job.customId;
    if (job.status === 'succeeded') {
      output.push(JSON.stringify({ id, custom_id: customId, response: { status_code: 200, request_id: job.id, body: job.result }, error: null }));
    } else if (job.status === 'failed') {
      const e = job.error ?? { code: 'internal_error', message: 'The request failed.', status: 500 };
      const body = { error: { message: e.message, type: errorType(e.code, e.status), param: null, code: e.code } };
      errors.push(JSON.stringify({ id, custom_id: customId, response: { status_code: e.status, request_id: job.id, body }, error: null }));
    } else {
      // Cancelled or expired (or, defensively, not ended): it produced no response.
      const why = job.status === 'expired' || end === 'expired' ? NOT_RUN.expired : NOT_RUN.cancelled;
      errors.push(JSON.stringify({ id, custom_id: customId, response: null, error: why }));
    }
  }
  return { output, errors };
}

/** request_counts from JobStore.batchCounts: completed = succeeded, failed = every other end. */
export function requestCounts(counts: Partial<Record<JobStatus, number>>, total: number): BatchRecord['requestCounts'] {
  return {
    total,
    completed: counts.succeeded ?? 0,
    failed: (counts.failed ?? 0) + (counts.cancelled ?? 0) + (counts.expired ?? 0),
  };
}

/** Jobs of the batch not ended yet (queued or running). */
export const unfinished = (counts: Partial<Record<JobStatus, number>>): number => (counts.queued ?? 0) + (counts.running ?? 0);
