/**
 * The wire shapes of jobs: ids, request priorities, and the `job` object that GET /v1/jobs/:id,
 * listings, events and webhooks all show (one serializer, so they never disagree).
 */
import { randomBytes } from 'node:crypto';
import { formatUsd } from '../metering/cost.js';
import type { JobKind, JobRecord } from './types.js';

export function newJobId(): string {
  return `job_${randomBytes(12).toString('hex')}`;
}

/** What a client asks for; the stored priority is `tierClass * 3 + REQUEST_PRIORITY[p]`. */
export const REQUEST_PRIORITIES = ['high', 'normal', 'low'] as const;
export type RequestPriority = (typeof REQUEST_PRIORITIES)[number];

export function storedPriority(tierClass: number, requested: RequestPriority): number {
  return tierClass * 3 + REQUEST_PRIORITIES.indexOf(requested);
}

export function requestPriorityOf(stored: number): RequestPriority {
  return REQUEST_PRIORITIES[stored % 3] ?? 'normal';
}

export const ENDPOINT_OF: Record<JobKind, '/v1/chat/completions' | '/v1/embeddings'> = {
  chat: '/v1/chat/completions',
  embeddings: '/v1/embeddings',
};

const seconds = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));

/** The public `job` object. */
export function jobObject(job: JobRecord): Record<string, unknown> {
  return {
    id: job.id,
    object: 'job',
    endpoint: ENDPOINT_OF[job.kind],
    model: job.model,
    status: job.status,
    priority: requestPriorityOf(job.priority),
    queue_priority: job.priority,
    created_at: seconds(job.createdAt),
    started_at: seconds(job.startedAt),
    finished_at: seconds(job.finishedAt),
    deadline_at: seconds(job.deadlineAt),
    attempts: job.attempts,
    max_attempts: job.maxAttempts,
    dead_lettered: job.deadLettered,
    metadata: job.metadata,
    batch_id: job.batchId,
    custom_id: job.customId,
    result: job.result,
    error: job.error,
    usage: {
      prompt_tokens: job.promptTokens,
      completion_tokens: job.completionTokens,
      total_tokens: job.promptTokens + job.completionTokens,
    },
    cost_usd: formatUsd(job.costPico),
    webhook_url: job.webhookUrl,
    webhook: job.webhook ? { state: job.webhook.state, attempts: job.webhook.attempts } : null,
    status_url: `/v1/jobs/${job.id}`,
    events_url: `/v1/jobs/${job.id}/events`,
  };
}
