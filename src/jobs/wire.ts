/**
 * The wire shapes of jobs, files and batches: ids, request priorities, the `job` object that
 * GET /v1/jobs/:id, listings, events and webhooks all show (one serializer, so they never
 * disagree), OpenAI's `file` and `batch` objects, and what a batch may target.
 */
import { randomBytes } from 'node:crypto';
import { formatUsd } from '../metering/cost.js';
import type { BatchRecord, FileRecord, JobKind, JobRecord } from './types.js';

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

// --- Files and batches (OpenAI's Batch API) ---

export type BatchEndpoint = BatchRecord['endpoint'];

/** The endpoints a batch may target, and the kind of job each line becomes. */
export const BATCH_ENDPOINTS: Readonly<Record<BatchEndpoint, JobKind>> = {
  '/v1/chat/completions': 'chat',
  '/v1/embeddings': 'embeddings',
};

/** The completion windows OpenAI accepts (only 24 h). */
export const COMPLETION_WINDOWS: Readonly<Record<string, number>> = { '24h': 24 * 3_600_000 };

export function newFileId(): string {
  return `file-${randomBytes(12).toString('hex')}`;
}

export function newBatchId(): string {
  return `batch_${randomBytes(12).toString('hex')}`;
}

/** OpenAI's `file` object. */
export function fileObject(f: FileRecord): Record<string, unknown> {
  return {
    id: f.id,
    object: 'file',
    bytes: f.bytes,
    created_at: seconds(f.createdAt),
    expires_at: seconds(f.expiresAt),
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed',
    status_details: null,
  };
}

/** OpenAI's `batch` object. */
export function batchObject(b: BatchRecord): Record<string, unknown> {
  return {
    id: b.id,
    object: 'batch',
    endpoint: b.endpoint,
    errors: b.errors.length === 0 ? null : { object: 'list', data: b.errors.map((e) => ({ code: e.code, message: e.message, param: e.param, line: e.line })) },
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: seconds(b.createdAt),
    in_progress_at: seconds(b.inProgressAt),
    expires_at: seconds(b.expiresAt),
    finalizing_at: seconds(b.finalizingAt),
    completed_at: seconds(b.completedAt),
    failed_at: seconds(b.failedAt),
    expired_at: seconds(b.expiredAt),
    cancelling_at: seconds(b.cancellingAt),
    cancelled_at: seconds(b.cancelledAt),
    request_counts: { ...b.requestCounts },
    metadata: b.metadata,
  };
}
