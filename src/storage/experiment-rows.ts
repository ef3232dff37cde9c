/**
 * What the A/B experiment adapters (src/storage/{sqlite,postgres}/experiments.ts) return: one
 * `VariantRaw` per variant, added up from the ledger's events and the feedback. The SQL both
 * adapters run and the tally of its rows are shared here; the statistics computed from these
 * rows are routing's (src/routing/experiment-stats.ts).
 *
 * Feedback is joined by tenant and request id. The feedback table holds the id the client saw
 * (x-request-id); the ledger's request_id is that id, or `<id>~<suffix>` when the client sent its
 * own x-request-id (the suffix, hex, has no '~'). So an event matches the feedback on its own id,
 * or on the part of its id before the last '~'. Both are lookups on the feedback primary key (a
 * join on "f.request_id || '~' is a prefix of u.request_id" would scan the tenant's feedback for
 * every event).
 */

/** One variant's raw data over a time range, from the ledger. */
export interface VariantRaw {
  variant: string;
  requests: number;
  /** Requests answered with status >= 400 (the ledger's definition of an error). */
  errors: number;
  /** Per request, ms (any order). */
  latencies: number[];
  /** Per streamed request, ms (any order). */
  ttfts: number[];
  promptTokens: number;
  completionTokens: number;
  /** Total cost, pico-dollars (1e-12 USD). */
  costPico: number;
  /** Per request cost, pico-dollars (any order): for the cost interval. */
  costs: number[];
  feedbackGood: number;
  feedbackBad: number;
}

/** Where results come from: `SqliteExperimentResults`, `PostgresExperimentResults`. */
export interface ExperimentResultsSource {
  /** Per variant (sorted by name) of the events of `experiment` with `from <= ts < to` (epoch ms); only variants with events. */
  raw(experiment: string, from: number, to: number): Promise<VariantRaw[]>;
}

/** A variant with no data. */
export function emptyRaw(variant: string): VariantRaw {
  return {
    variant, requests: 0, errors: 0, latencies: [], ttfts: [], promptTokens: 0, completionTokens: 0,
    costPico: 0, costs: [], feedbackGood: 0, feedbackBad: 0,
  };
}

/** The event's request id before its last '~' (rtrim drops every trailing character but '~', then the '~'). */
const CLIENT_ID_SQL = `substr(rtrim(u.request_id, replace(u.request_id, '~', '')), 1,
  length(rtrim(u.request_id, replace(u.request_id, '~', ''))) - 1)`;

/**
 * The experiment's events in range, with the dialect's placeholders for the experiment and the
 * bounds; `experiment <> ''` lets the partial index usage_events_by_experiment serve it (also as
 * a prepared, generic plan).
 */
function inRange(experiment: string, from: string, to: string): string {
  return `u.experiment = ${experiment} AND u.experiment <> '' AND u.ts >= ${from} AND u.ts < ${to}`;
}

/** The events (columns of `EventRow`, in order) of one experiment in range. */
export function eventsSql(experiment: string, from: string, to: string): string {
  return `SELECT u.variant, u.status, u.latency_ms, u.ttft_ms, u.prompt_tokens, u.completion_tokens, u.cost_pico
  FROM usage_events u WHERE ${inRange(experiment, from, to)}`;
}

/** Good and bad verdicts per variant (`FeedbackRow`); `good`/`bad` are the dialect's counting expressions. */
export function feedbackSql(experiment: string, from: string, to: string, counts: { good: string; bad: string }): string {
  const range = inRange(experiment, from, to);
  return `SELECT variant, ${counts.good} AS good, ${counts.bad} AS bad FROM (
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = u.request_id
     WHERE ${range}
    UNION ALL
    SELECT u.variant, f.rating FROM usage_events u
      JOIN feedback f ON f.tenant_id = u.tenant_id AND f.request_id = ${CLIENT_ID_SQL}
     WHERE ${range} AND u.request_id LIKE '%~%'
  ) joined GROUP BY variant`;
}

/** A row of `eventsSql`, as an array (drivers may return BIGINT columns as strings). */
export type EventRow = [variant: string, status: number, latency: number | string, ttft: number | string | null, prompt: number | string, completion: number | string, cost: number | string];

/** A row of `feedbackSql`. */
export interface FeedbackRow {
  variant: string;
  good: number | string;
  bad: number | string;
}

/** Adds up event and feedback rows per variant; sums are exact (integers below 2^53). */
export class VariantTally {
  readonly #byVariant = new Map<string, VariantRaw>();

  event([variant, status, latency, ttft, prompt, completion, cost]: EventRow): void {
    let v = this.#byVariant.get(variant);
    if (!v) this.#byVariant.set(variant, (v = emptyRaw(variant)));
    v.requests++;
    if (status >= 400) v.errors++;
    v.latencies.push(Number(latency));
    if (ttft !== null) v.ttfts.push(Number(ttft));
    v.promptTokens += Number(prompt);
    v.completionTokens += Number(completion);
    v.costPico += Number(cost);
    v.costs.push(Number(cost));
  }

  feedback(row: FeedbackRow): void {
    const v = this.#byVariant.get(row.variant);
    if (!v) return; // cannot happen: feedback rows come from the same events
    v.feedbackGood = Number(row.good);
    v.feedbackBad = Number(row.bad);
  }

  /** The variants with events, sorted by name. */
  variants(): VariantRaw[] {
    return [...this.#byVariant.values()].sort((a, b) => (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0));
  }
}
