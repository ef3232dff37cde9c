/**
 * `FeedbackStore` on PostgreSQL (table `feedback`, migration 5), with the semantics of
 * `SqliteFeedbackStore`: one row per (tenant, request id as the client saw it) holding the latest
 * verdict; a verdict older than the stored one is ignored; at equal times the last write wins.
 * One statement, so concurrent writers of one request settle on the latest verdict.
 */
import type { FeedbackStore } from '../../routing/types.js';
import { PostgresAdapter } from './database.js';

type Feedback = Parameters<FeedbackStore['put']>[0];

export class PostgresFeedbackStore extends PostgresAdapter implements FeedbackStore {
  async put(f: Feedback): Promise<void> {
    await this.sql`
      INSERT INTO feedback (tenant_id, request_id, rating, comment, created_at)
      VALUES (${f.tenantId}, ${f.requestId}, ${f.good ? 1 : 0}, ${f.comment}, ${Math.round(f.at)})
      ON CONFLICT (tenant_id, request_id) DO UPDATE SET
        rating = excluded.rating, comment = excluded.comment, created_at = excluded.created_at
      WHERE excluded.created_at >= feedback.created_at`;
  }
}
