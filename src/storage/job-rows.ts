/**
 * What the SQL `JobStore` adapters (src/storage/{sqlite,postgres}/jobs.ts) share, so SQLite and
 * PostgreSQL cannot drift apart on it: the rows of `jobs` and `webhook_deliveries` and their
 * mapping to `JobRecord` and `WebhookDelivery`, a new job's row, the error of an expired job, and
 * the queue statistics and batch counts built from the rows of their GROUP BY queries.
 *
 * `J` is how a JSON column arrives: text in SQLite (decoded with JSON.parse), already parsed in
 * PostgreSQL (decoded as is). `dead_lettered` is 0/1 in SQLite, a boolean in PostgreSQL.
 */
import type { JobError, JobRecord, JobStatus, JobStore, NewJob, QueueStats, WebhookDelivery, WebhookState } from '../jobs/types.js';

/** A `jobs` row (epoch ms and pico-dollar amounts as JS numbers in both databases). */
export interface JobRow<J> {
  seq: number;
  id: string;
  tenant_id: string;
  key_id: string;
  user_id: string;
  kind: JobRecord['kind'];
  model: string;
  body: J;
  priority: number;
  status: JobStatus;
  webhook_url: string | null;
  deadline_at: number | null;
  metadata: J;
  idempotency_key: string | null;
  batch_id: string | null;
  custom_id: string | null;
  attempts: number;
  max_attempts: number;
  result: J | null;
  error: J | null;
  dead_lettered: number | boolean;
  cost_pico: number;
  prompt_tokens: number;
  completion_tokens: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  run_after: number;
  lease_owner: string | null;
  lease_until: number | null;
  webhook_state: WebhookState | null;
  webhook_attempts: number;
  webhook_next_at: number | null;
}

/** The columns an enqueue writes, JSON as text (both adapters send it as text). */
export type JobInsertRow = Pick<
  JobRow<string>,
  'id' | 'tenant_id' | 'key_id' | 'user_id' | 'kind' | 'model' | 'body' | 'priority' | 'webhook_url' | 'deadline_at' | 'metadata'
  | 'idempotency_key' | 'batch_id' | 'custom_id' | 'max_attempts' | 'created_at'
>;

/** A `webhook_deliveries` row, as read and as written. */
export interface DeliveryRow {
  job_id: string;
  attempt: number;
  at: number;
  status_code: number | null;
  error: string;
  duration_ms: number;
}

/** What `fail` is told: the error, and whether and when to retry. */
export type JobFailure = Parameters<JobStore['fail']>[2];

/** The error of a job ended by `expire`. */
export const DEADLINE_ERROR: JobError = { code: 'deadline_exceeded', message: 'The job did not finish before its deadline.', status: 408 };

export function toJobInsertRow(j: NewJob): JobInsertRow {
  return {
    id: j.id,
    tenant_id: j.tenantId,
    key_id: j.keyId,
    user_id: j.userId,
    kind: j.kind,
    model: j.model,
    body: JSON.stringify(j.body),
    priority: j.priority,
    webhook_url: j.webhookUrl,
    deadline_at: j.deadlineAt,
    metadata: JSON.stringify(j.metadata),
    idempotency_key: j.idempotencyKey,
    batch_id: j.batchId,
    custom_id: j.customId,
    max_attempts: j.maxAttempts,
    created_at: j.createdAt,
  };
}

export function rowToJob<J>(r: JobRow<J>, decode: (v: J) => unknown): JobRecord {
  return {
    id: r.id,
    seq: r.seq,
    tenantId: r.tenant_id,
    keyId: r.key_id,
    userId: r.user_id,
    kind: r.kind,
    model: r.model,
    body: decode(r.body) as Record<string, unknown>,
    priority: r.priority,
    status: r.status,
    webhookUrl: r.webhook_url,
    deadlineAt: r.deadline_at,
    metadata: decode(r.metadata) as Record<string, string>,
    idempotencyKey: r.idempotency_key,
    batchId: r.batch_id,
    customId: r.custom_id,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    result: r.result === null ? null : (decode(r.result) as Record<string, unknown>),
    error: r.error === null ? null : (decode(r.error) as JobError),
    deadLettered: r.dead_lettered === 1 || r.dead_lettered === true,
    costPico: r.cost_pico,
    promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    runAfter: r.run_after,
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until,
    webhook:
      r.webhook_state === null || r.webhook_url === null
        ? null
        : { state: r.webhook_state, attempts: r.webhook_attempts, nextAt: r.webhook_next_at ?? 0 },
  };
}

export function rowToDelivery(r: DeliveryRow): WebhookDelivery {
  return { jobId: r.job_id, attempt: r.attempt, at: r.at, statusCode: r.status_code, error: r.error, durationMs: r.duration_ms };
}

/** The row a delivery attempt writes (its duration rounded to whole ms). */
export function deliveryToRow(d: WebhookDelivery): DeliveryRow {
  return { job_id: d.jobId, attempt: d.attempt, at: d.at, status_code: d.statusCode, error: d.error, duration_ms: Math.round(d.durationMs) };
}

/** `stats` from its two GROUP BY priority queries: queued jobs (with the oldest's creation) and running ones. */
export function toQueueStats(
  queued: Iterable<{ priority: number; queued: number; oldest: number }>,
  running: Iterable<{ priority: number; running: number }>,
): QueueStats {
  const byPriority = new Map<number, QueueStats['byPriority'][number]>();
  const entry = (priority: number) => {
    let e = byPriority.get(priority);
    if (!e) byPriority.set(priority, (e = { priority, queued: 0, oldestCreatedAt: null, running: 0 }));
    return e;
  };
  for (const r of queued) Object.assign(entry(r.priority), { queued: r.queued, oldestCreatedAt: r.oldest });
  for (const r of running) entry(r.priority).running = r.running;
  return { byPriority: [...byPriority.values()].sort((a, b) => a.priority - b.priority) };
}

/** `batchCounts` from its GROUP BY status query. */
export function toStatusCounts(rows: Iterable<{ status: JobStatus; n: number }>): Partial<Record<JobStatus, number>> {
  const out: Partial<Record<JobStatus, number>> = {};
  for (const r of rows) out[r.status] = r.n;
  return out;
}
