/**
 * `JobStore` on PostgreSQL (tables `jobs` and `webhook_deliveries`, migration 6), with the
 * semantics of `SqliteJobStore` (same contract suite). Times come from the caller (the gateway's
 * clock), never the server's. Each write is one statement whose WHERE re-checks status and lease
 * owner; only claims take a lock. The claim's fair pick is in job-claim.ts, the webhook outbox
 * in webhook-outbox.ts; rows map to records as in the SQLite adapter (src/storage/job-rows.ts).
 */
import type { JobListQuery, JobOutcome, JobRecord, JobStatus, JobStore, NewJob, QueueStats, WebhookDelivery, WebhookState } from '../../jobs/types.js';
import { DEADLINE_ERROR, type JobFailure, type JobInsertRow, type JobRow as SharedJobRow, rowToJob, toJobInsertRow, toQueueStats, toStatusCounts } from '../job-rows.js';
import { clampLimit, toPage } from '../paging.js';
import { PostgresAdapter, type Queryable } from './database.js';
import { claimJobs } from './job-claim.js';
import { claimWebhooks, listDeliveries, outbox, recordDelivery } from './webhook-outbox.js';

/** JSON columns arrive parsed (postgres.js); int8 as numbers (database.ts). */
type JobRow = SharedJobRow<unknown>;

/** Rows per INSERT of `enqueueMany` (one statement of arrays each). */
const ROWS_PER_STATEMENT = 1_000;

export class PostgresJobStore extends PostgresAdapter implements JobStore {
  async enqueue(job: NewJob): Promise<{ job: JobRecord; created: boolean }> {
    const sql = this.sql;
    const r = toJobInsertRow(job);
    // ON CONFLICT DO NOTHING waits for a concurrent insert of the same key: when it commits, the
    // SELECT below (a new snapshot) sees its job, which both callers then return.
    const [row] = await sql<JobRow[]>`
      INSERT INTO jobs (id, tenant_id, key_id, user_id, kind, model, body, priority, status, webhook_url, deadline_at,
                        metadata, idempotency_key, batch_id, custom_id, max_attempts, created_at, run_after)
      VALUES (${r.id}, ${r.tenant_id}, ${r.key_id}, ${r.user_id}, ${r.kind}, ${r.model},
              ${r.body}::text::json, ${r.priority}, 'queued', ${r.webhook_url}, ${r.deadline_at},
              ${r.metadata}::text::json, ${r.idempotency_key}, ${r.batch_id}, ${r.custom_id},
              ${r.max_attempts}, ${r.created_at}, ${r.created_at})
      ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING *`;
    if (row) return { job: toJob(row), created: true };
    const [existing] = await sql<JobRow[]>`
      SELECT * FROM jobs WHERE tenant_id = ${job.tenantId} AND idempotency_key = ${job.idempotencyKey}`;
    if (!existing) throw new Error(`job ${job.id}: the idempotency key conflicted but its job was not found`);
    return { job: toJob(existing), created: false };
  }

  async enqueueMany(jobs: NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.sql.begin(async (tx) => {
      for (let i = 0; i < jobs.length; i += ROWS_PER_STATEMENT) await insertMany(tx, jobs.slice(i, i + ROWS_PER_STATEMENT));
    });
  }

  async get(id: string, tenantId?: string): Promise<JobRecord | undefined> {
    const sql = this.sql;
    const [row] = await sql<JobRow[]>`
      SELECT * FROM jobs WHERE id = ${id} ${tenantId !== undefined ? sql`AND tenant_id = ${tenantId}` : sql``}`;
    return row ? toJob(row) : undefined;
  }

  async list(q: JobListQuery): Promise<{ data: JobRecord[]; hasMore: boolean }> {
    const sql = this.sql;
    const limit = clampLimit(q.limit);
    const rows = await sql<JobRow[]>`
      SELECT * FROM jobs
      WHERE tenant_id = ${q.tenantId}
        ${q.status !== undefined ? sql`AND status = ${q.status}` : sql``}
        ${q.model !== undefined ? sql`AND model = ${q.model}` : sql``}
        ${q.batchId !== undefined ? sql`AND batch_id = ${q.batchId}` : sql``}
        ${q.metadata !== undefined ? sql`AND metadata->>${q.metadata.key}::text = ${q.metadata.value}` : sql``}
        ${
          // An unknown cursor (or another tenant's job) matches nothing: an empty page.
          q.after !== undefined
            ? sql`AND seq < (SELECT a.seq FROM jobs a WHERE a.id = ${q.after} AND a.tenant_id = ${q.tenantId})`
            : sql``
        }
      ORDER BY seq DESC
      LIMIT ${limit + 1}`;
    return toPage(rows, limit, toJob);
  }

