/**
 * `JobStore` on the embedded SQLite database (tables `jobs` and `webhook_deliveries`,
 * migration 7). better-sqlite3 is synchronous: each method does its work at once and returns a
 * settled promise. Statements are prepared once, in the constructor (listings: once per filter
 * combination), because claim and complete run per job.
 *
 * Writes that read first (enqueue with an idempotency key, claim, recordDelivery) run in one
 * IMMEDIATE transaction: several processes may share the file, and SQLite lets one writer in at a
 * time, so two claims can never hand out the same job.
 *
 * How a claim finds its job without reading the whole queue (100k queued jobs, or 10k tenants):
 * the best job is the smallest (priority, running jobs of its tenant, seq). Tenants with no
 * running job ("free" tenants) all count 0, so their best job is simply the first claimable one in
 * (priority, seq) order; tenants with running jobs ("busy", few: at most the workers' total
 * concurrency) are looked at one by one, their head through `jobs_queued_by_tenant`. The first
 * free job is searched among the first FRONT_SCAN queued jobs (index `jobs_queued`); only when
 * that window is full of busy tenants' (or backed-off) jobs does it fall back to visiting every
 * queued tenant (a loose index scan: one seek per tenant). Leases that passed are claimable too.
 * A claim of several jobs repeats the pick, so a job claimed earlier in the call counts as
 * running for its tenant.
 */
import type { Statement } from 'better-sqlite3';
import type {
  JobError,
  JobListQuery,
  JobOutcome,
  JobRecord,
  JobStatus,
  JobStore,
  NewJob,
  QueueStats,
  WebhookDelivery,
  WebhookState,
} from '../../jobs/types.js';
import type { Database } from './database.js';

