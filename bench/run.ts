/**
 * `npm run bench [-- <scenario>... ] [--seconds N]`: builds, runs the selected scenarios (all by
 * default) one after another, prints a summary, writes bench/results/<scenario>-<date>.json and
 * the scenario's section of bench/RESULTS.md.
 *
 * Environment: BENCH_SECONDS (length of each measured run, default 10), BENCH_WARMUP_SECONDS
 * (default 2), BENCH_LOCK_WAIT_SECONDS (how long to wait for another bench run on this machine
 * to finish, default 900), BENCH_QUIET_WAIT_SECONDS (how long to wait for other processes to
 * use less than 0.3 cores before starting, default 120; 0 = don't wait); scenarios document their own (e.g. core: BENCH_RATE,
 * BENCH_RATE_DRIVER, BENCH_PIN, BENCH_PROFILE; metering: BENCH_RATE, BENCH_PROFILE, BENCH_METERING_MODES,
 * BENCH_METERING_DISTRIBUTED, BENCH_REDIS_URL, BENCH_POSTGRES_URL; cache: BENCH_CACHE_CONNECTIONS,
 * BENCH_CACHE_STREAM_CONNECTIONS, BENCH_CACHE_SEMANTIC_ENTRIES, BENCH_PROFILE; routing: BENCH_ROUTING_MIX,
 * BENCH_ROUTING_REQUESTS, BENCH_ROUTING_SEED; jobs: BENCH_JOBS_COUNT, BENCH_JOBS_CLIENTS, BENCH_JOBS_CONCURRENCY,
 * BENCH_JOBS_REPEATS, BENCH_JOBS_DISTRIBUTED, BENCH_JOBS_TWO_PROCESSES, BENCH_EMBED_RATE, BENCH_EMBED_SECONDS; observability:
 * BENCH_OBS_RATE, BENCH_OBS_MODES, BENCH_OBS_SIM_LATENCY_MS, BENCH_OBS_DRAIN_MS; ledger-rollup:
 * BENCH_ROLLUP_REQUESTS, BENCH_ROLLUP_USERS; outages: BENCH_OUTAGE_SECONDS, BENCH_OUTAGE_WATCH_SECONDS, BENCH_OUTAGE_LEAD_SECONDS,
 * BENCH_OUTAGE_RATE, BENCH_OUTAGE_FAULTS).
 *
 * Exit code: 0 when every scenario ran (a MISS against a target is a result, not a failure),
 * 1 when a scenario could not run, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { acquireBenchLock } from './lib/lock.js';
import { stopAll, waitForQuietMachine } from './lib/process.js';
import { toMarkdown, toText } from './lib/report.js';
import { machineInfo, REPO_ROOT, writeRawResults, writeResultsSection } from './lib/results.js';
import { positiveNumber, type BenchSettings, type Scenario } from './lib/scenario.js';
import { cacheScenario } from './scenarios/cache.js';
import { cacheHelpersScenario } from './scenarios/cache-helpers.js';
import { coreScenario } from './scenarios/core.js';
import { jobsScenario } from './scenarios/jobs.js';
import { ledgerRollupScenario } from './scenarios/ledger-rollup.js';
import { meteringScenario } from './scenarios/metering.js';
import { observabilityScenario } from './scenarios/observability.js';
import { outagesScenario } from './scenarios/outages.js';
import { routingScenario } from './scenarios/routing.js';
import { shadowScenario } from './scenarios/shadow.js';
import { tokenEstimateScenario } from './scenarios/token-estimate.js';

/** Every scenario, in the order `npm run bench` runs them. Add new ones here. */
const SCENARIOS: Scenario[] = [coreScenario, meteringScenario, cacheScenario, cacheHelpersScenario, routingScenario, shadowScenario, jobsScenario, observabilityScenario, tokenEstimateScenario, ledgerRollupScenario, outagesScenario];

const USAGE = `Usage: npm run bench [-- [scenario...] [--seconds N] [--warmup N]]

Scenarios (default: all):
${SCENARIOS.map((s) => `  ${s.name.padEnd(13)} ${s.description}`).join('\n')}

Options:
  --seconds N   length of each measured run (default $BENCH_SECONDS or 10)
  --warmup N    warm-up per target (default $BENCH_WARMUP_SECONDS or 2)
`;

function parse(argv: string[]): { scenarios: Scenario[]; settings: Pick<BenchSettings, 'seconds' | 'warmupSeconds' | 'root'> } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { seconds: { type: 'string' }, warmup: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const unknown = positionals.filter((p) => !SCENARIOS.some((s) => s.name === p));
  if (unknown.length) throw new Error(`unknown scenario${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}\n\n${USAGE}`);
  return {
    scenarios: positionals.length ? SCENARIOS.filter((s) => positionals.includes(s.name)) : SCENARIOS,
    settings: {
      seconds: positiveNumber(values.seconds ?? process.env.BENCH_SECONDS, '--seconds / BENCH_SECONDS', 10),
      warmupSeconds: positiveNumber(values.warmup ?? process.env.BENCH_WARMUP_SECONDS, '--warmup / BENCH_WARMUP_SECONDS', 2),
      root: REPO_ROOT,
    },
  };
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const { scenarios, settings } = parsed;

  // Ctrl-C or a kill: stop what we started before going.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping benchmark processes\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }

  let release: () => void;
  try {
    release = await acquireBenchLock(positiveNumber(process.env.BENCH_LOCK_WAIT_SECONDS, 'BENCH_LOCK_WAIT_SECONDS', 900) * 1000, (l) => process.stdout.write(`${l}\n`));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  const quietWaitS = Number(process.env.BENCH_QUIET_WAIT_SECONDS ?? 120);
  if (quietWaitS > 0) {
    const cores = await waitForQuietMachine({
      maxMs: quietWaitS * 1000,
      onWait: (c) => process.stdout.write(`other processes are using ${c.toFixed(2)} cores: waiting up to ${quietWaitS} s for a quieter machine...\n`),
    });
    if (cores >= 0.3) process.stdout.write(`machine still busy (${cores.toFixed(2)} cores used by other processes): running anyway; expect noisy numbers\n`);
  }

  let failed = 0;
  for (const scenario of scenarios) {
    const log = (line: string) => process.stdout.write(`[${scenario.name}] ${line}\n`);
    const date = new Date();
    log(`${scenario.description} (${settings.seconds} s per run)`);
    try {
      const report = await scenario.run({ ...settings, date, machine: machineInfo(), log });
      const file = writeRawResults(scenario.name, date, report.raw);
      writeResultsSection(scenario.name, toMarkdown(report.doc));
      const misses = report.verdicts.filter((v) => !v.pass).length;
      process.stdout.write(`\n${toText(report.doc)}\n\n`);
      log(`${report.verdicts.length - misses}/${report.verdicts.length} targets met; raw results: ${file}; summary: bench/RESULTS.md (${((Date.now() - date.getTime()) / 1000).toFixed(0)} s)`);
    } catch (err) {
      failed++;
      log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      await stopAll();
    }
  }
  release();
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
