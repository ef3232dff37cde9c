/**
 * `JobStore` on the embedded SQLite database (tables `jobs` and `webhook_deliveries`,
 * migration 7). better-sqlite3 is synchronous: each method does its work at once and returns a
 * settled promise. Statements are prepared once, in the constructor (listings: once per filter
 * combination), because claim and complete run per job.
 *
 * Writes that read first (enqueue with an idempotency key, claim, the webhook outbox's writes)
 * run in one IMMEDIATE transaction: several processes may share the file, and SQLite lets one
 * writer in at a time, so two claims can never hand out the same job. The claim's fair pick is in
 * job-claim.ts, the webhook outbox in webhook-outbox.ts; rows map to records as in the PostgreSQL
 * adapter (src/storage/job-rows.ts).
 */
import type { Statement } from 'better-sqlite3';
import type { JobListQuery, JobOutcome, JobRecord, JobStatus, JobStore, NewJob, QueueStats, WebhookDelivery, WebhookState } from '../../jobs/types.js';
import { DEADLINE_ERROR, type JobFailure, type JobInsertRow, type JobRow as SharedJobRow, rowToJob, toJobInsertRow, toQueueStats, toStatusCounts } from '../job-rows.js';
import { clampLimit, toPage } from '../paging.js';
import type { Database } from './database.js';
import { SqliteJobClaim } from './job-claim.js';
import { OUTBOX, SqliteWebhookOutbox } from './webhook-outbox.js';

/** JSON columns arrive as text. */
type JobRow = SharedJobRow<string>;

interface FailParams {
  id: string;
  owner: string;
  now: number;
  retry_at: number | null;
  terminal: 'failed' | 'expired';
  error: string;
  cost: number;
  prompt: number;
  completion: number;
}