  async cancel(id: string, tenantId: string, now: number): Promise<JobRecord | undefined> {
    const [row] = await this.sql<JobRow[]>`
      UPDATE jobs SET status = 'cancelled', finished_at = ${now}, lease_owner = NULL, lease_until = NULL, ${outbox(this.sql, now)}
      WHERE id = ${id} AND tenant_id = ${tenantId} AND status IN ('queued', 'running')
      RETURNING *`;
    return row ? toJob(row) : this.get(id, tenantId);
  }

  async cancelBatch(batchId: string, now: number): Promise<number> {
    const result = await this.sql`
      UPDATE jobs SET status = 'cancelled', finished_at = ${now}, lease_owner = NULL, lease_until = NULL, ${outbox(this.sql, now)}
      WHERE batch_id = ${batchId} AND status IN ('queued', 'running')`;
    return result.count;
  }

  async claim(opts: { owner: string; limit: number; leaseMs: number; now: number; excludeModels?: readonly string[] }): Promise<JobRecord[]> {
    return (await claimJobs(this.sql, opts)).map(toJob);
  }

  async heartbeat(owner: string, ids: readonly string[], leaseMs: number, now: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.sql<{ id: string }[]>`
      UPDATE jobs SET lease_until = ${now + leaseMs}
      WHERE id = ANY(${[...ids]}::text[]) AND status = 'running' AND lease_owner = ${owner}
      RETURNING id`;
    const held = new Set(rows.map((r) => r.id));
    return ids.filter((id) => held.has(id));
  }

  async complete(id: string, owner: string, outcome: JobOutcome, now: number): Promise<boolean> {
    const result = await this.sql`
      UPDATE jobs SET status = 'succeeded', result = ${JSON.stringify(outcome.result)}::text::json, finished_at = ${now},
                      lease_owner = NULL, lease_until = NULL,
                      cost_pico = cost_pico + ${outcome.costPico}::bigint,
                      prompt_tokens = prompt_tokens + ${outcome.promptTokens}::bigint,
                      completion_tokens = completion_tokens + ${outcome.completionTokens}::bigint,
                      ${outbox(this.sql, now)}
      WHERE id = ${id} AND status = 'running' AND lease_owner = ${owner}`;
    return result.count === 1;
  }

  async fail(id: string, owner: string, failure: JobFailure, now: number): Promise<boolean> {
    const sql = this.sql;
    const retryAt = failure.retryAt ?? null;
    const terminal = failure.status ?? 'failed';
    const retry = sql`(${retryAt}::bigint IS NOT NULL AND attempts < max_attempts)`;
    const result = await sql`
      UPDATE jobs SET
        status = CASE WHEN ${retry} THEN 'queued' ELSE ${terminal}::text END,
        run_after = CASE WHEN ${retry} THEN ${retryAt}::bigint ELSE run_after END,
        finished_at = CASE WHEN ${retry} THEN NULL ELSE ${now}::bigint END,
        dead_lettered = CASE WHEN ${retry} THEN FALSE ELSE ${retryAt !== null && terminal === 'failed'}::boolean END,
        error = ${JSON.stringify(failure.error)}::text::json, lease_owner = NULL, lease_until = NULL,
        cost_pico = cost_pico + ${failure.costPico ?? 0}::bigint,
        prompt_tokens = prompt_tokens + ${failure.promptTokens ?? 0}::bigint,
        completion_tokens = completion_tokens + ${failure.completionTokens ?? 0}::bigint,
        webhook_state = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_state ELSE 'pending' END,
        webhook_attempts = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_attempts ELSE 0 END,
        webhook_next_at = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_next_at ELSE ${now}::bigint END
      WHERE id = ${id} AND status = 'running' AND lease_owner = ${owner}`;
    return result.count === 1;
  }

  async release(id: string, owner: string, now: number, runAfter?: number): Promise<boolean> {
    const result = await this.sql`
      UPDATE jobs SET status = 'queued', attempts = GREATEST(attempts - 1, 0), run_after = ${runAfter ?? now},
                      lease_owner = NULL, lease_until = NULL
      WHERE id = ${id} AND status = 'running' AND lease_owner = ${owner}`;
    return result.count === 1;
  }

  async expire(now: number): Promise<JobRecord[]> {
    const rows = await this.sql<JobRow[]>`
      UPDATE jobs SET status = 'expired', error = ${JSON.stringify(DEADLINE_ERROR)}::text::json, finished_at = ${now},
                      lease_owner = NULL, lease_until = NULL, ${outbox(this.sql, now)}
      WHERE status IN ('queued', 'running') AND deadline_at <= ${now}
        AND (status = 'queued' OR lease_until < ${now})
      RETURNING *`;
    return rows.map(toJob).sort((a, b) => a.seq - b.seq);
  }

