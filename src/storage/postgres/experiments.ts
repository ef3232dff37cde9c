/**
 * A/B experiment results from the PostgreSQL ledger, with the semantics of
 * `SqliteExperimentResults` (same contract suite; see src/storage/sqlite/experiments.ts for what is
 * counted and src/storage/experiment-rows.ts for how feedback is joined). Events are read with a
 * cursor, so a large experiment does not hold every row in memory at once.
 */
import { type EventRow, type ExperimentResultsSource, type FeedbackRow, type VariantRaw, VariantTally, eventsSql, feedbackSql } from '../experiment-rows.js';
import { wholeMs } from '../ledger-helpers.js';
import { PostgresAdapter } from './database.js';

const EVENTS_SQL = eventsSql('$1', '$2', '$3');
const FEEDBACK_SQL = feedbackSql('$1', '$2', '$3', { good: 'COUNT(*) FILTER (WHERE rating = 1)', bad: 'COUNT(*) FILTER (WHERE rating <> 1)' });

const ROWS_PER_FETCH = 5_000;

export class PostgresExperimentResults extends PostgresAdapter implements ExperimentResultsSource {
  async raw(experiment: string, from: number, to: number): Promise<VariantRaw[]> {
    const params = [experiment, wholeMs(from), wholeMs(to)];
    const tally = new VariantTally();
    const events = this.sql.unsafe(EVENTS_SQL, params, { prepare: true }).values().cursor(ROWS_PER_FETCH);
    for await (const batch of events as AsyncIterable<EventRow[]>) for (const row of batch) tally.event(row);
    for (const row of await this.sql.unsafe<FeedbackRow[]>(FEEDBACK_SQL, params, { prepare: true })) tally.feedback(row);
    return tally.variants();
  }
}
