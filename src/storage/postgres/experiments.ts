/**
 * A/B experiment results from the PostgreSQL ledger, with the semantics of
 * `SqliteExperimentResults` (same contract suite; see src/storage/sqlite/experiments.ts for what is
 * counted and how feedback is joined). Events are read with a cursor, so a large experiment does
 * not hold every row in memory at once; sums are exact (integers below 2^53).
 */
import type { ExperimentResultsSource, VariantRaw } from '../../routing/experiment-stats.js';
import { emptyRaw } from '../../routing/experiment-stats.js';
import type { Sql } from './database.js';

/** The event's request id before its last '~' (rtrim drops every trailing character but '~', then the '~'). */
const CLIENT_ID_SQL = `substr(rtrim(u.request_id, replace(u.request_id, '~', '')), 1,
  length(rtrim(u.request_id, replace(u.request_id, '~', ''))) - 1)`;

/** `experiment <> ''` lets the partial index usage_events_by_experiment serve a prepared (generic) plan. */
const IN_RANGE = `u.experiment = $1 AND u.experiment <> '' AND u.ts >= $2 AND u.ts < $3`;

const EVENTS_SQL = `SELECT u.variant, u.status, u.latency_ms, u.ttft_ms, u.prompt_tokens, u.completion_tokens, u.cost_pico
  FROM usage_events u WHERE ${IN_RANGE}`;

const FEEDBACK_SQL = `SELECT variant, COUNT(*) FILTER (WHERE rating = 1) AS good, COUNT(*) FILTER (WHERE rating <> 1) AS bad FROM (
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = u.request_id
     WHERE ${IN_RANGE}
    UNION ALL
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = ${CLIENT_ID_SQL}
     WHERE ${IN_RANGE} AND u.request_id LIKE '%~%'
  ) joined GROUP BY variant`;

type EventRow = [variant: string, status: number, latency: number, ttft: number | null, prompt: number, completion: number, cost: number];

const ROWS_PER_FETCH = 5_000;

export class PostgresExperimentResults implements ExperimentResultsSource {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres` (not closed here). */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async raw(experiment: string, from: number, to: number): Promise<VariantRaw[]> {
    const params = [experiment, wholeMs(from), wholeMs(to)];
    const byVariant = new Map<string, VariantRaw>();
    const of = (variant: string): VariantRaw => {
      let v = byVariant.get(variant);
      if (!v) byVariant.set(variant, (v = emptyRaw(variant)));
      return v;
    };
    const events = this.#sql.unsafe(EVENTS_SQL, params, { prepare: true }).values().cursor(ROWS_PER_FETCH);
    for await (const batch of events as AsyncIterable<EventRow[]>) {
      for (const [variant, status, latency, ttft, prompt, completion, cost] of batch) {
        const v = of(variant);
        v.requests++;
        if (status >= 400) v.errors++;
        v.latencies.push(Number(latency));
        if (ttft !== null) v.ttfts.push(Number(ttft));
        v.promptTokens += Number(prompt);
        v.completionTokens += Number(completion);
        v.costPico += Number(cost);
        v.costs.push(Number(cost));
      }
    }
    const feedback = await this.#sql.unsafe<{ variant: string; good: number; bad: number }[]>(FEEDBACK_SQL, params, { prepare: true });
    for (const row of feedback) {
      const v = byVariant.get(row.variant);
      if (!v) continue; // cannot happen: feedback rows come from the same events
      v.feedbackGood = Number(row.good);
      v.feedbackBad = Number(row.bad);
    }
    return [...byVariant.values()].sort((a, b) => (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0));
  }
}

/** A range bound as a BIGINT: rounded up; ±Infinity (an open end) clamped to the safe integers. */
function wholeMs(bound: number): number {
  if (Number.isFinite(bound)) return Math.ceil(bound);
  return bound > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}
