/**
 * `FeedbackStore` on the embedded SQLite database (table `feedback`, migration 6): one row per
 * (tenant, request id as the client saw it) holding the latest verdict. A verdict older than the
 * stored one (`at` before its `created_at`) is ignored, so retries and reordered writes cannot
 * bring back an earlier opinion; at equal times the last write wins.
 */
import type { Statement } from 'better-sqlite3';
import type { FeedbackStore } from '../../routing/types.js';
import type { Database } from './database.js';

type Feedback = Parameters<FeedbackStore['put']>[0];

export class SqliteFeedbackStore implements FeedbackStore {
  readonly #put: Statement<[string, string, number, string, number]>;

  constructor(db: Database) {
    this.#put = db.prepare(
      `INSERT INTO feedback (tenant_id, request_id, rating, comment, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tenant_id, request_id) DO UPDATE SET
         rating = excluded.rating, comment = excluded.comment, created_at = excluded.created_at
       WHERE excluded.created_at >= feedback.created_at`,
    );
  }

  async put(f: Feedback): Promise<void> {
    this.#put.run(f.tenantId, f.requestId, f.good ? 1 : 0, f.comment, Math.round(f.at));
  }
}
