/**
 * `/admin/v1/experiments`: the A/B experiments of the config and their results from the ledger.
 *
 *   GET /experiments                         every experiment, weights also as shares (0-1)
 *   GET /experiments/:id                     one experiment
 *   GET /experiments/:id/results?from=&to=   per-variant statistics and each variant's difference
 *                                            from the control (the first variant), 95% intervals
 *
 * `from` / `to`: ISO 8601 dates or epoch ms; default the last 7 days up to now (`from` inclusive,
 * `to` exclusive). The statistics are described in src/routing/experiment-stats.ts;
 * `experimentResultsJson` (snake_case) is shared with `tollgate experiments show`.
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';
import { formatUsd } from '../../metering/cost.js';
import { parseTimeParam as parseTime } from '../../util/time.js';
import { type Experiment, type Experiments } from '../../routing/experiments.js';
import { type Distribution, type ExperimentResults, type ExperimentResultsSource, type Interval, alignVariants, summarize } from '../../routing/experiment-stats.js';

export interface ExperimentRoutesOptions {
  experiments: Pick<Experiments, 'list' | 'get'>;
  results: ExperimentResultsSource;
  /** Flushed before reading results, so they include every request answered so far. */
  ledgerFlush?: () => Promise<void>;
}

const DAY_MS = 86_400_000;
/** Default window of results. */
export const DEFAULT_RESULTS_DAYS = 7;

export function experimentJson(e: Experiment) {
  const total = e.variants.reduce((a, v) => a + v.weight, 0);
  return {
    id: e.id,
    object: 'experiment',
    route: e.route,
    enabled: e.enabled,
    description: e.description,
    control: e.variants[0]?.name ?? null,
    variants: e.variants.map((v) => ({
      name: v.name,
      weight: v.weight,
      share: total > 0 ? v.weight / total : 0,
      model: v.model ?? null,
      system: v.system ?? null,
      params: v.params ?? {},
    })),
  };
}

/** `[from, to)` from the query (or CLI flags); default: the last 7 days up to `now`. */
export function parseResultsRange(p: { from?: string | undefined; to?: string | undefined }, now: number = Date.now()): { from: number; to: number } {
  const to = p.to ? parseTime(p.to, 'to') : now;
  const from = p.from ? parseTime(p.from, 'from') : to - DEFAULT_RESULTS_DAYS * DAY_MS;
  if (from >= to) {
    throw new GatewayError('invalid_value', `from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`, { param: 'from' });
  }
  return { from, to };
}

/** The experiment, or a 404 naming the id. */
export function findExperiment(experiments: Pick<Experiments, 'get'>, id: string): Experiment {
  const e = experiments.get(id);
  if (!e) throw new GatewayError('not_found', `experiment '${id}' not found`, { param: 'id' });
  return e;
}

/** Reads and summarizes an experiment's results: the configured variants in order (control first). */
export async function experimentResults(source: ExperimentResultsSource, e: Experiment, from: number, to: number): Promise<ExperimentResults> {
  return summarize(alignVariants(e, await source.raw(e.id, from, to)));
}

/** Rounds a USD amount for display (9 decimals: a thousandth of a micro-dollar). */
const usd = (v: number) => Math.round(v * 1e9) / 1e9;
const ms = (v: number) => Math.round(v * 1000) / 1000;
const ratio = (v: number) => Math.round(v * 1e6) / 1e6;

function distributionJson(d: Distribution | null) {
  return d && { mean: ms(d.mean), p50: ms(d.p50), p95: ms(d.p95), p99: ms(d.p99) };
}

function intervalJson(i: Interval | null, round: (v: number) => number, method: 'newcombe' | 'welch') {
  return i && { estimate: round(i.estimate), low: round(i.low), high: round(i.high), significant: i.significant, method };
}

export function experimentResultsJson(e: Experiment, from: number, to: number, r: ExperimentResults) {
  const total = e.variants.reduce((a, v) => a + v.weight, 0);
  const share = (name: string) => {
    const v = e.variants.find((x) => x.name === name);
    return v && total > 0 ? v.weight / total : null;
  };
  return {
    object: 'experiment_results',
    experiment: e.id,
    route: e.route,
    enabled: e.enabled,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    control: r.control,
    confidence: r.confidence,
    variants: r.variants.map((v) => ({
      variant: v.variant,
      /** The configured share; null for a variant no longer in the config. */
      share: share(v.variant),
      requests: v.requests,
      errors: v.errors,
      error_rate: v.errorRate === null ? null : ratio(v.errorRate),
      latency_ms: distributionJson(v.latencyMs),
      streams: v.streams,
      ttft_ms: distributionJson(v.ttftMs),
      mean_prompt_tokens: v.meanPromptTokens === null ? null : ms(v.meanPromptTokens),
      mean_completion_tokens: v.meanCompletionTokens === null ? null : ms(v.meanCompletionTokens),
      cost_usd: formatUsd(v.costPico),
      cost_per_request_usd: v.costPerRequestUsd === null ? null : usd(v.costPerRequestUsd),
      feedback: { count: v.feedback.count, good: v.feedback.good, bad: v.feedback.bad, mean: v.feedback.mean === null ? null : ratio(v.feedback.mean) },
    })),
    differences: r.differences.map((d) => ({
      variant: d.variant,
      control: d.control,
      error_rate: intervalJson(d.errorRate, ratio, 'newcombe'),
      feedback_mean: intervalJson(d.feedbackMean, ratio, 'newcombe'),
      latency_mean_ms: intervalJson(d.latencyMeanMs, ms, 'welch'),
      cost_per_request_usd: intervalJson(d.costPerRequestUsd, usd, 'welch'),
    })),
  };
}

const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;
const rangeQuery = { type: 'object', properties: { from: { type: 'string' }, to: { type: 'string' } } } as const;

export async function experimentRoutes(app: FastifyInstance, opts: ExperimentRoutesOptions): Promise<void> {
  app.get('/experiments', async () => ({ object: 'list', data: opts.experiments.list().map(experimentJson) }));

  app.get<{ Params: { id: string } }>('/experiments/:id', { schema: { params: idParams } }, async (request) =>
    experimentJson(findExperiment(opts.experiments, request.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { from?: string; to?: string } }>(
    '/experiments/:id/results',
    { schema: { params: idParams, querystring: rangeQuery } },
    async (request) => {
      const e = findExperiment(opts.experiments, request.params.id);
      const { from, to } = parseResultsRange(request.query);
      await opts.ledgerFlush?.();
      return experimentResultsJson(e, from, to, await experimentResults(opts.results, e, from, to));
    },
  );
}