  async stats(_now: number): Promise<QueueStats> {
    const sql = this.sql;
    const [queued, running] = await Promise.all([
      sql<{ priority: number; queued: number; oldest: number }[]>`
        SELECT priority, count(*) AS queued, min(created_at) AS oldest FROM jobs WHERE status = 'queued' GROUP BY priority`,
      sql<{ priority: number; running: number }[]>`
        SELECT priority, count(*) AS running FROM jobs WHERE status = 'running' GROUP BY priority`,
    ]);
    return toQueueStats(queued, running);
  }

  async batchCounts(batchId: string): Promise<Partial<Record<JobStatus, number>>> {
    const rows = await this.sql<{ status: JobStatus; n: number }[]>`
      SELECT status, count(*) AS n FROM jobs WHERE batch_id = ${batchId} GROUP BY status`;
    return toStatusCounts(rows);
  }

  async batchJobs(batchId: string): Promise<JobRecord[]> {
    const rows = await this.sql<JobRow[]>`SELECT * FROM jobs WHERE batch_id = ${batchId} ORDER BY seq`;
    return rows.map(toJob);
  }

  async deleteFinished(before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0;
    // SKIP LOCKED: a job another transaction is changing (a webhook being recorded) waits for the next sweep.
    const [row] = await this.sql<{ n: number }[]>`
      WITH old AS (
        SELECT seq FROM jobs
        WHERE status IN ('succeeded', 'failed', 'cancelled', 'expired') AND finished_at < ${before}
          AND (webhook_state IS NULL OR webhook_state <> 'pending')
        ORDER BY finished_at LIMIT ${Math.floor(limit)}
        FOR UPDATE SKIP LOCKED
      ),
      gone AS (DELETE FROM jobs WHERE seq IN (SELECT seq FROM old) RETURNING id),
      logs AS (DELETE FROM webhook_deliveries WHERE job_id IN (SELECT id FROM gone))
      SELECT COUNT(*)::int AS n FROM gone`;
    return row!.n;
  }

  async claimWebhooks(opts: { owner: string; limit: number; leaseMs: number; now: number }): Promise<JobRecord[]> {
    return (await claimWebhooks(this.sql, opts)).map(toJob);
  }

  async recordDelivery(d: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void> {
    await recordDelivery(this.sql, d, next);
  }

  async deliveries(jobId: string): Promise<WebhookDelivery[]> {
    return listDeliveries(this.sql, jobId);
  }

  /** The pool is shared with the other stores: ending it is the storage's job. */
  async close(): Promise<void> {}
}

/** One multi-row INSERT from arrays (one parameter per column, whatever the row count), in list order. */
async function insertMany(tx: Queryable, jobs: NewJob[]): Promise<void> {
  const rows = jobs.map(toJobInsertRow);
  const col = <K extends keyof JobInsertRow>(k: K): JobInsertRow[K][] => rows.map((r) => r[k]);
  await tx`
    INSERT INTO jobs (id, tenant_id, key_id, user_id, kind, model, body, priority, status, webhook_url, deadline_at,
                      metadata, idempotency_key, batch_id, custom_id, max_attempts, created_at, run_after)
    SELECT id, tenant_id, key_id, user_id, kind, model, body::json, priority, 'queued', webhook_url, deadline_at,
           metadata::json, idempotency_key, batch_id, custom_id, max_attempts, created_at, created_at
    FROM unnest(
      ${col('id')}::text[], ${col('tenant_id')}::text[], ${col('key_id')}::text[], ${col('user_id')}::text[],
      ${col('kind')}::text[], ${col('model')}::text[], ${col('body')}::text[], ${col('priority')}::int[],
      ${col('webhook_url')}::text[], ${col('deadline_at')}::bigint[], ${col('metadata')}::text[],
      ${col('idempotency_key')}::text[], ${col('batch_id')}::text[], ${col('custom_id')}::text[],
      ${col('max_attempts')}::int[], ${col('created_at')}::bigint[]
    ) WITH ORDINALITY AS t(id, tenant_id, key_id, user_id, kind, model, body, priority, webhook_url, deadline_at,
                           metadata, idempotency_key, batch_id, custom_id, max_attempts, created_at, ord)
    ORDER BY ord`;
}

function toJob(r: JobRow): JobRecord {
  return rowToJob(r, (v) => v);
}
