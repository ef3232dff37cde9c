/**
 * The webhook outbox of `PostgresJobStore` (src/storage/postgres/jobs.ts): the `webhook_*`
 * columns of `jobs` and the table `webhook_deliveries`, with the semantics of SQLite's
 * (src/storage/sqlite/webhook-outbox.ts). A terminal transition queues its job's webhook in the
 * statement that sets the status ({@link outbox}); dispatchers then lease due webhooks
 * (`webhook_next_at` moved past now), record each delivery attempt with the webhook's next state,
 * and list a job's attempts.
 */
import type { JobStore, WebhookDelivery, WebhookState } from '../../jobs/types.js';
import { type DeliveryRow, type JobRow, deliveryToRow, rowToDelivery } from '../job-rows.js';
import type { Sql } from './database.js';

/** A terminal transition's webhook outbox entry (same statement as the status). */
export function outbox(sql: Sql, now: number) {
  return sql`webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END,
    webhook_attempts = 0,
    webhook_next_at = CASE WHEN webhook_url IS NULL THEN NULL ELSE ${now}::bigint END`;
}

/** Leases up to `opts.limit` due webhooks to a dispatcher: their jobs' rows as leased, oldest due first. */
export async function claimWebhooks(sql: Sql, opts: Parameters<JobStore['claimWebhooks']>[0]): Promise<JobRow<unknown>[]> {
  if (opts.limit <= 0) return [];
  // SKIP LOCKED: two dispatchers polling at once take different jobs; the lease (webhook_next_at
  // moved past now) keeps them apart afterwards.
  const rows = await sql<(JobRow<unknown> & { due_at: number })[]>`
    WITH due AS (
      SELECT seq, webhook_next_at AS due_at FROM jobs
      WHERE webhook_state = 'pending' AND webhook_next_at <= ${opts.now}
      ORDER BY webhook_next_at, seq
      LIMIT ${Math.floor(opts.limit)}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs SET webhook_next_at = ${opts.now + opts.leaseMs}
    FROM due WHERE jobs.seq = due.seq
    RETURNING jobs.*, due.due_at`;
  // Oldest due first, like the SQLite adapter.
  return rows.sort((a, b) => a.due_at - b.due_at || a.seq - b.seq);
}

/** Appends a delivery attempt and sets the webhook's next state, in one transaction. */
export async function recordDelivery(sql: Sql, d: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void> {
  const r = deliveryToRow(d);
  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO webhook_deliveries (job_id, attempt, at, status_code, error, duration_ms)
      VALUES (${r.job_id}, ${r.attempt}, ${r.at}, ${r.status_code}, ${r.error}, ${r.duration_ms})`;
    await tx`
      UPDATE jobs SET webhook_state = ${next.state}, webhook_attempts = ${d.attempt}, webhook_next_at = ${next.nextAt}
      WHERE id = ${d.jobId}`;
  });
}

/** A job's delivery attempts, in the order they were made. */
export async function listDeliveries(sql: Sql, jobId: string): Promise<WebhookDelivery[]> {
  const rows = await sql<DeliveryRow[]>`
    SELECT job_id, attempt, at, status_code, error, duration_ms FROM webhook_deliveries WHERE job_id = ${jobId} ORDER BY id`;
  return rows.map(rowToDelivery);
}
