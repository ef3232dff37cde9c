/**
 * A/B experiment results from the embedded SQLite ledger (`usage_events`, columns `experiment` and
 * `variant` of migration 6) and client feedback (`feedback`, migration 6).
 *
 * Per variant of the experiment, over `from <= ts < to`:
 * - requests: the events; errors: events with status >= 400, as everywhere in the ledger (so
 *   client errors, rate limits and budget refusals count: a variant that makes requests fail
 *   validation or exhaust budgets is worse);
 * - latencies (latency_ms) and costs (cost_pico) per event, TTFTs of streamed events (ttft_ms not
 *   null), token and cost sums;
 * - feedback: verdicts joined by tenant and the request id the client saw (how, and the SQL
 *   shared with PostgreSQL: src/storage/experiment-rows.ts).
 */
import { type EventRow, type ExperimentResultsSource, type FeedbackRow, type VariantRaw, VariantTally, eventsSql, feedbackSql } from '../experiment-rows.js';
import { wholeMs } from '../ledger-helpers.js';
import type { Database } from './database.js';

/** Exported for the query-plan test. */
export const FEEDBACK_SQL = feedbackSql('@experiment', '@from', '@to', { good: 'COALESCE(SUM(rating = 1), 0)', bad: 'COALESCE(SUM(rating <> 1), 0)' });

export class SqliteExperimentResults implements ExperimentResultsSource {
  readonly #events;
  readonly #feedback;

  constructor(db: Database) {
    this.#events = db.prepare<{ experiment: string; from: number; to: number }, EventRow>(eventsSql('@experiment', '@from', '@to')).raw(true);
    this.#feedback = db.prepare<{ experiment: string; from: number; to: number }, FeedbackRow>(FEEDBACK_SQL);
  }

  async raw(experiment: string, from: number, to: number): Promise<VariantRaw[]> {
    const params = { experiment, from: wholeMs(from), to: wholeMs(to) };
    const tally = new VariantTally();
    for (const row of this.#events.iterate(params)) tally.event(row);
    for (const row of this.#feedback.all(params)) tally.feedback(row);
    return tally.variants();
  }
}