export class SqliteJobStore implements JobStore {
  readonly #db: Database;
  readonly #claim: SqliteJobClaim;
  readonly #outbox: SqliteWebhookOutbox;
  readonly #lists = new Map<string, Statement<[Record<string, string | number>], JobRow>>();
  readonly #sql: {
    insert: Statement<[JobInsertRow], JobRow>;
    insertPlain: Statement<[JobInsertRow]>;
    byIdempotencyKey: Statement<[string, string], JobRow>;
    get: Statement<[string], JobRow>;
    cancel: Statement<[{ id: string; tenant: string; now: number }], JobRow>;
    cancelBatch: Statement<[{ batch: string; now: number }]>;
    heartbeat: Statement<[{ ids: string; owner: string; until: number }], string>;
    complete: Statement<[{ id: string; owner: string; now: number; result: string; cost: number; prompt: number; completion: number }]>;
    fail: Statement<[FailParams]>;
    release: Statement<[{ id: string; owner: string; runAfter: number }]>;
    expire: Statement<[{ now: number; error: string }], JobRow>;
    statsQueued: Statement<[], { priority: number; queued: number; oldest: number }>;
    statsRunning: Statement<[], { priority: number; running: number }>;
    batchCounts: Statement<[string], { status: JobStatus; n: number }>;
    batchJobs: Statement<[string], JobRow>;
    finished: Statement<[{ before: number; limit: number }], string>;
    deleteJob: Statement<[string]>;
    deleteDeliveries: Statement<[string]>;
  };

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    this.#db = db;
    this.#claim = new SqliteJobClaim(db);
    this.#outbox = new SqliteWebhookOutbox(db);
    const insert = `INSERT INTO jobs (id, tenant_id, key_id, user_id, kind, model, body, priority, status, webhook_url,
        deadline_at, metadata, idempotency_key, batch_id, custom_id, max_attempts, created_at, run_after)
      VALUES (@id, @tenant_id, @key_id, @user_id, @kind, @model, @body, @priority, 'queued', @webhook_url,
        @deadline_at, @metadata, @idempotency_key, @batch_id, @custom_id, @max_attempts, @created_at, @created_at)`;
    const retry = '(@retry_at IS NOT NULL AND attempts < max_attempts)';
    this.#sql = {
      insert: db.prepare(`${insert} RETURNING *`),
      insertPlain: db.prepare(insert),
      byIdempotencyKey: db.prepare('SELECT * FROM jobs WHERE tenant_id = ? AND idempotency_key = ?'),
      get: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      cancel: db.prepare(
        `UPDATE jobs SET status = 'cancelled', finished_at = @now, lease_owner = NULL, lease_until = NULL, ${OUTBOX}
         WHERE id = @id AND tenant_id = @tenant AND status IN ('queued', 'running')
         RETURNING *`,
      ),
      cancelBatch: db.prepare(
        `UPDATE jobs SET status = 'cancelled', finished_at = @now, lease_owner = NULL, lease_until = NULL, ${OUTBOX}
         WHERE batch_id = @batch AND status IN ('queued', 'running')`,
      ),
      heartbeat: db
        .prepare(
          `UPDATE jobs SET lease_until = @until
           WHERE id IN (SELECT value FROM json_each(@ids)) AND status = 'running' AND lease_owner = @owner
           RETURNING id`,
        )
        .pluck() as Statement<[{ ids: string; owner: string; until: number }], string>,
      complete: db.prepare(
        `UPDATE jobs SET status = 'succeeded', result = @result, finished_at = @now, lease_owner = NULL, lease_until = NULL,
                         cost_pico = cost_pico + @cost, prompt_tokens = prompt_tokens + @prompt,
                         completion_tokens = completion_tokens + @completion, ${OUTBOX}
         WHERE id = @id AND status = 'running' AND lease_owner = @owner`,
      ),
      fail: db.prepare(
        `UPDATE jobs SET
           status = CASE WHEN ${retry} THEN 'queued' ELSE @terminal END,
           run_after = CASE WHEN ${retry} THEN @retry_at ELSE run_after END,
           finished_at = CASE WHEN ${retry} THEN NULL ELSE @now END,
           dead_lettered = CASE WHEN ${retry} THEN 0 ELSE (@retry_at IS NOT NULL AND @terminal = 'failed') END,
           error = @error, lease_owner = NULL, lease_until = NULL,
           cost_pico = cost_pico + @cost, prompt_tokens = prompt_tokens + @prompt, completion_tokens = completion_tokens + @completion,
           webhook_state = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_state ELSE 'pending' END,
           webhook_attempts = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_attempts ELSE 0 END,
           webhook_next_at = CASE WHEN ${retry} OR webhook_url IS NULL THEN webhook_next_at ELSE @now END
         WHERE id = @id AND status = 'running' AND lease_owner = @owner`,
      ),
      release: db.prepare(
        `UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), run_after = @runAfter, lease_owner = NULL, lease_until = NULL
         WHERE id = @id AND status = 'running' AND lease_owner = @owner`,
      ),
      expire: db.prepare(
        `UPDATE jobs SET status = 'expired', error = @error, finished_at = @now, lease_owner = NULL, lease_until = NULL, ${OUTBOX}
         WHERE status IN ('queued', 'running') AND deadline_at <= @now AND (status = 'queued' OR lease_until < @now)
         RETURNING *`,
      ),
      statsQueued: db.prepare(
        `SELECT priority, COUNT(*) AS queued, MIN(created_at) AS oldest FROM jobs WHERE status = 'queued' GROUP BY priority`,
      ),
      statsRunning: db.prepare(`SELECT priority, COUNT(*) AS running FROM jobs WHERE status = 'running' GROUP BY priority`),
      batchCounts: db.prepare('SELECT status, COUNT(*) AS n FROM jobs WHERE batch_id = ? GROUP BY status'),
      batchJobs: db.prepare('SELECT * FROM jobs WHERE batch_id = ? ORDER BY seq'),
      finished: db
        .prepare(
          `SELECT id FROM jobs
           WHERE status IN ('succeeded', 'failed', 'cancelled', 'expired') AND finished_at < @before
             AND (webhook_state IS NULL OR webhook_state <> 'pending')
           ORDER BY finished_at LIMIT @limit`,
        )
        .pluck() as Statement<[{ before: number; limit: number }], string>,
      deleteJob: db.prepare('DELETE FROM jobs WHERE id = ?'),
      deleteDeliveries: db.prepare('DELETE FROM webhook_deliveries WHERE job_id = ?'),
    };
  }

  async enqueue(job: NewJob): Promise<{ job: JobRecord; created: boolean }> {
    const row = toJobInsertRow(job);
    return this.#db.transaction(() => {
      if (job.idempotencyKey !== null) {
        const existing = this.#sql.byIdempotencyKey.get(job.tenantId, job.idempotencyKey);
        if (existing) return { job: toJob(existing), created: false };
      }
      return { job: toJob(this.#sql.insert.get(row)!), created: true };
    }).immediate();
  }

  async enqueueMany(jobs: NewJob[]): Promise<void> {
    const rows = jobs.map(toJobInsertRow);
    this.#db.transaction(() => {
      for (const row of rows) this.#sql.insertPlain.run(row);
    }).immediate();
  }

  async get(id: string, tenantId?: string): Promise<JobRecord | undefined> {
    const row = this.#sql.get.get(id);
    return row && (tenantId === undefined || row.tenant_id === tenantId) ? toJob(row) : undefined;
  }

  async list(q: JobListQuery): Promise<{ data: JobRecord[]; hasMore: boolean }> {
    const limit = clampLimit(q.limit);
    const where = ['tenant_id = @tenant'];
    const params: Record<string, string | number> = { tenant: q.tenantId, limit: limit + 1 };
    if (q.status !== undefined) (where.push('status = @status'), (params['status'] = q.status));
    if (q.model !== undefined) (where.push('model = @model'), (params['model'] = q.model));
    if (q.batchId !== undefined) (where.push('batch_id = @batch'), (params['batch'] = q.batchId));
    if (q.metadata !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(jobs.metadata) m WHERE m.key = @metaKey AND m.value = @metaValue)');
      params['metaKey'] = q.metadata.key;
      params['metaValue'] = q.metadata.value;
    }
    if (q.after !== undefined) {
      // An unknown cursor (or another tenant's job) matches nothing: an empty page.
      where.push('seq < (SELECT a.seq FROM jobs a WHERE a.id = @after AND a.tenant_id = @tenant)');
      params['after'] = q.after;
    }
    const text = `SELECT * FROM jobs WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`;
    let stmt = this.#lists.get(text);
    if (!stmt) this.#lists.set(text, (stmt = this.#db.prepare(text)));
    return toPage(stmt.all(params), limit, toJob);
  }

  async cancel(id: string, tenantId: string, now: number): Promise<JobRecord | undefined> {
    const row = this.#sql.cancel.get({ id, tenant: tenantId, now });
    return row ? toJob(row) : this.get(id, tenantId);
  }

  async cancelBatch(batchId: string, now: number): Promise<number> {
    return this.#sql.cancelBatch.run({ batch: batchId, now }).changes;
  }

  async claim(opts: { owner: string; limit: number; leaseMs: number; now: number; excludeModels?: readonly string[] }): Promise<JobRecord[]> {
    return this.#claim.claim(opts).map(toJob);
  }

  async heartbeat(owner: string, ids: readonly string[], leaseMs: number, now: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const held = new Set(this.#sql.heartbeat.all({ ids: JSON.stringify(ids), owner, until: now + leaseMs }));
    return ids.filter((id) => held.has(id));
  }

  async complete(id: string, owner: string, outcome: JobOutcome, now: number): Promise<boolean> {
    return this.#sql.complete.run({ id, owner, now, result: JSON.stringify(outcome.result), ...usage(outcome) }).changes === 1;
  }

  async fail(id: string, owner: string, failure: JobFailure, now: number): Promise<boolean> {
    return (
      this.#sql.fail.run({
        id,
        owner,
        now,
        retry_at: failure.retryAt ?? null,
        terminal: failure.status ?? 'failed',
        error: JSON.stringify(failure.error),
        ...usage(failure),
      }).changes === 1
    );
  }

  async release(id: string, owner: string, now: number, runAfter?: number): Promise<boolean> {
    return this.#sql.release.run({ id, owner, runAfter: runAfter ?? now }).changes === 1;
  }

  async expire(now: number): Promise<JobRecord[]> {
    return this.#sql.expire.all({ now, error: JSON.stringify(DEADLINE_ERROR) }).map(toJob);
  }

  async stats(_now: number): Promise<QueueStats> {
    return toQueueStats(this.#sql.statsQueued.all(), this.#sql.statsRunning.all());
  }

  async batchCounts(batchId: string): Promise<Partial<Record<JobStatus, number>>> {
    return toStatusCounts(this.#sql.batchCounts.all(batchId));
  }

  async batchJobs(batchId: string): Promise<JobRecord[]> {
    return this.#sql.batchJobs.all(batchId).map(toJob);
  }

  async deleteFinished(before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0;
    return this.#db.transaction(() => {
      const ids = this.#sql.finished.all({ before, limit: Math.floor(limit) });
      for (const id of ids) {
        this.#sql.deleteDeliveries.run(id);
        this.#sql.deleteJob.run(id);
      }
      return ids.length;
    }).immediate();
  }

  async claimWebhooks(opts: { owner: string; limit: number; leaseMs: number; now: number }): Promise<JobRecord[]> {
    return this.#outbox.claim(opts).map(toJob);
  }

  async recordDelivery(d: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void> {
    this.#outbox.record(d, next);
  }

  async deliveries(jobId: string): Promise<WebhookDelivery[]> {
    return this.#outbox.deliveries(jobId);
  }

  /** The database is shared with the other stores: closing it is the storage's job. */
  async close(): Promise<void> {}
}

/** The cost and token counts a run adds to its job (parameters of `complete` and `fail`). */
function usage(run: { costPico?: number; promptTokens?: number; completionTokens?: number }) {
  return { cost: run.costPico ?? 0, prompt: run.promptTokens ?? 0, completion: run.completionTokens ?? 0 };
}

function toJob(r: JobRow): JobRecord {
  return rowToJob(r, JSON.parse);
}
