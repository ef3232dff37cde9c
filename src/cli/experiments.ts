/**
 * `tollgate experiments list | show <id> [--from DATE] [--to DATE] [--json]`: the A/B experiments
 * of the config, and an experiment's results read from the store's ledger (the same numbers and
 * JSON as GET /admin/v1/experiments/:id/results; default window: the last 7 days).
 */
import type { Config } from '../config/schema.js';
import {
  experimentJson,
  experimentResults,
  experimentResultsJson,
  findExperiment,
  parseResultsRange,
} from '../http/routes/experiments.js';
import { type Experiment, Experiments } from '../routing/experiments.js';
import { type Distribution, type ExperimentResults, type ExperimentResultsSource, type Interval } from '../routing/experiment-stats.js';
import { type Storage, openStorage } from '../storage/index.js';
import { printTable } from './table.js';

export interface ExperimentsFlags {
  json?: boolean;
  from?: string;
  to?: string;
}

const USAGE = 'usage: tollgate experiments list | show <id> [--from DATE] [--to DATE] [--json]';

/**
 * `source`: where results come from; default: `storage.experimentResults` of the store the config
 * points at (opened and closed here).
 */
export async function experimentsCommand(
  config: Config,
  action: string | undefined,
  args: string[],
  flags: ExperimentsFlags,
  source?: ExperimentResultsSource,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const experiments = new Experiments(config.experiments);
  switch (action) {
    case 'list': {
      const list = experiments.list();
      if (flags.json) return void out.write(`${JSON.stringify(list.map(experimentJson), null, 2)}\n`);
      printTable(
        ['id', 'route', 'enabled', 'variants', 'description'],
        list.map((e) => [e.id, e.route, e.enabled ? 'yes' : 'no', variantsText(e), e.description]),
        out,
      );
      return;
    }
    case 'show': {
      const id = args[0];
      if (!id) throw new Error(USAGE);
      const e = findExperiment(experiments, id);
      const { from, to } = parseResultsRange(flags);
      let storage: Storage | undefined;
      try {
        if (!source) {
          storage = await openStorage(config);
          // `experimentResults` is the Storage member for SqliteExperimentResults / PostgresExperimentResults.
          source = (storage as Storage & { experimentResults?: ExperimentResultsSource }).experimentResults;
          if (!source) throw new Error('this store does not provide experiment results');
        }
        const results = await experimentResults(source, e, from, to);
        if (flags.json) return void out.write(`${JSON.stringify(experimentResultsJson(e, from, to, results), null, 2)}\n`);
        printExperimentResults(e, from, to, results, out);
      } finally {
        await storage?.close();
      }
      return;
    }
    default:
      throw new Error(USAGE);
  }
}

function variantsText(e: Experiment): string {
  const total = e.variants.reduce((a, v) => a + v.weight, 0);
  return e.variants.map((v) => `${v.name} ${percent(v.weight / total, 0)}${v.model ? ` (${v.model})` : ''}`).join(', ');
}

const percent = (v: number, digits = 1) => `${(v * 100).toFixed(digits)}%`;
const signed = (v: number, digits: number) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const usd = (v: number) => `$${v.toFixed(9).replace(/0+$/, '').replace(/\.$/, '.0')}`;
const signedUsd = (v: number) => `${v >= 0 ? '+' : '-'}${usd(Math.abs(v))}`;
const quantiles = (d: Distribution | null) => (d ? `${d.p50.toFixed(0)} / ${d.p95.toFixed(0)} / ${d.p99.toFixed(0)}` : '-');

/** Per-variant table, then each variant's differences from the control with 95% intervals. */
export function printExperimentResults(e: Experiment, from: number, to: number, r: ExperimentResults, out: NodeJS.WritableStream = process.stdout): void {
  const total = e.variants.reduce((a, v) => a + v.weight, 0);
  out.write(`Experiment ${e.id} on ${e.route} (${e.enabled ? 'enabled' : 'disabled'})${e.description ? `: ${e.description}` : ''}\n`);
  out.write(`Results from ${new Date(from).toISOString()} to ${new Date(to).toISOString()}; control: ${r.control ?? '-'}\n\n`);
  printTable(
    ['variant', 'share', 'requests', 'errors', 'error rate', 'latency p50/p95/p99 ms', 'ttft p50/p95/p99 ms', 'tokens in/out', 'cost/request', 'feedback'],
    r.variants.map((v) => {
      const configured = e.variants.find((x) => x.name === v.variant);
      return [
        v.variant,
        configured ? percent(configured.weight / total, 0) : '(removed)',
        String(v.requests),
        String(v.errors),
        v.errorRate === null ? '-' : percent(v.errorRate, 2),
        quantiles(v.latencyMs),
        quantiles(v.ttftMs),
        v.meanPromptTokens === null ? '-' : `${v.meanPromptTokens.toFixed(0)} / ${(v.meanCompletionTokens ?? 0).toFixed(0)}`,
        v.costPerRequestUsd === null ? '-' : usd(v.costPerRequestUsd),
        v.feedback.mean === null ? '-' : `${percent(v.feedback.mean, 0)} good of ${v.feedback.count}`,
      ];
    }),
    out,
  );
  if (r.differences.length === 0) return;
  out.write(`\nDifferences from ${r.control} (variant - control), ${percent(r.confidence, 0)} confidence intervals\n`);
  out.write('  rates: Newcombe hybrid score interval; means: Welch t-interval. * = the interval excludes 0\n\n');
  const row = (variant: string, metric: string, i: Interval | null, fmt: (v: number) => string): string[] =>
    i ? [variant, metric, fmt(i.estimate), `[${fmt(i.low)}, ${fmt(i.high)}]`, i.significant ? '*' : ''] : [variant, metric, '-', 'not enough data', ''];
  const points = (v: number) => `${signed(v * 100, 2)} pp`;
  printTable(
    ['variant', 'metric', 'difference', '95% interval', 'sig.'],
    r.differences.flatMap((d) => [
      row(d.variant, 'error rate', d.errorRate, points),
      row(d.variant, 'good feedback', d.feedbackMean, points),
      row(d.variant, 'mean latency', d.latencyMeanMs, (v) => `${signed(v, 1)} ms`),
      row(d.variant, 'cost/request', d.costPerRequestUsd, signedUsd),
    ]),
    out,
  );
}
