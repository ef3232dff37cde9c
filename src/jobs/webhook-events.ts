/**
 * What a job webhook sends and when it is sent again: the event a finished job's status names,
 * its stable id and JSON body (the same on every attempt), and the state after each attempt
 * (delivered, pending after a full-jitter backoff or the receiver's Retry-After, failed for good).
 */
import type { JobRecord, JobStatus, WebhookState } from './types.js';
import type { WebhookPolicy } from './webhook-policy.js';
import { jobObject } from './wire.js';

export type JobWebhookEvent = 'job.succeeded' | 'job.failed' | 'job.cancelled' | 'job.expired';

const EVENT_OF: Partial<Record<JobStatus, JobWebhookEvent>> = {
  succeeded: 'job.succeeded',
  failed: 'job.failed',
  cancelled: 'job.cancelled',
  expired: 'job.expired',
};

/** The event a job's status sends; undefined for a job not finished. */
export function jobWebhookEvent(status: JobStatus): JobWebhookEvent | undefined {
  return EVENT_OF[status];
}

/** The stable id of a job's event (`webhook-id` and the body's `id`): the same on every attempt. */
export function jobWebhookId(jobId: string, event: JobWebhookEvent): string {
  return `${jobId}:${event}`;
}

/**
 * The JSON body of a job's webhook. `created` is when the job finished (unix seconds), so every
 * attempt sends the same body.
 */
export function jobWebhookBody(job: JobRecord, event: JobWebhookEvent, now: number): string {
  return JSON.stringify({
    id: jobWebhookId(job.id, event),
    type: event,
    created: Math.floor((job.finishedAt ?? now) / 1000),
    data: jobObject(job),
  });
}

/**
 * A receiver's `Retry-After` in ms: delay-seconds or an HTTP date; undefined when absent or
 * unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The state after a delivery attempt: `delivered` on a 2xx; `failed` (given up) on 410 Gone or
 * when `attempt` reached maxAttempts; else `pending` after a full-jitter backoff
 * (random in [0, min(maxDelayMs, baseDelayMs * 2^(attempt-1))]), or the receiver's Retry-After
 * when that is longer (capped at maxDelayMs).
 */
export function nextWebhookState(a: {
  attempt: number;
  statusCode: number | null;
  retryAfterMs?: number | undefined;
  policy: Pick<WebhookPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>;
  now: number;
  random: () => number;
}): { state: WebhookState; nextAt: number } {
  const { attempt, statusCode, policy, now } = a;
  if (statusCode !== null && statusCode >= 200 && statusCode < 300) return { state: 'delivered', nextAt: now };
  if (statusCode === 410 || attempt >= policy.maxAttempts) return { state: 'failed', nextAt: now };
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  let delay = Math.floor(Math.min(1, Math.max(0, a.random())) * cap);
  if (a.retryAfterMs !== undefined && a.retryAfterMs > delay) delay = Math.min(a.retryAfterMs, policy.maxDelayMs);
  return { state: 'pending', nextAt: now + delay };
}
