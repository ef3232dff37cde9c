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
 * - feedback: verdicts joined by tenant and request id. The feedback table holds the id the
 *   client saw (x-request-id); the ledger's request_id is that id, or `<id>~<suffix>` when the
 *   client sent its own x-request-id (the suffix, hex, has no '~'). So an event matches the
 *   feedback on its own id, or on the part of its id before the last '~'. Both are lookups on the
 *   feedback primary key (a join on "f.request_id || '~' is a prefix of u.request_id" would scan
 *   the tenant's feedback for every event).
 */
import type { ExperimentResultsSource, VariantRaw } from '../../routing/experiment-stats.js';
import { emptyRaw } from '../../routing/experiment-stats.js';
import type { Database } from './database.js';

/** The event's request id before its last '~' (rtrim drops every trailing character but '~', then the '~'). */
const CLIENT_ID_SQL = `substr(rtrim(u.request_id, replace(u.request_id, '~', '')), 1,
  length(rtrim(u.request_id, replace(u.request_id, '~', ''))) - 1)`;

/** The experiment's events in range; `experiment <> ''` lets the partial index usage_events_by_experiment serve it. */
const IN_RANGE = `u.experiment = @experiment AND u.experiment <> '' AND u.ts >= @from AND u.ts < @to`;

const EVENTS_SQL = `SELECT u.variant, u.status, u.latency_ms, u.ttft_ms, u.prompt_tokens, u.completion_tokens, u.cost_pico
  FROM usage_events u WHERE ${IN_RANGE}`;

/** Exported for the query-plan test. */
export const FEEDBACK_SQL = `SELECT variant, COALESCE(SUM(rating = 1), 0) AS good, COALESCE(SUM(rating <> 1), 0) AS bad FROM (
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = u.request_id
     WHERE ${IN_RANGE}
    UNION ALL
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = ${CLIENT_ID_SQL}
     WHERE ${IN_RANGE} AND u.request_id LIKE '%~%'
  ) GROUP BY variant`;

type EventRow = [variant: string, status: number, latency: number, ttft: number | null, prompt: number, completion: number, cost: number];

interface FeedbackRow {
  variant: string;
  good: number;
  bad: number;
}

export class SqliteExperimentResults implements ExperimentResultsSource {
  readonly #events;
  readonly #feedback;

  constructor(db: Database) {
    this.#events = db.prepare<{ experiment: string; from: number; to: number }, EventRow>(EVENTS_SQL).raw(true);
    this.#feedback = db.prepare<{ experiment: string; from: number; to: number }, FeedbackRow>(FEEDBACK_SQL);
  }

  async raw(experiment: string, from: number, to: number): Promise<VariantRaw[]> {
    const params = { experiment, from: bound(from), to: bound(to) };
    const byVariant = new Map<string, VariantRaw>();
    const of = (variant: string): VariantRaw => {
      let v = byVariant.get(variant);
      if (!v) byVariant.set(variant, (v = emptyRaw(variant)));
      return v;
    };
    for (const [variant, status, latency, ttft, prompt, completion, cost] of this.#events.iterate(params)) {
      const v = of(variant);
      v.requests++;
      if (status >= 400) v.errors++;
      v.latencies.push(latency);
      if (ttft !== null) v.ttfts.push(ttft);
      v.promptTokens += prompt;
      v.completionTokens += completion;
      v.costPico += cost;
      v.costs.push(cost);
    }
    for (const row of this.#feedback.all(params)) {
      const v = byVariant.get(row.variant);
      if (!v) continue; // cannot happen: feedback rows come from the same events
      v.feedbackGood = row.good;
      v.feedbackBad = row.bad;
    }
    return [...byVariant.values()].sort((a, b) => (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0));
  }
}

/** ±Infinity (an open end) as the largest safe integers: SQLite compares them fine, but keep the parameters integral. */
function bound(ms: number): number {
  if (Number.isFinite(ms)) return Math.ceil(ms);
  return ms > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}