interface JobRow {
  seq: number;
  id: string;
  tenant_id: string;
  key_id: string;
  user_id: string;
  kind: JobRecord['kind'];
  model: string;
  body: string;
  priority: number;
  status: JobStatus;
  webhook_url: string | null;
  deadline_at: number | null;
  metadata: string;
  idempotency_key: string | null;
  batch_id: string | null;
  custom_id: string | null;
  attempts: number;
  max_attempts: number;
  result: string | null;
  error: string | null;
  dead_lettered: number;
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

interface InsertRow {
  id: string;
  tenant_id: string;
  key_id: string;
  user_id: string;
  kind: string;
  model: string;
  body: string;
  priority: number;
  webhook_url: string | null;
  deadline_at: number | null;
  metadata: string;
  idempotency_key: string | null;
  batch_id: string | null;
  custom_id: string | null;
  max_attempts: number;
  created_at: number;
}

interface DeliveryRow {
  job_id: string;
  attempt: number;
  at: number;
  status_code: number | null;
  error: string;
  duration_ms: number;
}

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

/** Queued jobs a claim reads in (priority, seq) order looking for a free tenant's job before visiting every tenant. */
const FRONT_SCAN = 256;
/** Jobs with a passed lease weighed per pick (more wait for the next picks). */
const DEAD_SCAN = 64;

/** The error of a job ended by `expire`. */
const DEADLINE_ERROR: JobError = { code: 'deadline_exceeded', message: 'The job did not finish before its deadline.', status: 408 };

/** A terminal transition's webhook outbox entry (same statement as the status). */
const OUTBOX = `webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END,
  webhook_attempts = 0,
  webhook_next_at = CASE WHEN webhook_url IS NULL THEN NULL ELSE @now END`;

/** The best claimable job (see the header): its seq, or no row. */
const PICK = `
WITH RECURSIVE
excluded(model) AS (SELECT value FROM json_each(@excluded)),
busy(tenant_id, n) AS (
  SELECT tenant_id, COUNT(*) FROM jobs INDEXED BY jobs_running WHERE status = 'running' AND lease_until >= @now GROUP BY tenant_id
),
front AS MATERIALIZED (
  SELECT seq, priority, tenant_id, run_after, model FROM jobs INDEXED BY jobs_queued
  WHERE status = 'queued' ORDER BY priority, seq LIMIT ${FRONT_SCAN}
),
free_front(seq, priority, tenant_id) AS (
  SELECT seq, priority, tenant_id FROM front
  WHERE run_after <= @now AND model NOT IN excluded AND tenant_id NOT IN (SELECT tenant_id FROM busy)
  ORDER BY priority, seq LIMIT 1
),
tenants(tenant_id) AS (
  SELECT (SELECT tenant_id FROM jobs INDEXED BY jobs_queued_by_tenant WHERE status = 'queued' ORDER BY tenant_id LIMIT 1)
  WHERE NOT EXISTS (SELECT 1 FROM free_front) AND (SELECT COUNT(*) FROM front) >= ${FRONT_SCAN}
  UNION ALL
  SELECT (SELECT j.tenant_id FROM jobs j INDEXED BY jobs_queued_by_tenant WHERE j.status = 'queued' AND j.tenant_id > t.tenant_id ORDER BY j.tenant_id LIMIT 1)
  FROM tenants t WHERE t.tenant_id IS NOT NULL
),
heads(seq) AS (
  SELECT (SELECT h.seq FROM jobs h INDEXED BY jobs_queued_by_tenant
          WHERE h.status = 'queued' AND h.tenant_id = x.tenant_id AND h.run_after <= @now AND h.model NOT IN excluded
          ORDER BY h.priority, h.seq LIMIT 1)
  FROM (SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL UNION SELECT tenant_id FROM busy) x
),
candidates(seq, priority, tenant_id) AS (
  SELECT seq, priority, tenant_id FROM free_front
  UNION ALL
  SELECT j.seq, j.priority, j.tenant_id FROM heads JOIN jobs j ON j.seq = heads.seq
  UNION ALL
  SELECT * FROM (
    SELECT seq, priority, tenant_id FROM jobs INDEXED BY jobs_running
    WHERE status = 'running' AND lease_until < @now AND model NOT IN excluded
    ORDER BY priority, seq LIMIT ${DEAD_SCAN})
)
SELECT c.seq FROM candidates c LEFT JOIN busy b ON b.tenant_id = c.tenant_id
ORDER BY c.priority, COALESCE(b.n, 0), c.seq
LIMIT 1`;

export class SqliteJobStore implements JobStore {
  readonly #db: Database;
  readonly #lists = new Map<string, Statement<[Record<string, string | number>], JobRow>>();
  readonly #sql: {
    insert: Statement<[InsertRow], JobRow>;
    insertPlain: Statement<[InsertRow]>;
    byIdempotencyKey: Statement<[string, string], JobRow>;
    get: Statement<[string], JobRow>;
    cancel: Statement<[{ id: string; tenant: string; now: number }], JobRow>;
    cancelBatch: Statement<[{ batch: string; now: number }]>;
    pick: Statement<[{ now: number; excluded: string }], number>;
    claimOne: Statement<[{ seq: number; owner: string; until: number; now: number }], JobRow>;
    heartbeat: Statement<[{ ids: string; owner: string; until: number }], string>;
    complete: Statement<[{ id: string; owner: string; now: number; result: string; cost: number; prompt: number; completion: number }]>;
    fail: Statement<[FailParams]>;
    release: Statement<[{ id: string; owner: string; runAfter: number }]>;
    expire: Statement<[{ now: number; error: string }], JobRow>;
    statsQueued: Statement<[], { priority: number; queued: number; oldest: number }>;
    statsRunning: Statement<[], { priority: number; running: number }>;
    batchCounts: Statement<[string], { status: JobStatus; n: number }>;
    batchJobs: Statement<[string], JobRow>;
    dueWebhooks: Statement<[{ now: number; limit: number }], number>;
    leaseWebhook: Statement<[{ seq: number; until: number }], JobRow>;
    insertDelivery: Statement<[DeliveryRow]>;
    updateWebhook: Statement<[{ id: string; state: WebhookState; attempts: number; nextAt: number }]>;
    deliveries: Statement<[string], DeliveryRow>;
    finished: Statement<[{ before: number; limit: number }], string>;
    deleteJob: Statement<[string]>;
    deleteDeliveries: Statement<[string]>;
  };

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    this.#db = db;
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
      pick: db.prepare(PICK).pluck() as Statement<[{ now: number; excluded: string }], number>,
      claimOne: db.prepare(
        `UPDATE jobs SET status = 'running', lease_owner = @owner, lease_until = @until, attempts = attempts + 1,
                         started_at = COALESCE(started_at, @now)
         WHERE seq = @seq
         RETURNING *`,
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
      dueWebhooks: db
        .prepare(
          `SELECT seq FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= @now
           ORDER BY webhook_next_at, seq LIMIT @limit`,
        )
        .pluck() as Statement<[{ now: number; limit: number }], number>,
      leaseWebhook: db.prepare('UPDATE jobs SET webhook_next_at = @until WHERE seq = @seq RETURNING *'),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (job_id, attempt, at, status_code, error, duration_ms)
         VALUES (@job_id, @attempt, @at, @status_code, @error, @duration_ms)`,
      ),
      updateWebhook: db.prepare(
        'UPDATE jobs SET webhook_state = @state, webhook_attempts = @attempts, webhook_next_at = @nextAt WHERE id = @id',
      ),
      deliveries: db.prepare(
        'SELECT job_id, attempt, at, status_code, error, duration_ms FROM webhook_deliveries WHERE job_id = ? ORDER BY id',
      ),
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
    const row = toInsertRow(job);
    return this.#db.transaction(() => {
      if (job.idempotencyKey !== null) {
        const existing = this.#sql.byIdempotencyKey.get(job.tenantId, job.idempotencyKey);
        if (existing) return { job: toJob(existing), created: false };
      }
      return { job: toJob(this.#sql.insert.get(row)!), created: true };
    }).immediate();
  }

  async enqueueMany(jobs: NewJob[]): Promise<void> {
    const rows = jobs.map(toInsertRow);
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
    const rows = stmt.all(params);
    return { data: rows.slice(0, limit).map(toJob), hasMore: rows.length > limit };
  }

  async cancel(id: string, tenantId: string, now: number): Promise<JobRecord | undefined> {
    const row = this.#sql.cancel.get({ id, tenant: tenantId, now });
    return row ? toJob(row) : this.get(id, tenantId);
  }

  async cancelBatch(batchId: string, now: number): Promise<number> {
    return this.#sql.cancelBatch.run({ batch: batchId, now }).changes;
  }

  async claim(opts: { owner: string; limit: number; leaseMs: number; now: number; excludeModels?: readonly string[] }): Promise<JobRecord[]> {
    const { owner, now } = opts;
    const pick = { now, excluded: JSON.stringify(opts.excludeModels ?? []) };
    const until = now + opts.leaseMs;
    return this.#db.transaction(() => {
      const claimed: JobRecord[] = [];
      while (claimed.length < opts.limit) {
        const seq = this.#sql.pick.get(pick);
        if (seq === undefined) break;
        claimed.push(toJob(this.#sql.claimOne.get({ seq, owner, until, now })!));
      }
      return claimed;
    }).immediate();
  }

  async heartbeat(owner: string, ids: readonly string[], leaseMs: number, now: number): Promise<string[]> {
    if (ids.length === 0) return [];
    const held = new Set(this.#sql.heartbeat.all({ ids: JSON.stringify(ids), owner, until: now + leaseMs }));
    return ids.filter((id) => held.has(id));
  }

  async complete(id: string, owner: string, outcome: JobOutcome, now: number): Promise<boolean> {
    return (
      this.#sql.complete.run({
        id,
        owner,
        now,
        result: JSON.stringify(outcome.result),
        cost: outcome.costPico,
        prompt: outcome.promptTokens,
        completion: outcome.completionTokens,
      }).changes === 1
    );
  }

  async fail(
    id: string,
    owner: string,
    failure: { error: JobError; retryAt?: number; status?: 'failed' | 'expired'; costPico?: number; promptTokens?: number; completionTokens?: number },
    now: number,
  ): Promise<boolean> {
    return (
      this.#sql.fail.run({
        id,
        owner,
        now,
        retry_at: failure.retryAt ?? null,
        terminal: failure.status ?? 'failed',
        error: JSON.stringify(failure.error),
        cost: failure.costPico ?? 0,
        prompt: failure.promptTokens ?? 0,
        completion: failure.completionTokens ?? 0,
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
    const byPriority = new Map<number, QueueStats['byPriority'][number]>();
    const entry = (priority: number) => {
      let e = byPriority.get(priority);
      if (!e) byPriority.set(priority, (e = { priority, queued: 0, oldestCreatedAt: null, running: 0 }));
      return e;
    };
    for (const r of this.#sql.statsQueued.all()) Object.assign(entry(r.priority), { queued: r.queued, oldestCreatedAt: r.oldest });
    for (const r of this.#sql.statsRunning.all()) entry(r.priority).running = r.running;
    return { byPriority: [...byPriority.values()].sort((a, b) => a.priority - b.priority) };
  }

  async batchCounts(batchId: string): Promise<Partial<Record<JobStatus, number>>> {
    const out: Partial<Record<JobStatus, number>> = {};
    for (const r of this.#sql.batchCounts.all(batchId)) out[r.status] = r.n;
    return out;
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
    if (opts.limit <= 0) return [];
    const until = opts.now + opts.leaseMs;
    return this.#db.transaction(() =>
      this.#sql.dueWebhooks.all({ now: opts.now, limit: opts.limit }).map((seq) => toJob(this.#sql.leaseWebhook.get({ seq, until })!)),
    ).immediate();
  }

  async recordDelivery(d: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void> {
    this.#db.transaction(() => {
      this.#sql.insertDelivery.run({
        job_id: d.jobId,
        attempt: d.attempt,
        at: d.at,
        status_code: d.statusCode,
        error: d.error,
        duration_ms: Math.round(d.durationMs),
      });
      this.#sql.updateWebhook.run({ id: d.jobId, state: next.state, attempts: d.attempt, nextAt: next.nextAt });
    }).immediate();
  }

  async deliveries(jobId: string): Promise<WebhookDelivery[]> {
    return this.#sql.deliveries.all(jobId).map((r) => ({
      jobId: r.job_id,
      attempt: r.attempt,
      at: r.at,
      statusCode: r.status_code,
      error: r.error,
      durationMs: r.duration_ms,
    }));
  }

  /** The database is shared with the other stores: closing it is the storage's job. */
  async close(): Promise<void> {}
}

function clampLimit(limit: number): number {
  return Math.min(100, Math.max(1, Math.floor(limit) || 1));
}

function toInsertRow(j: NewJob): InsertRow {
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

function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    seq: r.seq,
    tenantId: r.tenant_id,
    keyId: r.key_id,
    userId: r.user_id,
    kind: r.kind,
    model: r.model,
    body: JSON.parse(r.body) as Record<string, unknown>,
    priority: r.priority,
    status: r.status,
    webhookUrl: r.webhook_url,
    deadlineAt: r.deadline_at,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    idempotencyKey: r.idempotency_key,
    batchId: r.batch_id,
    customId: r.custom_id,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
    error: r.error === null ? null : (JSON.parse(r.error) as JobError),
    deadLettered: r.dead_lettered === 1,
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
