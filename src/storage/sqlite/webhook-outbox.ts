/**
 * The webhook outbox of `SqliteJobStore` (src/storage/sqlite/jobs.ts): the `webhook_*` columns of
 * `jobs` and the table `webhook_deliveries`. A terminal transition queues its job's webhook in
 * the statement that sets the status ({@link OUTBOX}); dispatchers then lease due webhooks
 * (`webhook_next_at` moved past now), record each delivery attempt with the webhook's next state,
 * and list a job's attempts. Writes that read first run in one IMMEDIATE transaction.
 */
import type { Statement } from 'better-sqlite3';
import type { JobStore, WebhookDelivery, WebhookState } from '../../jobs/types.js';
import { type DeliveryRow, type JobRow, deliveryToRow, rowToDelivery } from '../job-rows.js';
import type { Database } from './database.js';

/** A terminal transition's webhook outbox entry (same statement as the status). */
export const OUTBOX = `webhook_state = CASE WHEN webhook_url IS NULL THEN NULL ELSE 'pending' END,
  webhook_attempts = 0,
  webhook_next_at = CASE WHEN webhook_url IS NULL THEN NULL ELSE @now END`;

export class SqliteWebhookOutbox {
  readonly #db: Database;
  readonly #sql: {
    due: Statement<[{ now: number; limit: number }], number>;
    lease: Statement<[{ seq: number; until: number }], JobRow<string>>;
    insertDelivery: Statement<[DeliveryRow]>;
    update: Statement<[{ id: string; state: WebhookState; attempts: number; nextAt: number }]>;
    deliveries: Statement<[string], DeliveryRow>;
  };

  constructor(db: Database) {
    this.#db = db;
    this.#sql = {
      due: db
        .prepare(
          `SELECT seq FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= @now
           ORDER BY webhook_next_at, seq LIMIT @limit`,
        )
        .pluck() as Statement<[{ now: number; limit: number }], number>,
      lease: db.prepare('UPDATE jobs SET webhook_next_at = @until WHERE seq = @seq RETURNING *'),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (job_id, attempt, at, status_code, error, duration_ms)
         VALUES (@job_id, @attempt, @at, @status_code, @error, @duration_ms)`,
      ),
      update: db.prepare(
        'UPDATE jobs SET webhook_state = @state, webhook_attempts = @attempts, webhook_next_at = @nextAt WHERE id = @id',
      ),
      deliveries: db.prepare(
        'SELECT job_id, attempt, at, status_code, error, duration_ms FROM webhook_deliveries WHERE job_id = ? ORDER BY id',
      ),
    };
  }

  /** Leases up to `opts.limit` due webhooks to a dispatcher, oldest due first: their jobs' rows as leased. */
  claim(opts: Parameters<JobStore['claimWebhooks']>[0]): JobRow<string>[] {
    if (opts.limit <= 0) return [];
    const until = opts.now + opts.leaseMs;
    return this.#db.transaction(() =>
      this.#sql.due.all({ now: opts.now, limit: opts.limit }).map((seq) => this.#sql.lease.get({ seq, until })!),
    ).immediate();
  }

  /** Appends a delivery attempt and sets the webhook's next state, in one transaction. */
  record(d: WebhookDelivery, next: { state: WebhookState; nextAt: number }): void {
    this.#db.transaction(() => {
      this.#sql.insertDelivery.run(deliveryToRow(d));
      this.#sql.update.run({ id: d.jobId, state: next.state, attempts: d.attempt, nextAt: next.nextAt });
    }).immediate();
  }

  /** A job's delivery attempts, in the order they were made. */
  deliveries(jobId: string): WebhookDelivery[] {
    return this.#sql.deliveries.all(jobId).map(rowToDelivery);
  }
}
